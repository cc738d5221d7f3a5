import { describe, expect, it } from 'vitest';
import { EverrunsError } from './errors.js';
import { globToRegExp } from './file-system.js';
import { compileGlob, stripWorkspaceGlobPrefix } from './glob-matcher.js';

const PATHS = [
  '/',
  '/a',
  '/a.ts',
  '/src/a.ts',
  '/src/lib/c.test.ts',
  '/src/lib/deep/x/y.ts',
  '/README.md',
  '/docs/README.md',
  '/a/b/c',
  '/a/bb/c',
  '/src/empty.ts.dir',
  '/x.y+z(1)[2]',
  '/src//a.ts',
  'relative/a.ts',
];

const GLOBS = [
  '**/*.ts',
  '*.ts',
  '/src/*.ts',
  '/src/?.ts',
  '*.md',
  '/*.ts',
  '**',
  '/**',
  '/src/**',
  '/src/**/*.ts',
  '**/lib/**',
  'a/**/c',
  '/a/*/c',
  '/a/?/c',
  '/a/??/c',
  'x.y+z(1)[2]',
  '**/**/**/*.ts',
  '*',
  '?',
  '',
  '/',
  'src/**/y.ts',
  '**/deep/**/*.ts',
  '/src/lib/*.test.ts',
];

describe('compileGlob', () => {
  it('accepts exactly the paths globToRegExp accepts', () => {
    for (const glob of GLOBS) {
      const expected = globToRegExp(glob);
      const matcher = compileGlob(glob);
      for (const path of PATHS) {
        expect({ glob, path, matched: matcher.test(path) }).toEqual({
          glob,
          path,
          matched: expected.test(path),
        });
      }
    }
  });

  it('matches a glob of 60 ** segments against a long path in linear time', () => {
    const glob = `${'**/'.repeat(60)}*.none`;
    const path = `/${'abcdefgh/'.repeat(400)}file.txt`;
    const started = performance.now();
    expect(compileGlob(glob).test(path)).toBe(false);
    expect(compileGlob(`/${'**a'.repeat(300)}`).test(`/${'a'.repeat(3000)}b`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('refuses a glob longer than maxLength with LIMIT_EXCEEDED', () => {
    expect(() => compileGlob('*'.repeat(1_001))).toThrowError(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED' }),
    );
    expect(() => compileGlob('*'.repeat(11), { maxLength: 10 })).toThrow(EverrunsError);
    expect(compileGlob('*'.repeat(10), { maxLength: 10 }).test('/abc')).toBe(true);
  });

  it('drops a leading /workspace segment, as normalizeWorkspacePath does from paths', () => {
    expect(stripWorkspaceGlobPrefix('/workspace/src/*.ts')).toBe('/src/*.ts');
    expect(stripWorkspaceGlobPrefix('/workspace')).toBe('/');
    expect(stripWorkspaceGlobPrefix('/workspace/')).toBe('/');
    expect(stripWorkspaceGlobPrefix('/workspaces/a')).toBe('/workspaces/a');
    expect(stripWorkspaceGlobPrefix('workspace/a')).toBe('workspace/a');
    expect(stripWorkspaceGlobPrefix('**/*.ts')).toBe('**/*.ts');
    const matcher = compileGlob('/workspace/src/**/*.ts');
    expect(matcher.pattern).toBe('/workspace/src/**/*.ts');
    expect(matcher.test('/src/a/b.ts')).toBe(true);
    expect(matcher.test('/workspace/src/a/b.ts')).toBe(false);
    expect(compileGlob('/workspaces/*.ts').test('/workspaces/a.ts')).toBe(true);
  });
});
