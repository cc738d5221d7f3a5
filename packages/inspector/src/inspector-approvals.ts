import type { RuntimeBackends } from '@everruns-ts/core';
import {
  type DurableFileApprovals,
  FILE_APPROVAL_KEY_PREFIX,
  type FileApprovalRecord,
} from '@everruns-ts/runtime/host';

/** A decision on a pending file operation. */
export type ApprovalDecision = 'approve' | 'deny';

/** What a file approval gate is asked: a destructive operation on a workspace path. */
export interface FileApprovalRequestLike {
  /** The operation, for example `deleteFile` or `writeFile`. */
  operation: string;
  /** The workspace path it touches. */
  path: string;
  /** Anything else the gate was told (content before and after, `recursive`, …). */
  [key: string]: unknown;
}

/** One request waiting for a person's decision. */
export interface PendingApproval {
  /** Id to decide it with. */
  id: string;
  /** The session whose workspace the operation touches, when known. */
  sessionId: string | undefined;
  /** The turn and tool call that asked, when known. */
  turnId?: string;
  toolCallId?: string;
  request: FileApprovalRequestLike;
  /** ISO timestamp. */
  requestedAt: string;
}

/** A request that was decided. */
export interface DecidedApproval extends PendingApproval {
  decision: ApprovalDecision;
  decidedAt: string;
}

/** The file approvals the inspector lists and decides. */
export interface InspectorApprovals {
  /** Requests waiting for a decision (of one session, or all), oldest first. */
  pending(sessionId?: string): Promise<PendingApproval[]>;
  /** Requests decided so far (of one session, or all), oldest first. */
  decided(sessionId?: string): Promise<DecidedApproval[]>;
  /** Answers a pending request; `undefined` when no request with this id is pending. */
  decide(id: string, decision: ApprovalDecision): Promise<DecidedApproval | undefined>;
}

/**
 * The approvals of the runtime's {@link DurableFileApprovals}, read from (and decided into) the
 * session storage store. Works across processes: with PostgreSQL stores, a decision made here
 * releases a gate waiting in a worker of a durable host.
 */
export function durableApprovalsView(
  approvals: DurableFileApprovals,
  backends: Pick<RuntimeBackends, 'sessions' | 'storage'>,
): InspectorApprovals {
  const sessionIds = async (sessionId: string | undefined) =>
    sessionId === undefined
      ? (await backends.sessions.listSessions()).map((session) => session.id)
      : [sessionId];
  const records = async (sessionId: string | undefined) => {
    const all: FileApprovalRecord[] = [];
    for (const id of await sessionIds(sessionId)) {
      for (const key of await backends.storage.listKeys(id, FILE_APPROVAL_KEY_PREFIX)) {
        const record = await approvals.get(id, key.slice(FILE_APPROVAL_KEY_PREFIX.length));
        if (record) all.push(record);
      }
    }
    return all.sort((a, b) => a.requestedAt.localeCompare(b.requestedAt));
  };
  return {
    async pending(sessionId) {
      const pending: PendingApproval[] = [];
      for (const id of await sessionIds(sessionId)) {
        for (const record of await approvals.pending(id)) pending.push(pendingOf(record));
      }
      return pending.sort((a, b) => a.requestedAt.localeCompare(b.requestedAt));
    },
    async decided(sessionId) {
      return (
        (await records(sessionId))
          // A cancelled request (its call was aborted while waiting) was never decided.
          .filter((record) => record.status === 'approved' || record.status === 'denied')
          .map((record) => decidedOf(record))
      );
    },
    async decide(id, decision) {
      // Durable approval ids start with the session id: `sessionId/turnId/toolCallId/operation`.
      const sessionId = id.split('/')[0] ?? '';
      const record = sessionId ? await approvals.get(sessionId, id) : null;
      if (record?.status !== 'pending') return undefined;
      return decidedOf(await approvals.decide(sessionId, id, decision));
    },
  };
}

function pendingOf(record: FileApprovalRecord): PendingApproval {
  return {
    id: record.approvalId,
    sessionId: record.sessionId,
    turnId: record.turnId,
    toolCallId: record.toolCallId,
    request: { ...record.request, operation: record.operation, path: record.path },
    requestedAt: record.requestedAt,
  };
}

function decidedOf(record: FileApprovalRecord): DecidedApproval {
  return {
    ...pendingOf(record),
    decision: record.status === 'approved' ? 'approve' : 'deny',
    decidedAt: record.decidedAt ?? record.requestedAt,
  };
}
