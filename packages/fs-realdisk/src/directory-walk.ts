import { isUtf8 } from 'node:buffer';
import { type BigIntStats, constants } from 'node:fs';
import { type FileHandle, lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import {
  EverrunsError,
  type FileStat,
  type GrepMatch,
  type GrepScan,
  type LineMatcher,
  normalizeWorkspacePath,
  type PathMatcher,
  stripWorkspaceGlobPrefix,
  throwIfAborted,
} from '@everruns-ts/core';
import { fileError, systemCode } from './errors.js';
import { readBounded } from './file-content.js';
import type { HandleScope } from './handle-scope.js';
import {
  enterIgnoreDirectory,
  type IgnoreChain,
  ignoreEverythingChain,
  isIgnored,
} from './ignore-rules.js';
import {
  childPath,
  type DirectoryRef,
  openExistingDirectory,
  type PathResolver,
  TEMP_PREFIX,
} from './path-resolver.js';
import { type DiskLimits, toFileStat } from './stat-checks.js';

/** Deepest directory level a recursive walk descends to. */
const MAX_WALK_DEPTH = 256;

/** Options of {@link walkDirectory}. */
export interface WalkOptions {
  maxEntries: number;
  signal: AbortSignal | undefined;
  /**
   * Told of each directory the walk enters (the start too), with its sorted names, before any
   * of them is visited.
   */
  onEnter?: (directory: DirectoryRef, path: string, names: readonly string[]) => Promise<void>;
}

/** One entry a walk visits: its workspace path, the open directory holding it, its `lstat`. */
export interface WalkEntry {
  path: string;
  parent: DirectoryRef;
  name: string;
  stat: BigIntStats;
}

/** `LIMIT_EXCEEDED` for a walk or listing of `path` past `limit` entries (or too deep). */
export function walkLimitExceeded(path: string, limit: number): EverrunsError {
  return fileError(
    'LIMIT_EXCEEDED',
    path,
    `Walking ${path} visited more than ${limit} entries (or ${MAX_WALK_DEPTH} levels)`,
    { details: { limit } },
  );
}

/** A directory a walk has entered: its sorted names and how far it has got through them. */
interface WalkFrame {
  directory: DirectoryRef;
  path: string;
  depth: number;
  names: string[];
  next: number;
  /** Whether the walk opened this directory (and so closes it). */
  owned: boolean;
}

/**
 * Depth-first walk under `start` in name order, never following links, each directory opened
 * inside its parent and checked. Stops with `LIMIT_EXCEEDED` past `maxEntries` entries or
 * {@link MAX_WALK_DEPTH} levels; a directory seen twice (a bind-mount loop) is not re-entered;
 * a directory swapped while it is opened is skipped. `visit` returning `'stop'` ends the walk;
 * returning `'skip'` for a directory leaves it unentered.
 * The walk keeps its own stack of open directories (no recursion), so its depth costs no call
 * stack; every directory it opened is closed however it ends.
 */
export async function walkDirectory(
  resolver: PathResolver,
  scope: HandleScope,
  start: DirectoryRef,
  startPath: string,
  options: WalkOptions,
  visit: (entry: WalkEntry) => unknown,
): Promise<void> {
  let visited = 0;
  const seen = new Set<string>();
  const stack: WalkFrame[] = [];
  const enter = async (directory: DirectoryRef, path: string, depth: number, owned: boolean) => {
    const key = `${directory.stat.dev}:${directory.stat.ino}`;
    try {
      if (seen.has(key)) {
        if (owned) await scope.release(directory.handle);
        return;
      }
      seen.add(key);
      const names = (await readdir(resolver.directoryPath(directory))).sort();
      await resolver.verifyChain(directory, path);
      await options.onEnter?.(directory, path, names);
      stack.push({ directory, path, depth, names, next: 0, owned });
    } catch (error) {
      if (owned) await scope.release(directory.handle);
      throw error;
    }
  };
  try {
    await enter(start, startPath, 0, false);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as WalkFrame;
      const name = frame.names[frame.next++];
      if (name === undefined) {
        stack.pop();
        if (frame.owned) await scope.release(frame.directory.handle);
        continue;
      }
      throwIfAborted(options.signal);
      if (name.startsWith(TEMP_PREFIX)) continue;
      visited++;
      if (visited > options.maxEntries) throw walkLimitExceeded(startPath, options.maxEntries);
      const { directory, path, depth } = frame;
      let stat: BigIntStats;
      try {
        stat = await lstat(resolver.entryPath(directory, name), { bigint: true });
      } catch (error) {
        if (systemCode(error) === 'ENOENT') continue;
        throw error;
      }
      const entryPath = childPath(path, name);
      const outcome = await visit({ path: entryPath, parent: directory, name, stat });
      if (outcome === 'stop') return;
      if (outcome === 'skip' || !stat.isDirectory()) continue;
      if (depth >= MAX_WALK_DEPTH) throw walkLimitExceeded(startPath, options.maxEntries);
      let child: DirectoryRef;
      try {
        child = await resolver.openDirectory(scope, directory, name, stat, entryPath);
      } catch (error) {
        if (EverrunsError.hasCode(error, 'STORE_CONFLICT')) continue;
        throw error;
      }
      await enter(child, entryPath, depth + 1, true);
    }
  } finally {
    for (const frame of stack.splice(0)) {
      if (frame.owned) await scope.release(frame.directory.handle);
    }
  }
}

/** A directory being emptied: where it sits in its parent, so it can be removed once empty. */
interface RemovalFrame {
  directory: DirectoryRef;
  path: string;
  names: string[];
  next: number;
  /** Its parent directory and its host entry there; undefined for the directory emptied. */
  parent?: { directory: DirectoryRef; entry: string };
}

/**
 * Removes everything inside `directory`, bottom-up, each entry inside its open parent. Keeps its
 * own stack of open directories (no recursion); callers bound the depth first (a recursive
 * delete walks the tree for read-only files, which stops at {@link MAX_WALK_DEPTH}).
 */
export async function removeDirectoryContents(
  resolver: PathResolver,
  scope: HandleScope,
  directory: DirectoryRef,
  path: string,
): Promise<void> {
  const stack: RemovalFrame[] = [
    { directory, path, names: await readdir(resolver.directoryPath(directory)), next: 0 },
  ];
  try {
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as RemovalFrame;
      const name = frame.names[frame.next++];
      if (name === undefined) {
        stack.pop();
        if (frame.parent !== undefined) {
          await scope.release(frame.directory.handle);
          await resolver.verifyChain(frame.parent.directory, frame.path);
          await rmdir(frame.parent.entry);
        }
        continue;
      }
      const entry = resolver.entryPath(frame.directory, name);
      const entryPath = childPath(frame.path, name);
      let stat: BigIntStats;
      try {
        stat = await lstat(entry, { bigint: true });
      } catch (error) {
        if (systemCode(error) === 'ENOENT') continue;
        throw error;
      }
      if (stat.isDirectory()) {
        const child = await resolver.openDirectory(scope, frame.directory, name, stat, entryPath);
        let names: string[];
        try {
          names = await readdir(resolver.directoryPath(child));
        } catch (error) {
          await scope.release(child.handle);
          throw error;
        }
        stack.push({
          directory: child,
          path: entryPath,
          names,
          next: 0,
          parent: { directory: frame.directory, entry },
        });
      } else {
        await resolver.verifyChain(frame.directory, entryPath);
        await unlink(entry);
      }
    }
  } finally {
    for (const frame of stack.splice(0)) {
      if (frame.parent !== undefined) await scope.release(frame.directory.handle);
    }
  }
}

/** The directory a glob can start walking from: its leading segments without wildcards. */
export function globStart(pattern: string): string {
  const glob = stripWorkspaceGlobPrefix(pattern);
  if (!glob.startsWith('/')) return '/';
  const segments = glob.slice(1).split('/');
  segments.pop();
  const literal: string[] = [];
  for (const segment of segments) {
    if (/[*?]/.test(segment)) break;
    // A prefix normalisation would refuse or rewrite is not walked from: the pattern then
    // simply matches nothing below it.
    try {
      if (normalizeWorkspacePath(`/x/${segment}`) !== `/x/${segment}`) return '/';
    } catch {
      return '/';
    }
    literal.push(segment);
  }
  return `/${literal.join('/')}`;
}

/** Opens the directory a walk starts from, or undefined when it is missing or not a directory. */
async function openWalkStart(
  resolver: PathResolver,
  scope: HandleScope,
  start: string,
): Promise<DirectoryRef | undefined> {
  try {
    return await openExistingDirectory(resolver, scope, start);
  } catch (error) {
    if (
      EverrunsError.hasCode(error, 'FILE_NOT_FOUND') ||
      EverrunsError.hasCode(error, 'NOT_A_DIRECTORY')
    ) {
      return undefined;
    }
    throw error;
  }
}

/** Regular files under `start` whose workspace path `matcher` accepts, sorted by path. */
export async function findFiles(
  resolver: PathResolver,
  scope: HandleScope,
  search: { start: string; matcher: PathMatcher; scan: GrepScan; signal: AbortSignal | undefined },
  limits: DiskLimits,
): Promise<FileStat[]> {
  const directory = await openWalkStart(resolver, scope, search.start);
  if (!directory) return [];
  const found: FileStat[] = [];
  const options = { maxEntries: limits.maxWalkEntries, signal: search.signal };
  await walkDirectory(resolver, scope, directory, search.start, options, async (entry) => {
    await search.scan.checkpoint();
    if (entry.stat.isFile() && search.matcher.test(entry.path)) {
      found.push(toFileStat(entry.path, entry.stat));
    }
  });
  return found.sort((left, right) => (left.path < right.path ? -1 : 1));
}

/**
 * Lines `matcher` accepts in the UTF-8 files under `start` whose path `pathMatcher` accepts,
 * sorted by path and line; `scan` collects them under its limits (matches, files, bytes, time)
 * and yields to the event loop between slices. Files over `maxFileBytes`, multiply linked
 * (unless allowed), not UTF-8 or not safely openable are skipped.
 */
export async function grepFiles(
  resolver: PathResolver,
  scope: HandleScope,
  search: {
    start: string;
    matcher: LineMatcher;
    pathMatcher: PathMatcher | undefined;
    scan: GrepScan;
    signal: AbortSignal | undefined;
    /** The ignore rules above the workspace root; absent: ignore files are not honoured. */
    ignoreRoot?: IgnoreChain;
  },
  limits: DiskLimits,
): Promise<GrepMatch[]> {
  const { matcher, pathMatcher, scan } = search;
  const directory = await openWalkStart(resolver, scope, search.start);
  if (!directory) return [];
  const options: WalkOptions = { maxEntries: limits.maxWalkEntries, signal: search.signal };
  // The chain in force in each directory entered, by workspace path.
  const chains = new Map<string, IgnoreChain>();
  const ignoreRoot = search.ignoreRoot;
  if (ignoreRoot) {
    const above = await ancestorIgnoreChain(resolver, scope, search.start, ignoreRoot);
    options.onEnter = async (entered, path, names) => {
      const parent = path === search.start ? above : chains.get(parentPath(path));
      chains.set(
        path,
        await enterIgnoreDirectory(resolver, scope, entered, path, names, parent ?? above),
      );
    };
  }
  await walkDirectory(resolver, scope, directory, search.start, options, async (entry) => {
    if (!(await scan.checkpoint())) return 'stop';
    if (ignoreRoot) {
      const chain = chains.get(parentPath(entry.path));
      if (chain && isIgnored(chain, entry.path, entry.stat.isDirectory())) return 'skip';
    }
    if (!entry.stat.isFile()) return;
    if (pathMatcher && !pathMatcher.test(entry.path)) return;
    if (entry.stat.size > BigInt(limits.maxFileBytes)) return;
    if (entry.stat.nlink > 1n && !limits.allowHardLinks) return;
    let handle: FileHandle;
    try {
      ({ handle } = await resolver.openFile(
        scope,
        entry.path,
        entry.parent,
        entry.name,
        entry.stat,
        constants.O_RDONLY,
      ));
    } catch (error) {
      if (EverrunsError.isInstance(error) || systemCode(error) === 'ENOENT') return;
      throw error;
    }
    try {
      let bytes: Buffer;
      try {
        bytes = await readBounded(handle, entry.path, limits.maxFileBytes, Number(entry.stat.size));
      } catch (error) {
        if (EverrunsError.hasCode(error, 'FILE_TOO_LARGE')) return;
        throw error;
      }
      if (!isUtf8(bytes)) return;
      if (!scan.enterFile()) return 'stop';
      const text = bytes.toString('utf8');
      if (!(await scan.scanText(entry.path, text, bytes.length, matcher))) return 'stop';
    } finally {
      await scope.release(handle);
    }
  });
  return scan.matches.sort((left, right) =>
    left.path === right.path ? left.lineNumber - right.lineNumber : left.path < right.path ? -1 : 1,
  );
}

function parentPath(path: string): string {
  const index = path.lastIndexOf('/');
  return index <= 0 ? '/' : path.slice(0, index);
}

/**
 * The ignore chain in force above `start`: the rules of every directory from the root down to
 * `start`'s parent, read as a walk from the root would (a grep whose glob starts below the root
 * still honours the ignore files above it). A directory on the way that is itself ignored makes
 * everything under it ignored; the caller's walk then finds nothing, as a walk from the root
 * would not have entered it.
 */
async function ancestorIgnoreChain(
  resolver: PathResolver,
  scope: HandleScope,
  start: string,
  root: IgnoreChain,
): Promise<IgnoreChain> {
  if (start === '/') return root;
  let chain = root;
  let path = '/';
  for (const segment of start.slice(1).split('/')) {
    const directory = await openWalkStart(resolver, scope, path);
    if (!directory) return chain;
    const names = (await readdir(resolver.directoryPath(directory))).sort();
    chain = await enterIgnoreDirectory(resolver, scope, directory, path, names, chain);
    const next = path === '/' ? `/${segment}` : `${path}/${segment}`;
    if (isIgnored(chain, next, true)) return ignoreEverythingChain();
    path = next;
  }
  return chain;
}
