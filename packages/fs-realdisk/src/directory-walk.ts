import { isUtf8 } from 'node:buffer';
import { type BigIntStats, constants } from 'node:fs';
import { type FileHandle, lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import {
  EverrunsError,
  type FileStat,
  type GrepMatch,
  normalizeWorkspacePath,
  throwIfAborted,
} from '@everruns-ts/core';
import { fileError, systemCode } from './errors.js';
import { readBounded } from './file-content.js';
import type { HandleScope } from './handle-scope.js';
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

/**
 * Depth-first walk under `start` in name order, never following links, each directory opened
 * inside its parent and checked. Stops with `LIMIT_EXCEEDED` past `maxEntries` entries or
 * {@link MAX_WALK_DEPTH} levels; a directory seen twice (a bind-mount loop) is not re-entered;
 * a directory swapped while it is opened is skipped. `visit` returning `'stop'` ends the walk.
 */
export async function walkDirectory(
  resolver: PathResolver,
  scope: HandleScope,
  start: DirectoryRef,
  startPath: string,
  options: { maxEntries: number; signal: AbortSignal | undefined },
  visit: (entry: WalkEntry) => unknown,
): Promise<void> {
  let visited = 0;
  let stopped = false;
  const seen = new Set<string>();
  const descend = async (directory: DirectoryRef, path: string, depth: number) => {
    const key = `${directory.stat.dev}:${directory.stat.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    const names = (await readdir(resolver.directoryPath(directory))).sort();
    await resolver.verifyChain(directory, path);
    for (const name of names) {
      if (stopped) return;
      throwIfAborted(options.signal);
      if (name.startsWith(TEMP_PREFIX)) continue;
      visited++;
      if (visited > options.maxEntries) throw walkLimitExceeded(startPath, options.maxEntries);
      let stat: BigIntStats;
      try {
        stat = await lstat(resolver.entryPath(directory, name), { bigint: true });
      } catch (error) {
        if (systemCode(error) === 'ENOENT') continue;
        throw error;
      }
      const entryPath = childPath(path, name);
      if ((await visit({ path: entryPath, parent: directory, name, stat })) === 'stop') {
        stopped = true;
        return;
      }
      if (!stat.isDirectory()) continue;
      if (depth >= MAX_WALK_DEPTH) throw walkLimitExceeded(startPath, options.maxEntries);
      let child: DirectoryRef;
      try {
        child = await resolver.openDirectory(scope, directory, name, stat, entryPath);
      } catch (error) {
        if (EverrunsError.hasCode(error, 'STORE_CONFLICT')) continue;
        throw error;
      }
      try {
        await descend(child, entryPath, depth + 1);
      } finally {
        await scope.release(child.handle);
      }
    }
  };
  await descend(start, startPath, 0);
}

/** Removes everything inside `directory`, bottom-up, each entry inside its open parent. */
export async function removeDirectoryContents(
  resolver: PathResolver,
  scope: HandleScope,
  directory: DirectoryRef,
  path: string,
): Promise<void> {
  const names = await readdir(resolver.directoryPath(directory));
  for (const name of names) {
    const entry = resolver.entryPath(directory, name);
    const entryPath = childPath(path, name);
    let stat: BigIntStats;
    try {
      stat = await lstat(entry, { bigint: true });
    } catch (error) {
      if (systemCode(error) === 'ENOENT') continue;
      throw error;
    }
    if (stat.isDirectory()) {
      const child = await resolver.openDirectory(scope, directory, name, stat, entryPath);
      try {
        await removeDirectoryContents(resolver, scope, child, entryPath);
      } finally {
        await scope.release(child.handle);
      }
      await resolver.verifyChain(directory, entryPath);
      await rmdir(entry);
    } else {
      await resolver.verifyChain(directory, entryPath);
      await unlink(entry);
    }
  }
}

/** The directory a glob can start walking from: its leading segments without wildcards. */
export function globStart(pattern: string): string {
  if (!pattern.startsWith('/')) return '/';
  const segments = pattern.slice(1).split('/');
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
  search: { start: string; matcher: RegExp; signal: AbortSignal | undefined },
  limits: DiskLimits,
): Promise<FileStat[]> {
  const directory = await openWalkStart(resolver, scope, search.start);
  if (!directory) return [];
  const found: FileStat[] = [];
  const options = { maxEntries: limits.maxWalkEntries, signal: search.signal };
  await walkDirectory(resolver, scope, directory, search.start, options, (entry) => {
    if (entry.stat.isFile() && search.matcher.test(entry.path)) {
      found.push(toFileStat(entry.path, entry.stat));
    }
  });
  return found.sort((left, right) => (left.path < right.path ? -1 : 1));
}

/**
 * Lines `matcher` accepts in the UTF-8 files under `start` whose path `pathMatcher` accepts,
 * at most `maxMatches`, sorted by path and line. Files over `maxFileBytes`, multiply linked
 * (unless allowed), not UTF-8 or not safely openable are skipped.
 */
export async function grepFiles(
  resolver: PathResolver,
  scope: HandleScope,
  search: {
    start: string;
    matcher: RegExp;
    pathMatcher: RegExp | undefined;
    maxMatches: number;
    signal: AbortSignal | undefined;
  },
  limits: DiskLimits,
): Promise<GrepMatch[]> {
  const { matcher, pathMatcher, maxMatches } = search;
  const directory = await openWalkStart(resolver, scope, search.start);
  if (!directory) return [];
  const matches: GrepMatch[] = [];
  const options = { maxEntries: limits.maxWalkEntries, signal: search.signal };
  await walkDirectory(resolver, scope, directory, search.start, options, async (entry) => {
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
        bytes = await readBounded(handle, entry.path, limits.maxFileBytes);
      } catch (error) {
        if (EverrunsError.hasCode(error, 'FILE_TOO_LARGE')) return;
        throw error;
      }
      if (!isUtf8(bytes)) return;
      const lines = bytes.toString('utf8').split('\n');
      for (let index = 0; index < lines.length; index++) {
        let line = lines[index] as string;
        if (index === lines.length - 1 && line === '') break;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (matcher.test(line)) {
          matches.push({ path: entry.path, lineNumber: index + 1, line });
          if (matches.length >= maxMatches) return 'stop';
        }
      }
    } finally {
      await scope.release(handle);
    }
  });
  return matches.sort((left, right) =>
    left.path === right.path ? left.lineNumber - right.lineNumber : left.path < right.path ? -1 : 1,
  );
}
