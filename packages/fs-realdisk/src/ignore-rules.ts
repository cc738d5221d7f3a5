import { constants } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EverrunsError } from '@everruns-ts/core';
import ignore, { type Ignore } from 'ignore';
import { systemCode } from './errors.js';
import { readBounded } from './file-content.js';
import type { HandleScope } from './handle-scope.js';
import { childPath, type DirectoryRef, type PathResolver } from './path-resolver.js';

/** Largest ignore file read, in bytes; a larger one is not read (its rules do not apply). */
export const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

/** The rules of one ignore file, for the paths under the directory holding it. */
interface IgnoreFileRules {
  /** Workspace path of the directory holding the file (`/` for the root). */
  base: string;
  rules: Ignore;
}

/**
 * The ignore rules in force in one directory: those of its own `.ignore` and `.gitignore` and of
 * every directory above it up to the workspace root, innermost first (a deeper file overrides a
 * shallower one, `.ignore` overrides `.gitignore` of the same directory, as ripgrep orders them).
 */
export interface IgnoreChain {
  /** Innermost first. */
  readonly files: readonly IgnoreFileRules[];
  /** Whether `.gitignore` files count here: the directory is inside a git repository. */
  readonly git: boolean;
}

/** The chain above the workspace root: no rules; git rules count when the root is in a repository. */
export async function rootIgnoreChain(hostRoot: string): Promise<IgnoreChain> {
  return { files: [], git: await insideGitRepository(hostRoot) };
}

/**
 * Whether `hostRoot` or a directory above it holds a `.git` entry (a directory, or the file of a
 * worktree or submodule). Only existence is checked; nothing outside the root is read.
 */
async function insideGitRepository(hostRoot: string): Promise<boolean> {
  let directory = hostRoot;
  for (;;) {
    try {
      await lstat(join(directory, '.git'));
      return true;
    } catch {}
    const parent = dirname(directory);
    if (parent === directory) return false;
    directory = parent;
  }
}

/**
 * The chain in force in `directory` (at workspace path `path`), given the chain of its parent and
 * the names it holds: adds its `.gitignore` (when inside a git repository, which a `.git` entry
 * here also starts) and its `.ignore`. Ignore files are read through the resolver like any
 * workspace file (inside the open directory, never through a link); one that cannot be read
 * safely or is larger than {@link MAX_IGNORE_FILE_BYTES} is skipped.
 */
export async function enterIgnoreDirectory(
  resolver: PathResolver,
  scope: HandleScope,
  directory: DirectoryRef,
  path: string,
  names: readonly string[],
  parent: IgnoreChain,
): Promise<IgnoreChain> {
  const git = parent.git || names.includes('.git');
  const own: IgnoreFileRules[] = [];
  // Innermost first: .ignore before .gitignore.
  for (const name of ['.ignore', '.gitignore']) {
    if (!names.includes(name) || (name === '.gitignore' && !git)) continue;
    const text = await readIgnoreFile(resolver, scope, directory, childPath(path, name), name);
    if (text !== undefined) own.push({ base: path, rules: ignore().add(text) });
  }
  if (own.length === 0 && git === parent.git) return parent;
  return { files: [...own, ...parent.files], git };
}

async function readIgnoreFile(
  resolver: PathResolver,
  scope: HandleScope,
  directory: DirectoryRef,
  path: string,
  name: string,
): Promise<string | undefined> {
  try {
    const stat = await lstat(resolver.entryPath(directory, name), { bigint: true });
    if (!stat.isFile() || stat.size > BigInt(MAX_IGNORE_FILE_BYTES)) return undefined;
    const { handle } = await resolver.openFile(
      scope,
      path,
      directory,
      name,
      stat,
      constants.O_RDONLY,
    );
    try {
      return (await readBounded(handle, path, MAX_IGNORE_FILE_BYTES)).toString('utf8');
    } finally {
      await scope.release(handle);
    }
  } catch (error) {
    if (EverrunsError.isInstance(error) || systemCode(error) !== undefined) return undefined;
    throw error;
  }
}

/**
 * Whether the entry at workspace path `path` (a directory when `isDirectory`) is ignored by
 * `chain`, the chain of the directory holding it: the innermost file whose rules decide (ignore
 * it, or re-include it with a `!` rule) wins.
 */
export function isIgnored(chain: IgnoreChain, path: string, isDirectory: boolean): boolean {
  for (const file of chain.files) {
    const relative = file.base === '/' ? path.slice(1) : path.slice(file.base.length + 1);
    const result = file.rules.test(isDirectory ? `${relative}/` : relative);
    if (result.ignored) return true;
    if (result.unignored) return false;
  }
  return false;
}

/** A chain under which every path is ignored (everything below an ignored directory). */
export function ignoreEverythingChain(): IgnoreChain {
  return { files: [{ base: '/', rules: ignore().add('*') }], git: false };
}
