import { rename, rmdir, unlink } from 'node:fs/promises';
import { EverrunsError, type FileStat } from '@everruns-ts/core';
import { removeDirectoryContents, walkDirectory } from './directory-walk.js';
import { fileError, notADirectory, readOnly, systemCode } from './errors.js';
import type { HandleScope } from './handle-scope.js';
import { type DirectoryRef, FOLLOW, NO_FOLLOW, type PathResolver } from './path-resolver.js';
import { isReadonlyStat, toFileStat } from './stat-checks.js';

/**
 * Deletes the entry at the normalised `path`: a file, a symbolic link (the link, not its
 * target) or a directory (non-empty only with `recursive`, and then only when no read-only file
 * is anywhere inside, checked before anything goes). Resolves to false when nothing is there,
 * and, deleting nothing, for a non-empty directory without `recursive` (as upstream's stores).
 * Throws `INVALID_PATH` (the root), `FILE_READ_ONLY`, `LIMIT_EXCEEDED` (a tree over
 * `maxWalkEntries`).
 */
export async function deleteEntry(
  resolver: PathResolver,
  scope: HandleScope,
  path: string,
  options: { recursive: boolean; maxWalkEntries: number },
): Promise<boolean> {
  const target = await resolver.resolve(scope, path, NO_FOLLOW);
  if (target.blocked || !target.stat) return false;
  const parent = target.parent;
  if (!parent || target.segments.length === 0) {
    throw fileError('INVALID_PATH', path, 'The workspace root cannot be deleted');
  }
  const entry = resolver.entryPath(parent, target.name);
  const stat = target.stat;
  if (stat.isDirectory()) {
    if (!options.recursive) {
      try {
        await rmdir(entry);
      } catch (error) {
        if (systemCode(error) === 'ENOTEMPTY' || systemCode(error) === 'EEXIST') return false;
        throw error;
      }
      return true;
    }
    const directory =
      target.directory ?? (await resolver.openDirectory(scope, parent, target.name, stat, path));
    await refuseReadonlyInside(resolver, scope, directory, path, options.maxWalkEntries);
    await removeDirectoryContents(resolver, scope, directory, path);
    await resolver.verifyChain(parent, path);
    await rmdir(entry);
    return true;
  }
  if (isReadonlyStat(stat)) throw readOnly(path);
  await resolver.verifyChain(parent, path);
  await unlink(entry);
  return true;
}

/**
 * Moves the entry at the normalised `source` (a file, link or directory, never followed) to
 * `destination`, creating its parents. Throws `FILE_NOT_FOUND`, `FILE_ALREADY_EXISTS` (unless
 * `overwrite`), `FILE_READ_ONLY` (the source, a file inside it, or the replaced file),
 * `IS_A_DIRECTORY` (overwriting a directory), `INVALID_PATH` (the root, or a directory into
 * itself), `NOT_A_DIRECTORY`.
 */
export async function moveEntry(
  resolver: PathResolver,
  scope: HandleScope,
  move: { source: string; destination: string; overwrite: boolean },
  maxWalkEntries: number,
): Promise<FileStat> {
  const { source, destination } = move;
  const origin = await resolver.resolve(scope, source, NO_FOLLOW);
  if (origin.blocked || !origin.stat) {
    throw fileError('FILE_NOT_FOUND', source, `No such file or directory: ${source}`);
  }
  if (!origin.parent || origin.segments.length === 0) {
    throw fileError('INVALID_PATH', source, 'The workspace root cannot be moved');
  }
  if (isReadonlyStat(origin.stat)) throw readOnly(source);
  if (origin.stat.isDirectory()) {
    const directory =
      origin.directory ??
      (await resolver.openDirectory(scope, origin.parent, origin.name, origin.stat, source));
    await refuseReadonlyInside(resolver, scope, directory, source, maxWalkEntries);
  }
  const probe = await resolver.resolve(scope, destination, NO_FOLLOW);
  if (probe.blocked === 'not-a-directory') throw notADirectory(destination);
  const sameEntry = probe.segments.join('/') === origin.segments.join('/');
  if (sameEntry) return statEntry(resolver, scope, destination);
  if (
    origin.stat.isDirectory() &&
    probe.segments.length > origin.segments.length &&
    origin.segments.every((segment, index) => probe.segments[index] === segment)
  ) {
    throw fileError(
      'INVALID_PATH',
      destination,
      `Cannot move ${source} into itself (${destination})`,
    );
  }
  const target = await resolver.resolve(scope, destination, {
    followFinal: false,
    createParents: true,
  });
  if (target.blocked === 'not-a-directory') throw notADirectory(destination);
  if (!target.parent || target.segments.length === 0) {
    throw fileError('INVALID_PATH', destination, 'The workspace root cannot be replaced');
  }
  if (target.stat) {
    if (!move.overwrite) {
      throw fileError('FILE_ALREADY_EXISTS', destination, `${destination} already exists`);
    }
    if (target.stat.isDirectory()) {
      throw fileError(
        'IS_A_DIRECTORY',
        destination,
        `${destination} is a directory and cannot be overwritten`,
      );
    }
    if (isReadonlyStat(target.stat)) throw readOnly(destination);
  }
  await resolver.verifyChain(origin.parent, source);
  await resolver.verifyChain(target.parent, destination);
  await rename(
    resolver.entryPath(origin.parent, origin.name),
    resolver.entryPath(target.parent, target.name),
  );
  return statEntry(resolver, scope, destination);
}

/** Throws `FILE_READ_ONLY` when a read-only file is anywhere under `directory`. */
async function refuseReadonlyInside(
  resolver: PathResolver,
  scope: HandleScope,
  directory: DirectoryRef,
  path: string,
  maxEntries: number,
): Promise<void> {
  const options = { maxEntries, signal: undefined };
  await walkDirectory(resolver, scope, directory, path, options, (visited) => {
    if (isReadonlyStat(visited.stat)) throw readOnly(visited.path);
  });
}

/** What a move left at `path`: the entry it leads to, or the link itself when that fails. */
async function statEntry(
  resolver: PathResolver,
  scope: HandleScope,
  path: string,
): Promise<FileStat> {
  try {
    const target = await resolver.resolve(scope, path, FOLLOW);
    if (target.stat && !target.blocked) return toFileStat(path, target.stat);
  } catch (error) {
    if (!EverrunsError.isInstance(error)) throw error;
  }
  const link = await resolver.resolve(scope, path, NO_FOLLOW);
  if (!link.stat) throw fileError('FILE_NOT_FOUND', path, `No such file or directory: ${path}`);
  return { ...toFileStat(path, link.stat), isDirectory: false, isReadonly: false, size: 0 };
}
