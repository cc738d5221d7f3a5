import type { EventBus } from '@everruns-ts/core';
import type {
  ApprovalDecision,
  DecidedApproval,
  FileApprovalRequestLike,
  InspectorApprovals,
  PendingApproval,
} from './inspector-approvals.js';

/** Options of {@link FileApprovalQueue}. */
export interface FileApprovalQueueOptions {
  /**
   * When given, the queue emits `approval.requested` and `approval.decided` events into this bus
   * for requests that carry a session id, so they show on the session's timeline. Leave it out
   * when the gating file store emits them itself.
   */
  events?: EventBus;
}

interface Waiting {
  entry: PendingApproval;
  resolve(decision: ApprovalDecision): void;
}

let counter = 0;

/**
 * In-process file approvals as a queue a person works through: {@link FileApprovalQueue.gate} is the
 * approval callback to hand to a gating file store; each call waits, listed by
 * {@link FileApprovalQueue.pending}, until {@link FileApprovalQueue.decide} answers it. The
 * inspector server lists the queue and decides from its approve/deny buttons. Nothing is stored:
 * for approvals that survive a restart use the runtime's `DurableFileApprovals` with
 * `durableApprovalsView`.
 */
export class FileApprovalQueue implements InspectorApprovals {
  readonly #waiting = new Map<string, Waiting>();
  readonly #decided: DecidedApproval[] = [];
  readonly #listeners = new Set<(entry: PendingApproval) => void>();
  readonly #events: EventBus | undefined;

  constructor(options: FileApprovalQueueOptions = {}) {
    this.#events = options.events;
  }

  /**
   * The gate of one session's workspace: resolves `'approve'` or `'deny'` once someone decides.
   * Pass `signal` to give up waiting (the request is then denied).
   */
  gateFor(
    sessionId: string | undefined,
  ): (
    request: FileApprovalRequestLike,
    options?: { signal?: AbortSignal },
  ) => Promise<ApprovalDecision> {
    return (request, options) => this.#ask(sessionId, request, options?.signal);
  }

  /** A gate for requests that carry no session id. */
  readonly gate = (
    request: FileApprovalRequestLike,
    options?: { signal?: AbortSignal },
  ): Promise<ApprovalDecision> => this.#ask(undefined, request, options?.signal);

  /** Requests waiting for a decision, oldest first. */
  async pending(sessionId?: string): Promise<PendingApproval[]> {
    return this.pendingNow(sessionId);
  }

  /** {@link FileApprovalQueue.pending}, synchronously. */
  pendingNow(sessionId?: string): PendingApproval[] {
    return [...this.#waiting.values()]
      .map((waiting) => waiting.entry)
      .filter((entry) => sessionId === undefined || entry.sessionId === sessionId);
  }

  /** Requests decided so far, oldest first. */
  async decided(sessionId?: string): Promise<DecidedApproval[]> {
    return this.#decided.filter(
      (entry) => sessionId === undefined || entry.sessionId === sessionId,
    );
  }

  /** Calls `listener` for every new request; returns the unsubscribe function. */
  onRequest(listener: (entry: PendingApproval) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Waits until a request is pending (for tests and demos); resolves with it. */
  nextRequest(): Promise<PendingApproval> {
    const first = this.pendingNow()[0];
    if (first) return Promise.resolve(first);
    return new Promise((resolve) => {
      const unsubscribe = this.onRequest((entry) => {
        unsubscribe();
        resolve(entry);
      });
    });
  }

  /** Answers a pending request; `undefined` when no request with this id is pending. */
  async decide(id: string, decision: ApprovalDecision): Promise<DecidedApproval | undefined> {
    if (decision !== 'approve' && decision !== 'deny') {
      throw new TypeError(`decision must be 'approve' or 'deny', got ${JSON.stringify(decision)}`);
    }
    const waiting = this.#waiting.get(id);
    if (!waiting) return undefined;
    this.#waiting.delete(id);
    const decided: DecidedApproval = {
      ...waiting.entry,
      decision,
      decidedAt: new Date().toISOString(),
    };
    this.#decided.push(decided);
    await this.#emit('approval.decided', waiting.entry, { decision });
    waiting.resolve(decision);
    return decided;
  }

  async #ask(
    sessionId: string | undefined,
    request: FileApprovalRequestLike,
    signal: AbortSignal | undefined,
  ): Promise<ApprovalDecision> {
    if (signal?.aborted) return 'deny';
    counter++;
    const entry: PendingApproval = {
      id: `approval_${Date.now().toString(36)}_${counter}`,
      sessionId,
      request: { ...request },
      requestedAt: new Date().toISOString(),
    };
    const decision = new Promise<ApprovalDecision>((resolve) => {
      this.#waiting.set(entry.id, { entry, resolve });
      signal?.addEventListener(
        'abort',
        () => {
          if (this.#waiting.delete(entry.id)) resolve('deny');
        },
        { once: true },
      );
    });
    await this.#emit('approval.requested', entry, {});
    for (const listener of this.#listeners) {
      try {
        listener(entry);
      } catch {
        // A failing listener must not lose the request.
      }
    }
    return decision;
  }

  async #emit(
    type: 'approval.requested' | 'approval.decided',
    entry: PendingApproval,
    extra: Record<string, unknown>,
  ): Promise<void> {
    if (!this.#events || entry.sessionId === undefined) return;
    const { operation, path } = entry.request;
    await this.#events.emit({
      type,
      sessionId: entry.sessionId,
      data: { approvalId: entry.id, operation, path, ...extra },
    });
  }
}
