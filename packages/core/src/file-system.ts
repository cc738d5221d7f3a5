import type { FileEncoding, InitialFile } from './domain.js';
import { EverrunsError } from './errors.js';
import type { GrepLimitReached, GrepLimits } from './grep-limits.js';
import type { LinearRegexEngine } from './grep-pattern.js';

/** Metadata of a file or directory in a session workspace. */
export interface FileStat {
  /** Normalised workspace path with a leading slash, for example `/src/a.ts`. */
  path: string;
  /** Last path segment (`''` for the root). */
  name: string;
  isDirectory: boolean;
  isReadonly: boolean;
  /** Size in bytes (0 for directories). */
  size: number;
  /** ISO timestamp of the last change. */
  updatedAt: string;
}

/** A file read from a workspace. */
export interface FileContent extends FileStat {
  /** The content in `encoding`: what was written comes back unchanged. */
  content: string;
  encoding: FileEncoding;
  /** When the read was paged: the total number of lines of the file. */
  totalLines?: number;
  /** True when `offset`/`limit` left lines out. */
  truncated?: boolean;
}

/** Options of {@link SessionFileSystem.readFile}. */
export interface ReadFileOptions {
  /** Encoding wanted; by default the encoding the file was written with. */
  encoding?: FileEncoding;
  /** First line to return, 0-based (text only). */
  offset?: number;
  /** Most lines to return (text only). */
  limit?: number;
  signal?: AbortSignal;
}

/** One grep hit. */
export interface GrepMatch {
  path: string;
  /** 1-based line number. */
  lineNumber: number;
  line: string;
}

/** Options of {@link SessionFileSystem.grepFiles}. */
export interface GrepOptions {
  /** Stop after this many matches. Default 1,000. */
  maxMatches?: number;
  /** Case-insensitive matching. */
  ignoreCase?: boolean;
  signal?: AbortSignal;
  /**
   * Told once for each limit of the backend's {@link GrepLimits} that left matches out (files,
   * bytes scanned, time, a line cut to `maxLineLength`), so a caller can say the result is
   * incomplete. Reaching `maxMatches` is not reported.
   */
  onLimitReached?: (reached: GrepLimitReached) => void;
  /**
   * A linear-time engine the backend compiles `pattern` with instead of its own, for a backend
   * that brings none or loads its own lazily (the in-memory store's `re2js` is an optional peer).
   * The `grep_files` tool passes one on every call, so a model's pattern never meets a
   * backtracking engine whichever packages the app installed. Must be linear-time: a caller that
   * passes a backtracking engine gives up the guarantee.
   */
  regexEngine?: LinearRegexEngine;
}

/** Operations the contract considers destructive (gated by approval decorators). */
export const DESTRUCTIVE_FILE_OPERATIONS = [
  'writeFile',
  'writeFileIfContentMatches',
  'editFile',
  'appendFile',
  'deleteFile',
  'moveFile',
] as const;

/**
 * A session's workspace. Paths are workspace paths: absolute with a leading slash, `/workspace/x`
 * means `/x`, and `..` segments are an `INVALID_PATH` error (see {@link normalizeWorkspacePath}).
 *
 * Every method throws {@link EverrunsError} with a documented code: `INVALID_PATH`,
 * `PATH_OUTSIDE_ROOT`, `FILE_NOT_FOUND`, `IS_A_DIRECTORY`, `NOT_A_DIRECTORY`,
 * `NOT_A_REGULAR_FILE`, `FILE_READ_ONLY`, `FILE_TOO_LARGE`, `CONTENT_MISMATCH`, `WRITE_BLOCKED`,
 * `APPROVAL_DENIED`, `FILE_ALREADY_EXISTS`.
 */
export interface SessionFileSystem {
  /** Reads a file. Throws `FILE_NOT_FOUND`, `IS_A_DIRECTORY`, `FILE_TOO_LARGE`. */
  readFile(path: string, options?: ReadFileOptions): Promise<FileContent>;
  /** Creates or replaces a file, creating parent directories. Throws `FILE_READ_ONLY`, `IS_A_DIRECTORY`. */
  writeFile(path: string, content: string, encoding?: FileEncoding): Promise<FileStat>;
  /**
   * Compare-and-set: writes only when the current content equals `expected` (`null` = the file
   * must not exist). Throws `CONTENT_MISMATCH` otherwise.
   */
  writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding?: FileEncoding,
  ): Promise<FileStat>;
  /**
   * Replaces `oldText` with `newText` in a text file. Exactly one occurrence must exist unless
   * `replaceAll`; otherwise throws `CONTENT_MISMATCH` naming the count.
   */
  editFile(
    path: string,
    oldText: string,
    newText: string,
    options?: { replaceAll?: boolean },
  ): Promise<FileStat>;
  /** Appends text, creating the file when absent. */
  appendFile(path: string, content: string): Promise<FileStat>;
  /**
   * Deletes a file, or a directory (non-empty only with `recursive`). Deleting `/` is
   * `INVALID_PATH`. Returns false when nothing existed, and, deleting nothing, for a non-empty
   * directory without `recursive` (as upstream's stores).
   */
  deleteFile(path: string, recursive?: boolean): Promise<boolean>;
  /** Moves or renames. Throws `FILE_ALREADY_EXISTS` unless `overwrite`. */
  moveFile(from: string, to: string, options?: { overwrite?: boolean }): Promise<FileStat>;
  /** Entries directly under a directory, sorted by name. */
  listDirectory(path: string): Promise<FileStat[]>;
  /** Metadata, or `null` when nothing is there. */
  statFile(path: string): Promise<FileStat | null>;
  /**
   * Files whose path matches a glob (`*`, `**`, `?`), sorted by path. The glob is matched in
   * linear time (see `compileGlob`); one longer than the backend's limit is `LIMIT_EXCEEDED`.
   */
  globFiles(pattern: string, options?: { signal?: AbortSignal }): Promise<FileStat[]>;
  /**
   * Lines matching a regular expression, in files whose path matches `pathPattern` (a glob, or,
   * without glob characters, a substring of the path; see `compileGrepPathPattern`).
   * Patterns are RE2 syntax on a linear-time engine: backreferences and lookaround are
   * `INVALID_INPUT` naming the construct; a pattern or glob past the length limit is
   * `LIMIT_EXCEEDED`. The search is bounded by the backend's {@link GrepLimits} (bytes, time,
   * line length, files; reported through `onLimitReached`) and yields to the event loop.
   */
  grepFiles(pattern: string, pathPattern?: string, options?: GrepOptions): Promise<GrepMatch[]>;
  /** Creates a directory and its parents; no error when it exists. */
  createDirectory(path: string): Promise<FileStat>;
  /** Places an initial file (used when a session is created); may write read-only files. */
  seedInitialFile(file: InitialFile): Promise<void>;
}

/** Which tool call a file system is handed to (see {@link SessionFileSystemFactory.forToolCall}). */
export interface ToolCallScope {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  /** 1-based iteration of the turn. */
  iteration: number;
  /**
   * Fires when the call is cancelled (its turn aborted or its timeout passed), as the tool's own
   * `context.signal`; a decorator that waits (an approval gate) gives up on it.
   */
  readonly signal?: AbortSignal;
}

/** Yields the file system of each session. Configured on the `PlatformDefinition`. */
export interface SessionFileSystemFactory {
  /** The workspace of `sessionId`. May return the same instance for the same session. */
  forSession(sessionId: string): Promise<SessionFileSystem> | SessionFileSystem;
  /**
   * The file system one tool call sees, given its session's workspace; optional (the workspace
   * itself when absent). Lets a decorator know which call an operation belongs to, for example to
   * give a pending approval a deterministic id that a re-run of the call after a crash finds again.
   */
  forToolCall?(workspace: SessionFileSystem, scope: ToolCallScope): SessionFileSystem;
}

const WINDOWS_DRIVE = /^[a-zA-Z]:/;

/** Default of {@link WorkspacePathLimits.maxLength}: 4,096 characters, as Linux's `PATH_MAX`. */
export const DEFAULT_MAX_PATH_LENGTH = 4_096;
/** Default of {@link WorkspacePathLimits.maxDepth}: 256 segments. */
export const DEFAULT_MAX_PATH_DEPTH = 256;

/** Bounds {@link normalizeWorkspacePath} applies before it looks at a path's segments. */
export interface WorkspacePathLimits {
  /** Longest path accepted, in characters. Default {@link DEFAULT_MAX_PATH_LENGTH}. */
  maxLength?: number;
  /** Most segments a normalised path may have. Default {@link DEFAULT_MAX_PATH_DEPTH}. */
  maxDepth?: number;
}

/**
 * Normalises a workspace path: a leading slash is added, `/workspace` is stripped, `.` and
 * repeated slashes are dropped, a trailing slash is removed. Rejects with `INVALID_PATH` empty or
 * whitespace-only paths, NUL and other control characters, `..` segments, backslashes and Windows
 * drive or UNC forms, and paths longer than `limits.maxLength` or deeper than `limits.maxDepth`
 * (`details.limit` names the bound). `/` is the root.
 */
export function normalizeWorkspacePath(path: string, limits: WorkspacePathLimits = {}): string {
  if (typeof path !== 'string') throw new TypeError('path must be a string');
  const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
  const invalid = (reason: string, details: Record<string, unknown> = {}) =>
    new EverrunsError({
      code: 'INVALID_PATH',
      message: `Invalid path ${JSON.stringify(shown)}: ${reason}`,
      details: { path: shown, ...details },
    });
  const maxLength = limits.maxLength ?? DEFAULT_MAX_PATH_LENGTH;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_PATH_DEPTH;
  if (path.length > maxLength) {
    throw invalid(`${path.length} characters long; the limit is ${maxLength}`, {
      limit: 'maxPathLength',
      maxLength,
      length: path.length,
    });
  }
  if (path.trim() === '') throw invalid('empty');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused
  if (/[\u0000-\u001f\u007f]/.test(path)) throw invalid('control characters are not allowed');
  if (path.includes('\\')) throw invalid('backslashes are not allowed');
  if (WINDOWS_DRIVE.test(path)) throw invalid('drive letters are not allowed');
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') throw invalid('".." segments are not allowed');
    segments.push(segment);
  }
  if (segments[0] === 'workspace') segments.shift();
  if (segments.length > maxDepth) {
    throw invalid(`${segments.length} segments deep; the limit is ${maxDepth}`, {
      limit: 'maxPathDepth',
      maxDepth,
      depth: segments.length,
    });
  }
  return `/${segments.join('/')}`;
}

/** Parent of a normalised path (`/` for top-level entries and for `/`). */
export function parentWorkspacePath(path: string): string {
  const index = path.lastIndexOf('/');
  return index <= 0 ? '/' : path.slice(0, index);
}

/** Last segment of a normalised path (`''` for `/`). */
export function workspaceBaseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * Compiles a glob (`**` any depth, `*` within a segment, `?` one character) to a RegExp that
 * matches normalised workspace paths. A pattern without a leading slash matches at any depth.
 *
 * @deprecated The RegExp backtracks: a glob of many `**` over a long path takes time exponential
 * in their count. Match untrusted globs with `compileGlob`, which is linear.
 */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  const anchored = pattern.startsWith('/');
  const body = anchored ? pattern.slice(1) : pattern;
  for (let index = 0; index < body.length; index++) {
    const char = body[index] as string;
    if (char === '*') {
      if (body[index + 1] === '*') {
        index++;
        if (body[index + 1] === '/') {
          index++;
          source += '(?:.*/)?';
        } else source += '.*';
      } else source += '[^/]*';
    } else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(anchored ? `^/${source}$` : `^(?:.*/)?${source}$`);
}
