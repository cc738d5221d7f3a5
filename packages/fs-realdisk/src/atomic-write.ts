import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, open, rename, unlink } from 'node:fs/promises';
import type { FileEncoding, FileStat } from '@everruns-ts/core';
import { fileError, notADirectory, readOnly } from './errors.js';
import { expectedBytes, readBounded } from './file-content.js';
import type { HandleScope } from './handle-scope.js';
import {
  CREATE_PARENTS,
  type DirectoryRef,
  FOLLOW,
  type PathResolver,
  type Resolution,
  TEMP_PREFIX,
} from './path-resolver.js';
import {
  checkRegular,
  type DiskLimits,
  isReadonlyStat,
  permissionBits,
  requireFile,
  toFileStat,
} from './stat-checks.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

/**
 * Resolves the file a write replaces, creating its parents. Throws `IS_A_DIRECTORY` (the root
 * or a directory), `NOT_A_DIRECTORY` (a parent is a file), `NOT_A_REGULAR_FILE` (a FIFO, socket,
 * device or multiply linked file) and, unless `allowReadonly`, `FILE_READ_ONLY`.
 */
export async function resolveWritable(
  resolver: PathResolver,
  scope: HandleScope,
  path: string,
  options: { allowReadonly: boolean; allowHardLinks: boolean },
): Promise<Resolution> {
  if (path === '/') throw fileError('IS_A_DIRECTORY', path, 'The workspace root is a directory');
  const target = await resolver.resolve(scope, path, CREATE_PARENTS);
  if (target.blocked === 'not-a-directory') throw notADirectory(path);
  if (!target.parent || target.directory) {
    throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
  }
  if (target.stat) {
    checkRegular(path, target.stat, options.allowHardLinks);
    if (!options.allowReadonly && isReadonlyStat(target.stat)) throw readOnly(path);
  }
  return target;
}

/**
 * Writes `bytes` to a new temporary file (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the validated
 * parent of `target` and renames it over the target, so readers see the old or the new content,
 * never a mix, and a target swapped for a link is replaced, never written through. `mode` sets
 * the new file's permission bits. The temporary file is removed when anything fails.
 */
export async function replaceFile(
  resolver: PathResolver,
  path: string,
  target: Resolution,
  bytes: Buffer,
  mode: number | undefined,
): Promise<void> {
  const parent = target.parent as DirectoryRef;
  const temporary = resolver.entryPath(parent, `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`);
  let handle: FileHandle | undefined;
  try {
    await resolver.verifyChain(parent, path);
    handle = await open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
    await handle.writeFile(bytes);
    if (mode !== undefined) await handle.chmod(mode);
    await handle.close();
    handle = undefined;
    await resolver.verifyChain(parent, path);
    await rename(temporary, resolver.entryPath(parent, target.name));
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/** The {@link FileStat} of the file a write just put at `target`. */
export async function statWritten(
  resolver: PathResolver,
  path: string,
  target: Resolution,
): Promise<FileStat> {
  const stat = await lstat(resolver.entryPath(target.parent as DirectoryRef, target.name), {
    bigint: true,
  });
  return toFileStat(path, stat);
}

/**
 * Compare-and-set: replaces the file with `bytes` only when its content is byte for byte
 * `expected` (in `encoding`), or when `expected` is null and there is no file. Throws
 * `CONTENT_MISMATCH` otherwise, and `IS_A_DIRECTORY`, `NOT_A_DIRECTORY`, `FILE_READ_ONLY`,
 * `NOT_A_REGULAR_FILE`, `FILE_TOO_LARGE` as a write does. The caller serialises it with every
 * other mutation of the store.
 */
export async function writeIfContentMatches(
  resolver: PathResolver,
  scope: HandleScope,
  path: string,
  change: { expected: string | null; bytes: Buffer; encoding: FileEncoding },
  limits: DiskLimits,
): Promise<FileStat> {
  const { expected, bytes, encoding } = change;
  const mismatch = (why: string) =>
    fileError('CONTENT_MISMATCH', path, `Content of ${path} ${why}`);
  const probe = await resolver.resolve(scope, path, FOLLOW);
  if (probe.blocked === 'not-a-directory') throw notADirectory(path);
  if (probe.directory || probe.stat?.isDirectory()) {
    throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
  }
  if (expected === null) {
    if (probe.stat) throw mismatch('exists, expected no file');
    const target = await resolveWritable(resolver, scope, path, {
      allowReadonly: false,
      allowHardLinks: limits.allowHardLinks,
    });
    if (target.stat) throw mismatch('exists, expected no file');
    await replaceFile(resolver, path, target, bytes, undefined);
    return statWritten(resolver, path, target);
  }
  if (!probe.stat || probe.blocked) throw mismatch('does not exist');
  const stat = requireFile(path, probe, limits);
  const { handle } = await resolver.openFile(
    scope,
    path,
    probe.parent as DirectoryRef,
    probe.name,
    stat,
    O_RDONLY,
  );
  const current = await readBounded(handle, path, limits.maxFileBytes, Number(stat.size));
  const wanted = expectedBytes(expected, encoding);
  if (!wanted || !current.equals(wanted)) throw mismatch('differs from the expected content');
  if (isReadonlyStat(stat)) throw readOnly(path);
  await replaceFile(resolver, path, probe, bytes, permissionBits(stat));
  return statWritten(resolver, path, probe);
}
