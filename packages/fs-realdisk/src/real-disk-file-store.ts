import { isUtf8 } from 'node:buffer';
import { type BigIntStats, constants } from 'node:fs';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import {
  compileGlob,
  compileGrepMatcher,
  compileGrepPathPattern,
  EverrunsError,
  type FileContent,
  type FileEncoding,
  type FileStat,
  formatZodError,
  type GrepLimits,
  type GrepMatch,
  type GrepOptions,
  GrepScan,
  type InitialFile,
  initialFileSchema,
  normalizeWorkspacePath,
  pageTextLinesInSlices,
  type ReadFileOptions,
  replaceExactText,
  resolveGrepLimits,
  type SessionFileSystem,
  throwIfAborted,
  yieldToEventLoop,
} from '@everruns-ts/core';
import {
  replaceFile,
  resolveWritable,
  statWritten,
  writeIfContentMatches,
} from './atomic-write.js';
import { createPathResolver } from './create-path-resolver.js';
import { deleteEntry, moveEntry } from './delete-and-move.js';
import { findFiles, globStart, grepFiles, walkLimitExceeded } from './directory-walk.js';
import {
  fileError,
  fromSystemError,
  notADirectory,
  notRegular,
  readOnly,
  systemCode,
  tooLarge,
} from './errors.js';
import { encodeContent, readBounded } from './file-content.js';
import { HandleScope } from './handle-scope.js';
import { rootIgnoreChain } from './ignore-rules.js';
import {
  CREATE_PARENTS,
  childPath,
  type DirectoryRef,
  FOLLOW,
  openExistingDirectory,
  type PathResolver,
  type Resolution,
  TEMP_PREFIX,
} from './path-resolver.js';
import { re2jsRegexEngine } from './re2js-regex-engine.js';
import {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_WALK_ENTRIES,
  positiveInteger,
  type RealDiskFileStoreOptions,
} from './real-disk-file-store-options.js';
import {
  type DiskLimits,
  isReadonlyStat,
  permissionBits,
  requireFile,
  toFileStat,
} from './stat-checks.js';

export type { RealDiskFileStoreOptions } from './real-disk-file-store-options.js';

const { O_RDONLY, O_WRONLY, O_APPEND, O_NOFOLLOW, O_DIRECTORY } = constants;

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
  /** See {@link RealDiskFileStoreOptions.honorIgnoreFiles}. */
  readonly honorIgnoreFiles: boolean;
  readonly #resolver: PathResolver;
  readonly #limits: DiskLimits;
  readonly #grepLimits: GrepLimits;
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
    this.#grepLimits = resolveGrepLimits(options.grepLimits);
    this.honorIgnoreFiles = options.honorIgnoreFiles ?? true;
    const allowHardLinks = options.allowHardLinks ?? false;
    this.#limits = {
      maxFileBytes: this.maxFileBytes,
      maxWalkEntries: this.maxWalkEntries,
      allowHardLinks,
    };
    this.#resolver = createPathResolver({
      root: options.root,
      createRoot: options.createRoot ?? false,
      resolution: options.resolution ?? 'auto',
      followSymlinks: options.followSymlinksInside ?? true,
      allowHardLinks,
    });
    this.root = this.#resolver.root;
    this.resolution = this.#resolver.mode;
  }

  // ---------------------------------------------------------------------------------------------
  // SessionFileSystem

  /** Reads a file. Throws `FILE_NOT_FOUND`, `IS_A_DIRECTORY`, `NOT_A_REGULAR_FILE`, `FILE_TOO_LARGE`, `PATH_OUTSIDE_ROOT`. */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<FileContent> {
    throwIfAborted(options.signal);
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const resolution = await this.#resolver.resolve(scope, normalized, FOLLOW);
      const stat = requireFile(normalized, resolution, this.#limits);
      const { handle } = await this.#resolver.openFile(
        scope,
        normalized,
        resolution.parent as DirectoryRef,
        resolution.name,
        stat,
        O_RDONLY,
      );
      const bytes = await readBounded(handle, normalized, this.maxFileBytes, Number(stat.size));
      const encoding: FileEncoding = options.encoding ?? (isUtf8(bytes) ? 'text' : 'base64');
      // Checking and decoding a large file are each synchronous work: the loop gets a turn between.
      if (bytes.length >= 1024 * 1024) await yieldToEventLoop();
      const content = encoding === 'text' ? bytes.toString('utf8') : bytes.toString('base64');
      const result: FileContent = {
        ...toFileStat(normalized, stat),
        size: bytes.length,
        content,
        encoding,
      };
      if (encoding === 'text' && (options.offset !== undefined || options.limit !== undefined)) {
        Object.assign(result, await pageTextLinesInSlices(content, options));
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
    const bytes = encodeContent(normalized, content, encoding, this.maxFileBytes);
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, false);
      await replaceFile(
        this.#resolver,
        normalized,
        target,
        bytes,
        target.stat && permissionBits(target.stat),
      );
      return statWritten(this.#resolver, normalized, target);
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
    const bytes = encodeContent(normalized, content, encoding, this.maxFileBytes);
    return this.#mutate(normalized, (scope) =>
      writeIfContentMatches(
        this.#resolver,
        scope,
        normalized,
        { expected, bytes, encoding },
        this.#limits,
      ),
    );
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
      const target = await this.#resolver.resolve(scope, normalized, FOLLOW);
      const stat = requireFile(normalized, target, this.#limits);
      if (isReadonlyStat(stat)) throw readOnly(normalized);
      const { handle } = await this.#resolver.openFile(
        scope,
        normalized,
        target.parent as DirectoryRef,
        target.name,
        stat,
        O_RDONLY,
      );
      const bytes = await readBounded(handle, normalized, this.maxFileBytes, Number(stat.size));
      if (!isUtf8(bytes)) {
        throw fileError('INVALID_INPUT', normalized, `${normalized} is not a UTF-8 text file`);
      }
      const text = bytes.toString('utf8');
      const updated = replaceExactText(normalized, text, oldText, newText, options.replaceAll);
      const output = Buffer.from(updated, 'utf8');
      if (output.length > this.maxFileBytes) {
        throw tooLarge(normalized, output.length, this.maxFileBytes);
      }
      await replaceFile(this.#resolver, normalized, target, output, permissionBits(stat));
      return statWritten(this.#resolver, normalized, target);
    });
  }

  /** Appends UTF-8 text, creating the file (and its parents) when absent. */
  async appendFile(path: string, content: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const bytes = encodeContent(normalized, content, 'text', this.maxFileBytes);
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, false);
      if (!target.stat) {
        await replaceFile(this.#resolver, normalized, target, bytes, undefined);
        return statWritten(this.#resolver, normalized, target);
      }
      const size = Number(target.stat.size) + bytes.length;
      if (size > this.maxFileBytes) throw tooLarge(normalized, size, this.maxFileBytes);
      const { handle } = await this.#resolver.openFile(
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
   * with `recursive`: without it nothing is deleted and the result is false, as upstream's
   * stores; a read-only file inside refuses the whole delete before anything goes).
   */
  async deleteFile(path: string, recursive = false): Promise<boolean> {
    const normalized = normalizeWorkspacePath(path);
    if (normalized === '/') {
      throw fileError('INVALID_PATH', normalized, 'The workspace root cannot be deleted');
    }
    return this.#mutate(normalized, (scope) =>
      deleteEntry(this.#resolver, scope, normalized, {
        recursive,
        maxWalkEntries: this.maxWalkEntries,
      }),
    );
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
    const move = { source, destination, overwrite: options.overwrite ?? false };
    return this.#mutate(source, (scope) =>
      moveEntry(this.#resolver, scope, move, this.maxWalkEntries),
    );
  }

  /**
   * Entries directly under a directory, sorted by name. Links are shown as what they point to;
   * links leaving the workspace or dangling, FIFOs, sockets and devices are left out.
   */
  async listDirectory(path: string): Promise<FileStat[]> {
    const normalized = normalizeWorkspacePath(path);
    return this.#withScope(normalized, async (scope) => {
      const directory = await openExistingDirectory(this.#resolver, scope, normalized);
      const names = (await readdir(this.#resolver.directoryPath(directory))).sort();
      await this.#resolver.verifyChain(directory, normalized);
      if (names.length > this.maxWalkEntries)
        throw walkLimitExceeded(normalized, this.maxWalkEntries);
      const entries: FileStat[] = [];
      for (const name of names) {
        if (name.startsWith(TEMP_PREFIX)) continue;
        const entryPath = childPath(normalized, name);
        let stat: BigIntStats;
        try {
          stat = await lstat(this.#resolver.entryPath(directory, name), { bigint: true });
          if (stat.isSymbolicLink()) {
            const followed = await this.#resolver.resolve(scope, entryPath, FOLLOW);
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
      const target = await this.#resolver.resolve(scope, normalized, FOLLOW);
      if (target.parent) await this.#resolver.verifyChain(target.parent, normalized);
      if (target.blocked || !target.stat) return null;
      if (!target.stat.isDirectory() && !target.stat.isFile()) {
        throw notRegular(normalized, target.stat);
      }
      return toFileStat(normalized, target.stat);
    });
  }

  /**
   * Regular files whose path matches the glob, sorted by path. The walk does not follow links;
   * the glob is matched in linear time (longer than `grepLimits.maxPatternLength` is
   * `LIMIT_EXCEEDED`) and the walk yields to the event loop every `grepLimits.sliceMs`.
   */
  async globFiles(pattern: string, options: { signal?: AbortSignal } = {}): Promise<FileStat[]> {
    throwIfAborted(options.signal);
    const matcher = compileGlob(pattern, { maxLength: this.#grepLimits.maxPatternLength });
    const start = globStart(pattern);
    const scan = new GrepScan(this.#grepLimits, { maxMatches: 1, signal: options.signal });
    const search = { start, matcher, scan, signal: options.signal };
    return this.#withScope(start, (scope) =>
      findFiles(this.#resolver, scope, search, this.#limits),
    );
  }

  /**
   * Lines matching a regular expression (RE2 syntax, matched in linear time by
   * `options.regexEngine` when given, else by `re2js`) in UTF-8 files whose path matches
   * `pathPattern`, sorted by path and line. Skips files over `maxFileBytes`, non-UTF-8 files and
   * files that cannot be read safely (links, FIFOs, multiply linked files), and what ignore
   * files exclude (see {@link RealDiskFileStoreOptions.honorIgnoreFiles}). Bounded by `grepLimits` (bytes, time, line length; reported through
   * `onLimitReached`), yielding to the event loop every `grepLimits.sliceMs`. Throws
   * `INVALID_INPUT` for a bad pattern or a backreference or lookaround, `LIMIT_EXCEEDED` for a
   * pattern or glob too long.
   */
  async grepFiles(
    pattern: string,
    pathPattern?: string,
    options: GrepOptions = {},
  ): Promise<GrepMatch[]> {
    const limits = this.#grepLimits;
    const matcher = compileGrepMatcher(pattern, options.regexEngine ?? re2jsRegexEngine, {
      ignoreCase: options.ignoreCase ?? false,
      maxPatternLength: limits.maxPatternLength,
    });
    throwIfAborted(options.signal);
    const maxMatches = options.maxMatches ?? 1000;
    if (!(maxMatches > 0)) return [];
    const pathMatcher = pathPattern
      ? compileGrepPathPattern(pathPattern, { maxLength: limits.maxPatternLength })
      : undefined;
    // A pattern without glob characters is a substring anywhere in the path: walk everything.
    const start = pathPattern && /[*?[{]/.test(pathPattern) ? globStart(pathPattern) : '/';
    const scan = new GrepScan(limits, {
      maxMatches,
      signal: options.signal,
      onLimitReached: options.onLimitReached,
    });
    const ignoreRoot = this.honorIgnoreFiles ? await rootIgnoreChain(this.root) : undefined;
    const search = { start, matcher, pathMatcher, scan, signal: options.signal, ignoreRoot };
    return this.#withScope(start, (scope) =>
      grepFiles(this.#resolver, scope, search, this.#limits),
    );
  }

  /** Creates a directory and its parents. Throws `FILE_ALREADY_EXISTS` when a file is there. */
  async createDirectory(path: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    return this.#mutate(normalized, async (scope) => {
      const target = await this.#resolver.resolve(scope, normalized, CREATE_PARENTS);
      if (target.blocked === 'not-a-directory') throw notADirectory(normalized);
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
      await this.#resolver.verifyChain(parent, normalized);
      try {
        await mkdir(this.#resolver.entryPath(parent, target.name));
      } catch (error) {
        if (systemCode(error) !== 'EEXIST') throw error;
      }
      const created = await lstat(this.#resolver.entryPath(parent, target.name), { bigint: true });
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
    const bytes = encodeContent(normalized, content, encoding, this.maxFileBytes);
    await this.#mutate(normalized, async (scope) => {
      const target = await this.#resolveWritable(scope, normalized, true);
      let mode: number | undefined;
      if (isReadonly) mode = 0o444;
      else if (target.stat) mode = permissionBits(target.stat) | 0o200;
      await replaceFile(this.#resolver, normalized, target, bytes, mode);
    });
  }

  /**
   * Where the workspace root shows to people and models, as upstream's real-disk store shows it:
   * the host-absolute root ({@link root}), for example `/home/me/project`.
   */
  displayRoot(): string {
    return this.root;
  }

  /**
   * Where a workspace path shows, as upstream's real-disk store shows it: the host-absolute path
   * under {@link root} (`/src/a.ts` and `/workspace/src/a.ts` → `<root>/src/a.ts`, `/` → the
   * root). Only the spelling changes: nothing is read. Throws `INVALID_PATH` as
   * `normalizeWorkspacePath` does.
   */
  displayPath(path: string): string {
    const normalized = normalizeWorkspacePath(path);
    return normalized === '/' ? this.root : `${this.root.replace(/\/+$/, '')}${normalized}`;
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
      const target = await this.#resolver.resolve(scope, normalized, FOLLOW);
      return `/${target.segments.join('/')}`;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  async #withScope<T>(path: string, run: (scope: HandleScope) => Promise<T>): Promise<T> {
    const scope = new HandleScope();
    try {
      return await run(scope);
    } catch (error) {
      throw fromSystemError(error, path);
    } finally {
      await scope.close();
    }
  }

  #mutate<T>(path: string, run: (scope: HandleScope) => Promise<T>): Promise<T> {
    const result = this.#mutations.then(() => this.#withScope(path, run));
    this.#mutations = result.catch(() => undefined);
    return result;
  }

  #resolveWritable(scope: HandleScope, path: string, allowReadonly: boolean): Promise<Resolution> {
    return resolveWritable(this.#resolver, scope, path, {
      allowReadonly,
      allowHardLinks: this.#limits.allowHardLinks,
    });
  }
}
