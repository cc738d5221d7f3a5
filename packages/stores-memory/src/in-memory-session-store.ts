import {
  type CapabilityConfig,
  everrunsError,
  isoNow,
  type RuntimeSessionStore,
  type Session,
  type SessionStatus,
} from '@everruns-ts/core';
import { compareStrings, freezeCopy } from './freeze-copy.js';

/**
 * Sessions kept in a `Map`, as frozen copies; every update stores a new frozen object with a
 * fresh `updatedAt`.
 */
export class InMemorySessionStore implements RuntimeSessionStore {
  readonly #sessions = new Map<string, Session>();

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

  /** Sets the title. Throws `SESSION_NOT_FOUND`. */
  async updateSessionTitle(sessionId: string, title: string): Promise<Session> {
    return this.#update(sessionId, { title });
  }

  /** Sets the status. Throws `SESSION_NOT_FOUND`. */
  async updateSessionStatus(sessionId: string, status: SessionStatus): Promise<Session> {
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

  #update(sessionId: string, change: Partial<Session>): Session {
    const current = this.#sessions.get(sessionId);
    if (current === undefined) {
      throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
        details: { sessionId },
      });
    }
    const updated = freezeCopy({ ...current, ...change, updatedAt: isoNow() });
    this.#sessions.set(sessionId, updated);
    return updated;
  }
}
