import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionFileSystem } from '@everruns-ts/core';
import { RealDiskFileStore } from '@everruns-ts/fs-realdisk';
import { InMemorySessionFileStore } from '@everruns-ts/stores-memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectCode, tree } from './test-support.js';
import { DEFAULT_WRITE_BLOCKLIST, WriteBlocklistFileStore } from './write-blocklist-file-store.js';

/** Every mutating operation on `path`, each expected to be `WRITE_BLOCKED`. */
async function expectEveryWriteBlocked(files: SessionFileSystem, path: string): Promise<void> {
  await expectCode(files.writeFile(path, 'x'), 'WRITE_BLOCKED');
  await expectCode(files.writeFileIfContentMatches(path, null, 'x'), 'WRITE_BLOCKED');
  await expectCode(files.writeFileIfContentMatches(path, 'old', 'x'), 'WRITE_BLOCKED');
  await expectCode(files.editFile(path, 'old', 'x'), 'WRITE_BLOCKED');
  await expectCode(files.appendFile(path, 'x'), 'WRITE_BLOCKED');
  await expectCode(files.deleteFile(path, true), 'WRITE_BLOCKED');
  await expectCode(files.createDirectory(path), 'WRITE_BLOCKED');
  await expectCode(files.moveFile(path, '/moved-out'), 'WRITE_BLOCKED');
  await expectCode(files.moveFile('/free.txt', path, { overwrite: true }), 'WRITE_BLOCKED');
  await expectCode(
    files.seedInitialFile({ path, content: 'x', encoding: 'text', isReadonly: false }),
    'WRITE_BLOCKED',
  );
}

describe('WriteBlocklistFileStore', () => {
  let root: string;
  let realDisk: RealDiskFileStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'everruns-blocklist-'));
    realDisk = new RealDiskFileStore({ root });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('blocks the upstream list of vendored and build directories by default', () => {
    expect(DEFAULT_WRITE_BLOCKLIST).toEqual([
      '.git',
      'node_modules',
      'target',
      'dist',
      'build',
      '.next',
      '.venv',
      'venv',
      '.tox',
      '.gradle',
    ]);
    expect(new WriteBlocklistFileStore(realDisk).blocklist).toEqual(DEFAULT_WRITE_BLOCKLIST);
  });

  it('refuses every mutating operation into a blocklisted name at any depth, and writes nothing', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    await realDisk.writeFile('/free.txt', 'free');
    for (const name of DEFAULT_WRITE_BLOCKLIST) {
      await realDisk.writeFile(`/${name}/old.txt`, 'old');
      await realDisk.writeFile(`/pkg/sub/${name}/old.txt`, 'old');
    }
    const before = tree(root);
    for (const name of DEFAULT_WRITE_BLOCKLIST) {
      for (const path of [
        `/${name}`,
        `/${name}/old.txt`,
        `/${name}/new/deeper.txt`,
        `/pkg/sub/${name}/old.txt`,
        `/workspace/pkg/sub/${name}`,
      ]) {
        await expectEveryWriteBlocked(files, path);
      }
    }
    expect(tree(root)).toEqual(before);
  });

  it('lets reads, listings, stat, glob and grep through', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    await realDisk.writeFile('/.git/HEAD', 'ref: refs/heads/main\n');
    expect((await files.readFile('/.git/HEAD')).content).toBe('ref: refs/heads/main\n');
    expect((await files.listDirectory('/.git')).map((entry) => entry.name)).toEqual(['HEAD']);
    expect(await files.statFile('/.git/HEAD')).toMatchObject({ isDirectory: false });
    expect((await files.globFiles('**/HEAD')).map((entry) => entry.path)).toEqual(['/.git/HEAD']);
    expect(await files.grepFiles('refs/heads')).toHaveLength(1);
  });

  it('matches names case-insensitively', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    await realDisk.writeFile('/free.txt', 'free');
    for (const path of ['/.GIT/config', '/Node_Modules/x/index.js', '/src/DIST/a.js', '/.Venv']) {
      await expectEveryWriteBlocked(files, path);
    }
    expect(readdirSync(root)).toEqual(['free.txt']);
  });

  it('never reaches a blocklisted name through .. : normalisation refuses it and nothing is written', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    await realDisk.writeFile('/src/a.ts', 'a');
    for (const path of ['src/../.git/HEAD', '/src/./../.git/HEAD', '/src/../node_modules/x']) {
      await expectCode(files.writeFile(path, 'x'), 'INVALID_PATH');
      await expectCode(files.createDirectory(path), 'INVALID_PATH');
      await expectCode(files.moveFile('/src/a.ts', path), 'INVALID_PATH');
    }
    expect(tree(root)).toEqual(['src/', 'src/a.ts: a']);
  });

  it('sees through symbolic link aliases on the real disk', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    await realDisk.writeFile('/.git/HEAD', 'ref');
    await realDisk.writeFile('/pkg/node_modules/lib/index.js', 'lib');
    await realDisk.writeFile('/free.txt', 'free');
    symlinkSync('.git', join(root, 'alias'));
    symlinkSync('pkg/node_modules', join(root, 'deps'));
    symlinkSync('.git/HEAD', join(root, 'head-link'));
    symlinkSync(join(root, '.git'), join(root, 'absolute-alias'));
    mkdirSync(join(root, 'innocent'));
    symlinkSync('../.git', join(root, 'innocent', 'looks-fine'));
    const before = tree(root);
    for (const path of [
      '/alias/HEAD',
      '/alias/hooks/pre-commit',
      '/deps/lib/index.js',
      '/head-link',
      '/absolute-alias/config',
      '/innocent/looks-fine/config',
    ]) {
      await expectEveryWriteBlocked(files, path);
    }
    const error = await expectCode(files.writeFile('/alias/HEAD', 'x'), 'WRITE_BLOCKED');
    expect(error.details).toMatchObject({ path: '/alias/HEAD', realPath: '/.git/HEAD' });
    expect(tree(root)).toEqual(before);
  });

  it('replaces the whole list with withBlocklist', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    const custom = files.withBlocklist(['Secrets', 'vault']);
    expect(custom.blocklist).toEqual(['secrets', 'vault']);
    await custom.writeFile('/.git/config', 'allowed now');
    await expectCode(custom.writeFile('/secrets/key', 'x'), 'WRITE_BLOCKED');
    await expectCode(custom.writeFile('/a/VAULT/key', 'x'), 'WRITE_BLOCKED');
    await expectCode(files.writeFile('/.git/config', 'x'), 'WRITE_BLOCKED');
    await files.writeFile('/secrets/key', 'the default list does not block it');
    expect(() => files.withBlocklist(['a/b'])).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
    expect(() => files.withBlocklist([''])).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
  });

  it('blocks whole names only', async () => {
    const files = new WriteBlocklistFileStore(realDisk);
    for (const path of ['/my.git/x', '/builds/x', '/node_modules_backup/x', '/distance.txt']) {
      await files.writeFile(path, 'fine');
    }
    expect(readdirSync(root).sort()).toEqual([
      'builds',
      'distance.txt',
      'my.git',
      'node_modules_backup',
    ]);
  });

  it('works over a store without resolveRealPath', async () => {
    const files = new WriteBlocklistFileStore(new InMemorySessionFileStore());
    await expectCode(files.writeFile('/.git/config', 'x'), 'WRITE_BLOCKED');
    await files.writeFile('/src/a.ts', 'a');
    expect(await files.resolveRealPath('/workspace/src/a.ts')).toBe('/src/a.ts');
  });
});
