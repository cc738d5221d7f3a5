import { execFileSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { SessionFileSystem } from '@everruns-ts/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore, type RealDiskFileStoreOptions } from './real-disk-file-store.js';
import { expectCode, makeSandbox, type Sandbox, SECRET, withDeadline } from './test-support.js';

const DOT_DOT_PATHS = [
  '..',
  '../secret.txt',
  '/../outside/secret.txt',
  'a/../../outside/secret.txt',
  '/a/..',
  '/a/b/../../../outside/x',
  './../x',
  '/workspace/../outside/secret.txt',
  'a/..//..',
  '../ws2/secret.txt',
  '/a/../b',
];
const EMPTY_AND_CONTROL_PATHS = [
  '',
  ' ',
  '\t',
  '\n',
  ' \t ',
  '/a\u0000b',
  '\u0000',
  'x.txt\u0000.png',
];
const WINDOWS_PATHS = [
  'C:\\Windows\\win.ini',
  'C:/Windows',
  'c:x',
  '\\\\server\\share\\x',
  '\\\\?\\C:\\x',
  '..\\secret.txt',
  'a\\..\\..\\x',
];

/** Every operation of the contract on `path`, each expected to fail with `code`. */
async function expectEveryOperationRefused(
  store: SessionFileSystem,
  path: string,
  code: 'INVALID_PATH' | 'PATH_OUTSIDE_ROOT',
): Promise<void> {
  await expectCode(store.readFile(path), code);
  await expectCode(store.writeFile(path, 'planted'), code);
  await expectCode(store.writeFileIfContentMatches(path, null, 'planted'), code);
  await expectCode(store.writeFileIfContentMatches(path, SECRET, 'planted'), code);
  await expectCode(store.editFile(path, SECRET, 'planted'), code);
  await expectCode(store.appendFile(path, 'planted'), code);
  await expectCode(store.createDirectory(path), code);
  await expectCode(store.listDirectory(path), code);
  await expectCode(store.statFile(path), code);
  await expectCode(
    store.seedInitialFile({ path, content: 'planted', encoding: 'text', isReadonly: false }),
    code,
  );
}

for (const resolution of ['descriptor', 'path'] as const) {
  describe(`RealDiskFileStore escapes (${resolution} resolution)`, () => {
    let sandbox: Sandbox;
    let baseline: Record<string, string>;
    const store = (options: Partial<RealDiskFileStoreOptions> = {}) =>
      new RealDiskFileStore({ root: sandbox.root, resolution, ...options });
    const rebaseline = () => {
      baseline = sandbox.outsideSnapshot();
    };

    beforeEach(() => {
      sandbox = makeSandbox();
      rebaseline();
    });
    afterEach(() => {
      try {
        expect(sandbox.outsideSnapshot(), 'nothing outside the root may change').toEqual(baseline);
      } finally {
        sandbox.cleanup();
      }
    });

    describe('paths', () => {
      it('refuses ../ in every position for every operation with INVALID_PATH', async () => {
        const files = store();
        await files.writeFile('/a/b/keep.txt', 'keep');
        for (const path of DOT_DOT_PATHS) {
          await expectEveryOperationRefused(files, path, 'INVALID_PATH');
          await expectCode(files.deleteFile(path, true), 'INVALID_PATH');
          await expectCode(files.moveFile(path, '/moved'), 'INVALID_PATH');
          await expectCode(files.moveFile('/a/b/keep.txt', path), 'INVALID_PATH');
          await expectCode(files.resolveRealPath(path), 'INVALID_PATH');
        }
        expect(await files.globFiles('../**')).toEqual([]);
        expect(await files.grepFiles(SECRET, '../**')).toEqual([]);
        expect(await files.grepFiles(SECRET)).toEqual([]);
        expect((await files.readFile('/a/b/keep.txt')).content).toBe('keep');
      });

      it('takes absolute host paths as workspace paths, never as host paths', async () => {
        const files = store();
        const hostSecret = join(sandbox.outside, 'secret.txt');
        await expectCode(files.readFile(hostSecret), 'FILE_NOT_FOUND');
        const planted = join(sandbox.outside, 'planted.txt');
        const stat = await files.writeFile(planted, 'inside');
        expect(stat.path).toBe(planted);
        expect(readFileSync(join(sandbox.root, planted), 'utf8')).toBe('inside');
        expect(existsSync(planted)).toBe(false);
        expect(await files.deleteFile(planted)).toBe(true);
        expect(await files.deleteFile(hostSecret)).toBe(false);
        expect(await files.statFile('/etc/passwd')).toBeNull();
      });

      it('takes %2e%2e and other encoded forms literally, inside the root', async () => {
        const files = store();
        for (const path of [
          '/%2e%2e/x.txt',
          '%2e%2e%2f%2e%2e%2fsecret.txt',
          '..%2fy.txt',
          '%2E%2E/z',
        ]) {
          await files.writeFile(path, 'literal');
          expect((await files.readFile(path)).content).toBe('literal');
        }
        expect(readFileSync(join(sandbox.root, '%2e%2e', 'x.txt'), 'utf8')).toBe('literal');
        expect(readFileSync(join(sandbox.root, '%2e%2e%2f%2e%2e%2fsecret.txt'), 'utf8')).toBe(
          'literal',
        );
        expect(readFileSync(join(sandbox.root, '..%2fy.txt'), 'utf8')).toBe('literal');
      });

      it('refuses NUL bytes, control characters, empty and whitespace-only paths', async () => {
        const files = store();
        for (const path of EMPTY_AND_CONTROL_PATHS) {
          await expectEveryOperationRefused(files, path, 'INVALID_PATH');
          await expectCode(files.deleteFile(path, true), 'INVALID_PATH');
        }
      });

      it('refuses Windows drive letters, UNC forms and backslashes', async () => {
        const files = store();
        for (const path of WINDOWS_PATHS) {
          await expectEveryOperationRefused(files, path, 'INVALID_PATH');
          await expectCode(files.deleteFile(path, true), 'INVALID_PATH');
        }
        await files.writeFile('//server/share/x', 'inside');
        expect(readFileSync(join(sandbox.root, 'server', 'share', 'x'), 'utf8')).toBe('inside');
      });
    });

    describe('a sibling whose name starts with the root name', () => {
      it('is outside, through absolute and relative links to a file or the directory', async () => {
        const files = store();
        expect(sandbox.sibling.startsWith(sandbox.root)).toBe(true);
        symlinkSync(join(sandbox.sibling, 'secret.txt'), join(sandbox.root, 'abs'));
        symlinkSync('../ws2/secret.txt', join(sandbox.root, 'rel'));
        symlinkSync(sandbox.sibling, join(sandbox.root, 'absdir'));
        symlinkSync(`${sandbox.root}/../ws2`, join(sandbox.root, 'dotted'));
        for (const path of ['/abs', '/rel']) {
          await expectEveryOperationRefused(files, path, 'PATH_OUTSIDE_ROOT');
        }
        for (const path of ['/absdir/secret.txt', '/absdir/new.txt', '/dotted/secret.txt']) {
          await expectEveryOperationRefused(files, path, 'PATH_OUTSIDE_ROOT');
          await expectCode(files.deleteFile(path), 'PATH_OUTSIDE_ROOT');
        }
        await expectCode(files.listDirectory('/absdir'), 'PATH_OUTSIDE_ROOT');
        expect(await files.grepFiles('SECRET')).toEqual([]);
      });
    });

    describe('symbolic links', () => {
      it('refuses reads and writes through a link to an outside file, absolute or relative', async () => {
        const files = store();
        symlinkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'evil'));
        symlinkSync('../outside/secret.txt', join(sandbox.root, 'evil-relative'));
        mkdirSync(join(sandbox.root, 'sub'));
        symlinkSync('../../outside/secret.txt', join(sandbox.root, 'sub', 'evil-deeper'));
        for (const path of ['/evil', '/evil-relative', '/sub/evil-deeper']) {
          await expectEveryOperationRefused(files, path, 'PATH_OUTSIDE_ROOT');
          await expectCode(files.resolveRealPath(path), 'PATH_OUTSIDE_ROOT');
          await expectCode(files.moveFile('/nothing', path), 'FILE_NOT_FOUND');
        }
        expect((await files.listDirectory('/')).map((entry) => entry.name)).toEqual(['sub']);
      });

      it('refuses a chain of links that ends outside, and follows one that stays inside', async () => {
        const files = store();
        mkdirSync(join(sandbox.root, 'sub'));
        symlinkSync('c2', join(sandbox.root, 'c1'));
        symlinkSync('sub/c3', join(sandbox.root, 'c2'));
        symlinkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'sub', 'c3'));
        await expectEveryOperationRefused(files, '/c1', 'PATH_OUTSIDE_ROOT');
        writeFileSync(join(sandbox.root, 'real.txt'), 'inside');
        symlinkSync('i2', join(sandbox.root, 'i1'));
        symlinkSync('sub/../real.txt', join(sandbox.root, 'i2'));
        expect((await files.readFile('/i1')).content).toBe('inside');
        expect(await files.resolveRealPath('/i1')).toBe('/real.txt');
      });

      it('refuses every operation below a symlinked parent directory that leads outside', async () => {
        const files = store();
        symlinkSync(sandbox.outside, join(sandbox.root, 'dirlink'));
        symlinkSync('../outside', join(sandbox.root, 'dirlink-relative'));
        symlinkSync('..', join(sandbox.root, 'up'));
        await files.writeFile('/mine.txt', 'mine');
        for (const directory of ['/dirlink', '/dirlink-relative', '/up/outside']) {
          for (const path of [
            `${directory}/secret.txt`,
            `${directory}/new.txt`,
            `${directory}/dir/x`,
          ]) {
            await expectEveryOperationRefused(files, path, 'PATH_OUTSIDE_ROOT');
            await expectCode(files.deleteFile(path, true), 'PATH_OUTSIDE_ROOT');
            await expectCode(files.moveFile(path, '/stolen.txt'), 'PATH_OUTSIDE_ROOT');
            await expectCode(
              files.moveFile('/mine.txt', path, { overwrite: true }),
              'PATH_OUTSIDE_ROOT',
            );
          }
          await expectCode(files.listDirectory(directory), 'PATH_OUTSIDE_ROOT');
          await expectCode(files.deleteFile(`${directory}/dir`, true), 'PATH_OUTSIDE_ROOT');
        }
        expect(await files.globFiles('**/secret.txt')).toEqual([]);
        expect(await files.grepFiles('SECRET')).toEqual([]);
        expect(await files.statFile('/stolen.txt')).toBeNull();
        expect((await files.readFile('/mine.txt')).content).toBe('mine');
        // Deleting the link removes the link only.
        expect(await files.deleteFile('/dirlink', true)).toBe(true);
        expect(lstatSync(join(sandbox.outside, 'dir')).isDirectory()).toBe(true);
      });

      it('creates nothing through a dangling link whose target is outside', async () => {
        const files = store();
        symlinkSync(join(sandbox.outside, 'created-by-escape.txt'), join(sandbox.root, 'dangle'));
        symlinkSync(join(sandbox.outside, 'new-dir'), join(sandbox.root, 'dangle-dir'));
        symlinkSync('../outside/relative-escape.txt', join(sandbox.root, 'dangle-relative'));
        for (const path of ['/dangle', '/dangle-relative', '/dangle-dir', '/dangle-dir/x.txt']) {
          await expectEveryOperationRefused(files, path, 'PATH_OUTSIDE_ROOT');
        }
        await expectCode(files.moveFile('/dangle-dir/x.txt', '/y'), 'PATH_OUTSIDE_ROOT');
        expect(existsSync(join(sandbox.outside, 'created-by-escape.txt'))).toBe(false);
        expect(existsSync(join(sandbox.outside, 'new-dir'))).toBe(false);
        expect(existsSync(join(sandbox.outside, 'relative-escape.txt'))).toBe(false);
      });

      it('follows a link to a file or directory inside, for reads and writes', async () => {
        const files = store();
        writeFileSync(join(sandbox.root, 'real.txt'), 'inside');
        mkdirSync(join(sandbox.root, 'sub'));
        writeFileSync(join(sandbox.root, 'sub', 'f.txt'), 'in sub');
        symlinkSync('real.txt', join(sandbox.root, 'alias'));
        symlinkSync(join(sandbox.root, 'real.txt'), join(sandbox.root, 'abs-alias'));
        symlinkSync('sub', join(sandbox.root, 'dir-alias'));
        symlinkSync('sub/new.txt', join(sandbox.root, 'dangling-inside'));
        expect((await files.readFile('/alias')).content).toBe('inside');
        expect((await files.readFile('/abs-alias')).content).toBe('inside');
        expect((await files.readFile('/dir-alias/f.txt')).content).toBe('in sub');
        expect(await files.statFile('/alias')).toMatchObject({ path: '/alias', size: 6 });
        await files.writeFile('/alias', 'written through the link');
        expect(readFileSync(join(sandbox.root, 'real.txt'), 'utf8')).toBe(
          'written through the link',
        );
        expect(lstatSync(join(sandbox.root, 'alias')).isSymbolicLink()).toBe(true);
        await files.appendFile('/abs-alias', '!');
        await files.editFile('/alias', 'written', 'seen');
        expect(readFileSync(join(sandbox.root, 'real.txt'), 'utf8')).toBe('seen through the link!');
        await files.writeFile('/dangling-inside', 'created inside');
        expect(readFileSync(join(sandbox.root, 'sub', 'new.txt'), 'utf8')).toBe('created inside');
        expect(await files.resolveRealPath('/dir-alias/f.txt')).toBe('/sub/f.txt');
        expect(await files.resolveRealPath('/dir-alias/missing/x')).toBe('/sub/missing/x');
        const listed = await files.listDirectory('/');
        expect(listed.map((entry) => [entry.name, entry.isDirectory])).toEqual([
          ['abs-alias', false],
          ['alias', false],
          ['dangling-inside', false],
          ['dir-alias', true],
          ['real.txt', false],
          ['sub', true],
        ]);
      });

      it('refuses every link with INVALID_PATH when followSymlinksInside is false', async () => {
        const files = store({ followSymlinksInside: false });
        writeFileSync(join(sandbox.root, 'real.txt'), 'inside');
        symlinkSync('real.txt', join(sandbox.root, 'alias'));
        await expectCode(files.readFile('/alias'), 'INVALID_PATH');
        await expectCode(files.writeFile('/alias', 'x'), 'INVALID_PATH');
        expect(await files.deleteFile('/alias')).toBe(true);
        expect(readFileSync(join(sandbox.root, 'real.txt'), 'utf8')).toBe('inside');
      });

      it('stops on link loops with INVALID_PATH', async () => {
        const files = store();
        symlinkSync('y', join(sandbox.root, 'x'));
        symlinkSync('x', join(sandbox.root, 'y'));
        symlinkSync('self', join(sandbox.root, 'self'));
        for (const path of ['/x', '/y/z', '/self']) {
          await expectCode(files.readFile(path), 'INVALID_PATH');
          await expectCode(files.writeFile(path, 'x'), 'INVALID_PATH');
        }
      });
    });

    describe('hard links', () => {
      it('refuses a hard link to an outside file by default, and deleting it leaves the outside file', async () => {
        const files = store();
        linkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'hard.txt'));
        rebaseline();
        await expectCode(files.readFile('/hard.txt'), 'NOT_A_REGULAR_FILE');
        await expectCode(files.writeFile('/hard.txt', 'planted'), 'NOT_A_REGULAR_FILE');
        await expectCode(files.appendFile('/hard.txt', 'planted'), 'NOT_A_REGULAR_FILE');
        await expectCode(files.editFile('/hard.txt', 'SECRET', 'planted'), 'NOT_A_REGULAR_FILE');
        await expectCode(
          files.writeFileIfContentMatches('/hard.txt', SECRET, 'planted'),
          'NOT_A_REGULAR_FILE',
        );
        await expectCode(
          files.seedInitialFile({
            path: '/hard.txt',
            content: 'x',
            encoding: 'text',
            isReadonly: true,
          }),
          'NOT_A_REGULAR_FILE',
        );
        expect(await files.grepFiles('SECRET')).toEqual([]);
        expect(await files.statFile('/hard.txt')).toMatchObject({ size: SECRET.length });
        expect(await files.deleteFile('/hard.txt')).toBe(true);
        rebaseline();
        expect(readFileSync(join(sandbox.outside, 'secret.txt'), 'utf8')).toBe(SECRET);
        expect(statSync(join(sandbox.outside, 'secret.txt')).nlink).toBe(1);
      });

      it('reads multiply linked files only with allowHardLinks', async () => {
        linkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'hard.txt'));
        rebaseline();
        expect((await store({ allowHardLinks: true }).readFile('/hard.txt')).content).toBe(SECRET);
      });
    });

    describe('the root', () => {
      it('is resolved once when given through a link, and repointing the link changes nothing', async () => {
        const rootLink = join(sandbox.base, 'root-link');
        symlinkSync(sandbox.root, rootLink);
        const files = new RealDiskFileStore({ root: rootLink, resolution });
        expect(files.root).toBe(realpathSync(sandbox.root));
        await files.writeFile('/a.txt', 'first');
        symlinkSync(join(rootLink, 'a.txt'), join(sandbox.root, 'via-alias'));
        expect((await files.readFile('/via-alias')).content).toBe('first');
        unlinkSync(rootLink);
        symlinkSync(sandbox.outside, rootLink);
        rebaseline();
        await files.writeFile('/b.txt', 'second');
        await expectCode(files.readFile('/secret.txt'), 'FILE_NOT_FOUND');
        expect(readFileSync(join(sandbox.root, 'b.txt'), 'utf8')).toBe('second');
        expect(existsSync(join(sandbox.outside, 'b.txt'))).toBe(false);
      });

      it('refuses to work on a root directory replaced after construction', async () => {
        const files = store();
        await files.writeFile('/a.txt', 'x');
        renameSync(sandbox.root, `${sandbox.root}-old`);
        mkdirSync(sandbox.root);
        await expectCode(files.readFile('/a.txt'), 'CONFIGURATION');
        await expectCode(files.writeFile('/b.txt', 'x'), 'CONFIGURATION');
        expect(existsSync(join(sandbox.root, 'b.txt'))).toBe(false);
        rebaseline();
      });

      it('refuses to delete or move the root in any spelling', async () => {
        const files = store();
        await files.writeFile('/dir/keep.txt', 'keep');
        symlinkSync('.', join(sandbox.root, 'self'));
        for (const path of ['/', '/workspace', '.', '/./', '//', '/workspace/']) {
          await expectCode(files.deleteFile(path, true), 'INVALID_PATH');
          await expectCode(files.moveFile(path, '/elsewhere'), 'INVALID_PATH');
          await expectCode(
            files.moveFile('/dir/keep.txt', path, { overwrite: true }),
            'INVALID_PATH',
          );
        }
        expect(await files.deleteFile('/self', true)).toBe(true);
        symlinkSync('dir', join(sandbox.root, 'dir-alias'));
        await expectCode(files.moveFile('/dir', '/dir-alias/inside'), 'INVALID_PATH');
        expect((await files.readFile('/dir/keep.txt')).content).toBe('keep');
      });
    });

    describe('FIFOs, sockets and devices', () => {
      it('refuses a FIFO within a second for every operation, and walks skip it', async () => {
        const files = store();
        execFileSync('mkfifo', [join(sandbox.root, 'fifo')]);
        symlinkSync('fifo', join(sandbox.root, 'fifo-link'));
        await files.writeFile('/plain.txt', 'x');
        for (const path of ['/fifo', '/fifo-link']) {
          await expectCode(withDeadline(files.readFile(path), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(withDeadline(files.writeFile(path, 'x'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(withDeadline(files.appendFile(path, 'x'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(
            withDeadline(files.editFile(path, 'a', 'b'), 1000),
            'NOT_A_REGULAR_FILE',
          );
          await expectCode(
            withDeadline(files.writeFileIfContentMatches(path, 'a', 'b'), 1000),
            'NOT_A_REGULAR_FILE',
          );
          await expectCode(withDeadline(files.statFile(path), 1000), 'NOT_A_REGULAR_FILE');
        }
        expect(await withDeadline(files.grepFiles('x'), 1000)).toHaveLength(1);
        expect((await files.globFiles('**')).map((entry) => entry.path)).toEqual(['/plain.txt']);
        expect((await files.listDirectory('/')).map((entry) => entry.path)).toEqual(['/plain.txt']);
        expect(await files.deleteFile('/fifo')).toBe(true);
      });

      it('refuses a unix socket', async () => {
        const files = store();
        const server: Server = createServer();
        await new Promise<void>((resolve) => server.listen(join(sandbox.root, 'sock'), resolve));
        try {
          await expectCode(withDeadline(files.readFile('/sock'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(withDeadline(files.writeFile('/sock', 'x'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(
            withDeadline(files.appendFile('/sock', 'x'), 1000),
            'NOT_A_REGULAR_FILE',
          );
        } finally {
          await new Promise((resolve) => server.close(resolve));
        }
      });

      it('refuses device nodes: a link to /dev/zero, and (as root) a node made with mknod', async () => {
        const files = store();
        symlinkSync('/dev/zero', join(sandbox.root, 'zero-link'));
        await expectCode(withDeadline(files.readFile('/zero-link'), 1000), 'PATH_OUTSIDE_ROOT');
        if (process.getuid?.() === 0) {
          execFileSync('mknod', [join(sandbox.root, 'zero'), 'c', '1', '5']);
          await expectCode(withDeadline(files.readFile('/zero'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(withDeadline(files.writeFile('/zero', 'x'), 1000), 'NOT_A_REGULAR_FILE');
          await expectCode(
            withDeadline(files.appendFile('/zero', 'x'), 1000),
            'NOT_A_REGULAR_FILE',
          );
          expect(await withDeadline(files.grepFiles('x'), 1000)).toEqual([]);
        }
      });
    });

    describe('very large files', () => {
      it('refuses a 3 GiB sparse file with FILE_TOO_LARGE instead of reading it', async () => {
        const files = store();
        writeFileSync(join(sandbox.root, 'huge.log'), '');
        truncateSync(join(sandbox.root, 'huge.log'), 3 * 1024 ** 3);
        const error = await expectCode(files.readFile('/huge.log'), 'FILE_TOO_LARGE');
        expect(error.details).toMatchObject({ size: 3 * 1024 ** 3 });
        await expectCode(files.readFile('/huge.log', { offset: 0, limit: 10 }), 'FILE_TOO_LARGE');
        await expectCode(files.editFile('/huge.log', 'a', 'b'), 'FILE_TOO_LARGE');
        await expectCode(files.appendFile('/huge.log', 'more'), 'FILE_TOO_LARGE');
        await expectCode(files.writeFileIfContentMatches('/huge.log', 'a', 'b'), 'FILE_TOO_LARGE');
        expect(await files.grepFiles('.')).toEqual([]);
        expect(await files.statFile('/huge.log')).toMatchObject({ size: 3 * 1024 ** 3 });
      });

      it('honours a custom maxFileBytes for reads and writes', async () => {
        const files = store({ maxFileBytes: 1024 });
        writeFileSync(join(sandbox.root, 'big.txt'), 'x'.repeat(2048));
        await expectCode(files.readFile('/big.txt'), 'FILE_TOO_LARGE');
        await expectCode(files.writeFile('/new.txt', 'y'.repeat(1025)), 'FILE_TOO_LARGE');
        expect(existsSync(join(sandbox.root, 'new.txt'))).toBe(false);
      });
    });

    describe('recursive walks', () => {
      it('terminates glob, grep and recursive delete on link loops', async () => {
        const files = store();
        mkdirSync(join(sandbox.root, 'a', 'b'), { recursive: true });
        writeFileSync(join(sandbox.root, 'a', 'file.txt'), 'needle');
        symlinkSync('.', join(sandbox.root, 'loop'));
        symlinkSync('..', join(sandbox.root, 'a', 'up'));
        symlinkSync('../../a', join(sandbox.root, 'a', 'b', 'deep'));
        symlinkSync('y', join(sandbox.root, 'x'));
        symlinkSync('x', join(sandbox.root, 'y'));
        symlinkSync(sandbox.outside, join(sandbox.root, 'a', 'b', 'out'));
        expect((await files.globFiles('**')).map((entry) => entry.path)).toEqual(['/a/file.txt']);
        expect(await files.grepFiles('needle|SECRET')).toEqual([
          { path: '/a/file.txt', lineNumber: 1, line: 'needle' },
        ]);
        expect((await files.readFile('/loop/loop/a/up/a/b/deep/file.txt')).content).toBe('needle');
        await expectCode(files.readFile(`/${'loop/'.repeat(41)}a/file.txt`), 'INVALID_PATH');
        expect(await files.deleteFile('/a', true)).toBe(true);
        expect(existsSync(join(sandbox.root, 'a'))).toBe(false);
        expect(lstatSync(join(sandbox.root, 'loop')).isSymbolicLink()).toBe(true);
      });

      it('stops a walk past maxWalkEntries with LIMIT_EXCEEDED before deleting anything', async () => {
        const files = store({ maxWalkEntries: 20 });
        mkdirSync(join(sandbox.root, 'many'));
        for (let index = 0; index < 50; index++) {
          writeFileSync(join(sandbox.root, 'many', `f${index}.txt`), 'x');
        }
        await expectCode(files.globFiles('**'), 'LIMIT_EXCEEDED');
        await expectCode(files.grepFiles('x'), 'LIMIT_EXCEEDED');
        await expectCode(files.deleteFile('/many', true), 'LIMIT_EXCEEDED');
        await expectCode(files.listDirectory('/many'), 'LIMIT_EXCEEDED');
        expect((await store().listDirectory('/many')).length).toBe(50);
      });

      it('deletes a tree holding a link to outside without touching the outside', async () => {
        const files = store();
        await files.writeFile('/tree/f.txt', 'x');
        symlinkSync(sandbox.outside, join(sandbox.root, 'tree', 'out'));
        symlinkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'tree', 'secret'));
        expect(await files.deleteFile('/tree', true)).toBe(true);
        expect(existsSync(join(sandbox.root, 'tree'))).toBe(false);
      });
    });
  });
}
