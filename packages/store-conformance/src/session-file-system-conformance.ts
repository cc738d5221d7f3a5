import { readFileIfExists, type SessionFileSystem } from '@everruns-ts/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectErrorCode, TRICKY_TEXT } from './helpers.js';
import { sessionFileSystemAttackTests } from './session-file-system-attack-tests.js';
import type { SessionFileSystemInitializer } from './types.js';

const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;

const INVALID_PATHS: readonly string[] = [
  '',
  '   ',
  '/a/../b',
  '..',
  '/workspace/../etc/passwd',
  '/a\u0000b',
  '/a\nb',
  'C:/Windows',
  'c:\\Windows',
  '\\\\server\\share\\x',
  '/a\\b',
];

const names = (entries: readonly { name: string }[]) => entries.map((entry) => entry.name);
const paths = (entries: readonly { path: string }[]) => entries.map((entry) => entry.path);
const utf8Size = (text: string) => new TextEncoder().encode(text).length;

function allBytesBase64(): string {
  const bytes = new Uint8Array(256 * 2);
  for (let index = 0; index < bytes.length; index++) bytes[index] = index % 256;
  return Buffer.from(bytes).toString('base64');
}

/**
 * Registers the session file system conformance suite: every method of `SessionFileSystem`,
 * path normalisation and refusal, text and base64 round-trips, read-only files, parents created
 * on write, deleting `/` refused, recursive delete, move with and without overwrite,
 * compare-and-set, edit ambiguity, append, sorted listings, glob, grep, `statFile` null for
 * absent paths, the size limit, aborted signals; with `capabilities.symlinks`, links that leave
 * the root; and the attacks (backtracking patterns, many-`**` globs, paths too long or too deep,
 * a large workspace grep) with their time, error and event-loop bounds. Each test gets a fresh
 * file system from `initializer.create()`.
 */
export function sessionFileSystemConformance(initializer: SessionFileSystemInitializer): void {
  const capabilities = initializer.capabilities ?? {};
  const maxFileBytes = capabilities.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;

  describe(`${initializer.name}: session file system conformance`, () => {
    let current: SessionFileSystem | undefined;
    const fileSystem = (): SessionFileSystem => {
      if (current === undefined) throw new Error('The file system is only available in a test');
      return current;
    };
    beforeAll(async () => {
      await initializer.beforeAll?.();
    });
    afterAll(async () => {
      await initializer.afterAll?.();
    });
    beforeEach(async () => {
      current = await initializer.create();
    });
    afterEach(async () => {
      if (current !== undefined) await initializer.destroy?.(current);
      current = undefined;
    });

    describe('paths', () => {
      it('treats /workspace/x, x and /x as the same file', async () => {
        const files = fileSystem();
        const stat = await files.writeFile('/workspace/notes/a.md', 'one');
        expect(stat.path).toBe('/notes/a.md');
        expect(stat.name).toBe('a.md');
        expect((await files.readFile('/notes/a.md')).content).toBe('one');
        expect((await files.readFile('notes/a.md')).path).toBe('/notes/a.md');
        expect((await files.statFile('/workspace/notes'))?.path).toBe('/notes');
        expect(paths(await files.listDirectory('/workspace'))).toEqual(['/notes']);
      });

      it('drops repeated slashes, . segments and trailing slashes', async () => {
        const files = fileSystem();
        expect((await files.writeFile('//a///b/./c.txt', 'x')).path).toBe('/a/b/c.txt');
        expect((await files.statFile('/a/b/'))?.path).toBe('/a/b');
        expect((await files.readFile('/./a/./b//c.txt')).content).toBe('x');
      });

      it('refuses .., empty, whitespace-only, control characters, drive letters, UNC and backslashes with INVALID_PATH', async () => {
        const files = fileSystem();
        for (const path of INVALID_PATHS) {
          await expectErrorCode(files.writeFile(path, 'x'), 'INVALID_PATH');
          await expectErrorCode(files.readFile(path), 'INVALID_PATH');
          await expectErrorCode(files.statFile(path), 'INVALID_PATH');
          await expectErrorCode(files.deleteFile(path, true), 'INVALID_PATH');
        }
        await expectErrorCode(files.moveFile('/ok', '/a/../b'), 'INVALID_PATH');
        await expectErrorCode(files.createDirectory('/x/../..'), 'INVALID_PATH');
        await expectErrorCode(files.listDirectory('..'), 'INVALID_PATH');
        expect(await files.listDirectory('/')).toEqual([]);
      });

      it('accepts names with spaces, Unicode and pattern characters', async () => {
        const files = fileSystem();
        const path = '/dir with space/ünïcødé 🧪 [x] (1) 50% $HOME *.txt';
        await files.writeFile(path, 'odd');
        expect((await files.readFile(path)).content).toBe('odd');
        expect(paths(await files.listDirectory('/dir with space'))).toEqual([path]);
      });
    });

    describe('reading and writing', () => {
      it('round-trips text exactly and reports its UTF-8 size', async () => {
        const files = fileSystem();
        const stat = await files.writeFile('/tricky.txt', TRICKY_TEXT);
        expect(stat).toMatchObject({
          path: '/tricky.txt',
          name: 'tricky.txt',
          isDirectory: false,
          isReadonly: false,
          size: utf8Size(TRICKY_TEXT),
        });
        expect(Number.isNaN(Date.parse(stat.updatedAt))).toBe(false);
        const read = await files.readFile('/tricky.txt');
        expect(read).toMatchObject({ content: TRICKY_TEXT, encoding: 'text' });
        expect(read.size).toBe(utf8Size(TRICKY_TEXT));
      });

      it('round-trips base64 bytes exactly and reads them back as base64', async () => {
        const files = fileSystem();
        const content = allBytesBase64();
        expect((await files.writeFile('/bin/all.bin', content, 'base64')).size).toBe(512);
        expect(await files.readFile('/bin/all.bin')).toMatchObject({ content, encoding: 'base64' });
        await files.writeFile('/empty.bin', '', 'base64');
        expect(await files.readFile('/empty.bin')).toMatchObject({ content: '', size: 0 });
      });

      it('converts between encodings on request', async () => {
        const files = fileSystem();
        await files.writeFile('/t.txt', 'héllo 🧪');
        expect((await files.readFile('/t.txt', { encoding: 'base64' })).content).toBe(
          Buffer.from('héllo 🧪').toString('base64'),
        );
        await files.writeFile('/b.bin', Buffer.from('plain text').toString('base64'), 'base64');
        expect(await files.readFile('/b.bin', { encoding: 'text' })).toMatchObject({
          content: 'plain text',
          encoding: 'text',
        });
      });

      it('replaces a file and keeps an empty one', async () => {
        const files = fileSystem();
        await files.writeFile('/a', 'first version');
        await files.writeFile('/a', 'second');
        expect((await files.readFile('/a')).content).toBe('second');
        await files.writeFile('/empty', '');
        expect(await files.readFile('/empty')).toMatchObject({ content: '', size: 0 });
      });

      it('creates parent directories on write', async () => {
        const files = fileSystem();
        await files.writeFile('/a/b/c/d.txt', 'deep');
        for (const path of ['/a', '/a/b', '/a/b/c']) {
          expect(await files.statFile(path)).toMatchObject({ path, isDirectory: true, size: 0 });
        }
      });

      it('reports FILE_NOT_FOUND, IS_A_DIRECTORY and NOT_A_DIRECTORY', async () => {
        const files = fileSystem();
        await files.writeFile('/file', 'x');
        await files.createDirectory('/dir');
        await expectErrorCode(files.readFile('/missing'), 'FILE_NOT_FOUND');
        await expectErrorCode(files.readFile('/dir'), 'IS_A_DIRECTORY');
        await expectErrorCode(files.writeFile('/dir', 'x'), 'IS_A_DIRECTORY');
        await expectErrorCode(files.writeFile('/', 'x'), 'IS_A_DIRECTORY');
        await expectErrorCode(files.writeFile('/file/child', 'x'), 'NOT_A_DIRECTORY');
        expect((await files.readFile('/file')).content).toBe('x');
      });

      it('reads a missing file as null with readFileIfExists, other failures still throwing', async () => {
        const files = fileSystem();
        await files.writeFile('/file', 'x');
        await files.createDirectory('/dir');
        expect(await readFileIfExists(files, '/missing')).toBeNull();
        expect(await readFileIfExists(files, '/dir/missing.txt')).toBeNull();
        expect((await readFileIfExists(files, '/file'))?.content).toBe('x');
        await expectErrorCode(readFileIfExists(files, '/dir'), 'IS_A_DIRECTORY');
        await expectErrorCode(readFileIfExists(files, '..'), 'INVALID_PATH');
      });

      it('pages a text read by lines, keeping line ends', async () => {
        const files = fileSystem();
        await files.writeFile('/lines.txt', 'l1\nl2\nl3\nl4\n');
        expect(await files.readFile('/lines.txt', { offset: 1, limit: 2 })).toMatchObject({
          content: 'l2\nl3\n',
          totalLines: 4,
          truncated: true,
        });
        expect(await files.readFile('/lines.txt', { offset: 2 })).toMatchObject({
          content: 'l3\nl4\n',
          totalLines: 4,
          truncated: true,
        });
        expect(await files.readFile('/lines.txt', { offset: 0, limit: 4 })).toMatchObject({
          content: 'l1\nl2\nl3\nl4\n',
          totalLines: 4,
          truncated: false,
        });
        await files.writeFile('/no-final-newline.txt', 'a\nb');
        expect(await files.readFile('/no-final-newline.txt', { limit: 1 })).toMatchObject({
          content: 'a\n',
          totalLines: 2,
          truncated: true,
        });
        expect(
          (await files.readFile('/no-final-newline.txt', { offset: 1, limit: 5 })).content,
        ).toBe('b');
      });

      it(`refuses files over the size limit (${maxFileBytes} bytes) with FILE_TOO_LARGE`, async () => {
        const files = fileSystem();
        await files.writeFile('/max.txt', 'x'.repeat(maxFileBytes));
        expect((await files.statFile('/max.txt'))?.size).toBe(maxFileBytes);
        await expectErrorCode(
          files.writeFile('/over.txt', 'x'.repeat(maxFileBytes + 1)),
          'FILE_TOO_LARGE',
        );
        await expectErrorCode(files.appendFile('/max.txt', 'y'), 'FILE_TOO_LARGE');
        expect(await files.statFile('/over.txt')).toBeNull();
        expect((await files.statFile('/max.txt'))?.size).toBe(maxFileBytes);
      });

      it('throws ABORTED for an aborted signal', async () => {
        const files = fileSystem();
        await files.writeFile('/a.txt', 'x');
        const controller = new AbortController();
        controller.abort();
        const { signal } = controller;
        await expectErrorCode(files.readFile('/a.txt', { signal }), 'ABORTED');
        await expectErrorCode(files.globFiles('**', { signal }), 'ABORTED');
        await expectErrorCode(files.grepFiles('x', undefined, { signal }), 'ABORTED');
      });
    });

    describe('read-only files and seeding', () => {
      it('seeds files with parents, encodings and the read-only flag', async () => {
        const files = fileSystem();
        await files.seedInitialFile({
          path: '/workspace/.agents/AGENTS.md',
          content: 'rules',
          encoding: 'text',
          isReadonly: true,
        });
        await files.seedInitialFile({
          path: '/logo.bin',
          content: allBytesBase64(),
          encoding: 'base64',
          isReadonly: false,
        });
        expect(await files.statFile('/.agents/AGENTS.md')).toMatchObject({
          isReadonly: true,
          size: 5,
        });
        expect(await files.statFile('/.agents')).toMatchObject({ isDirectory: true });
        expect(await files.readFile('/logo.bin')).toMatchObject({
          content: allBytesBase64(),
          encoding: 'base64',
          isReadonly: false,
        });
      });

      it('refuses every write, move and delete of a read-only file with FILE_READ_ONLY', async () => {
        const files = fileSystem();
        const path = '/locked/AGENTS.md';
        await files.seedInitialFile({ path, content: 'rules', encoding: 'text', isReadonly: true });
        await files.writeFile('/other.txt', 'other');
        await expectErrorCode(files.writeFile(path, 'x'), 'FILE_READ_ONLY');
        await expectErrorCode(
          files.writeFileIfContentMatches(path, 'rules', 'x'),
          'FILE_READ_ONLY',
        );
        await expectErrorCode(files.editFile(path, 'rules', 'x'), 'FILE_READ_ONLY');
        await expectErrorCode(files.appendFile(path, 'x'), 'FILE_READ_ONLY');
        await expectErrorCode(files.deleteFile(path), 'FILE_READ_ONLY');
        await expectErrorCode(files.moveFile(path, '/moved.md'), 'FILE_READ_ONLY');
        await expectErrorCode(
          files.moveFile('/other.txt', path, { overwrite: true }),
          'FILE_READ_ONLY',
        );
        await expectErrorCode(files.deleteFile('/locked', true), 'FILE_READ_ONLY');
        expect(await files.readFile(path)).toMatchObject({ content: 'rules', isReadonly: true });
        expect((await files.readFile('/other.txt')).content).toBe('other');
        expect(await files.statFile('/moved.md')).toBeNull();
      });
    });

    describe('deleting', () => {
      it('deletes a file and returns false when nothing was there', async () => {
        const files = fileSystem();
        await files.writeFile('/a.txt', 'x');
        expect(await files.deleteFile('/a.txt')).toBe(true);
        expect(await files.statFile('/a.txt')).toBeNull();
        expect(await files.deleteFile('/a.txt')).toBe(false);
        expect(await files.deleteFile('/never/was/here', true)).toBe(false);
      });

      it('refuses to delete the root with INVALID_PATH', async () => {
        const files = fileSystem();
        await files.writeFile('/keep.txt', 'x');
        await expectErrorCode(files.deleteFile('/'), 'INVALID_PATH');
        await expectErrorCode(files.deleteFile('/', true), 'INVALID_PATH');
        await expectErrorCode(files.deleteFile('/workspace', true), 'INVALID_PATH');
        expect((await files.readFile('/keep.txt')).content).toBe('x');
      });

      it('deletes an empty directory, and a non-empty one only recursively', async () => {
        const files = fileSystem();
        await files.createDirectory('/empty');
        expect(await files.deleteFile('/empty')).toBe(true);
        await files.writeFile('/full/sub/a.txt', 'a');
        await files.writeFile('/full/b.txt', 'b');
        // Without `recursive`, as upstream's stores: false, and nothing is deleted.
        expect(await files.deleteFile('/full')).toBe(false);
        expect(await files.deleteFile('/workspace/full/sub')).toBe(false);
        expect((await files.readFile('/full/sub/a.txt')).content).toBe('a');
        expect((await files.readFile('/full/b.txt')).content).toBe('b');
        expect((await files.statFile('/full/sub'))?.isDirectory).toBe(true);
        expect(await files.deleteFile('/full', true)).toBe(true);
        for (const path of ['/full', '/full/sub', '/full/sub/a.txt', '/full/b.txt']) {
          expect(await files.statFile(path)).toBeNull();
        }
        expect(await files.listDirectory('/')).toEqual([]);
      });
    });

    describe('moving', () => {
      it('renames a file, creating the target parents', async () => {
        const files = fileSystem();
        await files.writeFile('/a.txt', 'content');
        const stat = await files.moveFile('/a.txt', '/new/dir/b.txt');
        expect(stat).toMatchObject({ path: '/new/dir/b.txt', name: 'b.txt', isDirectory: false });
        expect(await files.statFile('/a.txt')).toBeNull();
        expect((await files.readFile('/new/dir/b.txt')).content).toBe('content');
      });

      it('refuses an existing target with FILE_ALREADY_EXISTS unless overwrite', async () => {
        const files = fileSystem();
        await files.writeFile('/from.txt', 'from');
        await files.writeFile('/to.txt', 'to');
        await expectErrorCode(files.moveFile('/from.txt', '/to.txt'), 'FILE_ALREADY_EXISTS');
        expect((await files.readFile('/from.txt')).content).toBe('from');
        expect((await files.readFile('/to.txt')).content).toBe('to');
        await files.moveFile('/from.txt', '/to.txt', { overwrite: true });
        expect((await files.readFile('/to.txt')).content).toBe('from');
        expect(await files.statFile('/from.txt')).toBeNull();
      });

      it('moves a directory with its contents', async () => {
        const files = fileSystem();
        await files.writeFile('/src/a.ts', 'a');
        await files.writeFile('/src/lib/b.ts', 'b');
        expect((await files.moveFile('/src', '/moved')).isDirectory).toBe(true);
        expect((await files.readFile('/moved/lib/b.ts')).content).toBe('b');
        expect(await files.statFile('/src')).toBeNull();
      });

      it('throws FILE_NOT_FOUND for a missing source', async () => {
        await expectErrorCode(fileSystem().moveFile('/missing', '/x'), 'FILE_NOT_FOUND');
      });
    });

    describe('compare-and-set, edit and append', () => {
      it('writes only when the current content matches, null meaning absent', async () => {
        const files = fileSystem();
        await files.writeFileIfContentMatches('/cas.txt', null, 'v1');
        await expectErrorCode(
          files.writeFileIfContentMatches('/cas.txt', null, 'other'),
          'CONTENT_MISMATCH',
        );
        await expectErrorCode(
          files.writeFileIfContentMatches('/cas.txt', 'v0', 'other'),
          'CONTENT_MISMATCH',
        );
        expect((await files.readFile('/cas.txt')).content).toBe('v1');
        const stat = await files.writeFileIfContentMatches('/cas.txt', 'v1', 'v2');
        expect(stat.size).toBe(2);
        expect((await files.readFile('/cas.txt')).content).toBe('v2');
        await expectErrorCode(
          files.writeFileIfContentMatches('/absent.txt', 'anything', 'x'),
          'CONTENT_MISMATCH',
        );
        expect(await files.statFile('/absent.txt')).toBeNull();
        await files.writeFileIfContentMatches('/deep/new.txt', null, 'created with parents');
        expect((await files.readFile('/deep/new.txt')).content).toBe('created with parents');
      });

      it('edits exactly one occurrence and refuses zero or several with CONTENT_MISMATCH', async () => {
        const files = fileSystem();
        await files.writeFile('/e.txt', 'alpha beta alpha gamma');
        await expectErrorCode(files.editFile('/e.txt', 'alpha', 'x'), 'CONTENT_MISMATCH');
        await expectErrorCode(files.editFile('/e.txt', 'delta', 'x'), 'CONTENT_MISMATCH');
        expect((await files.readFile('/e.txt')).content).toBe('alpha beta alpha gamma');
        await files.editFile('/e.txt', 'beta', '$& $1 $$');
        expect((await files.readFile('/e.txt')).content).toBe('alpha $& $1 $$ alpha gamma');
        await files.editFile('/e.txt', 'alpha', 'omega', { replaceAll: true });
        expect((await files.readFile('/e.txt')).content).toBe('omega $& $1 $$ omega gamma');
        await expectErrorCode(files.editFile('/missing.txt', 'a', 'b'), 'FILE_NOT_FOUND');
      });

      it('appends text, creating the file and its parents when absent', async () => {
        const files = fileSystem();
        await files.appendFile('/logs/run.log', 'one\n');
        const stat = await files.appendFile('/logs/run.log', 'two 🧪\n');
        expect(stat.size).toBe(utf8Size('one\ntwo 🧪\n'));
        expect((await files.readFile('/logs/run.log')).content).toBe('one\ntwo 🧪\n');
      });
    });

    describe('listing, stat and directories', () => {
      it('lists the entries directly under a directory, sorted by name', async () => {
        const files = fileSystem();
        for (const name of ['b.txt', 'B.txt', 'a.txt', '_x', '10', '9']) {
          await files.writeFile(`/d/${name}`, name);
        }
        await files.createDirectory('/d/sub');
        await files.writeFile('/d/sub/deeper.txt', 'not listed');
        const entries = await files.listDirectory('/d');
        expect(names(entries)).toEqual(['10', '9', 'B.txt', '_x', 'a.txt', 'b.txt', 'sub']);
        expect(entries.find((entry) => entry.name === 'sub')).toMatchObject({
          path: '/d/sub',
          isDirectory: true,
        });
        expect(entries.find((entry) => entry.name === 'a.txt')).toMatchObject({
          path: '/d/a.txt',
          isDirectory: false,
          size: 5,
        });
      });

      it('refuses to list a missing path or a file', async () => {
        const files = fileSystem();
        await files.writeFile('/f.txt', 'x');
        await expectErrorCode(files.listDirectory('/missing'), 'FILE_NOT_FOUND');
        await expectErrorCode(files.listDirectory('/f.txt'), 'NOT_A_DIRECTORY');
      });

      it('stats the root, files and directories, and returns null for absent paths', async () => {
        const files = fileSystem();
        expect(await files.statFile('/')).toMatchObject({ path: '/', isDirectory: true });
        await files.writeFile('/s/f.txt', 'four');
        expect(await files.statFile('/s/f.txt')).toMatchObject({
          path: '/s/f.txt',
          name: 'f.txt',
          isDirectory: false,
          isReadonly: false,
          size: 4,
        });
        expect(await files.statFile('/s')).toMatchObject({ name: 's', isDirectory: true });
        expect(await files.statFile('/nothing')).toBeNull();
        expect(await files.statFile('/s/nothing/deeper')).toBeNull();
      });

      it('creates directories with parents and accepts an existing one', async () => {
        const files = fileSystem();
        const stat = await files.createDirectory('/x/y/z');
        expect(stat).toMatchObject({ path: '/x/y/z', name: 'z', isDirectory: true });
        expect((await files.createDirectory('/x/y')).isDirectory).toBe(true);
        expect(names(await files.listDirectory('/x/y'))).toEqual(['z']);
        await files.writeFile('/file.txt', 'x');
        await expectErrorCode(files.createDirectory('/file.txt'), 'FILE_ALREADY_EXISTS');
        await expectErrorCode(files.createDirectory('/file.txt/sub'), 'NOT_A_DIRECTORY');
      });
    });

    describe('glob and grep', () => {
      async function seed(files: SessionFileSystem) {
        await files.writeFile('/src/b.ts', 'const b = 1;\n// TODO: later\n');
        await files.writeFile('/src/a.ts', 'todo: lowercase\nconst a = 2;\n');
        await files.writeFile('/src/lib/c.ts', 'TODO deep\nTODO twice\n');
        await files.writeFile('/src/lib/c.test.ts', 'TODO in a test\n');
        await files.writeFile('/README.md', '# Title\nTODO docs\n');
        await files.createDirectory('/src/empty.ts.dir');
      }

      it('globs files (not directories) sorted by path', async () => {
        const files = fileSystem();
        await seed(files);
        expect(paths(await files.globFiles('**/*.ts'))).toEqual([
          '/src/a.ts',
          '/src/b.ts',
          '/src/lib/c.test.ts',
          '/src/lib/c.ts',
        ]);
        expect(paths(await files.globFiles('/src/*.ts'))).toEqual(['/src/a.ts', '/src/b.ts']);
        expect(paths(await files.globFiles('/src/?.ts'))).toEqual(['/src/a.ts', '/src/b.ts']);
        expect(paths(await files.globFiles('*.md'))).toEqual(['/README.md']);
        expect(paths(await files.globFiles('/*.ts'))).toEqual([]);
        expect(await files.globFiles('**/*.none')).toEqual([]);
      });

      it('greps lines by regular expression in path then line order', async () => {
        const files = fileSystem();
        await seed(files);
        expect(await files.grepFiles('TODO')).toEqual([
          { path: '/README.md', lineNumber: 2, line: 'TODO docs' },
          { path: '/src/b.ts', lineNumber: 2, line: '// TODO: later' },
          { path: '/src/lib/c.test.ts', lineNumber: 1, line: 'TODO in a test' },
          { path: '/src/lib/c.ts', lineNumber: 1, line: 'TODO deep' },
          { path: '/src/lib/c.ts', lineNumber: 2, line: 'TODO twice' },
        ]);
        expect(await files.grepFiles('^const [ab] = \\d;$')).toEqual([
          { path: '/src/a.ts', lineNumber: 2, line: 'const a = 2;' },
          { path: '/src/b.ts', lineNumber: 1, line: 'const b = 1;' },
        ]);
      });

      it('greps only files matching pathPattern, case-insensitively on request, up to maxMatches', async () => {
        const files = fileSystem();
        await seed(files);
        expect(paths(await files.grepFiles('TODO', '/src/lib/*.ts'))).toEqual([
          '/src/lib/c.test.ts',
          '/src/lib/c.ts',
          '/src/lib/c.ts',
        ]);
        expect(paths(await files.grepFiles('TODO', '**/*.test.ts'))).toEqual([
          '/src/lib/c.test.ts',
        ]);
        expect(paths(await files.grepFiles('todo', '/src/*.ts', { ignoreCase: true }))).toEqual([
          '/src/a.ts',
          '/src/b.ts',
        ]);
        expect(await files.grepFiles('todo', '/src/*.ts')).toEqual([
          { path: '/src/a.ts', lineNumber: 1, line: 'todo: lowercase' },
        ]);
        expect(await files.grepFiles('TODO', undefined, { maxMatches: 2 })).toHaveLength(2);
        expect(await files.grepFiles('no such text anywhere')).toEqual([]);
      });

      it('refuses an invalid regular expression with INVALID_INPUT', async () => {
        await expectErrorCode(fileSystem().grepFiles('(unclosed'), 'INVALID_INPUT');
      });

      it('reads a leading /workspace in grep and glob path patterns as the root, as upstream', async () => {
        const files = fileSystem();
        await seed(files);
        await files.writeFile('/workspace/inner.ts', 'TODO under a directory named workspace\n');
        expect(paths(await files.grepFiles('TODO', '/workspace/src/lib/*.ts'))).toEqual([
          '/src/lib/c.test.ts',
          '/src/lib/c.ts',
          '/src/lib/c.ts',
        ]);
        expect(paths(await files.grepFiles('TODO', '/workspace/**/*.md'))).toEqual(['/README.md']);
        expect(paths(await files.globFiles('/workspace/src/*.ts'))).toEqual([
          '/src/a.ts',
          '/src/b.ts',
        ]);
        // The workspace path /workspace/inner.ts is /inner.ts; the glob means the same.
        expect(paths(await files.globFiles('/workspace/*.ts'))).toEqual(['/inner.ts']);
        expect(paths(await files.globFiles('/workspace/inner.ts'))).toEqual(['/inner.ts']);
      });
    });

    sessionFileSystemAttackTests(fileSystem, maxFileBytes);

    if (capabilities.symlinks) {
      describe('symbolic links', () => {
        it('refuses to write or list through a link that leaves the root with PATH_OUTSIDE_ROOT', async () => {
          const files = fileSystem();
          const { linkOutside } = initializer;
          if (linkOutside === undefined) {
            expect.fail('capabilities.symlinks needs initializer.linkOutside');
          }
          await linkOutside(files, '/escape');
          await expectErrorCode(files.writeFile('/escape/planted.txt', 'x'), 'PATH_OUTSIDE_ROOT');
          await expectErrorCode(files.listDirectory('/escape'), 'PATH_OUTSIDE_ROOT');
          await expectErrorCode(files.readFile('/escape/planted.txt'), 'PATH_OUTSIDE_ROOT');
        });
      });
    }

    const { additionalTests } = initializer;
    if (additionalTests !== undefined) {
      describe('additional tests', () => additionalTests({ fileSystem }));
    }
  });
}
