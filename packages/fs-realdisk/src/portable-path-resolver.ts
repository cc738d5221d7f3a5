import type { BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { ComponentPathResolver } from './component-path-resolver.js';
import { changedDuringOperation } from './errors.js';
import type { DirectoryRef } from './path-resolver.js';
import { sameFile } from './stat-checks.js';

/**
 * The portable resolver (any POSIX system). Components are named by host path under the real
 * root; each is checked with `lstat`, opened with `O_NOFOLLOW` and verified by device and inode,
 * and the whole chain of directories up to the root is re-checked ({@link verifyChain}) right
 * before every change. That refuses every static escape, but it only narrows the window against
 * a concurrent local process swapping a parent directory for a link between the check and the
 * system call; use `DescriptorPathResolver` where such processes are not trusted.
 */
export class PortablePathResolver extends ComponentPathResolver {
  /** Always `path`. */
  readonly mode = 'path' as const;

  /** `<host path of directory>/<name>`. */
  entryPath(directory: DirectoryRef, name: string): string {
    return `${directory.hostPath === '/' ? '' : directory.hostPath}/${name}`;
  }

  /** The host path of the directory as it was resolved. */
  directoryPath(directory: DirectoryRef): string {
    return directory.hostPath;
  }

  /**
   * Checks with `lstat` that every directory from `directory` up to the root is still the
   * directory that was opened (same device and inode, not a link); throws `STORE_CONFLICT`.
   */
  async verifyChain(directory: DirectoryRef, path: string): Promise<void> {
    for (let current: DirectoryRef | undefined = directory; current; current = current.parentRef) {
      let stat: BigIntStats;
      try {
        stat = await lstat(current.hostPath, { bigint: true });
      } catch (error) {
        throw changedDuringOperation(path, error);
      }
      if (!stat.isDirectory() || !sameFile(stat, current.stat)) throw changedDuringOperation(path);
    }
  }
}
