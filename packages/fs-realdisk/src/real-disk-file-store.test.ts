import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { RealDiskSessionFileSystemFactory } from './real-disk-session-file-system-factory.js';
import { expectCode, makeSandbox, type Sandbox } from './test-support.js';

let sandbox: Sandbox;
beforeEach(() => {
  sandbox = makeSandbox();
});
afterEach(() => sandbox.cleanup());

describe('RealDiskFileStore', () => {
  it('refuses a missing root or a file as root with CONFIGURATION, and creates it with createRoot', () => {
    const missing = join(sandbox.base, 'missing', 'ws');
    expect(() => new RealDiskFileStore({ root: missing })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
    expect(() => new RealDiskFileStore({ root: join(sandbox.outside, 'secret.txt') })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
    expect(() => new RealDiskFileStore({ root: sandbox.root, maxFileBytes: 0 })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
    const created = new RealDiskFileStore({ root: missing, createRoot: true });
    expect(statSync(created.root).isDirectory()).toBe(true);
  });

  it('resolves through open directory descriptors on Linux', () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    expect(files.resolution).toBe(process.platform === 'linux' ? 'descriptor' : 'path');
    expect(new RealDiskFileStore({ root: sandbox.root, resolution: 'path' }).resolution).toBe(
      'path',
    );
  });

  it('represents read-only files as files without the owner write bit', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    await files.seedInitialFile({
      path: '/AGENTS.md',
      content: 'rules',
      encoding: 'text',
      isReadonly: true,
    });
    expect(statSync(join(sandbox.root, 'AGENTS.md')).mode & 0o777).toBe(0o444);
    writeFileSync(join(sandbox.root, 'external.txt'), 'made elsewhere');
    chmodSync(join(sandbox.root, 'external.txt'), 0o400);
    expect(await files.statFile('/external.txt')).toMatchObject({ isReadonly: true });
    await expectCode(files.writeFile('/external.txt', 'x'), 'FILE_READ_ONLY');
    await files.seedInitialFile({
      path: '/AGENTS.md',
      content: 'new rules',
      encoding: 'text',
      isReadonly: false,
    });
    expect(await files.readFile('/AGENTS.md')).toMatchObject({
      content: 'new rules',
      isReadonly: false,
    });
  });

  it('keeps the permission bits of a file it replaces', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    writeFileSync(join(sandbox.root, 'run.sh'), 'echo one');
    chmodSync(join(sandbox.root, 'run.sh'), 0o750);
    await files.writeFile('/run.sh', 'echo two');
    await files.editFile('/run.sh', 'two', 'three');
    expect(statSync(join(sandbox.root, 'run.sh')).mode & 0o777).toBe(0o750);
  });

  it('reads valid UTF-8 as text and other bytes as base64 by default', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    writeFileSync(join(sandbox.root, 'text.md'), 'héllo');
    writeFileSync(join(sandbox.root, 'image.bin'), Buffer.from([0xff, 0xd8, 0x00, 0x01]));
    expect(await files.readFile('/text.md')).toMatchObject({ content: 'héllo', encoding: 'text' });
    expect(await files.readFile('/image.bin')).toMatchObject({
      content: Buffer.from([0xff, 0xd8, 0x00, 0x01]).toString('base64'),
      encoding: 'base64',
    });
    await expectCode(files.writeFile('/bad.bin', 'not base64!', 'base64'), 'INVALID_INPUT');
    await expectCode(files.editFile('/image.bin', 'a', 'b'), 'INVALID_INPUT');
  });

  it('serialises compare-and-set: of ten racing writers exactly one wins', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    await files.writeFile('/counter', '0');
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, index) =>
        files.writeFileIfContentMatches('/counter', '0', String(index + 1)),
      ),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    expect((await files.readFile('/counter')).content).not.toBe('0');
  });

  it('leaves no temporary files behind, and hides them from listings', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    await files.writeFile('/a.txt', 'one');
    await files.writeFile('/a.txt', 'two');
    await expectCode(files.writeFile('/a.txt/child', 'x'), 'NOT_A_DIRECTORY');
    expect(readdirSync(sandbox.root)).toEqual(['a.txt']);
    writeFileSync(join(sandbox.root, '.everruns-tmp-leftover'), 'crash debris');
    expect((await files.listDirectory('/')).map((entry) => entry.name)).toEqual(['a.txt']);
  });

  it('resolves workspace paths to their real workspace paths', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    mkdirSync(join(sandbox.root, '.git'));
    expect(await files.resolveRealPath('/workspace/./src//a.ts')).toBe('/src/a.ts');
    expect(await files.resolveRealPath('/')).toBe('/');
    expect(await files.resolveRealPath('/.git/HEAD')).toBe('/.git/HEAD');
  });
});

describe('RealDiskSessionFileSystemFactory', () => {
  it('shares one fixed root between sessions', async () => {
    const factory = new RealDiskSessionFileSystemFactory({ root: join(sandbox.base, 'shared') });
    const first = factory.forSession('session_a');
    await first.writeFile('/note.md', 'shared');
    expect((await factory.forSession('session_b').readFile('/note.md')).content).toBe('shared');
    expect(factory.forSession('session_a')).toBe(first);
  });

  it('gives each session its own directory under sessionsDirectory', async () => {
    const sessions = join(sandbox.base, 'sessions');
    const factory = new RealDiskSessionFileSystemFactory({ sessionsDirectory: sessions });
    await factory.forSession('session_a').writeFile('/note.md', 'a');
    expect(await factory.forSession('session_b').statFile('/note.md')).toBeNull();
    expect(existsSync(join(sessions, 'session_a', 'note.md'))).toBe(true);
    for (const hostile of ['..', '../escape', 'a/b', '', '.hidden', 'a\u0000b', '/abs']) {
      expect(() => factory.forSession(hostile)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      );
    }
    expect(readdirSync(sandbox.base).sort()).toEqual(['outside', 'sessions', 'ws', 'ws2']);
  });

  it('uses rootForSession, which must return an absolute path', async () => {
    const factory = new RealDiskSessionFileSystemFactory({
      rootForSession: (sessionId) => join(sandbox.base, 'per', sessionId.toUpperCase()),
      maxFileBytes: 8,
    });
    const store = factory.forSession('session_x');
    expect(store.root).toBe(join(sandbox.base, 'per', 'SESSION_X'));
    await expectCode(store.writeFile('/big', '123456789'), 'FILE_TOO_LARGE');
    const relative = new RealDiskSessionFileSystemFactory({ rootForSession: () => 'relative/dir' });
    expect(() => relative.forSession('session_y')).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
  });

  it('needs exactly one way to choose roots', () => {
    expect(
      () =>
        new RealDiskSessionFileSystemFactory({
          root: sandbox.root,
          sessionsDirectory: sandbox.root,
        } as never),
    ).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }));
    expect(() => new RealDiskSessionFileSystemFactory({} as never)).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    );
  });
});
