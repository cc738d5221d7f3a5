import {
  type CapabilityConfig,
  everrunsError,
  isoFromMillis,
  isoNow,
  type RuntimeSessionStore,
  type Session,
  type SessionStatus,
  type TurnLease,
  turnInProgressError,
  type UpdateSessionStatusOptions,
} from '@everruns-ts/core';
import { compareStrings, freezeCopy } from './freeze-copy.js';

interface HeldLease {
  holderId: string;
  /** Milliseconds since the epoch, by this process's clock. */
  expiresAt: number;
}

/**
 * Sessions kept in a `Map`, as frozen copies; every update stores a new frozen object with a
 * fresh `updatedAt`. Turn leases live beside them, timed by this process's clock.
 */
export class InMemorySessionStore implements RuntimeSessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #leases = new Map<string, HeldLease>();

  /** The session, or `null`. */
  async getSession(sessionId: string): Promise<Session | null> {
    return this.#sessions.get(sessionId) ?? null;
  }

  /** Stores a new session and returns the stored copy. Throws `DUPLICATE_ID` when the id exists. */
  async createSession(session: Session): Promise<Session> {
    if (this.#sessions.has(session.id)) {
      throw everrunsError('DUPLICATE_ID', `Session ${session.id} already exists`, {
        details: { sessionId: session.id },
      });
    }
    const stored = freezeCopy(session);
    this.#sessions.set(session.id, stored);
    return stored;
  }

  /** Stores the session, replacing one with the same id (its turn lease is kept). */
  async upsertSession(session: Session): Promise<Session> {
    const stored = freezeCopy(session);
    this.#sessions.set(session.id, stored);
    return stored;
  }

  /** Sets the title. Throws `SESSION_NOT_FOUND`. */
  async updateSessionTitle(sessionId: string, title: string): Promise<Session> {
    return this.#update(sessionId, { title });
  }

  /**
   * Sets the status. Throws `SESSION_NOT_FOUND`; with `options.leaseHolder`, `TURN_IN_PROGRESS`
   * (nothing changed) unless that holder holds the turn lease, lapsed or not.
   */
  async updateSessionStatus(
    sessionId: string,
    status: SessionStatus,
    options: UpdateSessionStatusOptions = {},
  ): Promise<Session> {
    const { leaseHolder } = options;
    if (leaseHolder !== undefined && this.#sessions.has(sessionId)) {
      const current = this.#leases.get(sessionId);
      if (current?.holderId !== leaseHolder) {
        const live = current !== undefined && current.expiresAt > Date.now();
        throw turnInProgressError({
          sessionId,
          ...(live
            ? { holder: current.holderId, expiresAt: leaseOf(sessionId, current).expiresAt }
            : {}),
        });
      }
    }
    return this.#update(sessionId, { status });
  }

  /** Replaces the session's capabilities. Throws `SESSION_NOT_FOUND`. */
  async updateSessionCapabilities(
    sessionId: string,
    capabilities: CapabilityConfig[],
  ): Promise<Session> {
    return this.#update(sessionId, { capabilities });
  }

  /** Every session, sorted by id. */
  async listSessions(): Promise<Session[]> {
    return [...this.#sessions.values()].sort((left, right) => compareStrings(left.id, right.id));
  }

  /**
   * Claims the turn lease: free, lapsed or already held by `holderId`. Throws
   * `TURN_IN_PROGRESS` when another holder's lease runs, `SESSION_NOT_FOUND`, `INVALID_INPUT`.
   */
  async claimTurnLease(
    sessionId: string,
    holderId: string,
    durationMs: number,
  ): Promise<TurnLease> {
    checkLeaseRequest(holderId, durationMs);
    if (!this.#sessions.has(sessionId)) {
      throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
        details: { sessionId },
      });
    }
    const now = Date.now();
    const current = this.#leases.get(sessionId);
    if (current && current.holderId !== holderId && current.expiresAt > now) {
      throw turnInProgressError({
        sessionId,
        holder: current.holderId,
        expiresAt: isoFromMillis(current.expiresAt),
      });
    }
    const lease = { holderId, expiresAt: now + durationMs };
    this.#leases.set(sessionId, lease);
    return leaseOf(sessionId, lease);
  }

  /** Extends the lease of `holderId`; `null` when it does not hold it. */
  async renewTurnLease(
    sessionId: string,
    holderId: string,
    durationMs: number,
  ): Promise<TurnLease | null> {
    return this.renewTurnLeaseNow(sessionId, holderId, durationMs);
  }

  /**
   * {@link renewTurnLease} done synchronously, so a store that conditions its own writes on the
   * lease (the in-memory message store given this store as its `leases`) renews and writes in one
   * step that nothing can interleave with. `null` when `holderId` does not hold the lease; throws
   * `INVALID_INPUT` for an empty holder id or a bad duration.
   */
  renewTurnLeaseNow(sessionId: string, holderId: string, durationMs: number): TurnLease | null {
    checkLeaseRequest(holderId, durationMs);
    const current = this.#leases.get(sessionId);
    if (!current || current.holderId !== holderId) return null;
    current.expiresAt = Date.now() + durationMs;
    return leaseOf(sessionId, current);
  }

  /** Releases the lease when `holderId` holds it; `false` otherwise. */
  async releaseTurnLease(sessionId: string, holderId: string): Promise<boolean> {
    const current = this.#leases.get(sessionId);
    if (!current || current.holderId !== holderId) return false;
    this.#leases.delete(sessionId);
    return true;
  }

  /** The lease while it has not lapsed, or `null`. */
  async getTurnLease(sessionId: string): Promise<TurnLease | null> {
    return this.turnLeaseNow(sessionId);
  }

  /** {@link getTurnLease} done synchronously: the lease while it has not lapsed, or `null`. */
  turnLeaseNow(sessionId: string): TurnLease | null {
    const current = this.#leases.get(sessionId);
    if (!current || current.expiresAt <= Date.now()) return null;
    return leaseOf(sessionId, current);
  }

  #update(sessionId: string, change: Partial<Session>): Session {
    const current = this.#sessions.get(sessionId);
    if (current === undefined) {
      throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
        details: { sessionId },
      });
    }
    // Not `{ ...current, ...change, updatedAt }`: on Node 20 a spread followed by more properties
    // keeps young objects alive through scavenges (`bench/RESULTS.md`).
    const next: Session = Object.assign({}, current, change);
    next.updatedAt = isoNow();
    const updated = freezeCopy(next);
    this.#sessions.set(sessionId, updated);
    return updated;
  }
}

/** The last lapse time formatted by {@link isoOfLapse}, and its text. */
let lastLapseMillis = Number.NaN;
let lastLapseIso = '';

/**
 * `isoFromMillis(millis)`, remembering the last one: a turn claims and renews its lease
 * several times within the same millisecond, for the same duration.
 */
function isoOfLapse(millis: number): string {
  if (millis !== lastLapseMillis) {
    lastLapseIso = isoFromMillis(millis);
    lastLapseMillis = millis;
  }
  return lastLapseIso;
}

function leaseOf(sessionId: string, lease: HeldLease): TurnLease {
  return {
    sessionId,
    holderId: lease.holderId,
    expiresAt: isoOfLapse(lease.expiresAt),
  };
}

function checkLeaseRequest(holderId: string, durationMs: number): void {
  if (typeof holderId !== 'string' || holderId.length === 0) {
    throw everrunsError('INVALID_INPUT', 'A turn lease holderId must be a non-empty string');
  }
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw everrunsError(
      'INVALID_INPUT',
      `A turn lease duration must be a positive integer of milliseconds, got ${String(durationMs)}`,
    );
  }
}
