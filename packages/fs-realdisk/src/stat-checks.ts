import type { BigIntStats } from 'node:fs';
import { type FileStat, workspaceBaseName } from '@everruns-ts/core';
import { fileError, notRegular, tooLarge } from './errors.js';
import type { Resolution } from './path-resolver.js';

/** True when both stats describe the same entry (same device and inode). */
export function sameFile(left: BigIntStats, right: BigIntStats): boolean {
  return left.dev === right.dev && left.ino === right.ino;
}

/** A read-only file: a regular file without the owner's write permission bit. */
export function isReadonlyStat(stat: BigIntStats): boolean {
  return stat.isFile() && (stat.mode & 0o200n) === 0n;
}

/** The permission bits of an entry (kept when a file is replaced). */
export function permissionBits(stat: BigIntStats): number {
  return Number(stat.mode & 0o777n);
}

/** The contract's {@link FileStat} of the entry at workspace `path`. */
export function toFileStat(path: string, stat: BigIntStats): FileStat {
  const isDirectory = stat.isDirectory();
  return {
    path,
    name: workspaceBaseName(path),
    isDirectory,
    isReadonly: isReadonlyStat(stat),
    size: isDirectory ? 0 : Number(stat.size),
    updatedAt: new Date(Number(stat.mtimeMs)).toISOString(),
  };
}

/**
 * Refuses anything but a regular file with one link: `IS_A_DIRECTORY`, `NOT_A_REGULAR_FILE` for
 * FIFOs, sockets, devices and links, and for a file with more than one hard link unless
 * `allowHardLinks` (it may share its content with a file outside the workspace).
 */
export function checkRegular(path: string, stat: BigIntStats, allowHardLinks: boolean): void {
  if (stat.isDirectory()) throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
  if (!stat.isFile()) throw notRegular(path, stat);
  if (stat.nlink > 1n && !allowHardLinks) {
    throw fileError(
      'NOT_A_REGULAR_FILE',
      path,
      `${path} has ${stat.nlink} hard links and may share its content with a file outside the workspace`,
      { details: { links: Number(stat.nlink) } },
    );
  }
}

/** The store's limits the operations share (see `RealDiskFileStoreOptions`). */
export interface DiskLimits {
  /** Largest file read whole or written, in bytes. */
  maxFileBytes: number;
  /** Most entries one recursive walk visits. */
  maxWalkEntries: number;
  /** Whether files with more than one hard link may be read and replaced. */
  allowHardLinks: boolean;
}

/**
 * The `lstat` of an existing regular file `target` within `maxFileBytes`; throws
 * `IS_A_DIRECTORY`, `FILE_NOT_FOUND`, `NOT_A_REGULAR_FILE` or `FILE_TOO_LARGE` otherwise.
 */
export function requireFile(path: string, target: Resolution, limits: DiskLimits): BigIntStats {
  if (target.directory) throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
  if (target.blocked || !target.stat) {
    throw fileError('FILE_NOT_FOUND', path, `No such file: ${path}`);
  }
  checkRegular(path, target.stat, limits.allowHardLinks);
  if (target.stat.size > BigInt(limits.maxFileBytes)) {
    throw tooLarge(path, Number(target.stat.size), limits.maxFileBytes);
  }
  return target.stat;
}
