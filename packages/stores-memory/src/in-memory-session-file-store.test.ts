import { EverrunsError } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InMemorySessionFileStore, InMemorySessionFileSystemFactory } from './index.js';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return EverrunsError.isInstance(error) ? error.code : 'NOT_AN_EVERRUNS_ERROR';
  }
  return undefined;
}

describe('InMemorySessionFileStore', () => {
  it('writes, creates parents and normalises /workspace paths', async () => {
    const files = new InMemorySessionFileStore();
    const stat = await files.writeFile('/workspace/src/a.ts', 'export {}\n');
    expect(stat).toMatchObject({ path: '/src/a.ts', name: 'a.ts', size: 10, isDirectory: false });
    expect((await files.readFile('/src/a.ts')).content).toBe('export {}\n');
    expect(await files.statFile('/src')).toMatchObject({ isDirectory: true, size: 0 });
    expect((await files.listDirectory('/')).map((entry) => entry.path)).toEqual(['/src']);
    expect(await files.statFile('/missing')).toBeNull();
  });

  it('refuses invalid paths', async () => {
    const files = new InMemorySessionFileStore();
    for (const path of ['', '  ', '/a/../b', 'a\u0000b', 'C:/x', '\\\\server\\share', 'a\\b']) {
      expect(await codeOf(files.writeFile(path, 'x'))).toBe('INVALID_PATH');
    }
  });

  it('round-trips base64 and reports the byte size', async () => {
    const files = new InMemorySessionFileStore();
    const bytes = Buffer.from([0, 255, 1, 254, 10, 13]).toString('base64');
    expect((await files.writeFile('/bin', bytes, 'base64')).size).toBe(6);
    const read = await files.readFile('/bin');
    expect(read).toMatchObject({ content: bytes, encoding: 'base64' });
    expect(await codeOf(files.writeFile('/bad', 'not base64!', 'base64'))).toBe('INVALID_INPUT');
    await files.writeFile('/t', 'héllo');
    expect((await files.readFile('/t', { encoding: 'base64' })).content).toBe(
      Buffer.from('héllo').toString('base64'),
    );
  });

  it('pages text reads by line', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/lines', 'a\nb\nc\nd\n');
    const page = await files.readFile('/lines', { offset: 1, limit: 2 });
    expect(page).toMatchObject({ content: 'b\nc\n', totalLines: 4, truncated: true });
    const whole = await files.readFile('/lines', { offset: 0, limit: 10 });
    expect(whole).toMatchObject({ content: 'a\nb\nc\nd\n', truncated: false });
  });

  it('protects read-only files from writes, edits, appends, moves and deletes', async () => {
    const files = new InMemorySessionFileStore();
    await files.seedInitialFile({
      path: '/docs/AGENTS.md',
      content: 'rules',
      encoding: 'text',
      isReadonly: true,
    });
    expect((await files.statFile('/docs/AGENTS.md'))?.isReadonly).toBe(true);
    expect(await codeOf(files.writeFile('/docs/AGENTS.md', 'x'))).toBe('FILE_READ_ONLY');
    expect(await codeOf(files.editFile('/docs/AGENTS.md', 'rules', 'x'))).toBe('FILE_READ_ONLY');
    expect(await codeOf(files.appendFile('/docs/AGENTS.md', 'x'))).toBe('FILE_READ_ONLY');
    expect(await codeOf(files.moveFile('/docs/AGENTS.md', '/x'))).toBe('FILE_READ_ONLY');
    expect(await codeOf(files.deleteFile('/docs/AGENTS.md'))).toBe('FILE_READ_ONLY');
    expect(await codeOf(files.deleteFile('/docs', true))).toBe('FILE_READ_ONLY');
    expect((await files.readFile('/docs/AGENTS.md')).content).toBe('rules');
  });

  it('deletes recursively only when asked and never the root', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/d/e/f.txt', 'x');
    expect(await codeOf(files.deleteFile('/'))).toBe('INVALID_PATH');
    expect(await codeOf(files.deleteFile('/workspace', true))).toBe('INVALID_PATH');
    expect(await files.deleteFile('/d')).toBe(false);
    expect((await files.readFile('/d/e/f.txt')).content).toBe('x');
    expect(await files.deleteFile('/d', true)).toBe(true);
    expect(await files.deleteFile('/d', true)).toBe(false);
    expect(await files.listDirectory('/')).toEqual([]);
  });

  it('moves with and without overwrite', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/a', 'A');
    await files.writeFile('/b', 'B');
    expect(await codeOf(files.moveFile('/a', '/b'))).toBe('FILE_ALREADY_EXISTS');
    expect((await files.moveFile('/a', '/b', { overwrite: true })).path).toBe('/b');
    expect((await files.readFile('/b')).content).toBe('A');
    expect(await files.statFile('/a')).toBeNull();
    await files.writeFile('/dir/x', 'x');
    await files.moveFile('/dir', '/new/place');
    expect((await files.readFile('/new/place/x')).content).toBe('x');
    expect(await codeOf(files.moveFile('/new', '/new/inner'))).toBe('INVALID_PATH');
    expect(await codeOf(files.moveFile('/nothing', '/z'))).toBe('FILE_NOT_FOUND');
  });

  it('compare-and-sets, edits and appends', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFileIfContentMatches('/c', null, 'one');
    expect(await codeOf(files.writeFileIfContentMatches('/c', null, 'two'))).toBe(
      'CONTENT_MISMATCH',
    );
    expect(await codeOf(files.writeFileIfContentMatches('/c', 'zero', 'two'))).toBe(
      'CONTENT_MISMATCH',
    );
    await files.writeFileIfContentMatches('/c', 'one', 'two two');
    expect(await codeOf(files.editFile('/c', 'two', 'x'))).toBe('CONTENT_MISMATCH');
    expect(await codeOf(files.editFile('/c', 'three', 'x'))).toBe('CONTENT_MISMATCH');
    await files.editFile('/c', 'two', '$&', { replaceAll: true });
    expect((await files.readFile('/c')).content).toBe('$& $&');
    await files.appendFile('/c', '!');
    await files.appendFile('/new/log', 'line\n');
    expect((await files.readFile('/c')).content).toBe('$& $&!');
    expect((await files.readFile('/new/log')).content).toBe('line\n');
  });

  it('globs and greps in path order', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/src/b.ts', 'const b = 1;\nTODO later\n');
    await files.writeFile('/src/a.ts', 'todo now\n');
    await files.writeFile('/src/deep/c.ts', 'TODO deep');
    await files.writeFile('/README.md', 'TODO docs');
    await files.writeFile('/bin', 'AAAA', 'base64');
    expect((await files.globFiles('/src/**/*.ts')).map((file) => file.path)).toEqual([
      '/src/a.ts',
      '/src/b.ts',
      '/src/deep/c.ts',
    ]);
    expect((await files.globFiles('*.md')).map((file) => file.path)).toEqual(['/README.md']);
    expect(await files.grepFiles('TODO', '**/*.ts')).toEqual([
      { path: '/src/b.ts', lineNumber: 2, line: 'TODO later' },
      { path: '/src/deep/c.ts', lineNumber: 1, line: 'TODO deep' },
    ]);
    expect(await files.grepFiles('todo', undefined, { ignoreCase: true, maxMatches: 2 })).toEqual([
      { path: '/README.md', lineNumber: 1, line: 'TODO docs' },
      { path: '/src/a.ts', lineNumber: 1, line: 'todo now' },
    ]);
    expect(await codeOf(files.grepFiles('('))).toBe('INVALID_INPUT');
  });

  it('stops grep after the visit cap', async () => {
    const files = new InMemorySessionFileStore({ maxGrepFiles: 2 });
    for (const name of ['a', 'b', 'c']) await files.writeFile(`/${name}`, 'hit');
    expect((await files.grepFiles('hit')).map((match) => match.path)).toEqual(['/a', '/b']);
  });

  it('refuses files over the size limit', async () => {
    const files = new InMemorySessionFileStore({ maxFileBytes: 4 });
    await files.writeFile('/ok', 'abcd');
    expect(await codeOf(files.writeFile('/big', 'abcde'))).toBe('FILE_TOO_LARGE');
    expect(await codeOf(files.appendFile('/ok', 'e'))).toBe('FILE_TOO_LARGE');
    expect(await codeOf(files.writeFile('/multi', 'éé€'))).toBe('FILE_TOO_LARGE');
  });

  it('reports directories and files used the wrong way', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/file', 'x');
    await files.createDirectory('/dir/sub');
    expect((await files.createDirectory('/dir')).isDirectory).toBe(true);
    expect(await codeOf(files.readFile('/dir'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(files.writeFile('/dir', 'x'))).toBe('IS_A_DIRECTORY');
    expect(await codeOf(files.writeFile('/file/child', 'x'))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(files.listDirectory('/file'))).toBe('NOT_A_DIRECTORY');
    expect(await codeOf(files.listDirectory('/nothing'))).toBe('FILE_NOT_FOUND');
    expect(await codeOf(files.readFile('/nothing'))).toBe('FILE_NOT_FOUND');
    expect(await codeOf(files.createDirectory('/file'))).toBe('FILE_ALREADY_EXISTS');
  });

  it('honours an aborted signal', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/a', 'x');
    const controller = new AbortController();
    controller.abort();
    expect(await codeOf(files.readFile('/a', { signal: controller.signal }))).toBe('ABORTED');
    expect(await codeOf(files.globFiles('**', { signal: controller.signal }))).toBe('ABORTED');
  });
});

describe('InMemorySessionFileSystemFactory', () => {
  it('gives each session its own store and the same one on every call', async () => {
    const factory = new InMemorySessionFileSystemFactory();
    const one = factory.forSession('session_one');
    await one.writeFile('/a', 'x');
    expect(factory.forSession('session_one')).toBe(one);
    expect(await factory.forSession('session_two').statFile('/a')).toBeNull();
  });
});
