import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import {
  type BigIntStats,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  realpathSync,
  statSync,
} from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rmdir,
  unlink,
} from 'node:fs/promises';
import { resolve as resolveHostPath } from 'node:path';
import {
  compileGrepPattern,
  EverrunsError,
  type FileContent,
  type FileEncoding,
  type FileStat,
  formatZodError,
  type GrepMatch,
  type GrepOptions,
  globToRegExp,
  type InitialFile,
  initialFileSchema,
  normalizeWorkspacePath,
  pageTextLines,
  type ReadFileOptions,
  replaceExactText,
  type SessionFileSystem,
  throwIfAborted,
  workspaceBaseName,
} from '@everruns-ts/core';
import {
  changedDuringOperation,
  fileError,
  fromSystemError,
  outsideRoot,
  systemCode,
} from './errors.js';

/** Default of {@link RealDiskFileStoreOptions.maxFileBytes}: 10 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;
/** Default of {@link RealDiskFileStoreOptions.maxWalkEntries}. */
export const DEFAULT_MAX_WALK_ENTRIES = 100_000;
/** Symbolic links followed while resolving one path before giving up (as the kernel's ELOOP). */
const MAX_SYMLINK_HOPS = 40;
/** Deepest directory level a recursive walk descends to. */
const MAX_WALK_DEPTH = 256;
/** Prefix of the temporary files a write creates next to its target (hidden from listings). */
const TEMP_PREFIX = '.everruns-tmp-';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } =
  constants;
const O_NOCTTY = constants.O_NOCTTY ?? 0;

/** How paths are resolved; see {@link RealDiskFileStoreOptions.resolution}. */
export type RealDiskResolution = 'auto' | 'descriptor' | 'path';

/** Options of {@link RealDiskFileStore}. */
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

/** An open directory on the resolved path, with what identifies it. */
interface DirectoryRef {
  handle: FileHandle;
  /** Host path as the store resolved it (used in `path` mode and for re-checks). */
  hostPath: string;
  /** Real workspace segments of this directory. */
  segments: readonly string[];
  stat: BigIntStats;
  /** The directory this one was opened from (undefined for the root). */
  parentRef: DirectoryRef | undefined;
}

/** Where a workspace path leads. */
interface Resolution {
  /** Directory holding the final entry; undefined when the final entry is the root. */
  parent: DirectoryRef | undefined;
  /** Name of the final entry in `parent` (`''` for the root). */
  name: string;
  /** Real workspace segments of the final entry (lexical past a missing component). */
  segments: string[];
  /** `lstat` of the final entry, or undefined when it does not exist. */
  stat: BigIntStats | undefined;
  /** Set when a component before the last is missing or is not a directory. */
  blocked?: 'missing' | 'not-a-directory';
  /** When the path ended on a directory already open (the root, or a link ending in `..`). */
  directory?: DirectoryRef;
}

interface ResolveOptions {
  /** Resolve a symbolic link in the last position (else the link itself is the result). */
  followFinal: boolean;
  /** Create missing directories before the last component. */
  createParents: boolean;
}

const FOLLOW: ResolveOptions = { followFinal: true, createParents: false };
const NO_FOLLOW: ResolveOptions = { followFinal: false, createParents: false };
const CREATE_PARENTS: ResolveOptions = { followFinal: true, createParents: true };

/** The file handles one operation opened; all closed when it ends. */
class Scope {
  readonly #handles = new Set<FileHandle>();

  track(handle: FileHandle): FileHandle {
    this.#handles.add(handle);
    return handle;
  }

  async release(handle: FileHandle): Promise<void> {
    if (this.#handles.delete(handle)) await handle.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const handles = [...this.#handles];
    this.#handles.clear();
    await Promise.all(handles.map((handle) => handle.close().catch(() => undefined)));
  }
}

function sameFile(left: BigIntStats, right: BigIntStats): boolean {
  return left.dev === right.dev && left.ino === right.ino;
}

function isReadonlyStat(stat: BigIntStats): boolean {
  return stat.isFile() && (stat.mode & 0o200n) === 0n;
}

function permissionBits(stat: BigIntStats): number {
  return Number(stat.mode & 0o777n);
}

function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

function toFileStat(path: string, stat: BigIntStats): FileStat {
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

function kindOf(stat: BigIntStats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
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

/** True when `/proc/self/fd/<fd>` of an open directory leads back to that directory. */
function descriptorPathsWork(root: string, rootStat: BigIntStats): boolean {
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

/**
 * A {@link SessionFileSystem} on a real host directory. Workspace paths (`/src/a.ts`) map onto
 * `root`; nothing a caller passes can make it read, write, create or delete anything outside.
 *
 * How it holds: paths are normalised (`..`, NUL, drive and UNC forms refused); the root is
 * resolved to its real path once and checked by device and inode on every operation; each
 * component is looked up inside the already-open parent directory, opened with `O_NOFOLLOW`
 * and compared by device and inode with what was checked; symbolic links are resolved by the
 * store itself and only while they stay inside; files are opened with `O_NONBLOCK` and checked
 * with `fstat` (FIFOs, sockets and devices are `NOT_A_REGULAR_FILE`, never a hang); writes go to
 * a temporary file in the validated directory and are renamed over the target, so a swapped
 * link is replaced, never written through. Recursive walks never follow links and stop at
 * {@link RealDiskFileStoreOptions.maxWalkEntries}.
 *
 * Read-only files are files without the owner's write permission bit (`seedInitialFile` with
 * `isReadonly` sets mode `0444`); they refuse writes, deletes and moves with `FILE_READ_ONLY`.
 * A read without `encoding` returns `text` when the bytes are valid UTF-8, else `base64`.
 *
 * Mutations through one instance are serialised, so compare-and-set is atomic against other
 * callers of the same instance (not against other processes writing the directory).
 */
export class RealDiskFileStore implements SessionFileSystem {
  /** The real host path of the workspace root. */
  readonly root: string;
  /** See {@link RealDiskFileStoreOptions.maxFileBytes}. */
  readonly maxFileBytes: number;
  /** See {@link RealDiskFileStoreOptions.maxWalkEntries}. */
  readonly maxWalkEntries: number;
  /** The resolution mode in use: `descriptor` (race-free) or `path`. */
  readonly resolution: 'descriptor' | 'path';
  readonly #followSymlinks: boolean;
  readonly #allowHardLinks: boolean;
  readonly #rootStat: BigIntStats;
  /** Host path prefixes that absolute link targets may use to point inside the root. */
  readonly #rootAliases: readonly string[];
  #mutations: Promise<unknown> = Promise.resolve();

  /** Throws `CONFIGURATION` when the root is missing or not a directory, or the platform lacks `O_NOFOLLOW`. */
  constructor(options: RealDiskFileStoreOptions) {
    if (typeof options?.root !== 'string' || options.root.trim() === '') {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'RealDiskFileStore needs a root directory',
      });
    }
    if (O_NOFOLLOW === undefined || O_DIRECTORY === undefined) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'RealDiskFileStore needs a POSIX platform (O_NOFOLLOW and O_DIRECTORY)',
      });
    }
    this.maxFileBytes = positiveInteger(
      'maxFileBytes',
      options.maxFileBytes,
      DEFAULT_MAX_FILE_BYTES,
    );
    this.maxWalkEntries = positiveInteger(
      'maxWalkEntries',
      options.maxWalkEntries,
      DEFAULT_MAX_WALK_ENTRIES,
    );
    this.#followSymlinks = options.followSymlinksInside ?? true;
    this.#allowHardLinks = options.allowHardLinks ?? false;
    const given = resolveHostPath(options.root);
    try {
      if (options.createRoot) mkdirSync(given, { recursive: true });
      this.root = realpathSync.native(given);
      this.#rootStat = statSync(this.root, { bigint: true });
    } catch (error) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: `The workspace root ${given} does not exist or cannot be opened`,
        cause: error,
        details: { root: given },
      });
    }
    if (!this.#rootStat.isDirectory()) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: `The workspace root ${given} is not a directory`,
        details: { root: given },
      });
    }
    this.#rootAliases = given === this.root ? [this.root] : [this.root, given];
    const wanted = options.resolution ?? 'auto';
    const descriptor = wanted !== 'path' && descriptorPathsWork(this.root, this.#rootStat);
    if (wanted === 'descriptor' && !descriptor) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'Descriptor-relative resolution needs /proc/self/fd (Linux)',
      });
    }
    this.resolution = descriptor ? 'descriptor' : 'path';
  }

  // ---------------------------------------------------------------------------------------------
  // SessionFileSystem

  /** Reads a file. Throws `FILE_NOT_FOUND`, `IS_A_DIRECTORY`, `NOT_A_REGULAR_FILE`, `FILE_TOO_LARGE`, `PATH_OUTSIDE_ROOT`. */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<FileContent> {
    throwIfAborted(options.signal);
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const resolution = await this.#resolve(scope, normalized, FOLLOW);
      const stat = this.#requireFile(normalized, resolution);
      const { handle } = await this.#openEntry(
        scope,
        normalized,
        resolution.parent as DirectoryRef,
        resolution.name,
        stat,
        O_RDONLY,
      );
      const bytes = await this.#readBounded(handle, normalized);
      const encoding: FileEncoding = options.encoding ?? (isUtf8(bytes) ? 'text' : 'base64');
      const content = encoding === 'text' ? bytes.toString('utf8') : bytes.toString('base64');
      const result: FileContent = {
        ...toFileStat(normalized, stat),
        size: bytes.length,
        content,
        encoding,
      };
      if (encoding === 'text' && (options.offset !== undefined || options.limit !== undefined)) {
        Object.assign(result, pageTextLines(content, options));
      }
      return result;
    });
  }

  /** Creates or replaces a file (atomically, through a temporary file), creating parents. */
  async writeFile(
    path: string,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const bytes = this.#encode(normalized, content, encoding);
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, false);
      await this.#replace(normalized, target, bytes, target.stat && permissionBits(target.stat));
      return this.#statWritten(normalized, target);
    });
  }

  /** Compare-and-set: `expected` is compared byte for byte with the file, in `encoding`. */
  async writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const bytes = this.#encode(normalized, content, encoding);
    return this.#mutate(normalized, async (scope) => {
      const mismatch = (why: string) =>
        fileError('CONTENT_MISMATCH', normalized, `Content of ${normalized} ${why}`);
      const probe = await this.#resolve(scope, normalized, FOLLOW);
      if (probe.blocked === 'not-a-directory') throw this.#notADirectory(normalized);
      if (probe.directory || probe.stat?.isDirectory()) {
        throw fileError('IS_A_DIRECTORY', normalized, `${normalized} is a directory`);
      }
      if (expected === null) {
        if (probe.stat) throw mismatch('exists, expected no file');
        const target = await this.#resolveWritable(scope, normalized, false);
        if (target.stat) throw mismatch('exists, expected no file');
        await this.#replace(normalized, target, bytes, undefined);
        return this.#statWritten(normalized, target);
      }
      if (!probe.stat || probe.blocked) throw mismatch('does not exist');
      const stat = this.#requireFile(normalized, probe);
      const { handle } = await this.#openEntry(
        scope,
        normalized,
        probe.parent as DirectoryRef,
        probe.name,
        stat,
        O_RDONLY,
      );
      const current = await this.#readBounded(handle, normalized);
      const wanted =
        encoding === 'base64' && !BASE64.test(expected)
          ? null
          : Buffer.from(expected, encoding === 'text' ? 'utf8' : 'base64');
      if (!wanted || !current.equals(wanted)) throw mismatch('differs from the expected content');
      if (isReadonlyStat(stat)) throw this.#readOnly(normalized);
      await this.#replace(normalized, probe, bytes, permissionBits(stat));
      return this.#statWritten(normalized, probe);
    });
  }

  /** Replaces `oldText` with `newText` in a UTF-8 file. */
  async editFile(
    path: string,
    oldText: string,
    newText: string,
    options: { replaceAll?: boolean } = {},
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    if (typeof oldText !== 'string' || oldText === '' || typeof newText !== 'string') {
      throw fileError('INVALID_INPUT', normalized, 'oldText must be a non-empty string');
    }
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolve(scope, normalized, FOLLOW);
      const stat = this.#requireFile(normalized, target);
      if (isReadonlyStat(stat)) throw this.#readOnly(normalized);
      const { handle } = await this.#openEntry(
        scope,
        normalized,
        target.parent as DirectoryRef,
        target.name,
        stat,
        O_RDONLY,
      );
      const bytes = await this.#readBounded(handle, normalized);
      if (!isUtf8(bytes)) {
        throw fileError('INVALID_INPUT', normalized, `${normalized} is not a UTF-8 text file`);
      }
      const text = bytes.toString('utf8');
      const updated = replaceExactText(normalized, text, oldText, newText, options.replaceAll);
      const output = Buffer.from(updated, 'utf8');
      this.#checkSize(normalized, output.length);
      await this.#replace(normalized, target, output, permissionBits(stat));
      return this.#statWritten(normalized, target);
    });
  }

  /** Appends UTF-8 text, creating the file (and its parents) when absent. */
  async appendFile(path: string, content: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const bytes = this.#encode(normalized, content, 'text');
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, false);
      if (!target.stat) {
        await this.#replace(normalized, target, bytes, undefined);
        return this.#statWritten(normalized, target);
      }
      this.#checkSize(normalized, Number(target.stat.size) + bytes.length);
      const { handle } = await this.#openEntry(
        scope,
        normalized,
        target.parent as DirectoryRef,
        target.name,
        target.stat,
        O_WRONLY | O_APPEND,
      );
      await handle.writeFile(bytes);
      const after = await handle.stat({ bigint: true });
      return toFileStat(normalized, after);
    });
  }

  /**
   * Deletes a file, a symbolic link (the link, not its target) or a directory (non-empty only
   * with `recursive`; a read-only file inside refuses the whole delete before anything goes).
   */
  async deleteFile(path: string, recursive = false): Promise<boolean> {
    const normalized = normalizeWorkspacePath(path);
    if (normalized === '/') {
      throw fileError('INVALID_PATH', normalized, 'The workspace root cannot be deleted');
    }
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolve(scope, normalized, NO_FOLLOW);
      if (target.blocked || !target.stat) return false;
      const parent = target.parent;
      if (!parent || target.segments.length === 0) {
        throw fileError('INVALID_PATH', normalized, 'The workspace root cannot be deleted');
      }
      const entry = this.#entry(parent, target.name);
      const stat = target.stat;
      if (stat.isDirectory()) {
        if (!recursive) {
          try {
            await rmdir(entry);
          } catch (error) {
            if (systemCode(error) === 'ENOTEMPTY' || systemCode(error) === 'EEXIST') {
              throw fileError(
                'IS_A_DIRECTORY',
                normalized,
                `Directory ${normalized} is not empty; delete it with recursive`,
                { cause: error },
              );
            }
            throw error;
          }
          return true;
        }
        const directory =
          target.directory ??
          (await this.#openDirectory(scope, parent, target.name, stat, normalized));
        await this.#walk(scope, directory, normalized, undefined, (visited) => {
          if (isReadonlyStat(visited.stat)) throw this.#readOnly(visited.path);
        });
        await this.#removeContents(scope, directory, normalized);
        await this.#verifyChain(parent, normalized);
        await rmdir(entry);
        return true;
      }
      if (isReadonlyStat(stat)) throw this.#readOnly(normalized);
      await this.#verifyChain(parent, normalized);
      await unlink(entry);
      return true;
    });
  }

  /**
   * Moves or renames a file, link or directory inside the workspace, creating the target's
   * parents. Throws `FILE_NOT_FOUND`, `FILE_ALREADY_EXISTS` (unless `overwrite`), `FILE_READ_ONLY`,
   * `IS_A_DIRECTORY` (overwriting a directory), `INVALID_PATH` (the root, or a directory into itself).
   */
  async moveFile(
    from: string,
    to: string,
    options: { overwrite?: boolean } = {},
  ): Promise<FileStat> {
    const source = normalizeWorkspacePath(from);
    const destination = normalizeWorkspacePath(to);
    if (source === '/' || destination === '/') {
      throw fileError(
        'INVALID_PATH',
        source === '/' ? source : destination,
        'The workspace root cannot be moved or replaced',
      );
    }
    return this.#mutate(source, async (scope) => {
      const origin = await this.#resolve(scope, source, NO_FOLLOW);
      if (origin.blocked || !origin.stat) {
        throw fileError('FILE_NOT_FOUND', source, `No such file or directory: ${source}`);
      }
      if (!origin.parent || origin.segments.length === 0) {
        throw fileError('INVALID_PATH', source, 'The workspace root cannot be moved');
      }
      if (isReadonlyStat(origin.stat)) throw this.#readOnly(source);
      if (origin.stat.isDirectory()) {
        const directory =
          origin.directory ??
          (await this.#openDirectory(scope, origin.parent, origin.name, origin.stat, source));
        await this.#walk(scope, directory, source, undefined, (visited) => {
          if (isReadonlyStat(visited.stat)) throw this.#readOnly(visited.path);
        });
      }
      const probe = await this.#resolve(scope, destination, NO_FOLLOW);
      if (probe.blocked === 'not-a-directory') throw this.#notADirectory(destination);
      const sameEntry = probe.segments.join('/') === origin.segments.join('/');
      if (sameEntry) return this.#statPath(scope, destination);
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
      const target = await this.#resolve(scope, destination, {
        followFinal: false,
        createParents: true,
      });
      if (target.blocked === 'not-a-directory') throw this.#notADirectory(destination);
      if (!target.parent || target.segments.length === 0) {
        throw fileError('INVALID_PATH', destination, 'The workspace root cannot be replaced');
      }
      if (target.stat) {
        if (!options.overwrite) {
          throw fileError('FILE_ALREADY_EXISTS', destination, `${destination} already exists`);
        }
        if (target.stat.isDirectory()) {
          throw fileError(
            'IS_A_DIRECTORY',
            destination,
            `${destination} is a directory and cannot be overwritten`,
          );
        }
        if (isReadonlyStat(target.stat)) throw this.#readOnly(destination);
      }
      await this.#verifyChain(origin.parent, source);
      await this.#verifyChain(target.parent, destination);
      await rename(
        this.#entry(origin.parent, origin.name),
        this.#entry(target.parent, target.name),
      );
      return this.#statPath(scope, destination);
    });
  }

  /**
   * Entries directly under a directory, sorted by name. Links are shown as what they point to;
   * links leaving the workspace or dangling, FIFOs, sockets and devices are left out.
   */
  async listDirectory(path: string): Promise<FileStat[]> {
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const directory = await this.#openExistingDirectory(scope, normalized);
      const names = (await readdir(this.#directoryPath(directory))).sort();
      await this.#verifyChain(directory, normalized);
      if (names.length > this.maxWalkEntries) throw this.#walkLimit(normalized);
      const entries: FileStat[] = [];
      for (const name of names) {
        if (name.startsWith(TEMP_PREFIX)) continue;
        const entryPath = childPath(normalized, name);
        let stat: BigIntStats;
        try {
          stat = await lstat(this.#entry(directory, name), { bigint: true });
          if (stat.isSymbolicLink()) {
            const followed = await this.#resolve(scope, entryPath, FOLLOW);
            if (!followed.stat || followed.blocked) continue;
            stat = followed.stat;
          }
        } catch (error) {
          if (EverrunsError.isInstance(error) || systemCode(error) === 'ENOENT') continue;
          throw error;
        }
        if (stat.isDirectory() || stat.isFile()) entries.push(toFileStat(entryPath, stat));
      }
      return entries;
    });
  }

  /**
   * Metadata, or `null` when nothing is there. Throws `PATH_OUTSIDE_ROOT` for a link leaving the
   * workspace and `NOT_A_REGULAR_FILE` for a FIFO, socket or device.
   */
  async statFile(path: string): Promise<FileStat | null> {
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const target = await this.#resolve(scope, normalized, FOLLOW);
      if (target.parent) await this.#verifyChain(target.parent, normalized);
      if (target.blocked || !target.stat) return null;
      if (!target.stat.isDirectory() && !target.stat.isFile()) {
        throw this.#notRegular(normalized, target.stat);
      }
      return toFileStat(normalized, target.stat);
    });
  }

  /** Regular files whose path matches the glob, sorted by path. The walk does not follow links. */
  async globFiles(pattern: string, options: { signal?: AbortSignal } = {}): Promise<FileStat[]> {
    throwIfAborted(options.signal);
    const matcher = globToRegExp(pattern);
    const start = literalPrefix(pattern);
    return this.#withScope(start, async (scope) => {
      const directory = await this.#openWalkStart(scope, start);
      if (!directory) return [];
      const found: FileStat[] = [];
      await this.#walk(scope, directory, start, options.signal, (entry) => {
        if (entry.stat.isFile() && matcher.test(entry.path)) {
          found.push(toFileStat(entry.path, entry.stat));
        }
      });
      return found.sort((left, right) => (left.path < right.path ? -1 : 1));
    });
  }

  /**
   * Lines matching a regular expression in UTF-8 files whose path matches `pathPattern`, sorted
   * by path and line. Skips files over `maxFileBytes`, non-UTF-8 files and files that cannot be
   * read safely (links, FIFOs, multiply linked files). Throws `INVALID_INPUT` for a bad pattern.
   */
  async grepFiles(
    pattern: string,
    pathPattern?: string,
    options: GrepOptions = {},
  ): Promise<GrepMatch[]> {
    const matcher = compileGrepPattern(pattern, options.ignoreCase);
    throwIfAborted(options.signal);
    const maxMatches = options.maxMatches ?? 1000;
    if (!(maxMatches > 0)) return [];
    const pathMatcher = pathPattern ? globToRegExp(pathPattern) : undefined;
    const start = pathPattern ? literalPrefix(pathPattern) : '/';
    return this.#withScope(start, async (scope) => {
      const directory = await this.#openWalkStart(scope, start);
      if (!directory) return [];
      const matches: GrepMatch[] = [];
      await this.#walk(scope, directory, start, options.signal, async (entry) => {
        if (!entry.stat.isFile()) return;
        if (pathMatcher && !pathMatcher.test(entry.path)) return;
        if (entry.stat.size > BigInt(this.maxFileBytes)) return;
        if (entry.stat.nlink > 1n && !this.#allowHardLinks) return;
        let handle: FileHandle;
        try {
          ({ handle } = await this.#openEntry(
            scope,
            entry.path,
            entry.parent,
            entry.name,
            entry.stat,
            O_RDONLY,
          ));
        } catch (error) {
          if (EverrunsError.isInstance(error) || systemCode(error) === 'ENOENT') return;
          throw error;
        }
        try {
          let bytes: Buffer;
          try {
            bytes = await this.#readBounded(handle, entry.path);
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
        left.path === right.path
          ? left.lineNumber - right.lineNumber
          : left.path < right.path
            ? -1
            : 1,
      );
    });
  }

  /** Creates a directory and its parents. Throws `FILE_ALREADY_EXISTS` when a file is there. */
  async createDirectory(path: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolve(scope, normalized, CREATE_PARENTS);
      if (target.blocked === 'not-a-directory') throw this.#notADirectory(normalized);
      if (target.directory) return toFileStat(normalized, target.directory.stat);
      if (target.stat) {
        if (target.stat.isDirectory()) return toFileStat(normalized, target.stat);
        throw fileError(
          'FILE_ALREADY_EXISTS',
          normalized,
          `${normalized} exists and is not a directory`,
        );
      }
      const parent = target.parent as DirectoryRef;
      await this.#verifyChain(parent, normalized);
      try {
        await mkdir(this.#entry(parent, target.name));
      } catch (error) {
        if (systemCode(error) !== 'EEXIST') throw error;
      }
      const created = await lstat(this.#entry(parent, target.name), { bigint: true });
      if (!created.isDirectory()) {
        throw fileError(
          'FILE_ALREADY_EXISTS',
          normalized,
          `${normalized} exists and is not a directory`,
        );
      }
      return toFileStat(normalized, created);
    });
  }

  /** Writes an initial file, replacing even a read-only one; `isReadonly` sets mode `0444`. */
  async seedInitialFile(file: InitialFile): Promise<void> {
    if (typeof file?.path === 'string') normalizeWorkspacePath(file.path);
    const parsed = initialFileSchema.safeParse(file);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid initial file: ${formatZodError(parsed.error)}`,
      });
    }
    const { content, encoding, isReadonly } = parsed.data;
    const normalized = normalizeWorkspacePath(parsed.data.path);
    const bytes = this.#encode(normalized, content, encoding);
    await this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, true);
      let mode: number | undefined;
      if (isReadonly) mode = 0o444;
      else if (target.stat) mode = permissionBits(target.stat) | 0o200;
      await this.#replace(normalized, target, bytes, mode);
    });
  }

  /**
   * The real workspace path `path` leads to, with every symbolic link resolved (for example
   * `/alias/HEAD` → `/.git/HEAD`); a missing tail is appended as written. Throws
   * `PATH_OUTSIDE_ROOT` when a link leaves the workspace. Used by `WriteBlocklistFileStore` to
   * see through link aliases.
   */
  async resolveRealPath(path: string): Promise<string> {
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const target = await this.#resolve(scope, normalized, FOLLOW);
      return `/${target.segments.join('/')}`;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Resolution

  async #withScope<T>(path: string, run: (scope: Scope) => Promise<T>): Promise<T> {
    const scope = new Scope();
    try {
      return await run(scope);
    } catch (error) {
      throw fromSystemError(error, path);
    } finally {
      await scope.close();
    }
  }

  #mutate<T>(path: string, run: (scope: Scope) => Promise<T>): Promise<T> {
    const result = this.#mutations.then(() => this.#withScope(path, run));
    this.#mutations = result.catch(() => undefined);
    return result;
  }

  #entry(directory: DirectoryRef, name: string): string {
    return this.resolution === 'descriptor'
      ? `/proc/self/fd/${directory.handle.fd}/${name}`
      : `${directory.hostPath === '/' ? '' : directory.hostPath}/${name}`;
  }

  #directoryPath(directory: DirectoryRef): string {
    return this.resolution === 'descriptor'
      ? `/proc/self/fd/${directory.handle.fd}`
      : directory.hostPath;
  }

  async #openRoot(scope: Scope): Promise<DirectoryRef> {
    let handle: FileHandle;
    try {
      handle = scope.track(await open(this.root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    } catch (error) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'The workspace root can no longer be opened',
        cause: error,
      });
    }
    const stat = await handle.stat({ bigint: true });
    if (!sameFile(stat, this.#rootStat)) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'The workspace root was replaced after the store was created',
      });
    }
    return { handle, hostPath: this.root, segments: [], stat, parentRef: undefined };
  }

  /**
   * Opens `name` inside `parent` as a directory without following a link, and checks it is the
   * directory `expected` described.
   */
  async #openDirectory(
    scope: Scope,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    path: string,
  ): Promise<DirectoryRef> {
    let handle: FileHandle;
    try {
      handle = scope.track(
        await open(this.#entry(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK),
      );
    } catch (error) {
      const code = systemCode(error);
      if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT') {
        throw changedDuringOperation(path, error);
      }
      throw error;
    }
    const stat = await handle.stat({ bigint: true });
    if (!stat.isDirectory() || !sameFile(stat, expected)) {
      await scope.release(handle);
      throw changedDuringOperation(path);
    }
    return {
      handle,
      hostPath: `${parent.hostPath === '/' ? '' : parent.hostPath}/${name}`,
      segments: [...parent.segments, name],
      stat,
      parentRef: parent,
    };
  }

  /**
   * Opens a regular file inside `parent` with `O_NOFOLLOW | O_NONBLOCK` and checks, on the
   * descriptor, that it is the regular file `expected` described.
   */
  async #openEntry(
    scope: Scope,
    path: string,
    parent: DirectoryRef,
    name: string,
    expected: BigIntStats,
    flags: number,
  ): Promise<{ handle: FileHandle; stat: BigIntStats }> {
    let handle: FileHandle;
    try {
      handle = scope.track(
        await open(this.#entry(parent, name), flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY),
      );
    } catch (error) {
      if (systemCode(error) === 'ELOOP') throw changedDuringOperation(path, error);
      throw error;
    }
    const stat = await handle.stat({ bigint: true });
    if (!sameFile(stat, expected)) {
      await scope.release(handle);
      throw changedDuringOperation(path);
    }
    this.#checkRegular(path, stat);
    if (!this.#allowHardLinks) await this.#verifySingleLink(path, parent, name, handle, stat);
    await this.#verifyChain(parent, path);
    return { handle, stat };
  }

  /**
   * Closes the one window the link-count check leaves open. While another process unlinks a
   * second name of a file, the kernel drops the link count before the name disappears, so the
   * name can still be opened with a count of 1. Unlinking holds the parent directory's lock until
   * the name is gone; looking up a name that is in no cache (a random one) takes that lock too.
   * After that barrier the opened file must still be what `name` leads to, with one link; only
   * then is it read or written.
   */
  async #verifySingleLink(
    path: string,
    parent: DirectoryRef,
    name: string,
    handle: FileHandle,
    opened: BigIntStats,
  ): Promise<void> {
    const barrier = this.#entry(parent, `${TEMP_PREFIX}barrier-${randomBytes(12).toString('hex')}`);
    await lstat(barrier).catch(() => undefined);
    let named: BigIntStats;
    try {
      named = await lstat(this.#entry(parent, name), { bigint: true });
    } catch (error) {
      throw changedDuringOperation(path, error);
    }
    const current = await handle.stat({ bigint: true });
    if (!sameFile(named, opened) || !sameFile(current, opened)) throw changedDuringOperation(path);
    this.#checkRegular(path, named);
    this.#checkRegular(path, current);
  }

  /**
   * In `path` mode, re-checks that every directory from `directory` up to the root is still the
   * directory that was opened (not swapped for a link). A no-op in `descriptor` mode, where the
   * open descriptors are the chain.
   */
  async #verifyChain(directory: DirectoryRef, path: string): Promise<void> {
    if (this.resolution === 'descriptor') return;
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

  /**
   * Walks `path` from the root one component at a time, each looked up inside the directory
   * opened before it. Symbolic links are read and resolved here, only while they stay inside.
   */
  async #resolve(scope: Scope, path: string, options: ResolveOptions): Promise<Resolution> {
    const stack: DirectoryRef[] = [await this.#openRoot(scope)];
    const queue = path === '/' ? [] : path.slice(1).split('/');
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift() as string;
      const current = stack[stack.length - 1] as DirectoryRef;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (stack.length === 1) throw outsideRoot(path, 'a symbolic link climbs above the root');
        stack.pop();
        continue;
      }
      const isLast = !queue.some((rest) => rest !== '' && rest !== '.');
      const entry = this.#entry(current, name);
      let stat: BigIntStats | undefined;
      try {
        stat = await lstat(entry, { bigint: true });
      } catch (error) {
        if (systemCode(error) !== 'ENOENT') throw error;
      }
      if (!stat) {
        if (isLast || !options.createParents) {
          return {
            parent: current,
            name,
            segments: lexicalSegments([...current.segments, name], queue, path),
            stat: undefined,
            blocked: isLast ? undefined : 'missing',
          };
        }
        await this.#verifyChain(current, path);
        try {
          await mkdir(entry);
        } catch (error) {
          if (systemCode(error) !== 'EEXIST') throw error;
        }
        stat = await lstat(entry, { bigint: true });
      }
      if (stat.isSymbolicLink() && (!isLast || options.followFinal)) {
        if (!this.#followSymlinks) {
          throw fileError(
            'INVALID_PATH',
            path,
            `Path ${path} goes through a symbolic link, and links are not followed`,
          );
        }
        hops++;
        if (hops > MAX_SYMLINK_HOPS) {
          throw fileError('INVALID_PATH', path, `Too many symbolic links in ${path}`);
        }
        const target = await readlink(entry);
        if (target === '') throw fileError('FILE_NOT_FOUND', path, `Empty link in ${path}`);
        if (target.startsWith('/')) {
          const inside = this.#insideSegments(target);
          if (!inside) throw outsideRoot(path, 'a symbolic link points outside');
          stack.length = 1;
          queue.unshift(...inside);
        } else {
          queue.unshift(...target.split('/'));
        }
        continue;
      }
      if (isLast) {
        return { parent: current, name, segments: [...current.segments, name], stat };
      }
      if (!stat.isDirectory()) {
        return {
          parent: current,
          name,
          segments: lexicalSegments([...current.segments, name], queue, path),
          stat: undefined,
          blocked: 'not-a-directory',
        };
      }
      stack.push(await this.#openDirectory(scope, current, name, stat, path));
    }
    const top = stack[stack.length - 1] as DirectoryRef;
    return {
      parent: stack[stack.length - 2],
      name: top.segments[top.segments.length - 1] ?? '',
      segments: [...top.segments],
      stat: top.stat,
      directory: top,
    };
  }

  /** Workspace segments of an absolute link target under the root, or undefined when outside. */
  #insideSegments(target: string): string[] | undefined {
    for (const alias of this.#rootAliases) {
      if (alias === '/') return target.slice(1).split('/');
      if (target === alias) return [];
      if (target.startsWith(`${alias}/`)) return target.slice(alias.length + 1).split('/');
    }
    return undefined;
  }

  async #resolveWritable(scope: Scope, path: string, allowReadonly: boolean): Promise<Resolution> {
    if (path === '/') throw fileError('IS_A_DIRECTORY', path, 'The workspace root is a directory');
    const target = await this.#resolve(scope, path, CREATE_PARENTS);
    if (target.blocked === 'not-a-directory') throw this.#notADirectory(path);
    if (!target.parent || target.directory) {
      throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
    }
    if (target.stat) {
      this.#checkRegular(path, target.stat);
      if (!allowReadonly && isReadonlyStat(target.stat)) throw this.#readOnly(path);
    }
    return target;
  }

  async #openExistingDirectory(scope: Scope, path: string): Promise<DirectoryRef> {
    const target = await this.#resolve(scope, path, FOLLOW);
    if (target.directory) return target.directory;
    if (target.blocked || !target.stat) {
      throw fileError('FILE_NOT_FOUND', path, `No such directory: ${path}`);
    }
    if (!target.stat.isDirectory()) throw this.#notADirectory(path);
    return this.#openDirectory(
      scope,
      target.parent as DirectoryRef,
      target.name,
      target.stat,
      path,
    );
  }

  async #openWalkStart(scope: Scope, start: string): Promise<DirectoryRef | undefined> {
    try {
      return await this.#openExistingDirectory(scope, start);
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

  /**
   * Depth-first walk under `start` in name order, never following links, each directory opened
   * inside its parent and checked. Stops with `LIMIT_EXCEEDED` past `maxWalkEntries` entries or
   * {@link MAX_WALK_DEPTH} levels; a directory seen twice (a bind-mount loop) is not re-entered.
   * `visit` returning `'stop'` ends the walk.
   */
  async #walk(
    scope: Scope,
    start: DirectoryRef,
    startPath: string,
    signal: AbortSignal | undefined,
    visit: (entry: {
      path: string;
      parent: DirectoryRef;
      name: string;
      stat: BigIntStats;
    }) => unknown,
  ): Promise<void> {
    let visited = 0;
    let stopped = false;
    const seen = new Set<string>();
    const descend = async (directory: DirectoryRef, path: string, depth: number) => {
      const key = `${directory.stat.dev}:${directory.stat.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
      const names = (await readdir(this.#directoryPath(directory))).sort();
      await this.#verifyChain(directory, path);
      for (const name of names) {
        if (stopped) return;
        throwIfAborted(signal);
        if (name.startsWith(TEMP_PREFIX)) continue;
        visited++;
        if (visited > this.maxWalkEntries) throw this.#walkLimit(startPath);
        let stat: BigIntStats;
        try {
          stat = await lstat(this.#entry(directory, name), { bigint: true });
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
        if (depth >= MAX_WALK_DEPTH) throw this.#walkLimit(startPath);
        let child: DirectoryRef;
        try {
          child = await this.#openDirectory(scope, directory, name, stat, entryPath);
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
  async #removeContents(scope: Scope, directory: DirectoryRef, path: string): Promise<void> {
    const names = await readdir(this.#directoryPath(directory));
    for (const name of names) {
      const entry = this.#entry(directory, name);
      const entryPath = childPath(path, name);
      let stat: BigIntStats;
      try {
        stat = await lstat(entry, { bigint: true });
      } catch (error) {
        if (systemCode(error) === 'ENOENT') continue;
        throw error;
      }
      if (stat.isDirectory()) {
        const child = await this.#openDirectory(scope, directory, name, stat, entryPath);
        try {
          await this.#removeContents(scope, child, entryPath);
        } finally {
          await scope.release(child.handle);
        }
        await this.#verifyChain(directory, entryPath);
        await rmdir(entry);
      } else {
        await this.#verifyChain(directory, entryPath);
        await unlink(entry);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Content

  /** Writes `bytes` to a new temporary file beside the target and renames it over the target. */
  async #replace(
    path: string,
    target: Resolution,
    bytes: Buffer,
    mode: number | undefined,
  ): Promise<void> {
    const parent = target.parent as DirectoryRef;
    const temporary = this.#entry(parent, `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`);
    let handle: FileHandle | undefined;
    try {
      await this.#verifyChain(parent, path);
      handle = await open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
      await handle.writeFile(bytes);
      if (mode !== undefined) await handle.chmod(mode);
      await handle.close();
      handle = undefined;
      await this.#verifyChain(parent, path);
      await rename(temporary, this.#entry(parent, target.name));
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  async #statWritten(path: string, target: Resolution): Promise<FileStat> {
    const stat = await lstat(this.#entry(target.parent as DirectoryRef, target.name), {
      bigint: true,
    });
    return toFileStat(path, stat);
  }

  async #statPath(scope: Scope, path: string): Promise<FileStat> {
    try {
      const target = await this.#resolve(scope, path, FOLLOW);
      if (target.stat && !target.blocked) return toFileStat(path, target.stat);
    } catch (error) {
      if (!EverrunsError.isInstance(error)) throw error;
    }
    const link = await this.#resolve(scope, path, NO_FOLLOW);
    if (!link.stat) throw fileError('FILE_NOT_FOUND', path, `No such file or directory: ${path}`);
    return { ...toFileStat(path, link.stat), isDirectory: false, isReadonly: false, size: 0 };
  }

  /** Reads the whole file through `handle`, refusing more than `maxFileBytes` even if it grows. */
  async #readBounded(handle: FileHandle, path: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > this.maxFileBytes) throw this.#tooLarge(path, total);
      chunks.push(Buffer.from(chunk.subarray(0, bytesRead)));
    }
    return Buffer.concat(chunks, total);
  }

  #encode(path: string, content: string, encoding: FileEncoding): Buffer {
    if (typeof content !== 'string') throw new TypeError('content must be a string');
    let bytes: Buffer;
    if (encoding === 'text') bytes = Buffer.from(content, 'utf8');
    else if (encoding === 'base64') {
      if (!BASE64.test(content)) {
        throw fileError('INVALID_INPUT', path, `Content for ${path} is not valid base64`);
      }
      bytes = Buffer.from(content, 'base64');
    } else {
      throw fileError('INVALID_INPUT', path, `Unknown encoding ${JSON.stringify(encoding)}`);
    }
    this.#checkSize(path, bytes.length);
    return bytes;
  }

  // ---------------------------------------------------------------------------------------------
  // Checks and errors

  #requireFile(path: string, target: Resolution): BigIntStats {
    if (target.directory) throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
    if (target.blocked || !target.stat) {
      throw fileError('FILE_NOT_FOUND', path, `No such file: ${path}`);
    }
    this.#checkRegular(path, target.stat);
    if (target.stat.size > BigInt(this.maxFileBytes)) {
      throw this.#tooLarge(path, Number(target.stat.size));
    }
    return target.stat;
  }

  #checkRegular(path: string, stat: BigIntStats): void {
    if (stat.isDirectory()) throw fileError('IS_A_DIRECTORY', path, `${path} is a directory`);
    if (!stat.isFile()) throw this.#notRegular(path, stat);
    if (stat.nlink > 1n && !this.#allowHardLinks) {
      throw fileError(
        'NOT_A_REGULAR_FILE',
        path,
        `${path} has ${stat.nlink} hard links and may share its content with a file outside the workspace`,
        { details: { links: Number(stat.nlink) } },
      );
    }
  }

  #checkSize(path: string, size: number): void {
    if (size > this.maxFileBytes) throw this.#tooLarge(path, size);
  }

  #tooLarge(path: string, size: number): EverrunsError {
    return fileError(
      'FILE_TOO_LARGE',
      path,
      `${path} is larger than the limit of ${this.maxFileBytes} bytes`,
      { details: { size, limit: this.maxFileBytes } },
    );
  }

  #notRegular(path: string, stat: BigIntStats): EverrunsError {
    return fileError('NOT_A_REGULAR_FILE', path, `${path} is ${kindOf(stat)}`);
  }

  #notADirectory(path: string): EverrunsError {
    return fileError('NOT_A_DIRECTORY', path, `A parent of ${path} is not a directory`);
  }

  #readOnly(path: string): EverrunsError {
    return fileError('FILE_READ_ONLY', path, `${path} is read-only`);
  }

  #walkLimit(path: string): EverrunsError {
    return fileError(
      'LIMIT_EXCEEDED',
      path,
      `Walking ${path} visited more than ${this.maxWalkEntries} entries (or ${MAX_WALK_DEPTH} levels)`,
      { details: { limit: this.maxWalkEntries } },
    );
  }
}

/** Resolves `..` in `rest` against `base` without touching the disk (for a missing tail). */
function lexicalSegments(base: string[], rest: readonly string[], path: string): string[] {
  const segments = [...base];
  for (const segment of rest) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw outsideRoot(path, 'a symbolic link climbs above the root');
      segments.pop();
    } else segments.push(segment);
  }
  return segments;
}

/** The directory a glob can start walking from: its leading segments without wildcards. */
function literalPrefix(pattern: string): string {
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
