import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { fileError, notADirectory } from './errors.js';
import type { HandleScope } from './handle-scope.js';

/**
 * Prefix of the temporary files a write creates next to its target, and of the names the link
 * barrier looks up. Entries with it are hidden from listings and walks.
 */
export const TEMP_PREFIX = '.everruns-tmp-';

/** An open directory on a resolved path, with what identifies it. */
export interface DirectoryRef {
  /** The open directory; every lookup of a name inside it goes through this descriptor. */
  handle: FileHandle;
  /** Host path as the store resolved it (used in `path` mode and for re-checks). */
  hostPath: string;
  /** Real workspace segments of this directory. */
  segments: readonly string[];
  /** `fstat` of the open directory: its device and inode identify it. */
  stat: BigIntStats;
  /** The directory this one was opened from (undefined for the root). */
  parentRef: DirectoryRef | undefined;
}

/** Where a workspace path leads. */
export interface Resolution {
  /** Directory holding the final entry; undefined when the final entry is the root. */
  parent: DirectoryRef | undefined;
  /** Name of the final entry in `parent` (`''` for the root). */
  name: string;
  /** Real workspace segments of the final entry (lexical past a missing component). */
  segments: string[];
  /** `lstat` of the final entry, or undefined when it does not exist. */
  stat: BigIntStats | undefined;
  /** Set when a component before the last is missing or is not a directory. */
  blocked?: 'missing' | 'not-a-directory';
  /** When the path ended on a directory already open (the root, or a link ending in `..`). */
  directory?: DirectoryRef;
}

/** How {@link PathResolver.resolve} treats the last component and missing parents. */
export interface ResolveOptions {
  /** Resolve a symbolic link in the last position (else the link itself is the result). */
  followFinal: boolean;
  /** Create missing directories before the last component. */
  createParents: boolean;
}

/** Follow a final link; create nothing (reads, stats). */
export const FOLLOW: ResolveOptions = { followFinal: true, createParents: false };
/** Stop on a final link; create nothing (deletes and moves act on the link itself). */
export const NO_FOLLOW: ResolveOptions = { followFinal: false, createParents: false };
/** Follow a final link; create missing parents (writes). */
export const CREATE_PARENTS: ResolveOptions = { followFinal: true, createParents: true };

/** The resolution modes a {@link PathResolver} implements. */
export type PathResolverMode = 'descriptor' | 'path';

/**
 * The security-critical half of `RealDiskFileStore`: how a workspace path becomes open
 * descriptors on the host without ever leaving the root. Everything the store touches on disk is
 * named through a resolver (`entryPath`, `directoryPath`) relative to a directory it opened and
 * checked, and re-checked (`verifyChain`) right before a change.
 *
 * Two implementations: `DescriptorPathResolver` (Linux, `/proc/self/fd`, race-free) and
 * `PortablePathResolver` (any POSIX system; narrows but cannot close the window against a
 * concurrent process swapping a parent directory). `createPathResolver` picks one.
 *
 * Paths given to a resolver are workspace paths as `normalizeWorkspacePath` returns them
 * (leading `/`, no `..`); a resolver still refuses NUL and `..` climbing above the root itself.
 * Errors are `EverrunsError`s naming the workspace path, or raw Node system errors the store maps
 * with `fromSystemError`.
 */
export interface PathResolver {
  /** Which implementation this is: `descriptor` (race-free) or `path` (portable). */
  readonly mode: PathResolverMode;

  /** Real host path of the workspace root (resolved once; never re-read through a link). */
  readonly root: string;

  /**
   * Walks `path` from the root one component at a time, each looked up inside the directory
   * opened before it. Symbolic links are read and resolved by the resolver, and followed only
   * while they stay inside the root. Every directory it opens is tracked by `scope`.
   *
   * Throws `PATH_OUTSIDE_ROOT` (a link or `..` leaving the root), `INVALID_PATH` (NUL, links
   * when they are not followed, more than 40 links), `FILE_NOT_FOUND` (an empty link),
   * `STORE_CONFLICT` (a directory changed while it was opened), `CONFIGURATION` (the root was
   * replaced). A missing component is not an error: see {@link Resolution.blocked}.
   */
  resolve(scope: HandleScope, path: string, options: ResolveOptions): Promise<Resolution>;

  /**
   * Opens `name` inside `parent` as a directory without following a link, and checks by device
   * and inode that it is the directory `expected` described. Throws `STORE_CONFLICT` otherwise.
   */
  openDirectory(
    scope: HandleScope,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    path: string,
  ): Promise<DirectoryRef>;

  /**
   * Opens the regular file `name` inside `parent` with `flags | O_NOFOLLOW | O_NONBLOCK` (a FIFO
   * never blocks) and checks on the descriptor that it is the file `expected` described, that it
   * is regular and, unless hard links are allowed, that it has exactly one link. Throws
   * `STORE_CONFLICT`, `NOT_A_REGULAR_FILE`, `IS_A_DIRECTORY`.
   */
  openFile(
    scope: HandleScope,
    path: string,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    flags: number,
  ): Promise<{ handle: FileHandle; stat: BigIntStats }>;

  /** The host path to hand to a system call for `name` inside the open `directory`. */
  entryPath(directory: DirectoryRef, name: string): string;

  /** The host path of the open `directory` itself (for `readdir`). */
  directoryPath(directory: DirectoryRef): string;

  /**
   * Re-checks that every directory from `directory` up to the root is still the one that was
   * opened; throws `STORE_CONFLICT` when one was swapped. Called right before each change.
   */
  verifyChain(directory: DirectoryRef, path: string): Promise<void>;
}

/** The workspace path of `name` inside the workspace directory `parent`. */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** What a {@link PathResolver} is built from (the store computes it once, at construction). */
export interface PathResolverOptions {
  /** Real host path of the workspace root. */
  root: string;
  /** `stat` of the root when the store was created; every resolution checks it again. */
  rootStat: BigIntStats;
  /** Host path prefixes that absolute link targets may use to point inside the root. */
  rootAliases: readonly string[];
  /** Follow symbolic links whose target stays inside the root (else they are `INVALID_PATH`). */
  followSymlinks: boolean;
  /** Open regular files with more than one hard link. */
  allowHardLinks: boolean;
}

/**
 * Opens the existing directory `path` leads to (links followed while inside). Throws
 * `FILE_NOT_FOUND` when nothing is there and `NOT_A_DIRECTORY` when it is something else.
 */
export async function openExistingDirectory(
  resolver: PathResolver,
  scope: HandleScope,
  path: string,
): Promise<DirectoryRef> {
  const target = await resolver.resolve(scope, path, FOLLOW);
  if (target.directory) return target.directory;
  if (target.blocked || !target.stat) {
    throw fileError('FILE_NOT_FOUND', path, `No such directory: ${path}`);
  }
  if (!target.stat.isDirectory()) throw notADirectory(path);
  return resolver.openDirectory(
    scope,
    target.parent as DirectoryRef,
    target.name,
    target.stat,
    path,
  );
}
