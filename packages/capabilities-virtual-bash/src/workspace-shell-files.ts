import {
  EverrunsError,
  type FileStat,
  normalizeWorkspacePath,
  type SessionFileSystem,
} from '@everruns-ts/core';

/** Content of a write as the worker sends it: UTF-8 text, or bytes. */
export type ShellWritePayload = { text: string } | { bytes: Uint8Array };

/** The stat shape just-bash reads (`mtime` travels as an ISO string and becomes a Date in the worker). */
export interface ShellStat {
  isFile: boolean;
  isDirectory: boolean;
  isSymbolicLink: false;
  mode: number;
  size: number;
  mtime: string;
}

/** An error the shell prints, with the errno code just-bash recognises (`ENOENT`, `EACCES`…). */
export class ShellFileError extends Error {
  readonly errno: string;
  constructor(errno: string, message: string) {
    super(`${errno}: ${message}`);
    this.errno = errno;
  }
}

const ERRNO_BY_CODE: Record<string, string> = {
  FILE_NOT_FOUND: 'ENOENT',
  IS_A_DIRECTORY: 'EISDIR',
  NOT_A_DIRECTORY: 'ENOTDIR',
  FILE_ALREADY_EXISTS: 'EEXIST',
  FILE_READ_ONLY: 'EACCES',
  WRITE_BLOCKED: 'EACCES',
  APPROVAL_DENIED: 'EACCES',
  PATH_OUTSIDE_ROOT: 'EACCES',
  NOT_A_REGULAR_FILE: 'EACCES',
  INVALID_PATH: 'EINVAL',
  FILE_TOO_LARGE: 'EFBIG',
};

const REFUSALS = new Set(['EACCES', 'EPERM', 'EFBIG', 'EIO']);

/** Operations that see the pending empty files themselves; every other one writes them first. */
const PENDING_AWARE = new Set(['readFileBuffer', 'writeFile', 'appendFile', 'exists', 'stat']);

/** The shell's bit bucket: writes vanish, reads are empty; it is never a workspace file. */
const DEV_NULL = '/dev/null';

/**
 * Performs the file operations of a shell run on a session's {@link SessionFileSystem}. Shell
 * paths are workspace paths: the workspace is the shell's `/`, and `/workspace/x` is `/x` as for
 * the file tools (see `normalizeWorkspacePath`). Every operation goes through the given file
 * system, so the workspace's own rules apply unchanged: the real disk's refusal of links leaving
 * the root, the approval gate, the write blocklist, read-only files. Symbolic and hard links
 * cannot be created (the workspace contract has none); `chmod` and `touch` on an existing path
 * change nothing, as upstream's adapter.
 */
export class WorkspaceShellFiles {
  readonly #fileSystem: SessionFileSystem;
  readonly #signal: AbortSignal | undefined;
  /** Workspace paths truncated or created empty by the shell and not written yet. */
  readonly #pending = new Set<string>();

  constructor(fileSystem: SessionFileSystem, signal?: AbortSignal) {
    this.#fileSystem = fileSystem;
    this.#signal = signal;
  }

  /**
   * The messages of the operations the workspace refused (a blocked or denied write, a link
   * leaving the root…), at most ten, without repeats. just-bash's commands print most failures
   * as "No such file or directory"; the tool adds these to stderr so the model sees the reason.
   */
  readonly refusals: string[] = [];

  /** Runs one operation the worker asked for; failures are {@link ShellFileError}s. */
  async perform(op: string, args: readonly unknown[]): Promise<unknown> {
    try {
      return await this.#dispatch(op, args);
    } catch (error) {
      const shellError = toShellError(error, args[0]);
      this.#recordRefusal(shellError);
      throw shellError;
    }
  }

  /**
   * Writes the empty files still pending (see {@link #write}); a refusal is recorded in
   * {@link refusals}. Called before any operation that could see them otherwise, and by the
   * runner when the script has ended.
   */
  async flush(): Promise<void> {
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const target of pending) {
      try {
        await this.#fileSystem.writeFile(target, '');
      } catch (error) {
        this.#recordRefusal(toShellError(error, target));
      }
    }
  }

  #recordRefusal(error: ShellFileError): void {
    if (
      REFUSALS.has(error.errno) &&
      this.refusals.length < 10 &&
      !this.refusals.includes(error.message)
    ) {
      this.refusals.push(error.message);
    }
  }

  async #dispatch(op: string, args: readonly unknown[]): Promise<unknown> {
    const path = asPath(args[0]);
    if (!PENDING_AWARE.has(op)) await this.flush();
    switch (op) {
      case 'readFileBuffer':
        return this.#readBytes(path);
      case 'writeFile':
        return this.#write(path, args[1] as ShellWritePayload, false);
      case 'appendFile':
        return this.#write(path, args[1] as ShellWritePayload, true);
      case 'exists':
        return this.#exists(path);
      case 'stat':
        return this.#stat(path);
      case 'mkdir':
        return this.#mkdir(path, (args[1] as { recursive?: boolean } | undefined)?.recursive);
      case 'readdir':
        return (await this.#list(path)).map((entry) => entry.name);
      case 'readdirWithFileTypes':
        return (await this.#list(path)).map((entry) => ({
          name: entry.name,
          isFile: !entry.isDirectory,
          isDirectory: entry.isDirectory,
          isSymbolicLink: false,
        }));
      case 'rm':
        return this.#remove(path, args[1] as { recursive?: boolean; force?: boolean } | undefined);
      case 'cp':
        return this.#copy(
          path,
          asPath(args[1]),
          (args[2] as { recursive?: boolean } | undefined)?.recursive === true,
        );
      case 'mv':
        await this.#fileSystem.moveFile(workspacePath(path), workspacePath(asPath(args[1])), {
          overwrite: true,
        });
        return undefined;
      case 'touchExisting':
        await this.#stat(path);
        return undefined;
      case 'symlink':
        throw new ShellFileError(
          'EPERM',
          `links are not supported in the session workspace: ${path}`,
        );
      case 'readlink':
        await this.#stat(path);
        throw new ShellFileError('EINVAL', `not a symbolic link: ${path}`);
      case 'realpath':
        await this.#stat(path);
        return path === DEV_NULL ? path : workspacePath(path);
      default:
        throw new ShellFileError('ENOSYS', `unsupported file operation ${op}`);
    }
  }

  async #readBytes(path: string): Promise<Uint8Array> {
    if (path === DEV_NULL || this.#pending.has(workspacePath(path))) return new Uint8Array(0);
    const file = await this.#fileSystem.readFile(workspacePath(path), { signal: this.#signal });
    return file.encoding === 'base64'
      ? new Uint8Array(Buffer.from(file.content, 'base64'))
      : new Uint8Array(Buffer.from(file.content, 'utf8'));
  }

  async #write(path: string, payload: ShellWritePayload, appending: boolean): Promise<void> {
    let append = appending;
    if (path === DEV_NULL) return;
    const target = workspacePath(path);
    const text = 'text' in payload ? payload.text : decodeUtf8(payload.bytes);
    // A redirection opens its target by writing (`>`) or appending (`>>`) nothing before the
    // command's output is written. Writing that at once would ask an approval gate twice and
    // store an empty file between, so the empty file is only noted; the next write of the path
    // replaces it, and `flush` writes it when nothing came (`: > file`).
    if (text === '') {
      if (!append) this.#pending.add(target);
      else if (!this.#pending.has(target) && (await this.#fileSystem.statFile(target)) === null) {
        this.#pending.add(target);
      }
      return;
    }
    if (this.#pending.delete(target)) append = false;
    if (text !== null) {
      if (append) await this.#fileSystem.appendFile(target, text);
      else await this.#fileSystem.writeFile(target, text);
      return;
    }
    const bytes = (payload as { bytes: Uint8Array }).bytes;
    let whole = Buffer.from(bytes);
    if (append && (await this.#fileSystem.statFile(target)) !== null) {
      whole = Buffer.concat([Buffer.from(await this.#readBytes(path)), whole]);
    }
    await this.#fileSystem.writeFile(target, whole.toString('base64'), 'base64');
  }

  async #exists(path: string): Promise<boolean> {
    if (path === DEV_NULL || this.#pending.has(workspacePath(path))) return true;
    try {
      return (await this.#fileSystem.statFile(workspacePath(path))) !== null;
    } catch (error) {
      // Something is there that the workspace refuses (a link leaving a real-disk root): say it
      // exists, so the command's next step meets the refusal and prints it.
      return !(
        error instanceof EverrunsError &&
        ['FILE_NOT_FOUND', 'NOT_A_DIRECTORY', 'INVALID_PATH'].includes(error.code)
      );
    }
  }

  async #stat(path: string): Promise<ShellStat> {
    if (path === DEV_NULL) {
      return {
        isFile: true,
        isDirectory: false,
        isSymbolicLink: false,
        mode: 0o666,
        size: 0,
        mtime: new Date(0).toISOString(),
      };
    }
    const target = workspacePath(path);
    if (this.#pending.has(target)) {
      return {
        isFile: true,
        isDirectory: false,
        isSymbolicLink: false,
        mode: 0o644,
        size: 0,
        mtime: new Date().toISOString(),
      };
    }
    const stat = await this.#fileSystem.statFile(target);
    if (!stat) throw new ShellFileError('ENOENT', `no such file or directory: ${path}`);
    return shellStat(stat);
  }

  async #mkdir(path: string, recursive: boolean | undefined): Promise<void> {
    const target = workspacePath(path);
    const existing = await this.#fileSystem.statFile(target);
    if (existing) {
      if (recursive && existing.isDirectory) return;
      throw new ShellFileError('EEXIST', `file exists: ${path}`);
    }
    if (!recursive) {
      const parent = target.slice(0, target.lastIndexOf('/')) || '/';
      const parentStat = await this.#fileSystem.statFile(parent);
      if (!parentStat) throw new ShellFileError('ENOENT', `no such file or directory: ${parent}`);
      if (!parentStat.isDirectory)
        throw new ShellFileError('ENOTDIR', `not a directory: ${parent}`);
    }
    await this.#fileSystem.createDirectory(target);
  }

  async #list(path: string): Promise<FileStat[]> {
    const target = workspacePath(path);
    const stat = await this.#fileSystem.statFile(target);
    if (!stat) throw new ShellFileError('ENOENT', `no such file or directory: ${path}`);
    if (!stat.isDirectory) throw new ShellFileError('ENOTDIR', `not a directory: ${path}`);
    return this.#fileSystem.listDirectory(target);
  }

  async #remove(
    path: string,
    options: { recursive?: boolean; force?: boolean } | undefined,
  ): Promise<void> {
    if (path === DEV_NULL) throw new ShellFileError('EPERM', `operation not permitted: ${path}`);
    const removed = await this.#fileSystem.deleteFile(
      workspacePath(path),
      options?.recursive === true,
    );
    if (removed) return;
    // A non-empty directory without `recursive` is kept and answered with false by the store.
    if ((await this.#fileSystem.statFile(workspacePath(path)))?.isDirectory) {
      throw new ShellFileError('ENOTEMPTY', `directory not empty: ${path}`);
    }
    if (options?.force !== true) {
      throw new ShellFileError('ENOENT', `no such file or directory: ${path}`);
    }
  }

  async #copy(source: string, destination: string, recursive: boolean): Promise<void> {
    const from = workspacePath(source);
    const to = workspacePath(destination);
    const stat = await this.#fileSystem.statFile(from);
    if (!stat) throw new ShellFileError('ENOENT', `no such file or directory: ${source}`);
    if (!stat.isDirectory) {
      const file = await this.#fileSystem.readFile(from, { signal: this.#signal });
      await this.#fileSystem.writeFile(to, file.content, file.encoding);
      return;
    }
    if (!recursive) throw new ShellFileError('EISDIR', `is a directory: ${source}`);
    if (to === from || to.startsWith(`${from}/`)) {
      throw new ShellFileError('EINVAL', `cannot copy a directory into itself: ${source}`);
    }
    await this.#fileSystem.createDirectory(to);
    for (const entry of await this.#fileSystem.listDirectory(from)) {
      await this.#copy(`${from}/${entry.name}`, `${to === '/' ? '' : to}/${entry.name}`, true);
    }
  }
}

function asPath(value: unknown): string {
  if (typeof value !== 'string') throw new ShellFileError('EINVAL', 'a path must be a string');
  return value;
}

/** The workspace path of a shell path (the workspace is the shell's root). */
function workspacePath(path: string): string {
  return normalizeWorkspacePath(path);
}

function shellStat(stat: FileStat): ShellStat {
  return {
    isFile: !stat.isDirectory,
    isDirectory: stat.isDirectory,
    isSymbolicLink: false,
    mode: stat.isDirectory ? 0o755 : stat.isReadonly ? 0o444 : 0o644,
    size: stat.size,
    mtime: stat.updatedAt,
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

function toShellError(error: unknown, path: unknown): ShellFileError {
  if (error instanceof ShellFileError) return error;
  if (error instanceof EverrunsError) {
    const errno = ERRNO_BY_CODE[error.code] ?? 'EIO';
    return new ShellFileError(errno, error.message);
  }
  const shown = typeof path === 'string' ? path : '?';
  return new ShellFileError(
    'EIO',
    `${shown}: ${error instanceof Error ? error.message : String(error)}`,
  );
}
