import {
  type EventBus,
  type EventRequest,
  type SessionStorageStore,
  setValueIfAbsentAndEmit,
} from '@everruns-ts/core';

/**
 * Where a host records that a tool call started, so that a host resuming the turn after a crash
 * (possibly in another process) knows the call may have run. A call that has a started record
 * but no stored result is re-run when its tool is idempotent and otherwise gets a synthetic
 * error result; it is never run twice by accident.
 */
export interface ToolCallJournal {
  /**
   * Records that the call starts now, unless a record exists. Resolves `true` when this caller
   * made the record (it may run the call) and `false` when the call was started before, by an
   * earlier attempt or by another host. Implementations backed by a database make this one atomic
   * insert-if-absent so two hosts racing on one call cannot both get `true`.
   */
  claim(sessionId: string, turnId: string, toolCallId: string): Promise<boolean>;
  /**
   * Claims as {@link claim} does and, only when this caller made the record, emits `events` on
   * `bus` with it (one round trip where the bus can write both: `setValueIfAbsentAndEmit` of core).
   * Optional: without it the act step claims, then emits.
   */
  claimAndEmit?(
    sessionId: string,
    turnId: string,
    toolCallId: string,
    bus: EventBus,
    events: EventRequest[],
  ): Promise<boolean>;
  /** Drops the records of a finished turn; optional, best effort. */
  forgetTurn?(sessionId: string, turnId: string): Promise<void>;
  /**
   * For a journal kept in session storage: the value that records the call's start (its store,
   * key and a value unique to this claim), for a caller that sets it with another write in one
   * round trip (the answer that makes the call: `JointMessageOptions.claimValue` of core) where
   * {@link claim} would. Optional: without it every claim goes through {@link claim}.
   */
  claimRecord?(
    sessionId: string,
    turnId: string,
    toolCallId: string,
  ): { storage: SessionStorageStore; key: string; value: string };
}

const claimsInFlight = new WeakMap<SessionStorageStore, Map<string, Promise<void>>>();

/** The reserved session-storage key prefix under which {@link SessionStorageToolCallJournal} records started calls. */
export const TOOL_CALL_JOURNAL_KEY_PREFIX = 'everruns:runtime/tool-started/';

/**
 * A {@link ToolCallJournal} kept in the session storage store under
 * {@link TOOL_CALL_JOURNAL_KEY_PREFIX}, so it is as durable as that store (PostgreSQL storage
 * makes it visible to every process). When the store offers `setValueIfAbsent` a claim is that
 * one atomic insert-if-absent (and `deleteValuesWithPrefix` forgets a turn at once); otherwise it
 * reads then writes, which is safe for one host per session at a time (the in-process runtime
 * refuses concurrent turns on a session).
 */
export class SessionStorageToolCallJournal implements ToolCallJournal {
  readonly #storage: SessionStorageStore;

  constructor(storage: SessionStorageStore) {
    this.#storage = storage;
  }

  claim(sessionId: string, turnId: string, toolCallId: string): Promise<boolean> {
    return this.claimAndEmit(sessionId, turnId, toolCallId);
  }

  claimRecord(
    _sessionId: string,
    turnId: string,
    toolCallId: string,
  ): { storage: SessionStorageStore; key: string; value: string } {
    return {
      storage: this.#storage,
      key: `${TOOL_CALL_JOURNAL_KEY_PREFIX}${turnId}/${toolCallId}`,
      value: new Date().toISOString(),
    };
  }

  claimAndEmit(
    sessionId: string,
    turnId: string,
    toolCallId: string,
    bus?: EventBus,
    events: EventRequest[] = [],
  ): Promise<boolean> {
    const { key } = this.claimRecord(sessionId, turnId, toolCallId);
    // Claims of one key through one store are serialised inside this process, so concurrent
    // hosts sharing a store object cannot both win.
    let pending = claimsInFlight.get(this.#storage);
    if (!pending) {
      pending = new Map();
      claimsInFlight.set(this.#storage, pending);
    }
    const lockKey = `${sessionId}\u0000${key}`;
    const previous = pending.get(lockKey) ?? Promise.resolve();
    const claim = previous.then(() => this.#claimOnce(sessionId, key, bus, events));
    const done: Promise<void> = claim.then(
      () => undefined,
      () => undefined,
    );
    pending.set(lockKey, done);
    void done.then(() => {
      if (pending.get(lockKey) === done) pending.delete(lockKey);
    });
    return claim;
  }

  async #claimOnce(
    sessionId: string,
    key: string,
    bus: EventBus | undefined,
    events: EventRequest[],
  ): Promise<boolean> {
    const stamp = new Date().toISOString();
    if (bus) {
      const storage = this.#storage;
      return (
        await setValueIfAbsentAndEmit({ storage, events: bus }, sessionId, key, stamp, events)
      ).set;
    }
    if (this.#storage.setValueIfAbsent) {
      return this.#storage.setValueIfAbsent(sessionId, key, stamp);
    }
    if ((await this.#storage.getValue(sessionId, key)) !== null) return false;
    await this.#storage.setValue(sessionId, key, stamp);
    return true;
  }

  async forgetTurn(sessionId: string, turnId: string): Promise<void> {
    const prefix = toolCallJournalTurnPrefix(turnId);
    if (this.#storage.deleteValuesWithPrefix) {
      await this.#storage.deleteValuesWithPrefix(sessionId, prefix);
      return;
    }
    for (const key of await this.#storage.listKeys(sessionId, prefix)) {
      await this.#storage.deleteValue(sessionId, key);
    }
  }
}

/** The session-storage key prefix of a turn's records in {@link SessionStorageToolCallJournal}. */
export function toolCallJournalTurnPrefix(turnId: string): string {
  return `${TOOL_CALL_JOURNAL_KEY_PREFIX}${turnId}/`;
}

/**
 * A {@link SessionStorageToolCallJournal} for one leased turn whose `forgetTurn` only notes the
 * turn's key prefix ({@link forgottenPrefix}): whoever releases the turn's lease then deletes the
 * records in the same round trip (`RuntimeBackends.releaseTurnLeaseAndDeleteValues`). Claims are
 * the wrapped journal's.
 */
export class ReleaseForgetsToolCallJournal implements ToolCallJournal {
  readonly #journal: SessionStorageToolCallJournal;
  #prefix: string | undefined;

  constructor(storage: SessionStorageStore) {
    this.#journal = new SessionStorageToolCallJournal(storage);
  }

  /** The key prefix of the turn whose records `forgetTurn` asked to drop, if it was called. */
  get forgottenPrefix(): string | undefined {
    return this.#prefix;
  }

  claim(sessionId: string, turnId: string, toolCallId: string): Promise<boolean> {
    return this.#journal.claim(sessionId, turnId, toolCallId);
  }

  claimAndEmit(
    sessionId: string,
    turnId: string,
    toolCallId: string,
    bus: EventBus,
    events: EventRequest[],
  ): Promise<boolean> {
    return this.#journal.claimAndEmit(sessionId, turnId, toolCallId, bus, events);
  }

  claimRecord(
    sessionId: string,
    turnId: string,
    toolCallId: string,
  ): { storage: SessionStorageStore; key: string; value: string } {
    return this.#journal.claimRecord(sessionId, turnId, toolCallId);
  }

  async forgetTurn(_sessionId: string, turnId: string): Promise<void> {
    this.#prefix = toolCallJournalTurnPrefix(turnId);
  }
}
