import {
  type DESTRUCTIVE_FILE_OPERATIONS,
  EverrunsError,
  type FileEncoding,
  type FileStat,
  newId,
  normalizeWorkspacePath,
  replaceExactText,
  type SessionFileSystem,
} from '@everruns-ts/core';
import { DelegatingFileStore } from './delegating-file-store.js';

/** A destructive operation of the contract (see `DESTRUCTIVE_FILE_OPERATIONS` in core). */
export type DestructiveFileOperation = (typeof DESTRUCTIVE_FILE_OPERATIONS)[number];

/**
 * What a {@link FileApprovalGate} is asked: one operation that creates or changes a file, with
 * what it would do, including the file's content before and after so the gate can show a diff.
 * Plain JSON, so a gate can persist it and ask a human later.
 */
export type FileApprovalRequest = {
  operation: DestructiveFileOperation;
  /** Normalised workspace path the operation changes (the source of a move). */
  path: string;
  /** Target of a move. */
  toPath?: string;
  /** The session the workspace belongs to (`''` when the store was not told). */
  sessionId: string;
  /** Id of this request; deterministic when the store's `approvalId` option computes it. */
  approvalId: string;
  /** New content of `writeFile` and `writeFileIfContentMatches`, text appended by `appendFile`. */
  content?: string;
  /** Encoding of `content`. */
  encoding?: FileEncoding;
  /** Text `editFile` replaces, and what replaces it. */
  oldText?: string;
  newText?: string;
  replaceAll?: boolean;
  /** Whether `deleteFile` removes a directory with its contents. */
  recursive?: boolean;
  /** Whether `moveFile` replaces an existing target. */
  overwrite?: boolean;
  /**
   * The file's whole content before the operation (in `encoding` for writes, text for edits and
   * appends, the stored encoding for deletes); `null` when the file does not exist yet, so the
   * operation creates it. Absent for directories, moves, and files too large to read.
   */
  before?: string | null;
  /** The file's whole content after the operation; `null` when the operation deletes it. Absent with `before`. */
  after?: string | null;
};

/** A gate's answer: `approve`, `deny`, or either with a reason shown with the denial. */
export type FileApprovalGateResult =
  | 'approve'
  | 'deny'
  | { decision: 'approve' | 'deny'; reason?: string };

/**
 * The embedder's decision on a destructive file operation: a terminal prompt, a web page, a
 * policy, `DurableFileApprovals.gateFor(scope)`. Anything but an approval denies. A gate that
 * throws fails the operation with its error; nothing changes either way.
 */
export type FileApprovalGate = (
  request: FileApprovalRequest,
  options?: FileApprovalGateOptions,
) => Promise<FileApprovalGateResult> | FileApprovalGateResult;

/** What a {@link FileApprovalGate} is given beside the request. */
export interface FileApprovalGateOptions {
  /**
   * Fires when the tool call that asks is cancelled (its turn aborted, its timeout passed): the
   * question is moot, whatever the gate answers afterwards changes nothing.
   */
  signal?: AbortSignal;
}

/** Options of {@link ApprovalGatingFileStore}. */
export interface ApprovalGatingFileStoreOptions {
  /** Session id put in every request. Default `''`. */
  sessionId?: string;
  /**
   * Computes the approval id of a request; `occurrence` counts the requests for the same
   * operation made through this store, from 1 (so a re-run of the same calls gets the same ids).
   * Default: a fresh `appr_…` id per request.
   */
  approvalId?: (request: Omit<FileApprovalRequest, 'approvalId'>, occurrence: number) => string;
  /**
   * The cancellation of the tool call this store serves (`ToolCallScope.signal`, when the store
   * is made in `SessionFileSystemFactory.forToolCall`). Once it fires, a pending question is given
   * up: the operation rejects with `ABORTED` and never runs, even when the gate approves later.
   */
  signal?: AbortSignal;
}

/**
 * A decorator that makes writes and destructive operations wait for the embedder's
 * {@link FileApprovalGate}, as upstream's: creating or replacing a file (`writeFile`,
 * `writeFileIfContentMatches`, `appendFile`), `editFile`, `deleteFile` of something that exists,
 * and `moveFile`. Each request of a write carries the content `before` (`null` for a new file)
 * and `after`, so the gate can show a diff. `createDirectory`, `seedInitialFile` and every read
 * pass straight through, and so does an operation the inner store is bound to refuse (on a
 * read-only file or a directory, an edit whose text does not match), so nobody is asked about
 * it. A denial throws `EverrunsError` `APPROVAL_DENIED` (a tool error for the model) and changes
 * nothing.
 *
 * An approved new file is created with compare-and-set (`expected: null`), so a file that
 * appears between the question and the write is never replaced without a second question.
 *
 * @example
 * const files = new ApprovalGatingFileStore(new WriteBlocklistFileStore(realDisk), async (request) =>
 *   request.operation === 'deleteFile' ? 'deny' : 'approve',
 * );
 */
export class ApprovalGatingFileStore extends DelegatingFileStore {
  readonly #gate: FileApprovalGate;
  readonly #sessionId: string;
  readonly #approvalId: ApprovalGatingFileStoreOptions['approvalId'];
  readonly #occurrences = new Map<string, number>();
  readonly #signal: AbortSignal | undefined;

  constructor(
    inner: SessionFileSystem,
    gate: FileApprovalGate,
    options: ApprovalGatingFileStoreOptions = {},
  ) {
    super(inner);
    if (typeof gate !== 'function') throw new TypeError('gate must be a function');
    this.#gate = gate;
    this.#sessionId = options.sessionId ?? '';
    this.#approvalId = options.approvalId;
    this.#signal = options.signal;
  }

  /** Asks the gate, with `before: null` for a new file and the current content otherwise. */
  override async writeFile(
    path: string,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const existing = await this.inner.statFile(normalized);
    const question = { operation: 'writeFile' as const, path: normalized, content, encoding };
    if (existing === null) {
      await this.#ask({ ...question, before: null, after: content });
      try {
        return await this.inner.writeFileIfContentMatches(normalized, null, content, encoding);
      } catch (error) {
        if (!EverrunsError.hasCode(error, 'CONTENT_MISMATCH')) throw error;
        // Created meanwhile: replacing it is another question.
      }
    } else if (existing.isDirectory || existing.isReadonly) {
      return this.inner.writeFile(normalized, content, encoding);
    }
    await this.#ask({ ...question, ...(await this.#change(normalized, encoding, () => content)) });
    return this.inner.writeFile(normalized, content, encoding);
  }

  /**
   * `expected: null` asks (with `before: null`) when the file does not exist; when it does, the
   * inner store refuses without a question. Otherwise the content is compared first (a mismatch
   * is `CONTENT_MISMATCH` without asking), then the gate is asked.
   */
  override async writeFileIfContentMatches(
    path: string,
    expected: string | null,
    content: string,
    encoding: FileEncoding = 'text',
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    if (expected === null) {
      if ((await this.inner.statFile(normalized)) === null) {
        await this.#ask({
          operation: 'writeFileIfContentMatches',
          path: normalized,
          content,
          encoding,
          before: null,
          after: content,
        });
      }
      return this.inner.writeFileIfContentMatches(normalized, null, content, encoding);
    }
    const existing = await this.inner.statFile(normalized);
    if (existing === null || existing.isDirectory || existing.isReadonly) {
      return this.inner.writeFileIfContentMatches(normalized, expected, content, encoding);
    }
    const current = await this.inner.readFile(normalized, { encoding });
    if (current.content !== expected) {
      throw new EverrunsError({
        code: 'CONTENT_MISMATCH',
        message: `${normalized} does not hold the expected content`,
        details: { path: normalized, exists: true },
      });
    }
    await this.#ask({
      operation: 'writeFileIfContentMatches',
      path: normalized,
      content,
      encoding,
      before: current.content,
      after: content,
    });
    return this.inner.writeFileIfContentMatches(normalized, expected, content, encoding);
  }

  /**
   * Asks the gate when the file exists and the edit applies (a missing file or text that does not
   * match fails in the inner store without a question).
   */
  override async editFile(
    path: string,
    oldText: string,
    newText: string,
    options: { replaceAll?: boolean } = {},
  ): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const existing = await this.inner.statFile(normalized);
    if (existing !== null && !existing.isDirectory && !existing.isReadonly) {
      const replaceAll = options.replaceAll ?? false;
      let change: Pick<FileApprovalRequest, 'before' | 'after'> | undefined;
      try {
        change = await this.#change(normalized, 'text', (before) =>
          replaceExactText(normalized, before, oldText, newText, replaceAll),
        );
      } catch (error) {
        if (!EverrunsError.hasCode(error, 'CONTENT_MISMATCH')) throw error;
      }
      if (change) {
        await this.#ask({
          operation: 'editFile',
          path: normalized,
          oldText,
          newText,
          replaceAll,
          ...change,
        });
      }
    }
    return this.inner.editFile(normalized, oldText, newText, options);
  }

  /** Asks the gate, with `before: null` when the append creates the file. */
  override async appendFile(path: string, content: string): Promise<FileStat> {
    const normalized = normalizeWorkspacePath(path);
    const existing = await this.inner.statFile(normalized);
    const question = { operation: 'appendFile' as const, path: normalized, content };
    if (existing === null) {
      await this.#ask({ ...question, encoding: 'text', before: null, after: content });
      try {
        return await this.inner.writeFileIfContentMatches(normalized, null, content, 'text');
      } catch (error) {
        if (!EverrunsError.hasCode(error, 'CONTENT_MISMATCH')) throw error;
      }
    } else if (existing.isDirectory || existing.isReadonly) {
      return this.inner.appendFile(normalized, content);
    }
    await this.#ask({
      ...question,
      encoding: 'text',
      ...(await this.#change(normalized, 'text', (before) => before + content)),
    });
    return this.inner.appendFile(normalized, content);
  }

  /** Asks the gate when something exists at `path`. */
  override async deleteFile(path: string, recursive = false): Promise<boolean> {
    const normalized = normalizeWorkspacePath(path);
    const existing = normalized === '/' ? null : await this.inner.statFile(normalized);
    if (existing !== null && !existing.isReadonly) {
      const change = existing.isDirectory
        ? {}
        : await this.#change(normalized, undefined, () => null);
      await this.#ask({ operation: 'deleteFile', path: normalized, recursive, ...change });
    }
    return this.inner.deleteFile(normalized, recursive);
  }

  /** Asks the gate when the source exists. */
  override async moveFile(
    from: string,
    to: string,
    options: { overwrite?: boolean } = {},
  ): Promise<FileStat> {
    const source = normalizeWorkspacePath(from);
    const target = normalizeWorkspacePath(to);
    const existing = source === '/' || target === '/' ? null : await this.inner.statFile(source);
    if (existing !== null && !existing.isReadonly) {
      await this.#ask({
        operation: 'moveFile',
        path: source,
        toPath: target,
        overwrite: options.overwrite ?? false,
      });
    }
    return this.inner.moveFile(source, target, options);
  }

  /**
   * The `before` and `after` of a change to an existing file: its content read in `encoding` (the
   * stored one when `undefined`) and what `apply` makes of it. Both are left out when the file is
   * too large to read.
   */
  async #change(
    path: string,
    encoding: FileEncoding | undefined,
    apply: (before: string) => string | null,
  ): Promise<Pick<FileApprovalRequest, 'before' | 'after'>> {
    let before: string;
    try {
      before = (await this.inner.readFile(path, encoding ? { encoding } : {})).content;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'FILE_TOO_LARGE')) return {};
      throw error;
    }
    return { before, after: apply(before) };
  }

  /**
   * The gate's answer, unless the call's signal fires first (or already has): then `ABORTED`, so
   * a late approval changes nothing.
   */
  async #untilCancelled(request: FileApprovalRequest): Promise<FileApprovalGateResult> {
    const signal = this.#signal;
    const cancelled = () =>
      new EverrunsError({
        code: 'ABORTED',
        message: `${request.operation} of ${request.path} was cancelled while waiting for approval`,
        details: {
          operation: request.operation,
          path: request.path,
          approvalId: request.approvalId,
        },
        cause: signal?.reason,
      });
    if (!signal) return this.#gate(request);
    if (signal.aborted) throw cancelled();
    let onAbort: (() => void) | undefined;
    try {
      const answer = await Promise.race([
        Promise.resolve(this.#gate(request, { signal })),
        new Promise<never>((_resolve, reject) => {
          onAbort = () => reject(cancelled());
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      if (signal.aborted) throw cancelled();
      return answer;
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  async #ask(question: Omit<FileApprovalRequest, 'approvalId' | 'sessionId'>): Promise<void> {
    const withoutId = { ...question, sessionId: this.#sessionId };
    const occurrence = (this.#occurrences.get(question.operation) ?? 0) + 1;
    this.#occurrences.set(question.operation, occurrence);
    const approvalId = this.#approvalId ? this.#approvalId(withoutId, occurrence) : newId('appr');
    const request: FileApprovalRequest = { ...withoutId, approvalId };
    const answer = await this.#untilCancelled(request);
    const decision = typeof answer === 'object' && answer !== null ? answer.decision : answer;
    if (decision === 'approve') return;
    const reason =
      typeof answer === 'object' && answer !== null && typeof answer.reason === 'string'
        ? answer.reason
        : undefined;
    const target =
      request.toPath === undefined ? request.path : `${request.path} to ${request.toPath}`;
    throw new EverrunsError({
      code: 'APPROVAL_DENIED',
      message: `${request.operation} of ${target} was not approved${reason ? `: ${reason}` : ''}`,
      details: {
        operation: request.operation,
        path: request.path,
        ...(request.toPath === undefined ? {} : { toPath: request.toPath }),
        approvalId,
        sessionId: this.#sessionId,
        ...(reason === undefined ? {} : { reason }),
      },
    });
  }
}
