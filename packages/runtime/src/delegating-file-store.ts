import {
  type FileContent,
  type FileEncoding,
  type FileStat,
  type GrepMatch,
  type GrepOptions,
  type InitialFile,
  normalizeWorkspacePath,
  type ReadFileOptions,
  type SessionFileSystem,
} from '@everruns-ts/core';

/**
 * A store that can say which real workspace path a path leads to (symbolic links resolved), as
 * `RealDiskFileStore` does. The file-store decorators use it when the inner store has it.
 */
export interface RealPathResolver {
  resolveRealPath(path: string): Promise<string>;
}

/** Whether `store` can resolve real paths ({@link RealPathResolver}). */
export function hasRealPathResolver(
  store: SessionFileSystem,
): store is SessionFileSystem & RealPathResolver {
  return typeof (store as Partial<RealPathResolver>).resolveRealPath === 'function';
}

/**
 * The base of a file-store decorator: every `SessionFileSystem` method, and `resolveRealPath`,
 * passes to the inner store unchanged. A decorator extends it and overrides only the methods it
 * guards.
 */
export class DelegatingFileStore implements SessionFileSystem, RealPathResolver {
  /** The decorated store. */
  protected readonly inner: SessionFileSystem;

  constructor(inner: SessionFileSystem) {
    this.inner = inner;
  }

  /** Passes through. */
  readFile(path: string, options?: ReadFileOptions): Promise<FileContent> {
    return this.inner.readFile(path, options);
  }

  /** Passes through. */
  writeFile(path: string, content: string, encoding?: FileEncoding): Promise<FileStat> {
    return this.inner.writeFile(path, content, encoding);
  }

  /** Passes through. */
  writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding?: FileEncoding,
  ): Promise<FileStat> {
    return this.inner.writeFileIfContentMatches(path, expected, content, encoding);
  }

  /** Passes through. */
  editFile(
    path: string,
    oldText: string,
    newText: string,
    options?: { replaceAll?: boolean },
  ): Promise<FileStat> {
    return this.inner.editFile(path, oldText, newText, options);
  }

  /** Passes through. */
  appendFile(path: string, content: string): Promise<FileStat> {
    return this.inner.appendFile(path, content);
  }

  /** Passes through. */
  deleteFile(path: string, recursive?: boolean): Promise<boolean> {
    return this.inner.deleteFile(path, recursive);
  }

  /** Passes through. */
  moveFile(from: string, to: string, options?: { overwrite?: boolean }): Promise<FileStat> {
    return this.inner.moveFile(from, to, options);
  }

  /** Passes through. */
  listDirectory(path: string): Promise<FileStat[]> {
    return this.inner.listDirectory(path);
  }

  /** Passes through. */
  statFile(path: string): Promise<FileStat | null> {
    return this.inner.statFile(path);
  }

  /** Passes through. */
  globFiles(pattern: string, options?: { signal?: AbortSignal }): Promise<FileStat[]> {
    return this.inner.globFiles(pattern, options);
  }

  /** Passes through. */
  grepFiles(pattern: string, pathPattern?: string, options?: GrepOptions): Promise<GrepMatch[]> {
    return this.inner.grepFiles(pattern, pathPattern, options);
  }

  /** Passes through. */
  createDirectory(path: string): Promise<FileStat> {
    return this.inner.createDirectory(path);
  }

  /** Passes through. */
  seedInitialFile(file: InitialFile): Promise<void> {
    return this.inner.seedInitialFile(file);
  }

  /** The inner store's real path of `path` (links resolved), or the normalised path. */
  resolveRealPath(path: string): Promise<string> {
    if (hasRealPathResolver(this.inner)) return this.inner.resolveRealPath(path);
    return Promise.resolve(normalizeWorkspacePath(path));
  }
}
