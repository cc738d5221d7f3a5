import type { BigIntStats } from 'node:fs';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { resolve as resolveHostPath } from 'node:path';
import { EverrunsError } from '@everruns-ts/core';
import { DescriptorPathResolver } from './descriptor-path-resolver.js';
import type { PathResolver } from './path-resolver.js';
import { PortablePathResolver } from './portable-path-resolver.js';

/** What {@link createPathResolver} needs: the store's options that concern resolution. */
export interface CreatePathResolverOptions {
  /** The root as the embedder gave it (relative paths and links allowed). */
  root: string;
  /** Create the root and its parents when missing. */
  createRoot: boolean;
  /** `auto`, `descriptor` or `path`. */
  resolution: 'auto' | 'descriptor' | 'path';
  /** Follow symbolic links whose target stays inside the root. */
  followSymlinks: boolean;
  /** Open regular files with more than one hard link. */
  allowHardLinks: boolean;
}

/**
 * Resolves the root to its real path once and builds the resolver a store uses: `descriptor`
 * when asked for (`CONFIGURATION` when `/proc/self/fd` does not work here), `path` when asked
 * for, and for `auto` the descriptor resolver when it works, else the portable one. Throws
 * `CONFIGURATION` when the root is missing (and not created) or not a directory.
 */
export function createPathResolver(options: CreatePathResolverOptions): PathResolver {
  const given = resolveHostPath(options.root);
  let root: string;
  let rootStat: BigIntStats;
  try {
    if (options.createRoot) mkdirSync(given, { recursive: true });
    root = realpathSync.native(given);
    rootStat = statSync(root, { bigint: true });
  } catch (error) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `The workspace root ${given} does not exist or cannot be opened`,
      cause: error,
      details: { root: given },
    });
  }
  if (!rootStat.isDirectory()) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `The workspace root ${given} is not a directory`,
      details: { root: given },
    });
  }
  const resolverOptions = {
    root,
    rootStat,
    rootAliases: given === root ? [root] : [root, given],
    followSymlinks: options.followSymlinks,
    allowHardLinks: options.allowHardLinks,
  };
  const wanted = options.resolution;
  const descriptor = wanted !== 'path' && DescriptorPathResolver.isAvailable(root, rootStat);
  if (wanted === 'descriptor' && !descriptor) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: 'Descriptor-relative resolution needs /proc/self/fd (Linux)',
    });
  }
  return descriptor
    ? new DescriptorPathResolver(resolverOptions)
    : new PortablePathResolver(resolverOptions);
}
