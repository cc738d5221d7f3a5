import { randomBytes } from 'node:crypto';
import { type BigIntStats, constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readlink } from 'node:fs/promises';
import { EverrunsError } from '@everruns-ts/core';
import { changedDuringOperation, fileError, outsideRoot, systemCode } from './errors.js';
import type { HandleScope } from './handle-scope.js';
import {
  type DirectoryRef,
  type PathResolver,
  type PathResolverMode,
  type PathResolverOptions,
  type Resolution,
  type ResolveOptions,
  TEMP_PREFIX,
} from './path-resolver.js';
import { checkRegular, sameFile } from './stat-checks.js';

/** Symbolic links followed while resolving one path before giving up (as the kernel's ELOOP). */
const MAX_SYMLINK_HOPS = 40;

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;
const O_NOCTTY = constants.O_NOCTTY ?? 0;

/**
 * The component walk both resolvers share: the root opened and checked by device and inode,
 * each component looked up inside the directory opened before it, opened with `O_NOFOLLOW`
 * (`O_NONBLOCK` for files) and compared by device and inode with what was checked, and symbolic
 * links resolved here, only while they stay inside. A subclass says how a name inside an open
 * directory reaches the kernel ({@link entryPath}, {@link directoryPath}) and how the chain of
 * open directories is re-checked ({@link verifyChain}).
 */
export abstract class ComponentPathResolver implements PathResolver {
  abstract readonly mode: PathResolverMode;
  /** Real host path of the workspace root. */
  readonly root: string;
  readonly #rootStat: BigIntStats;
  readonly #rootAliases: readonly string[];
  readonly #followSymlinks: boolean;
  readonly #allowHardLinks: boolean;

  constructor(options: PathResolverOptions) {
    this.root = options.root;
    this.#rootStat = options.rootStat;
    this.#rootAliases = options.rootAliases;
    this.#followSymlinks = options.followSymlinks;
    this.#allowHardLinks = options.allowHardLinks;
  }

  abstract entryPath(directory: DirectoryRef, name: string): string;

  abstract directoryPath(directory: DirectoryRef): string;

  abstract verifyChain(directory: DirectoryRef, path: string): Promise<void>;

  async resolve(scope: HandleScope, path: string, options: ResolveOptions): Promise<Resolution> {
    if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0')) {
      throw fileError('INVALID_PATH', String(path), 'A resolver takes a normalised workspace path');
    }
    const stack: DirectoryRef[] = [await this.#openRoot(scope)];
    const queue = path === '/' ? [] : path.slice(1).split('/');
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift() as string;
      const current = stack[stack.length - 1] as DirectoryRef;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (stack.length === 1) throw outsideRoot(path, 'a symbolic link climbs above the root');
        stack.pop();
        continue;
      }
      const isLast = !queue.some((rest) => rest !== '' && rest !== '.');
      const entry = this.entryPath(current, name);
      let stat: BigIntStats | undefined;
      try {
        stat = await lstat(entry, { bigint: true });
      } catch (error) {
        if (systemCode(error) !== 'ENOENT') throw error;
      }
      if (!stat) {
        if (isLast || !options.createParents) {
          return {
            parent: current,
            name,
            segments: lexicalSegments([...current.segments, name], queue, path),
            stat: undefined,
            blocked: isLast ? undefined : 'missing',
          };
        }
        await this.verifyChain(current, path);
        try {
          await mkdir(entry);
        } catch (error) {
          if (systemCode(error) !== 'EEXIST') throw error;
        }
        stat = await lstat(entry, { bigint: true });
      }
      if (stat.isSymbolicLink() && (!isLast || options.followFinal)) {
        if (!this.#followSymlinks) {
          throw fileError(
            'INVALID_PATH',
            path,
            `Path ${path} goes through a symbolic link, and links are not followed`,
          );
        }
        hops++;
        if (hops > MAX_SYMLINK_HOPS) {
          throw fileError('INVALID_PATH', path, `Too many symbolic links in ${path}`);
        }
        const target = await readlink(entry);
        if (target === '') throw fileError('FILE_NOT_FOUND', path, `Empty link in ${path}`);
        if (target.startsWith('/')) {
          const inside = this.#insideSegments(target);
          if (!inside) throw outsideRoot(path, 'a symbolic link points outside');
          stack.length = 1;
          queue.unshift(...inside);
        } else {
          queue.unshift(...target.split('/'));
        }
        continue;
      }
      if (isLast) {
        return { parent: current, name, segments: [...current.segments, name], stat };
      }
      if (!stat.isDirectory()) {
        return {
          parent: current,
          name,
          segments: lexicalSegments([...current.segments, name], queue, path),
          stat: undefined,
          blocked: 'not-a-directory',
        };
      }
      stack.push(await this.openDirectory(scope, current, name, stat, path));
    }
    const top = stack[stack.length - 1] as DirectoryRef;
    return {
      parent: stack[stack.length - 2],
      name: top.segments[top.segments.length - 1] ?? '',
      segments: [...top.segments],
      stat: top.stat,
      directory: top,
    };
  }

  async openDirectory(
    scope: HandleScope,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    path: string,
  ): Promise<DirectoryRef> {
    let handle: FileHandle;
    try {
      handle = scope.track(
        await open(this.entryPath(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK),
      );
    } catch (error) {
      const code = systemCode(error);
      if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT') {
        throw changedDuringOperation(path, error);
      }
      throw error;
    }
    const stat = await handle.stat({ bigint: true });
    if (!stat.isDirectory() || !sameFile(stat, expected)) {
      await scope.release(handle);
      throw changedDuringOperation(path);
    }
    return {
      handle,
      hostPath: `${parent.hostPath === '/' ? '' : parent.hostPath}/${name}`,
      segments: [...parent.segments, name],
      stat,
      parentRef: parent,
    };
  }

  async openFile(
    scope: HandleScope,
    path: string,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    flags: number,
  ): Promise<{ handle: FileHandle; stat: BigIntStats }> {
    let handle: FileHandle;
    try {
      handle = scope.track(
        await open(this.entryPath(parent, name), flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY),
      );
    } catch (error) {
      if (systemCode(error) === 'ELOOP') throw changedDuringOperation(path, error);
      throw error;
    }
    const stat = await handle.stat({ bigint: true });
    if (!sameFile(stat, expected)) {
      await scope.release(handle);
      throw changedDuringOperation(path);
    }
    checkRegular(path, stat, this.#allowHardLinks);
    if (!this.#allowHardLinks) await this.#verifySingleLink(path, parent, name, handle, stat);
    await this.verifyChain(parent, path);
    return { handle, stat };
  }

  async #openRoot(scope: HandleScope): Promise<DirectoryRef> {
    let handle: FileHandle;
    try {
      handle = scope.track(await open(this.root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    } catch (error) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'The workspace root can no longer be opened',
        cause: error,
      });
    }
    const stat = await handle.stat({ bigint: true });
    if (!sameFile(stat, this.#rootStat)) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'The workspace root was replaced after the store was created',
      });
    }
    return { handle, hostPath: this.root, segments: [], stat, parentRef: undefined };
  }

  /**
   * Closes the one window the link-count check leaves open. While another process unlinks a
   * second name of a file, the kernel drops the link count before the name disappears, so the
   * name can still be opened with a count of 1. Unlinking holds the parent directory's lock until
   * the name is gone; looking up a name that is in no cache (a random one) takes that lock too.
   * After that barrier the opened file must still be what `name` leads to, with one link; only
   * then is it read or written.
   */
  async #verifySingleLink(
    path: string,
    parent: DirectoryRef,
    name: string,
    handle: FileHandle,
    opened: BigIntStats,
  ): Promise<void> {
    const barrier = this.entryPath(
      parent,
      `${TEMP_PREFIX}barrier-${randomBytes(12).toString('hex')}`,
    );
    await lstat(barrier).catch(() => undefined);
    let named: BigIntStats;
    try {
      named = await lstat(this.entryPath(parent, name), { bigint: true });
    } catch (error) {
      throw changedDuringOperation(path, error);
    }
    const current = await handle.stat({ bigint: true });
    if (!sameFile(named, opened) || !sameFile(current, opened)) throw changedDuringOperation(path);
    checkRegular(path, named, this.#allowHardLinks);
    checkRegular(path, current, this.#allowHardLinks);
  }

  /** Workspace segments of an absolute link target under the root, or undefined when outside. */
  #insideSegments(target: string): string[] | undefined {
    for (const alias of this.#rootAliases) {
      if (alias === '/') return target.slice(1).split('/');
      if (target === alias) return [];
      if (target.startsWith(`${alias}/`)) return target.slice(alias.length + 1).split('/');
    }
    return undefined;
  }
}

/** Resolves `..` in `rest` against `base` without touching the disk (for a missing tail). */
function lexicalSegments(base: string[], rest: readonly string[], path: string): string[] {
  const segments = [...base];
  for (const segment of rest) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw outsideRoot(path, 'a symbolic link climbs above the root');
      segments.pop();
    } else segments.push(segment);
  }
  return segments;
}
