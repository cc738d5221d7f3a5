import { type BigIntStats, closeSync, constants, openSync, statSync } from 'node:fs';
import { ComponentPathResolver } from './component-path-resolver.js';
import type { DirectoryRef } from './path-resolver.js';
import { sameFile } from './stat-checks.js';

const { O_RDONLY, O_DIRECTORY } = constants;

/**
 * The race-free resolver (Linux). Every component is named relative to the directory descriptor
 * opened before it, as `/proc/self/fd/<fd>/<name>`, so the kernel looks the name up inside that
 * very directory: a parent renamed away or swapped for a symbolic link mid-operation cannot
 * redirect it (Node has no `openat`; this is its equivalent). Each component is still opened with
 * `O_NOFOLLOW` (`O_NONBLOCK` for files) and its `fstat` compared by device and inode with the
 * `lstat` that was checked. The open descriptors are the chain, so {@link verifyChain} has
 * nothing to re-check.
 */
export class DescriptorPathResolver extends ComponentPathResolver {
  /** Always `descriptor`. */
  readonly mode = 'descriptor' as const;

  /**
   * True when `/proc/self/fd/<fd>` of an open directory leads back to that directory (Linux with
   * `/proc` mounted), that is when this resolver can be used on `root`.
   */
  static isAvailable(root: string, rootStat: BigIntStats): boolean {
    let fd: number | undefined;
    try {
      fd = openSync(root, O_RDONLY | O_DIRECTORY);
      const viaDescriptor = statSync(`/proc/self/fd/${fd}/.`, { bigint: true });
      return sameFile(viaDescriptor, rootStat);
    } catch {
      return false;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** `/proc/self/fd/<fd of directory>/<name>`. */
  entryPath(directory: DirectoryRef, name: string): string {
    return `/proc/self/fd/${directory.handle.fd}/${name}`;
  }

  /** `/proc/self/fd/<fd of directory>`. */
  directoryPath(directory: DirectoryRef): string {
    return `/proc/self/fd/${directory.handle.fd}`;
  }

  /** A no-op: the open descriptors are the chain, and a swap elsewhere cannot redirect them. */
  async verifyChain(_directory: DirectoryRef, _path: string): Promise<void> {}
}
