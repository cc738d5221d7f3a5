import type { BigIntStats } from 'node:fs';
import { type ErrorCode, EverrunsError } from '@everruns-ts/core';

/** Builds an {@link EverrunsError} naming a workspace path (never a host path). */
export function fileError(
  code: ErrorCode,
  path: string,
  message: string,
  extra: { cause?: unknown; details?: Record<string, unknown>; retryable?: boolean } = {},
): EverrunsError {
  return new EverrunsError({
    code,
    message,
    cause: extra.cause,
    details: { path, ...extra.details },
    retryable: extra.retryable ?? false,
  });
}

/** `PATH_OUTSIDE_ROOT` for a path whose resolution left the workspace. */
export function outsideRoot(path: string, why: string): EverrunsError {
  return fileError(
    'PATH_OUTSIDE_ROOT',
    path,
    `Path ${path} resolves outside the workspace: ${why}`,
  );
}

/**
 * `STORE_CONFLICT` (retryable) for an entry that changed between the check and the open, for
 * example a file swapped for a symbolic link by another process.
 */
export function changedDuringOperation(path: string, cause?: unknown): EverrunsError {
  return fileError(
    'STORE_CONFLICT',
    path,
    `Path ${path} changed while it was being opened; nothing was done`,
    { cause, retryable: true },
  );
}

/** `FILE_TOO_LARGE` for content of `size` bytes over the store's `limit`. */
export function tooLarge(path: string, size: number, limit: number): EverrunsError {
  return fileError('FILE_TOO_LARGE', path, `${path} is larger than the limit of ${limit} bytes`, {
    details: { size, limit },
  });
}

/** `NOT_A_REGULAR_FILE` for an entry that is a FIFO, socket, device or link, naming which. */
export function notRegular(path: string, stat: BigIntStats): EverrunsError {
  return fileError('NOT_A_REGULAR_FILE', path, `${path} is ${kindOf(stat)}`);
}

/** `NOT_A_DIRECTORY` for a path whose parent component is a file. */
export function notADirectory(path: string): EverrunsError {
  return fileError('NOT_A_DIRECTORY', path, `A parent of ${path} is not a directory`);
}

/** `FILE_READ_ONLY` for a file without the owner's write bit (or a tree holding one). */
export function readOnly(path: string): EverrunsError {
  return fileError('FILE_READ_ONLY', path, `${path} is read-only`);
}

function kindOf(stat: BigIntStats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** The errno code of a Node system error, if any. */
export function systemCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Maps a Node system error to a stable error code. The message names the workspace path only:
 * descriptor paths and host paths stay in `cause`.
 */
export function fromSystemError(error: unknown, path: string): EverrunsError {
  if (EverrunsError.isInstance(error)) return error;
  const code = systemCode(error);
  switch (code) {
    case 'ENOENT':
      return fileError('FILE_NOT_FOUND', path, `No such file or directory: ${path}`, {
        cause: error,
      });
    case 'ENOTDIR':
      return fileError('NOT_A_DIRECTORY', path, `A component of ${path} is not a directory`, {
        cause: error,
      });
    case 'EISDIR':
      return fileError('IS_A_DIRECTORY', path, `${path} is a directory`, { cause: error });
    case 'ENOTEMPTY':
      return fileError('IS_A_DIRECTORY', path, `Directory ${path} is not empty`, { cause: error });
    case 'EEXIST':
      return fileError('FILE_ALREADY_EXISTS', path, `${path} already exists`, { cause: error });
    case 'ENXIO':
    case 'ENODEV':
      return fileError('NOT_A_REGULAR_FILE', path, `${path} is not a regular file`, {
        cause: error,
      });
    case 'EFBIG':
      return fileError('FILE_TOO_LARGE', path, `${path} is too large`, { cause: error });
    case 'ELOOP':
      return changedDuringOperation(path, error);
    case 'ENAMETOOLONG':
      return fileError('INVALID_PATH', path, `Path ${path} is too long`, { cause: error });
    default:
      return fileError(
        'INTERNAL',
        path,
        `File operation on ${path} failed${code ? ` (${code})` : ''}`,
        { cause: error },
      );
  }
}
