import { describe, expect, it } from 'vitest';
import { EverrunsError } from './errors.js';
import { compileGrepPathPattern } from './glob-matcher.js';

describe('compileGrepPathPattern (upstream grep path filters)', () => {
  const paths = [
    '/src/lib.rs',
    '/src/nested/mod.rs',
    '/docs/readme.md',
    '/api/docs.md',
    '/notes.txt',
  ];
  const kept = (pattern: string) =>
    paths.filter((path) => compileGrepPathPattern(pattern).test(path));

  it('reads a pattern with glob characters as a glob', () => {
    expect(kept('src/**/*.rs')).toEqual(['/src/lib.rs', '/src/nested/mod.rs']);
    expect(kept('/workspace/src/*.rs')).toEqual(['/src/lib.rs']);
    expect(kept('*.md')).toEqual(['/docs/readme.md', '/api/docs.md']);
  });

  it('reads a pattern without glob characters as a part of the path', () => {
    expect(kept('docs')).toEqual(['/docs/readme.md', '/api/docs.md']);
    expect(kept('/docs/')).toEqual(['/docs/readme.md']);
    expect(kept('/workspace/src/nested')).toEqual(['/src/nested/mod.rs']);
    expect(kept('/workspace')).toEqual(paths);
    expect(kept('/')).toEqual(paths);
  });

  it('refuses a pattern over the length limit either way', () => {
    for (const pattern of ['a'.repeat(20), `${'a'.repeat(20)}*`]) {
      expect(() => compileGrepPathPattern(pattern, { maxLength: 10 })).toThrow(EverrunsError);
    }
  });
});
