import { execFileSync } from 'node:child_process';
import {
  type BigIntStats,
  existsSync,
  linkSync,
  mkdirSync,
  realpathSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPathResolver } from './create-path-resolver.js';
import { DescriptorPathResolver } from './descriptor-path-resolver.js';
import { HandleScope } from './handle-scope.js';
import {
  CREATE_PARENTS,
  type DirectoryRef,
  FOLLOW,
  NO_FOLLOW,
  type PathResolver,
  type PathResolverOptions,
} from './path-resolver.js';
import { PortablePathResolver } from './portable-path-resolver.js';
import { expectCode, makeSandbox, type Sandbox, withDeadline } from './test-support.js';

const implementations = [
  {
    name: 'DescriptorPathResolver',
    mode: 'descriptor',
    create: (options: PathResolverOptions): PathResolver => new DescriptorPathResolver(options),
  },
  {
    name: 'PortablePathResolver',
    mode: 'path',
    create: (options: PathResolverOptions): PathResolver => new PortablePathResolver(options),
  },
] as const;

/** What a store would hand its resolver for `root`. */
function optionsFor(root: string, overrides: Partial<PathResolverOptions> = {}) {
  const real = realpathSync.native(root);
  return {
    root: real,
    rootStat: statSync(real, { bigint: true }),
    rootAliases: real === root ? [real] : [real, root],
    followSymlinks: true,
    allowHardLinks: false,
    ...overrides,
  } satisfies PathResolverOptions;
}

for (const implementation of implementations) {
  describe(`${implementation.name} (through the PathResolver interface)`, () => {
    let sandbox: Sandbox;
    let scope: HandleScope;
    let resolver: PathResolver;
    const make = (overrides: Partial<PathResolverOptions> = {}) =>
      implementation.create(optionsFor(sandbox.root, overrides));
    const read = async (path: string, target: PathResolver = resolver) => {
      const resolved = await target.resolve(scope, path, FOLLOW);
      if (!resolved.stat || !resolved.parent) throw new Error(`nothing at ${path}`);
      const { handle } = await target.openFile(
        scope,
        path,
        resolved.parent,
        resolved.name,
        resolved.stat,
        0,
      );
      return (await handle.readFile()).toString('utf8');
    };

    beforeEach(() => {
      sandbox = makeSandbox();
      scope = new HandleScope();
      resolver = make();
      mkdirSync(join(sandbox.root, 'dir'));
      writeFileSync(join(sandbox.root, 'dir', 'file.txt'), 'inside');
      writeFileSync(join(sandbox.root, 'real.txt'), 'real content');
    });

    afterEach(async () => {
      await scope.close();
      sandbox.cleanup();
    });

    it(`reports its mode as ${implementation.mode}`, () => {
      expect(resolver.mode).toBe(implementation.mode);
      expect(resolver.root).toBe(realpathSync.native(sandbox.root));
    });

    it('resolves a file inside to its parent, name, segments and lstat', async () => {
      const resolved = await resolver.resolve(scope, '/dir/file.txt', FOLLOW);
      expect(resolved.name).toBe('file.txt');
      expect(resolved.segments).toEqual(['dir', 'file.txt']);
      expect(resolved.stat?.isFile()).toBe(true);
      expect(resolved.parent?.segments).toEqual(['dir']);
      expect(resolved.blocked).toBeUndefined();
      expect(await read('/dir/file.txt')).toBe('inside');
    });

    it('resolves the root to the open root directory', async () => {
      const resolved = await resolver.resolve(scope, '/', FOLLOW);
      expect(resolved.directory?.segments).toEqual([]);
      expect(resolved.parent).toBeUndefined();
      expect(resolved.segments).toEqual([]);
    });

    it('refuses `..` climbing above the root with PATH_OUTSIDE_ROOT', async () => {
      const before = sandbox.outsideSnapshot();
      await expectCode(resolver.resolve(scope, '/..', FOLLOW), 'PATH_OUTSIDE_ROOT');
      await expectCode(
        resolver.resolve(scope, '/../outside/secret.txt', FOLLOW),
        'PATH_OUTSIDE_ROOT',
      );
      await expectCode(
        resolver.resolve(scope, '/dir/../../outside/secret.txt', CREATE_PARENTS),
        'PATH_OUTSIDE_ROOT',
      );
      expect(sandbox.outsideSnapshot()).toEqual(before);
    });

    it('keeps `..` that stays inside the root inside it', async () => {
      const resolved = await resolver.resolve(scope, '/dir/../real.txt', FOLLOW);
      expect(resolved.segments).toEqual(['real.txt']);
      expect(await read('/dir/../real.txt')).toBe('real content');
    });

    it('refuses a symbolic link to outside, absolute, relative or to a sibling prefix', async () => {
      symlinkSync(join(sandbox.outside, 'secret.txt'), join(sandbox.root, 'absolute'));
      symlinkSync('../outside/secret.txt', join(sandbox.root, 'relative'));
      symlinkSync(join(sandbox.sibling, 'secret.txt'), join(sandbox.root, 'sibling'));
      for (const path of ['/absolute', '/relative', '/sibling']) {
        await expectCode(resolver.resolve(scope, path, FOLLOW), 'PATH_OUTSIDE_ROOT');
        await expectCode(resolver.resolve(scope, path, CREATE_PARENTS), 'PATH_OUTSIDE_ROOT');
        const link = await resolver.resolve(scope, path, NO_FOLLOW);
        expect(link.stat?.isSymbolicLink()).toBe(true);
      }
    });

    it('refuses a symlinked parent directory leading outside, even when the last link is not followed', async () => {
      symlinkSync(sandbox.outside, join(sandbox.root, 'out'));
      symlinkSync('../../outside/dir', join(sandbox.root, 'dir', 'up'));
      const before = sandbox.outsideSnapshot();
      await expectCode(resolver.resolve(scope, '/out/secret.txt', FOLLOW), 'PATH_OUTSIDE_ROOT');
      await expectCode(resolver.resolve(scope, '/out/secret.txt', NO_FOLLOW), 'PATH_OUTSIDE_ROOT');
      await expectCode(
        resolver.resolve(scope, '/dir/up/secret.txt', NO_FOLLOW),
        'PATH_OUTSIDE_ROOT',
      );
      await expectCode(
        resolver.resolve(scope, '/out/new/deeper/file.txt', CREATE_PARENTS),
        'PATH_OUTSIDE_ROOT',
      );
      expect(sandbox.outsideSnapshot()).toEqual(before);
    });

    it('follows a symlinked parent directory that stays inside', async () => {
      symlinkSync('dir', join(sandbox.root, 'alias'));
      const resolved = await resolver.resolve(scope, '/alias/file.txt', FOLLOW);
      expect(resolved.segments).toEqual(['dir', 'file.txt']);
      expect(await read('/alias/file.txt')).toBe('inside');
    });

    it('resolves a dangling link inside to its missing target, and refuses one leading outside', async () => {
      symlinkSync('missing/later.txt', join(sandbox.root, 'dangling'));
      symlinkSync(join(sandbox.outside, 'nothing-here'), join(sandbox.root, 'dangling-out'));
      const inside = await resolver.resolve(scope, '/dangling', FOLLOW);
      expect(inside.stat).toBeUndefined();
      expect(inside.blocked).toBe('missing');
      expect(inside.segments).toEqual(['missing', 'later.txt']);
      const before = sandbox.outsideSnapshot();
      await expectCode(resolver.resolve(scope, '/dangling-out', FOLLOW), 'PATH_OUTSIDE_ROOT');
      await expectCode(
        resolver.resolve(scope, '/dangling-out', CREATE_PARENTS),
        'PATH_OUTSIDE_ROOT',
      );
      expect(sandbox.outsideSnapshot()).toEqual(before);
      expect(existsSync(join(sandbox.outside, 'nothing-here'))).toBe(false);
    });

    it('follows a link to a file inside (relative or through the root path) to the real file', async () => {
      symlinkSync('real.txt', join(sandbox.root, 'relative-alias'));
      symlinkSync(join(resolver.root, 'real.txt'), join(sandbox.root, 'absolute-alias'));
      for (const path of ['/relative-alias', '/absolute-alias']) {
        const resolved = await resolver.resolve(scope, path, FOLLOW);
        expect(resolved.segments).toEqual(['real.txt']);
        expect(await read(path)).toBe('real content');
      }
    });

    it('refuses every link with INVALID_PATH when links are not followed', async () => {
      symlinkSync('real.txt', join(sandbox.root, 'alias'));
      const strict = make({ followSymlinks: false });
      await expectCode(strict.resolve(scope, '/alias', FOLLOW), 'INVALID_PATH');
      const link = await strict.resolve(scope, '/alias', NO_FOLLOW);
      expect(link.stat?.isSymbolicLink()).toBe(true);
    });

    it('refuses a path with NUL (or without a leading slash) with INVALID_PATH', async () => {
      const before = sandbox.outsideSnapshot();
      await expectCode(resolver.resolve(scope, '/dir/file.txt\0.png', FOLLOW), 'INVALID_PATH');
      await expectCode(resolver.resolve(scope, '/new\0dir/file', CREATE_PARENTS), 'INVALID_PATH');
      await expectCode(resolver.resolve(scope, 'dir/file.txt', FOLLOW), 'INVALID_PATH');
      expect(existsSync(join(sandbox.root, 'new'))).toBe(false);
      expect(sandbox.outsideSnapshot()).toEqual(before);
    });

    it('opens a FIFO as NOT_A_REGULAR_FILE without blocking', async () => {
      execFileSync('mkfifo', [join(sandbox.root, 'pipe')]);
      const resolved = await resolver.resolve(scope, '/pipe', FOLLOW);
      expect(resolved.stat?.isFIFO()).toBe(true);
      await expectCode(
        withDeadline(
          resolver.openFile(
            scope,
            '/pipe',
            resolved.parent as DirectoryRef,
            'pipe',
            resolved.stat as BigIntStats,
            0,
          ),
          2000,
        ),
        'NOT_A_REGULAR_FILE',
      );
    });

    it('refuses a file with a second hard link unless hard links are allowed', async () => {
      linkSync(join(sandbox.root, 'real.txt'), join(sandbox.root, 'second.txt'));
      await expectCode(read('/real.txt'), 'NOT_A_REGULAR_FILE');
      expect(await read('/real.txt', make({ allowHardLinks: true }))).toBe('real content');
    });

    it('never reads outside when a resolved parent is swapped for a link to outside', async () => {
      writeFileSync(join(sandbox.root, 'dir', 'secret.txt'), 'inside secret');
      const resolved = await resolver.resolve(scope, '/dir/secret.txt', FOLLOW);
      const parent = resolved.parent as DirectoryRef;
      renameSync(join(sandbox.root, 'dir'), join(sandbox.root, 'moved'));
      symlinkSync(sandbox.outside, join(sandbox.root, 'dir'));
      const stat = resolved.stat as BigIntStats;
      const opening = resolver.openFile(scope, '/dir/secret.txt', parent, 'secret.txt', stat, 0);
      if (resolver.mode === 'descriptor') {
        // The name is looked up inside the directory that was opened, wherever it went.
        const { handle } = await opening;
        expect((await handle.readFile()).toString('utf8')).toBe('inside secret');
        await resolver.verifyChain(parent, '/dir/secret.txt');
      } else {
        await expectCode(opening, 'STORE_CONFLICT');
        await expectCode(resolver.verifyChain(parent, '/dir/secret.txt'), 'STORE_CONFLICT');
      }
    });

    it('refuses to open a directory that is not the one that was checked', async () => {
      mkdirSync(join(sandbox.root, 'other'));
      const root = (await resolver.resolve(scope, '/', FOLLOW)).directory as DirectoryRef;
      const other = statSync(join(sandbox.root, 'other'), { bigint: true });
      await expectCode(resolver.openDirectory(scope, root, 'dir', other, '/dir'), 'STORE_CONFLICT');
    });

    it('names entries relative to the open directory', async () => {
      const root = (await resolver.resolve(scope, '/', FOLLOW)).directory as DirectoryRef;
      if (resolver.mode === 'descriptor') {
        expect(resolver.directoryPath(root)).toBe(`/proc/self/fd/${root.handle.fd}`);
        expect(resolver.entryPath(root, 'real.txt')).toBe(
          `/proc/self/fd/${root.handle.fd}/real.txt`,
        );
      } else {
        expect(resolver.directoryPath(root)).toBe(resolver.root);
        expect(resolver.entryPath(root, 'real.txt')).toBe(join(resolver.root, 'real.txt'));
      }
    });

    it('refuses to resolve once the root was replaced (CONFIGURATION)', async () => {
      renameSync(sandbox.root, `${sandbox.root}-old`);
      mkdirSync(sandbox.root);
      await expectCode(resolver.resolve(scope, '/real.txt', FOLLOW), 'CONFIGURATION');
    });
  });
}

describe('createPathResolver', () => {
  let sandbox: Sandbox;
  beforeEach(() => {
    sandbox = makeSandbox();
  });
  afterEach(() => sandbox.cleanup());

  const settings = { createRoot: false, followSymlinks: true, allowHardLinks: false };

  it('builds the resolver asked for, and for auto the descriptor one where /proc/self/fd works', () => {
    const root = sandbox.root;
    expect(createPathResolver({ ...settings, root, resolution: 'path' })).toBeInstanceOf(
      PortablePathResolver,
    );
    expect(createPathResolver({ ...settings, root, resolution: 'descriptor' })).toBeInstanceOf(
      DescriptorPathResolver,
    );
    const available = DescriptorPathResolver.isAvailable(
      realpathSync.native(root),
      statSync(realpathSync.native(root), { bigint: true }),
    );
    expect(createPathResolver({ ...settings, root, resolution: 'auto' }).mode).toBe(
      available ? 'descriptor' : 'path',
    );
  });

  it('refuses a missing root with CONFIGURATION unless asked to create it', () => {
    const root = join(sandbox.base, 'missing', 'root');
    let caught: unknown;
    try {
      createPathResolver({ ...settings, root, resolution: 'auto' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'CONFIGURATION' });
    const created = createPathResolver({ ...settings, root, createRoot: true, resolution: 'auto' });
    expect(created.root).toBe(realpathSync.native(root));
  });

  it('resolves a root given through a link to its real path, and accepts links naming either', async () => {
    const alias = join(sandbox.base, 'alias');
    symlinkSync(sandbox.root, alias);
    writeFileSync(join(sandbox.root, 'real.txt'), 'x');
    symlinkSync(join(alias, 'real.txt'), join(sandbox.root, 'through-alias'));
    const resolver = createPathResolver({ ...settings, root: alias, resolution: 'auto' });
    expect(resolver.root).toBe(realpathSync.native(sandbox.root));
    const scope = new HandleScope();
    try {
      const resolved = await resolver.resolve(scope, '/through-alias', FOLLOW);
      expect(resolved.segments).toEqual(['real.txt']);
    } finally {
      await scope.close();
    }
  });
});
