import { EverrunsError, type GrepLimits } from '@everruns-ts/core';

/** Default of {@link RealDiskFileStoreOptions.maxFileBytes}: 10 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;
/** Default of {@link RealDiskFileStoreOptions.maxWalkEntries}. */
export const DEFAULT_MAX_WALK_ENTRIES = 100_000;

/** How paths are resolved; see {@link RealDiskFileStoreOptions.resolution}. */
export type RealDiskResolution = 'auto' | 'descriptor' | 'path';

/** Options of `RealDiskFileStore`. */
export interface RealDiskFileStoreOptions {
  /**
   * The host directory that is the workspace root (`/`). It is resolved to its real path once,
   * here; giving it through a symbolic link is fine, repointing that link later changes nothing.
   */
  root: string;
  /**
   * Largest file, in bytes, that is read whole or written. Larger files are refused with
   * `FILE_TOO_LARGE` (never read into memory); grep skips them. Default {@link DEFAULT_MAX_FILE_BYTES}.
   */
  maxFileBytes?: number;
  /**
   * Follow symbolic links whose target stays inside the root. Default `true`. A link whose
   * target leaves the root is always `PATH_OUTSIDE_ROOT`; with `false` every link on the way is
   * `INVALID_PATH`. Deleting or moving a link acts on the link itself.
   */
  followSymlinksInside?: boolean;
  /**
   * Allow reading and replacing regular files that have more than one hard link. Default `false`:
   * such a file may share its content with a file outside the workspace, and a hard link does not
   * say where its other names are, so it is refused with `NOT_A_REGULAR_FILE`. Deleting or moving
   * the link (which only touches the workspace's directory entry) is always allowed.
   */
  allowHardLinks?: boolean;
  /**
   * Most directory entries a recursive walk (glob, grep, recursive delete) visits before it
   * stops with `LIMIT_EXCEEDED`. Default {@link DEFAULT_MAX_WALK_ENTRIES}.
   */
  maxWalkEntries?: number;
  /**
   * Bounds of `globFiles` and `grepFiles`: pattern and glob length, line length, bytes scanned
   * and time per call, time between yields to the event loop. Defaults: core's
   * `DEFAULT_GREP_LIMITS` (1,000 characters, 100,000 characters, 100 MiB, 10 s, 20 ms).
   */
  grepLimits?: Partial<GrepLimits>;
  /**
   * Whether `grepFiles` honours ignore files, as upstream's real-disk store does: `.ignore` files
   * always, `.gitignore` files when the workspace is inside a git repository (a `.git` in the root
   * or a directory above it, or in the directory holding the `.gitignore` or above it), each for
   * the paths under its own directory, a deeper file (and `.ignore` over `.gitignore`) overriding
   * a shallower one, `!` rules re-including, nothing under an ignored directory searched.
   * `.git/info/exclude` and global git excludes are not read. Default `true`; `globFiles`,
   * listings and reads are never filtered.
   */
  honorIgnoreFiles?: boolean;
  /** Create `root` (and its parents) when it does not exist. Default `false`: a missing root is `CONFIGURATION`. */
  createRoot?: boolean;
  /**
   * `descriptor` resolves every component relative to an open directory descriptor (through
   * `/proc/self/fd`, Linux), so a directory or file swapped for a symbolic link mid-operation
   * can never redirect it: race-free. `path` is the portable fallback: each component is checked
   * with `lstat`, opened with `O_NOFOLLOW` and verified by device and inode, and the chain is
   * re-checked after the open; it narrows but cannot close the window against a concurrent local
   * process swapping a parent directory. `auto` (default) picks `descriptor` when available.
   */
  resolution?: RealDiskResolution;
}
/** `value` when it is a positive safe integer, `fallback` when undefined; else `CONFIGURATION`. */
export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `${name} must be a positive integer`,
      details: { [name]: value },
    });
  }
  return value;
}
