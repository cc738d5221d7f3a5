import {
  type EventBus,
  EverrunsError,
  type SessionFileSystem,
  type SessionStorageStore,
  type ToolCallScope,
} from '@everruns-ts/core';
import { ApprovalGatingFileStore } from './approval-gating-file-store.js';

/** A decision on a destructive file operation. */
export type FileApprovalDecision = 'approve' | 'deny';

/** What an approval gate is asked: a destructive operation on a workspace path. */
export interface FileApprovalQuestion {
  /** The operation, for example `deleteFile` or `writeFile`. */
  operation: string;
  /** The workspace path it touches. */
  path: string;
  /** Anything else the gating store says about it (kept when it is plain JSON). */
  [key: string]: unknown;
}

/** A persisted approval request and, once made, its decision. */
export interface FileApprovalRecord {
  /** `sessionId/turnId/toolCallId/operation` (with `#n` for the n-th same operation of one call). */
  approvalId: string;
  sessionId: string;
  turnId: string;
  toolCallId: string;
  operation: string;
  path: string;
  /**
   * `cancelled`: the tool call's signal fired while it waited, so nothing awaits a decision any
   * more (a re-run of the same call, after a host retry, opens it again as `pending`).
   */
  status: 'pending' | 'approved' | 'denied' | 'cancelled';
  /** What the gate was asked, as plain JSON. */
  request: Record<string, unknown>;
  requestedAt: string;
  decidedAt?: string;
  /** When the wait was given up (status `cancelled`). */
  cancelledAt?: string;
  /** Why the wait was given up: the abort reason's message (status `cancelled`). */
  cancelReason?: string;
}

/** The reserved session-storage key prefix of approval records. */
export const FILE_APPROVAL_KEY_PREFIX = 'everruns:runtime/approval/';

/** Options of {@link DurableFileApprovals}. */
export interface DurableFileApprovalsOptions {
  /** Where records live: the session storage store of the backends (PostgreSQL makes them durable). */
  storage: SessionStorageStore;
  /** Receives `approval.requested` and `approval.decided`. */
  events?: EventBus;
  /** How often a waiting gate looks for a decision made by another process. Default 250 ms. */
  pollIntervalMs?: number;
}

/**
 * File approvals that survive a restart. Each destructive operation a tool call asks about gets a
 * deterministic approval id, `sessionId/turnId/toolCallId/operation`, and a record in the session
 * storage store. A re-run of the call after a crash asks with the same id, finds the same record
 * (no second `approval.requested`) and goes on waiting for, or applies, its decision. A gate only
 * answers `approve` for a record whose decision `approve` is stored: nothing runs without a
 * recorded decision.
 *
 * Wire it in through `SessionFileSystemFactory.forToolCall`:
 *
 * ```ts
 * const approvals = new DurableFileApprovals({ storage: backends.storage, events: backends.events });
 * const fileSystems: SessionFileSystemFactory = {
 *   forSession: (sessionId) => workspaces.forSession(sessionId),
 *   forToolCall: (workspace, scope) => approvals.gatedFileSystem(workspace, scope),
 * };
 * ```
 */
export class DurableFileApprovals {
  readonly #storage: SessionStorageStore;
  readonly #events: EventBus | undefined;
  readonly #pollIntervalMs: number;
  readonly #wakers = new Map<string, Set<() => void>>();
  readonly #cancelling = new Set<Promise<void>>();

  constructor(options: DurableFileApprovalsOptions) {
    this.#storage = options.storage;
    this.#events = options.events;
    this.#pollIntervalMs = options.pollIntervalMs ?? 250;
  }

  /**
   * The workspace one tool call sees: an {@link ApprovalGatingFileStore} whose requests carry this
   * call's deterministic approval ids and wait on {@link DurableFileApprovals.gateFor}.
   */
  gatedFileSystem(workspace: SessionFileSystem, scope: ToolCallScope): ApprovalGatingFileStore {
    return new ApprovalGatingFileStore(workspace, this.gateFor(scope), {
      sessionId: scope.sessionId,
      ...(scope.signal ? { signal: scope.signal } : {}),
      approvalId: (request, occurrence) => fileApprovalId(scope, request.operation, occurrence),
    });
  }

  /**
   * The gate of one tool call: resolves with the recorded decision, waiting for one when the
   * request is pending. When `signal` fires before a decision, resolves `deny` and marks the
   * request `cancelled` (no longer listed by {@link DurableFileApprovals.pending}; `decide`
   * refuses it). A re-run of the same call finds the record and opens it again as `pending`.
   */
  gateFor(
    scope: ToolCallScope,
  ): (
    question: FileApprovalQuestion,
    options?: { signal?: AbortSignal },
  ) => Promise<FileApprovalDecision> {
    const asked = new Map<string, number>();
    return async (question, options = {}) => {
      const count = (asked.get(question.operation) ?? 0) + 1;
      asked.set(question.operation, count);
      const approvalId = fileApprovalId(scope, question.operation, count);
      await this.#settleCancellations();
      let record = await this.#request(scope, approvalId, question);
      if (record.status === 'cancelled') record = await this.#reopen(record);
      if (record.status !== 'pending') return record.status === 'approved' ? 'approve' : 'deny';
      return this.#waitForDecision(scope.sessionId, approvalId, options.signal);
    };
  }

  /**
   * Records a decision; the first decision of a request wins and later ones return it unchanged.
   * A `cancelled` request (its tool call was aborted while it waited) is not decided: the record
   * comes back unchanged with status `cancelled`, no `approval.decided` is emitted, and nothing
   * runs. Throws `INVALID_INPUT` for an unknown approval id.
   */
  async decide(
    sessionId: string,
    approvalId: string,
    decision: FileApprovalDecision,
  ): Promise<FileApprovalRecord> {
    if (decision !== 'approve' && decision !== 'deny') {
      throw new TypeError("decision must be 'approve' or 'deny'");
    }
    const record = await this.get(sessionId, approvalId);
    if (!record) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `No approval ${approvalId} was requested in session ${sessionId}`,
        details: { sessionId, approvalId },
      });
    }
    if (record.status !== 'pending') return record;
    const decided: FileApprovalRecord = {
      ...record,
      status: decision === 'approve' ? 'approved' : 'denied',
      decidedAt: new Date().toISOString(),
    };
    await this.#storage.setValue(sessionId, keyOf(approvalId), JSON.stringify(decided));
    await this.#events?.emit({
      type: 'approval.decided',
      sessionId,
      turnId: record.turnId,
      data: {
        approvalId,
        toolCallId: record.toolCallId,
        operation: record.operation,
        path: record.path,
        decision,
      },
    });
    for (const wake of [...(this.#wakers.get(wakerKey(sessionId, approvalId)) ?? [])]) wake();
    return decided;
  }

  /** The record of an approval id, or `null`. */
  async get(sessionId: string, approvalId: string): Promise<FileApprovalRecord | null> {
    await this.#settleCancellations();
    return this.#read(sessionId, approvalId);
  }

  async #read(sessionId: string, approvalId: string): Promise<FileApprovalRecord | null> {
    const value = await this.#storage.getValue(sessionId, keyOf(approvalId));
    return value === null ? null : (JSON.parse(value) as FileApprovalRecord);
  }

  /** The requests of a session waiting for a decision, oldest first. */
  async pending(sessionId: string): Promise<FileApprovalRecord[]> {
    await this.#settleCancellations();
    const records: FileApprovalRecord[] = [];
    for (const key of await this.#storage.listKeys(sessionId, FILE_APPROVAL_KEY_PREFIX)) {
      const value = await this.#storage.getValue(sessionId, key);
      if (value === null) continue;
      const record = JSON.parse(value) as FileApprovalRecord;
      if (record.status === 'pending') records.push(record);
    }
    return records.sort((a, b) => a.requestedAt.localeCompare(b.requestedAt));
  }

  async #request(
    scope: ToolCallScope,
    approvalId: string,
    question: FileApprovalQuestion,
  ): Promise<FileApprovalRecord> {
    const existing = await this.#read(scope.sessionId, approvalId);
    if (existing) return existing;
    const record: FileApprovalRecord = {
      approvalId,
      sessionId: scope.sessionId,
      turnId: scope.turnId,
      toolCallId: scope.toolCallId,
      operation: question.operation,
      path: question.path,
      status: 'pending',
      request: plainJson(question),
      requestedAt: new Date().toISOString(),
    };
    await this.#storage.setValue(scope.sessionId, keyOf(approvalId), JSON.stringify(record));
    await this.#events?.emit({
      type: 'approval.requested',
      sessionId: scope.sessionId,
      turnId: scope.turnId,
      data: {
        approvalId,
        toolCallId: scope.toolCallId,
        operation: question.operation,
        path: question.path,
      },
    });
    return record;
  }

  async #settleCancellations(): Promise<void> {
    while (this.#cancelling.size > 0) await Promise.all([...this.#cancelling]);
  }

  /** Marks a still-pending request `cancelled`; reads see it once the write lands. */
  #cancel(sessionId: string, approvalId: string, reason: unknown): void {
    const write = (async () => {
      const record = await this.#read(sessionId, approvalId);
      if (record?.status !== 'pending') return;
      const cancelled: FileApprovalRecord = {
        ...record,
        status: 'cancelled',
        cancelledAt: new Date().toISOString(),
        cancelReason: reason instanceof Error ? reason.message : String(reason ?? 'aborted'),
      };
      await this.#storage.setValue(sessionId, keyOf(approvalId), JSON.stringify(cancelled));
    })().catch(() => {
      // Best effort: a request left pending is only listed, never applied without its call.
    });
    this.#cancelling.add(write);
    void write.finally(() => this.#cancelling.delete(write));
  }

  /** Opens a `cancelled` request again for a re-run of its call (no second `approval.requested`). */
  async #reopen(record: FileApprovalRecord): Promise<FileApprovalRecord> {
    const { cancelledAt: _cancelledAt, cancelReason: _cancelReason, ...rest } = record;
    const reopened: FileApprovalRecord = { ...rest, status: 'pending' };
    await this.#storage.setValue(
      record.sessionId,
      keyOf(record.approvalId),
      JSON.stringify(reopened),
    );
    return reopened;
  }

  async #waitForDecision(
    sessionId: string,
    approvalId: string,
    signal: AbortSignal | undefined,
  ): Promise<FileApprovalDecision> {
    const key = wakerKey(sessionId, approvalId);
    for (;;) {
      if (signal?.aborted) {
        this.#cancel(sessionId, approvalId, signal.reason);
        return 'deny';
      }
      let record = await this.#read(sessionId, approvalId);
      if (record?.status === 'cancelled') record = await this.#reopen(record);
      if (record && record.status !== 'pending') {
        return record.status === 'approved' ? 'approve' : 'deny';
      }
      await new Promise<void>((resolve) => {
        let wakers = this.#wakers.get(key);
        if (!wakers) {
          wakers = new Set();
          this.#wakers.set(key, wakers);
        }
        const set = wakers;
        const wake = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', wake);
          set.delete(wake);
          if (set.size === 0 && this.#wakers.get(key) === set) this.#wakers.delete(key);
          resolve();
        };
        const timer = setTimeout(wake, this.#pollIntervalMs);
        signal?.addEventListener('abort', wake, { once: true });
        set.add(wake);
        // An abort that landed while the record was read fires no event: look again at once.
        if (signal?.aborted) wake();
      });
    }
  }
}

/**
 * The deterministic approval id of the `occurrence`-th request for `operation` by one tool call:
 * `sessionId/turnId/toolCallId/operation`, with `#n` appended from the second occurrence on.
 */
export function fileApprovalId(scope: ToolCallScope, operation: string, occurrence = 1): string {
  const base = `${scope.sessionId}/${scope.turnId}/${scope.toolCallId}/${operation}`;
  return occurrence > 1 ? `${base}#${occurrence}` : base;
}

function keyOf(approvalId: string): string {
  return `${FILE_APPROVAL_KEY_PREFIX}${approvalId}`;
}

function wakerKey(sessionId: string, approvalId: string): string {
  return `${sessionId}\u0000${approvalId}`;
}

function plainJson(question: FileApprovalQuestion): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(question)) as Record<string, unknown>;
  } catch {
    return { operation: question.operation, path: question.path };
  }
}
