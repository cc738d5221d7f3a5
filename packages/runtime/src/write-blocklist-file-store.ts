import {
  EverrunsError,
  type FileEncoding,
  type FileStat,
  type InitialFile,
  normalizeWorkspacePath,
  type SessionFileSystem,
} from '@everruns-ts/core';
import { DelegatingFileStore, hasRealPathResolver } from './delegating-file-store.js';

/**
 * Vendored and build directory names that {@link WriteBlocklistFileStore} keeps writes out of,
 * at any depth (the list of the upstream crate).
 */
export const DEFAULT_WRITE_BLOCKLIST: readonly string[] = Object.freeze([
  '.git',
  'node_modules',
  'target',
  'dist',
  'build',
  '.next',
  '.venv',
  'venv',
  '.tox',
  '.gradle',
]);

/** Options of {@link WriteBlocklistFileStore}. */
export interface WriteBlocklistFileStoreOptions {
  /** Names to block, replacing {@link DEFAULT_WRITE_BLOCKLIST}. Matched case-insensitively. */
  blocklist?: Iterable<string>;
}

/**
 * A decorator that refuses every change inside a blocklisted directory name at any depth
 * (`/node_modules/x`, `/pkg/.git/HEAD`, and the directory itself): `writeFile`,
 * `writeFileIfContentMatches`, `editFile`, `appendFile`, `deleteFile`, `moveFile` (source and
 * target), `createDirectory` and `seedInitialFile` throw `EverrunsError` `WRITE_BLOCKED`. Reads,
 * listings, stat, glob and grep pass through.
 *
 * Names match case-insensitively (`.GIT` is `.git`, as on a case-insensitive disk). When the
 * inner store can resolve real paths (`resolveRealPath`, as `RealDiskFileStore`), the real path
 * is checked too, so a symbolic link `/alias` → `/.git` does not open a way in. `..` never
 * reaches the check: path normalisation refuses it first. The check and the inner write are two
 * steps; a link created in between by another process is the inner store's business.
 *
 * @example
 * const files = new WriteBlocklistFileStore(realDisk).withBlocklist(['.git', 'secrets']);
 */
export class WriteBlocklistFileStore extends DelegatingFileStore {
  /** The blocked names, lower-cased. */
  readonly blocklist: readonly string[];
  readonly #blocked: ReadonlySet<string>;

  constructor(inner: SessionFileSystem, options: WriteBlocklistFileStoreOptions = {}) {
    super(inner);
    const names = [...(options.blocklist ?? DEFAULT_WRITE_BLOCKLIST)];
    for (const name of names) {
      if (typeof name !== 'string' || name === '' || name.includes('/')) {
        throw new EverrunsError({
          code: 'CONFIGURATION',
          message: `Blocklist entries must be single directory names, got ${JSON.stringify(name)}`,
        });
      }
    }
    this.blocklist = Object.freeze([...new Set(names.map((name) => name.toLowerCase()))]);
    this.#blocked = new Set(this.blocklist);
  }

  /** A store over the same inner store with `names` as the whole blocklist (replacing this one's). */
  withBlocklist(names: Iterable<string>): WriteBlocklistFileStore {
    return new WriteBlocklistFileStore(this.inner, { blocklist: names });
  }

  /** Throws `WRITE_BLOCKED` inside a blocklisted directory. */
  override async writeFile(
    path: string,
    content: string,
    encoding?: FileEncoding,
  ): Promise<FileStat> {
    await this.#check('writeFile', path);
    return this.inner.writeFile(path, content, encoding);
  }

  /** Throws `WRITE_BLOCKED` inside a blocklisted directory. */
  override async writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding?: FileEncoding,
  ): Promise<FileStat> {
    await this.#check('writeFileIfContentMatches', path);
    return this.inner.writeFileIfContentMatches(path, expected, content, encoding);
  }

  /** Throws `WRITE_BLOCKED` inside a blocklisted directory. */
  override async editFile(
    path: string,
    oldText: string,
    newText: string,
    options?: { replaceAll?: boolean },
  ): Promise<FileStat> {
    await this.#check('editFile', path);
    return this.inner.editFile(path, oldText, newText, options);
  }

  /** Throws `WRITE_BLOCKED` inside a blocklisted directory. */
  override async appendFile(path: string, content: string): Promise<FileStat> {
    await this.#check('appendFile', path);
    return this.inner.appendFile(path, content);
  }

  /** Throws `WRITE_BLOCKED` for a blocklisted directory or anything inside one. */
  override async deleteFile(path: string, recursive?: boolean): Promise<boolean> {
    await this.#check('deleteFile', path);
    return this.inner.deleteFile(path, recursive);
  }

  /** Throws `WRITE_BLOCKED` when the source or the target is (inside) a blocklisted directory. */
  override async moveFile(
    from: string,
    to: string,
    options?: { overwrite?: boolean },
  ): Promise<FileStat> {
    await this.#check('moveFile', from);
    await this.#check('moveFile', to);
    return this.inner.moveFile(from, to, options);
  }

  /** Throws `WRITE_BLOCKED` for a blocklisted directory or anything inside one. */
  override async createDirectory(path: string): Promise<FileStat> {
    await this.#check('createDirectory', path);
    return this.inner.createDirectory(path);
  }

  /** Throws `WRITE_BLOCKED` inside a blocklisted directory. */
  override async seedInitialFile(file: InitialFile): Promise<void> {
    await this.#check('seedInitialFile', file.path);
    return this.inner.seedInitialFile(file);
  }

  async #check(operation: string, path: string): Promise<void> {
    const normalized = normalizeWorkspacePath(path);
    this.#checkSegments(operation, normalized, normalized);
    if (hasRealPathResolver(this.inner)) {
      const real = await this.inner.resolveRealPath(normalized);
      if (real !== normalized) this.#checkSegments(operation, normalized, real);
    }
  }

  #checkSegments(operation: string, path: string, checked: string): void {
    for (const segment of checked.split('/')) {
      if (segment === '' || !this.#blocked.has(segment.toLowerCase())) continue;
      const via = checked === path ? '' : ` (it leads to ${checked})`;
      throw new EverrunsError({
        code: 'WRITE_BLOCKED',
        message: `Changing ${path} is blocked: writes into ${segment}/ are not allowed${via}`,
        details: {
          operation,
          path,
          ...(checked === path ? {} : { realPath: checked }),
          blockedName: segment,
        },
      });
    }
  }
}
