import {
  compileGlob,
  compileGrepMatcher,
  compileGrepPathPattern,
  everrunsError,
  type FileContent,
  type FileEncoding,
  type FileStat,
  type GrepLimits,
  type GrepMatch,
  type GrepOptions,
  GrepScan,
  type InitialFile,
  isoNow,
  type LinearRegexEngine,
  normalizeWorkspacePath,
  pageTextLinesInSlices,
  parentWorkspacePath,
  type ReadFileOptions,
  replaceExactText,
  resolveGrepLimits,
  type SessionFileSystem,
  throwIfAborted,
  workspaceBaseName,
  yieldToEventLoop,
} from '@everruns-ts/core';
import { compareStrings } from './freeze-copy.js';
import { loadRe2jsRegexEngine } from './re2js-regex-engine.js';

/** Default of {@link InMemorySessionFileStoreOptions.maxFileBytes}: 10 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;
/** Default of {@link InMemorySessionFileStoreOptions.maxGrepFiles}. */
export const DEFAULT_MAX_GREP_FILES = 10_000;
const DEFAULT_MAX_MATCHES = 1000;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Options of {@link InMemorySessionFileStore}. */
export interface InMemorySessionFileStoreOptions {
  /** Largest file in bytes; bigger writes and reads throw `FILE_TOO_LARGE`. Default 10 MiB. */
  maxFileBytes?: number;
  /** Most files `grepFiles` looks into before it stops. Default 10,000. */
  maxGrepFiles?: number;
  /**
   * Bounds of `globFiles` and `grepFiles` (pattern length, line length, bytes scanned, time per
   * call, time between yields to the event loop). Defaults: core's `DEFAULT_GREP_LIMITS`.
   */
  grepLimits?: Partial<GrepLimits>;
  /**
   * The linear-time engine `grepFiles` compiles patterns with when the call passes none in
   * `GrepOptions.regexEngine`. Default: `re2js`, imported on first grep; it is an optional peer
   * dependency, so without it (and without an engine here or on the call) `grepFiles` rejects
   * with `CONFIGURATION`.
   */
  regexEngine?: LinearRegexEngine;
  /**
   * Loads the default engine when neither `regexEngine` is given. Default: imports `re2js`.
   * A seam for tests (for example one that rejects as a missing module would).
   * @internal
   */
  loadRegexEngine?: () => Promise<LinearRegexEngine>;
}

interface FileNode {
  kind: 'file';
  /** Text as written (encoding `text`) or the decoded bytes (encoding `base64`). */
  data: string | Buffer;
  encoding: FileEncoding;
  size: number;
  isReadonly: boolean;
  updatedAt: string;
}

interface DirectoryNode {
  kind: 'directory';
  children: Map<string, Node>;
  updatedAt: string;
}

type Node = FileNode | DirectoryNode;

/**
 * A session workspace held in memory: a tree of directories and files.
 *
 * Text files keep the string written; base64 files keep the decoded bytes and read back as
 * canonical base64. Paths go through `normalizeWorkspacePath`, so `/workspace/a` is `/a` and
 * `..`, backslashes, drive letters and control characters are `INVALID_PATH`. Every method
 * throws the `EverrunsError` codes documented on `SessionFileSystem`.
 */
export class InMemorySessionFileStore implements SessionFileSystem {
  readonly #root: DirectoryNode = { kind: 'directory', children: new Map(), updatedAt: now() };
  readonly #maxFileBytes: number;
  readonly #maxGrepFiles: number;
  readonly #grepLimits: GrepLimits;
  readonly #regexEngine: LinearRegexEngine | undefined;
  readonly #loadRegexEngine: () => Promise<LinearRegexEngine>;

  /**
   * Where the workspace root shows to people and models, as upstream's in-memory store shows it:
   * `/workspace`.
   */
  displayRoot(): string {
    return '/workspace';
  }

  /**
   * Where a workspace path shows: under `/workspace` (`/src/a.ts` → `/workspace/src/a.ts`, `/` →
   * `/workspace`). Only the spelling changes: nothing is read. Throws `INVALID_PATH` as
   * `normalizeWorkspacePath` does.
   */
  displayPath(path: string): string {
    const normalized = normalizeWorkspacePath(path);
    return normalized === '/' ? '/workspace' : `/workspace${normalized}`;
  }

  constructor(options: InMemorySessionFileStoreOptions = {}) {
    this.#maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.#maxGrepFiles = options.maxGrepFiles ?? DEFAULT_MAX_GREP_FILES;
    this.#grepLimits = resolveGrepLimits(options.grepLimits);
    this.#regexEngine = options.regexEngine;
    this.#loadRegexEngine = options.loadRegexEngine ?? loadRe2jsRegexEngine;
  }

  /**
   * Reads a file in the encoding asked for (by default the one it was written with). With
   * `offset`/`limit` a text read returns those lines only, with `totalLines` and `truncated`.
   */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<FileContent> {
    throwIfAborted(options.signal);
    const normalized = normalizeWorkspacePath(path);
    const file = this.#requireFile(normalized);
    if (file.size > this.#maxFileBytes) throw this.#tooLarge(normalized, file.size);
    const encoding = options.encoding ?? file.encoding;
    const content = render(file, encoding);
    const result: FileContent = { ...statOf(normalized, file), content, encoding };
    if (encoding === 'text' && (options.offset !== undefined || options.limit !== undefined)) {
      Object.assign(result, await pageTextLinesInSlices(content, options));
    }
    return result;
  }

  /** Creates or replaces a file, creating parents. */
  async writeFile(
    path: string,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    return this.#write(normalized, encodeData(normalized, content, encoding), encoding, false);
  }

  /** Writes only when the current content (in `encoding`) equals `expected`; `null` = absent. */
  async writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const data = encodeData(normalized, content, encoding);
    const node = this.#lookup(normalized);
    if (node?.kind === 'directory') throw isDirectory(normalized);
    const current = node === undefined ? null : render(node, encoding);
    if (current !== expected) {
      throw everrunsError(
        'CONTENT_MISMATCH',
        expected === null
          ? `${normalized} exists but was expected to be absent`
          : current === null
            ? `${normalized} does not exist`
            : `${normalized} does not hold the expected content`,
        { details: { path: normalized, exists: current !== null } },
      );
    }
    return this.#write(normalized, data, encoding, false);
  }

  /** Replaces one occurrence (or all with `replaceAll`) of `oldText`; the file becomes text. */
  async editFile(
    path: string,
    oldText: string,
    newText: string,
    options: { replaceAll?: boolean } = {},
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    if (oldText === '') {
      throw everrunsError('INVALID_INPUT', 'oldText must not be empty', {
        details: { path: normalized },
      });
    }
    const file = this.#requireFile(normalized);
    if (file.isReadonly) throw readOnly(normalized);
    const text = render(file, 'text');
    const updated = replaceExactText(normalized, text, oldText, newText, options.replaceAll);
    return this.#write(normalized, updated, 'text', false);
  }

  /** Appends text, creating the file when absent. */
  async appendFile(path: string, content: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const node = this.#lookup(normalized);
    if (node === undefined) return this.#write(normalized, content, 'text', false);
    if (node.kind === 'directory') throw isDirectory(normalized);
    if (node.isReadonly) throw readOnly(normalized);
    if (typeof node.data === 'string') {
      return this.#write(normalized, node.data + content, 'text', false);
    }
    return this.#write(
      normalized,
      Buffer.concat([node.data, Buffer.from(content, 'utf8')]),
      'base64',
      false,
    );
  }

  /**
   * Deletes a file or directory; false when nothing was there. A non-empty directory needs
   * `recursive`: without it nothing is deleted and the result is false, as upstream's stores;
   * a read-only file anywhere below refuses the delete (`FILE_READ_ONLY`); `/` is `INVALID_PATH`.
   */
  async deleteFile(path: string, recursive = false): Promise<boolean> {
    const normalized = normalizeWorkspacePath(path);
    if (normalized === '/') {
      throw everrunsError('INVALID_PATH', 'The workspace root cannot be deleted', {
        details: { path: normalized },
      });
    }
    const node = this.#lookup(normalized);
    if (node === undefined) return false;
    if (node.kind === 'directory') {
      if (node.children.size > 0 && !recursive) return false;
      const locked = firstReadonly(normalized, node);
      if (locked !== undefined) throw readOnly(locked);
    } else if (node.isReadonly) {
      throw readOnly(normalized);
    }
    const parent = this.#lookup(parentWorkspacePath(normalized)) as DirectoryNode;
    parent.children.delete(workspaceBaseName(normalized));
    parent.updatedAt = now();
    return true;
  }

  /** Moves a file or directory, creating the target's parents. */
  async moveFile(
    from: string,
    to: string,
    options: { overwrite?: boolean } = {},
  ): Promise<FileStat> {
    const source = normalizeWorkspacePath(from);
    const target = normalizeWorkspacePath(to);
    if (source === '/' || target === '/') {
      throw everrunsError('INVALID_PATH', 'The workspace root cannot be moved or replaced', {
        details: { from: source, to: target },
      });
    }
    const node = this.#lookup(source);
    if (node === undefined) throw notFound(source);
    if (source === target) return statOf(source, node);
    if (target.startsWith(`${source}/`)) {
      throw everrunsError('INVALID_PATH', `Cannot move ${source} into itself`, {
        details: { from: source, to: target },
      });
    }
    if (node.kind === 'file' ? node.isReadonly : firstReadonly(source, node) !== undefined) {
      throw readOnly(source);
    }
    const existing = this.#lookup(target);
    if (existing !== undefined) {
      if (!options.overwrite) {
        throw everrunsError('FILE_ALREADY_EXISTS', `${target} already exists`, {
          details: { path: target },
        });
      }
      if (existing.kind === 'directory') throw isDirectory(target);
      if (existing.isReadonly) throw readOnly(target);
    }
    const targetParent = this.#ensureDirectory(parentWorkspacePath(target));
    const sourceParent = this.#lookup(parentWorkspacePath(source)) as DirectoryNode;
    sourceParent.children.delete(workspaceBaseName(source));
    const stamp = now();
    sourceParent.updatedAt = stamp;
    node.updatedAt = stamp;
    targetParent.children.set(workspaceBaseName(target), node);
    targetParent.updatedAt = stamp;
    return statOf(target, node);
  }

  /**
   * Entries directly under a directory, sorted by name. A large directory is listed in slices of
   * `grepLimits.sliceMs`, yielding to the event loop between them (an entry removed meanwhile is
   * left out), so listing 100,000 entries does not hold the process.
   */
  async listDirectory(path: string): Promise<FileStat[]> {
    const normalized = normalizeWorkspacePath(path);
    const node = this.#lookup(normalized);
    if (node === undefined) throw notFound(normalized);
    if (node.kind !== 'directory') {
      throw everrunsError('NOT_A_DIRECTORY', `${normalized} is not a directory`, {
        details: { path: normalized },
      });
    }
    const names = [...node.children.keys()].sort(compareStrings);
    const base = normalized === '/' ? '' : normalized;
    const entries: FileStat[] = [];
    let sliceStarted = performance.now();
    for (let index = 0; index < names.length; index++) {
      if ((index & 1023) === 1023 && performance.now() - sliceStarted >= this.#grepLimits.sliceMs) {
        await yieldToEventLoop();
        sliceStarted = performance.now();
      }
      const name = names[index] as string;
      const child = node.children.get(name);
      if (child !== undefined) entries.push(entryStatOf(`${base}/${name}`, name, child));
    }
    return entries;
  }

  /** Metadata, or `null` when nothing is there. */
  async statFile(path: string): Promise<FileStat | null> {
    const normalized = normalizeWorkspacePath(path);
    const node = this.#lookup(normalized);
    return node === undefined ? null : statOf(normalized, node);
  }

  /**
   * Files whose path matches the glob, sorted by path. The glob is matched in linear time; one
   * longer than `grepLimits.maxPatternLength` is `LIMIT_EXCEEDED`. Yields to the event loop
   * every `grepLimits.sliceMs`.
   */
  async globFiles(pattern: string, options: { signal?: AbortSignal } = {}): Promise<FileStat[]> {
    const matcher = compileGlob(pattern, { maxLength: this.#grepLimits.maxPatternLength });
    const scan = new GrepScan(this.#grepLimits, { maxMatches: 1, signal: options.signal });
    const result: FileStat[] = [];
    for (const [path, file] of this.#files(options.signal)) {
      await scan.checkpoint();
      if (matcher.test(path)) result.push(statOf(path, file));
    }
    return result;
  }

  /**
   * Lines matching the regular expression `pattern` (RE2 syntax, matched in linear time by
   * `options.regexEngine`, else the store's `regexEngine`, else `re2js` imported on first use)
   * in text files whose path matches the glob `pathPattern`, in path then line order.
   * Base64 files are skipped. Stops after `maxMatches` matches; stops (and tells
   * `onLimitReached`) after `maxGrepFiles` files or at `grepLimits`' bytes or time. Yields to
   * the event loop every `grepLimits.sliceMs`. An invalid expression, or a backreference or
   * lookaround, is `INVALID_INPUT`; a pattern or glob too long is `LIMIT_EXCEEDED`; no engine
   * (none passed and `re2js` not installed) is `CONFIGURATION`.
   */
  async grepFiles(
    pattern: string,
    pathPattern?: string,
    options: GrepOptions = {},
  ): Promise<GrepMatch[]> {
    const limits = this.#grepLimits;
    const engine = options.regexEngine ?? this.#regexEngine ?? (await this.#defaultRegexEngine());
    const matcher = compileGrepMatcher(pattern, engine, {
      ignoreCase: options.ignoreCase ?? false,
      maxPatternLength: limits.maxPatternLength,
    });
    const pathMatcher =
      pathPattern === undefined || pathPattern === ''
        ? undefined
        : compileGrepPathPattern(pathPattern, { maxLength: limits.maxPatternLength });
    const scan = new GrepScan(limits, {
      maxMatches: options.maxMatches ?? DEFAULT_MAX_MATCHES,
      maxFiles: this.#maxGrepFiles,
      signal: options.signal,
      onLimitReached: options.onLimitReached,
    });
    for (const [path, file] of this.#files(options.signal)) {
      if (!(await scan.checkpoint())) break;
      if (pathMatcher !== undefined && !pathMatcher.test(path)) continue;
      if (typeof file.data !== 'string') continue;
      if (!scan.enterFile()) break;
      if (!(await scan.scanText(path, file.data, file.size, matcher))) break;
    }
    return scan.matches;
  }

  /** Creates a directory and its parents; returns the existing one when it is there. */
  async createDirectory(path: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    if (this.#lookup(normalized)?.kind === 'file') {
      throw everrunsError('FILE_ALREADY_EXISTS', `${normalized} exists and is a file`, {
        details: { path: normalized },
      });
    }
    return statOf(normalized, this.#ensureDirectory(normalized));
  }

  /** Places an initial file, replacing whatever is there (even a read-only file). */
  async seedInitialFile(file: InitialFile): Promise<void> {
    const normalized = normalizeWorkspacePath(file.path);
    const encoding = file.encoding ?? 'text';
    this.#write(
      normalized,
      encodeData(normalized, file.content, encoding),
      encoding,
      file.isReadonly ?? false,
      true,
    );
  }

  async #defaultRegexEngine(): Promise<LinearRegexEngine> {
    try {
      return await this.#loadRegexEngine();
    } catch (error) {
      throw everrunsError(
        'CONFIGURATION',
        'grep on the in-memory store needs a linear-time regex engine: install `re2js` (an optional peer dependency of @everruns-ts/stores-memory) or pass `regexEngine` (to the store or the grepFiles call)',
        { cause: error, details: { missing: 're2js' } },
      );
    }
  }

  #lookup(path: string): Node | undefined {
    if (path === '/') return this.#root;
    let node: Node = this.#root;
    for (const segment of path.slice(1).split('/')) {
      if (node.kind !== 'directory') return undefined;
      const child: Node | undefined = node.children.get(segment);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }

  #requireFile(path: string): FileNode {
    const node = this.#lookup(path);
    if (node === undefined) throw notFound(path);
    if (node.kind === 'directory') throw isDirectory(path);
    return node;
  }

  /** Walks to `path`, creating missing directories. */
  #ensureDirectory(path: string): DirectoryNode {
    let node: DirectoryNode = this.#root;
    if (path === '/') return node;
    let walked = '';
    for (const segment of path.slice(1).split('/')) {
      walked += `/${segment}`;
      const child = node.children.get(segment);
      if (child === undefined) {
        const created: DirectoryNode = { kind: 'directory', children: new Map(), updatedAt: now() };
        node.children.set(segment, created);
        node.updatedAt = created.updatedAt;
        node = created;
      } else if (child.kind === 'file') {
        throw everrunsError('NOT_A_DIRECTORY', `${walked} is a file, not a directory`, {
          details: { path: walked },
        });
      } else {
        node = child;
      }
    }
    return node;
  }

  #write(
    path: string,
    data: string | Buffer,
    encoding: FileEncoding,
    isReadonly: boolean,
    seeding = false,
  ): FileStat {
    if (path === '/') throw isDirectory(path);
    const size = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
    if (size > this.#maxFileBytes) throw this.#tooLarge(path, size);
    const existing = this.#lookup(path);
    if (existing?.kind === 'directory') throw isDirectory(path);
    if (existing?.isReadonly && !seeding) throw readOnly(path);
    const parent = this.#ensureDirectory(parentWorkspacePath(path));
    const file: FileNode = { kind: 'file', data, encoding, size, isReadonly, updatedAt: now() };
    parent.children.set(workspaceBaseName(path), file);
    parent.updatedAt = file.updatedAt;
    return statOf(path, file);
  }

  /** Files in path order, depth first. */
  *#files(signal: AbortSignal | undefined): Generator<[string, FileNode]> {
    const stack: [string, DirectoryNode][] = [['', this.#root]];
    const files: [string, FileNode][] = [];
    while (stack.length > 0) {
      throwIfAborted(signal);
      const [base, directory] = stack.pop() as [string, DirectoryNode];
      for (const [name, node] of directory.children) {
        if (node.kind === 'directory') stack.push([`${base}/${name}`, node]);
        else files.push([`${base}/${name}`, node]);
      }
    }
    files.sort((left, right) => compareStrings(left[0], right[0]));
    for (const entry of files) {
      throwIfAborted(signal);
      yield entry;
    }
  }

  #tooLarge(path: string, size: number) {
    return everrunsError(
      'FILE_TOO_LARGE',
      `${path} is ${size} bytes; the limit is ${this.#maxFileBytes}`,
      { details: { path, size, maxFileBytes: this.#maxFileBytes } },
    );
  }
}

function now(): string {
  return isoNow();
}

function statOf(path: string, node: Node): FileStat {
  return entryStatOf(path, workspaceBaseName(path), node);
}

/** {@link statOf} when the entry's name is already known. */
function entryStatOf(path: string, name: string, node: Node): FileStat {
  return {
    path,
    name,
    isDirectory: node.kind === 'directory',
    isReadonly: node.kind === 'file' && node.isReadonly,
    size: node.kind === 'file' ? node.size : 0,
    updatedAt: node.updatedAt,
  };
}

function encodeData(path: string, content: string, encoding: FileEncoding): string | Buffer {
  if (typeof content !== 'string') throw new TypeError('content must be a string');
  if (encoding === 'text') return content;
  if (encoding !== 'base64') {
    throw everrunsError('INVALID_INPUT', `Unknown encoding ${JSON.stringify(encoding)}`, {
      details: { path, encoding },
    });
  }
  if (!BASE64.test(content)) {
    throw everrunsError('INVALID_INPUT', `Content for ${path} is not valid base64`, {
      details: { path },
    });
  }
  return Buffer.from(content, 'base64');
}

function render(file: FileNode, encoding: FileEncoding): string {
  if (typeof file.data === 'string') {
    return encoding === 'text' ? file.data : Buffer.from(file.data, 'utf8').toString('base64');
  }
  return file.data.toString(encoding === 'text' ? 'utf8' : 'base64');
}

/** The first read-only file under `directory`, found with an explicit stack (no recursion). */
function firstReadonly(base: string, directory: DirectoryNode): string | undefined {
  const stack: [string, DirectoryNode][] = [[base, directory]];
  while (stack.length > 0) {
    const [path, node] = stack.pop() as [string, DirectoryNode];
    for (const [name, child] of node.children) {
      if (child.kind === 'file') {
        if (child.isReadonly) return `${path}/${name}`;
      } else stack.push([`${path}/${name}`, child]);
    }
  }
  return undefined;
}

function notFound(path: string) {
  return everrunsError('FILE_NOT_FOUND', `${path} not found`, { details: { path } });
}

function isDirectory(path: string) {
  return everrunsError('IS_A_DIRECTORY', `${path} is a directory`, { details: { path } });
}

function readOnly(path: string) {
  return everrunsError('FILE_READ_ONLY', `${path} is read-only`, { details: { path } });
}
