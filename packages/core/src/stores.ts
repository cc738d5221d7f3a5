import type { CompactionRecord } from './compaction.js';
import type { Agent, CapabilityConfig, Harness, Session, SessionStatus } from './domain.js';
import type { EventBus, EventRequest, RuntimeEvent } from './event.js';
import type { ModelUsageTotal } from './llm-usage.js';
import type { InputMessage, Message, MessageRole, NewMessage } from './message.js';
import type { ModelWithProvider } from './model.js';

/**
 * Harness definitions. Throws `EverrunsError` codes: `DUPLICATE_ID` from `addHarness` when the
 * id exists; `HARNESS_NOT_FOUND` from `getHarnessChain` for a missing harness or parent.
 *
 * `addHarness` is a strict insert (the runtime uses it, so a definition seeded earlier into
 * durable backends is never overwritten by accident); `upsertHarness` inserts or replaces, as
 * upstream's `add_harness` does.
 */
export interface RuntimeHarnessStore {
  /** The harness, or `null`. */
  getHarness(harnessId: string): Promise<Harness | null>;
  /**
   * The harness and its ancestors through `parentHarnessId`, **root first**. A parent cycle is an
   * `INVALID_INPUT` error.
   */
  getHarnessChain(harnessId: string): Promise<Harness[]>;
  /** Stores a new harness. */
  addHarness(harness: Harness): Promise<void>;
  /** Stores the harness, replacing one with the same id (upstream's `add_harness`). */
  upsertHarness(harness: Harness): Promise<void>;
  /** Every harness, sorted by id. */
  listHarnesses(): Promise<Harness[]>;
}

/**
 * Agent definitions. `addAgent` throws `DUPLICATE_ID` when the id exists (a strict insert, the
 * one the runtime uses); `upsertAgent` inserts or replaces, as upstream's `add_agent`.
 */
export interface RuntimeAgentStore {
  /** The agent, or `null`. */
  getAgent(agentId: string): Promise<Agent | null>;
  /** Stores a new agent. */
  addAgent(agent: Agent): Promise<void>;
  /** Stores the agent, replacing one with the same id (upstream's `add_agent`). */
  upsertAgent(agent: Agent): Promise<void>;
  /** Every agent, sorted by id. */
  listAgents(): Promise<Agent[]>;
}

/**
 * The turn lease of a session: who may run a turn on it, and until when. One lease per session,
 * shared by every process that uses the same store, so two runtimes (or a runtime and a durable
 * host) never run turns on one session at the same time.
 */
export interface TurnLease {
  /** The leased session. */
  sessionId: string;
  /** The caller that holds the lease (an opaque id it chose, unique per turn). */
  holderId: string;
  /**
   * When the lease lapses unless renewed: ISO 8601 by the **store's** clock (the database's for a
   * shared store), so processes with skewed clocks agree on it.
   */
  expiresAt: string;
}

/** Options of {@link RuntimeSessionStore.updateSessionStatus}. */
export interface UpdateSessionStatusOptions {
  /**
   * Write only while this holder holds the session's turn lease (see
   * {@link RuntimeSessionStore.claimTurnLease}); `TURN_IN_PROGRESS` otherwise. Default: write
   * unconditionally.
   */
  leaseHolder?: string;
}

/**
 * Sessions. `createSession` throws `DUPLICATE_ID`; the update methods throw
 * `SESSION_NOT_FOUND` and return the updated session.
 *
 * Each session also has a **turn lease** ({@link TurnLease}): a runtime claims it before a turn
 * writes anything, renews it while the turn runs and releases it when the turn ends, whatever
 * ends it. A lease that is not renewed lapses at `expiresAt`, so a crashed holder blocks the
 * session only until then. The lease is not part of {@link Session}: the session methods neither
 * read nor change it. Lease durations are in milliseconds, a positive integer; anything else is
 * `INVALID_INPUT`, as is an empty `holderId`.
 */
export interface RuntimeSessionStore {
  /** The session, or `null`. */
  getSession(sessionId: string): Promise<Session | null>;
  /** Stores a new session and returns the stored copy. Throws `DUPLICATE_ID` when the id exists. */
  createSession(session: Session): Promise<Session>;
  /**
   * Stores the session, replacing one with the same id (upstream's `add_session`), and returns
   * the stored copy. The session's turn lease is left as it is. The runtime itself creates
   * sessions with the strict {@link createSession}.
   */
  upsertSession(session: Session): Promise<Session>;
  /** Sets the title and returns the updated session. Throws `SESSION_NOT_FOUND`. */
  updateSessionTitle(sessionId: string, title: string): Promise<Session>;
  /**
   * Sets the status and returns the updated session. Throws `SESSION_NOT_FOUND`. With
   * `options.leaseHolder`, a **conditional** write: the status is set only while that holder
   * holds the session's turn lease (lapsed or not, as long as nobody released it or took it
   * over), checked in the same atomic step as the write (one statement on a database); otherwise
   * nothing changes and it throws `TURN_IN_PROGRESS` (details `{ sessionId, holder?, expiresAt? }`
   * name the current holder, if any). A turn that lost its lease thus cannot mark the session
   * over the new holder's turn.
   */
  updateSessionStatus(
    sessionId: string,
    status: SessionStatus,
    options?: UpdateSessionStatusOptions,
  ): Promise<Session>;
  /** Replaces the capabilities and returns the updated session. Throws `SESSION_NOT_FOUND`. */
  updateSessionCapabilities(sessionId: string, capabilities: CapabilityConfig[]): Promise<Session>;
  /** Every session, sorted by id (creation order for generated ids). */
  listSessions(): Promise<Session[]>;
  /**
   * Claims the session's turn lease for `holderId` until `durationMs` from now (store clock),
   * atomically: of any number of callers racing for a free lease, exactly one wins. Succeeds when
   * the lease is free, has lapsed (it is then taken over from its previous holder), or is already
   * held by `holderId` (the claim then extends it, so a retried claim is answered, not refused).
   * Throws `TURN_IN_PROGRESS` with details `{ sessionId, holder, expiresAt }` when another holder's
   * lease has not lapsed, and `SESSION_NOT_FOUND` for an unknown session; changes nothing then.
   */
  claimTurnLease(sessionId: string, holderId: string, durationMs: number): Promise<TurnLease>;
  /**
   * Extends the lease of `holderId` to `durationMs` from now (store clock) and returns it. A
   * holder may renew a lease that has lapsed as long as nobody took it over. Resolves `null`,
   * changing nothing, when `holderId` no longer holds the lease (released, taken over after it
   * lapsed, or never claimed) or the session is unknown: the holder has lost the session and
   * should stop writing to it.
   */
  renewTurnLease(
    sessionId: string,
    holderId: string,
    durationMs: number,
  ): Promise<TurnLease | null>;
  /**
   * Releases the lease when `holderId` holds it (lapsed or not) and resolves `true`. Resolves
   * `false` and changes nothing when someone else holds it, nobody does, or the session is
   * unknown: only the holder can release a lease.
   */
  releaseTurnLease(sessionId: string, holderId: string): Promise<boolean>;
  /**
   * The session's lease while it has not lapsed, or `null` (no lease, a lapsed one, or an unknown
   * session). A snapshot for display and diagnostics: to act on the lease, claim it.
   */
  getTurnLease(sessionId: string): Promise<TurnLease | null>;
}

/**
 * The turn lease a message write is conditioned on (see {@link MessageWriteOptions.lease}): the
 * holder that must hold the session's lease, and how long the write renews it for.
 */
export interface MessageWriteLease {
  /** The holder id the turn claimed the lease with. */
  holderId: string;
  /** How long the write extends the lease from now (store clock), in milliseconds. */
  durationMs: number;
}

/**
 * Options of every message write ({@link RuntimeMessageStore.addInputMessage},
 * {@link RuntimeMessageStore.storeMessage}, {@link RuntimeMessageStore.storeMessages}).
 */
export interface MessageWriteOptions {
  /**
   * Write only while `lease.holderId` holds the session's turn lease (lapsed or not, as long as
   * nobody released it or took it over, as {@link RuntimeSessionStore.renewTurnLease}), and
   * renew it to `lease.durationMs` from now, in the same atomic step as the write (one statement
   * on a database): a turn that lost its lease cannot land a message in the new holder's
   * history, and its writes keep its lease alive without a separate renewal. The lease is checked
   * first, also for a write answered with a stored message (same idempotency key). When the
   * holder does not hold it, nothing is written or renewed and the write throws
   * `TURN_IN_PROGRESS` (details `{ sessionId, holder?, expiresAt? }` name the current holder
   * while its lease runs); `INVALID_INPUT` for an empty holder id or a duration that is not a
   * positive integer. Honoured only by a store whose
   * {@link RuntimeMessageStore.leaseConditionedWrites} is `true`; pass it to no other (a
   * caller then renews the lease itself before writing).
   */
  lease?: MessageWriteLease;
}

/** Options of {@link RuntimeMessageStore.storeMessage}. */
export interface StoreMessageOptions extends MessageWriteOptions {
  /**
   * The position the caller expects the message to take. When another writer took it first the
   * store throws `STORE_CONFLICT` (retryable) and writes nothing.
   */
  expectedSeq?: number;
}

/**
 * A page request of {@link RuntimeMessageStore.loadPage}: by cursor (`afterSeq`) or by position
 * (`offset`, upstream's `load_page(offset, limit)`). Positions are gapless from 1, so skipping
 * `offset` messages is the page after `seq` `offset`; giving both with different values is
 * `INVALID_INPUT`.
 */
export interface MessagePageRequest {
  /** Return messages with `seq` greater than this. Default 0. */
  afterSeq?: number;
  /** Skip this many messages (a non-negative integer). Default 0. */
  offset?: number;
  /** Page size, 1..1000. */
  limit: number;
}

/** A page of messages. */
export interface MessagePage {
  messages: Message[];
  /**
   * `afterSeq` of the next page (the `seq` of this page's last message), or `null` when this
   * page reaches the end of the history: paging never ends on an empty page. It is also the
   * `offset` of the next page.
   */
  nextAfterSeq: number | null;
}

/** Filter of {@link RuntimeMessageStore.loadFiltered}. */
export interface MessageFilter {
  roles?: MessageRole[];
  turnId?: string;
}

/** A history with the list it was read from (see `RuntimeMessageStore.loadWithSource`). */
export interface SourcedHistory {
  /** The messages in `seq` order, deeply frozen; the array is the caller's. */
  messages: Message[];
  /** Stands for the list: the same object while it only grows. Compare it, never change it. */
  source: object;
}

/**
 * Append-only messages of sessions. Positions (`seq`) are 1, 2, 3 … per session without gaps.
 * Appends to different sessions are independent. Every method on an unknown session behaves as
 * on an empty one (sessions live in the session store).
 */
export interface RuntimeMessageStore {
  /**
   * True when the store honours {@link MessageWriteOptions.lease} on its writes (renewing the
   * session's turn lease and writing in one atomic step); absent or false otherwise. Optional: a
   * backend sharing the session store's data offers it so a leased turn's message write costs one
   * request instead of a renewal and a write. The leases it checks are those of its own backend's
   * session store: a bundle that pairs it with another backend's session store must hide the flag
   * (the runtime then renews through that session store before each write).
   */
  readonly leaseConditionedWrites?: boolean;
  /** Appends the user's input as a `user` message (`options` as {@link storeMessage}'s). */
  addInputMessage(
    sessionId: string,
    input: InputMessage,
    turnId?: string,
    options?: MessageWriteOptions,
  ): Promise<Message>;
  /**
   * Appends a message at the next position. When `message.idempotencyKey` is set and a message
   * with that key exists in the session, returns the existing message and appends nothing (this
   * check comes before `expectedSeq`, so a retried write is answered, not refused). Throws
   * `DUPLICATE_ID` when an explicit `message.id` is already used in the session.
   */
  storeMessage(
    sessionId: string,
    message: NewMessage,
    options?: StoreMessageOptions,
  ): Promise<Message>;
  /**
   * Appends several messages atomically (all or none), in order; idempotency and `options` as
   * `storeMessage`'s.
   */
  storeMessages(
    sessionId: string,
    messages: NewMessage[],
    options?: MessageWriteOptions,
  ): Promise<Message[]>;
  /** One message, or `null`. */
  get(sessionId: string, messageId: string): Promise<Message | null>;
  /** The message with this idempotency key, or `null`. */
  getByIdempotencyKey(sessionId: string, idempotencyKey: string): Promise<Message | null>;
  /** The whole history in `seq` order. */
  load(sessionId: string): Promise<Message[]>;
  /**
   * The whole history as {@link load} gives it (a new array of deeply frozen messages), with the
   * `source` it was read from: an object standing for the session's list of messages in this
   * store, the same on every call for as long as the list only grows (another after anything else,
   * such as the session's deletion). Two histories of one source agree on their common prefix, so
   * the engine checks a longer one only past the part it checked before instead of comparing the
   * whole prefix message by message on every step. Optional.
   */
  loadWithSource?(sessionId: string): Promise<SourcedHistory>;
  /** A page in `seq` order. Throws `INVALID_INPUT` for a `limit` outside 1..1000. */
  loadPage(sessionId: string, page: MessagePageRequest): Promise<MessagePage>;
  /** Messages matching the filter, in `seq` order. */
  loadFiltered(sessionId: string, filter: MessageFilter): Promise<Message[]>;
  /** Number of messages. */
  count(sessionId: string): Promise<number>;
  /**
   * Every message with `seq` greater than `afterSeq`, in `seq` order (empty at or past the end).
   * Throws `INVALID_INPUT` for an `afterSeq` that is not a non-negative integer. Optional: a
   * backend offers it so reading the tail of a long history costs one indexed query; without it,
   * `loadMessagesAfter` of `@everruns-ts/core` pages through `loadPage`.
   */
  loadAfter?(sessionId: string, afterSeq: number): Promise<Message[]>;
  /**
   * The last `limit` messages (all of them when there are fewer), in `seq` order. Throws
   * `INVALID_INPUT` for a `limit` that is not a positive integer. Optional, as `loadAfter`;
   * without it `loadLatestMessages` of `@everruns-ts/core` uses `count` and `loadPage`.
   */
  loadLatest?(sessionId: string, limit: number): Promise<Message[]>;
  /**
   * The session's model calls summed per model (see `modelCallOf` of `@everruns-ts/core` for what
   * counts): one entry per `metadata.model`, sorted by name, the entry without a name last; empty
   * for a session without model calls. Optional: a backend offers it so summing a long session is
   * one query instead of reading every message; the runtime's `sessionUsage` pages through the
   * history without it.
   */
  sumUsage?(sessionId: string, options?: SumUsageOptions): Promise<ModelUsageTotal[]>;
  /**
   * Messages whose text (text parts, tool results, tool call names and arguments) contains
   * `request.query`, case-insensitively, oldest first, paged by `offset`/`limit`. Throws
   * `INVALID_INPUT` for an empty query or a limit outside 1..100. Optional: a backend offers it
   * so searching a long history is one indexed query; without it `searchSessionMessages` of
   * `@everruns-ts/core` scans the history page by page.
   */
  searchMessages?(sessionId: string, request: MessageSearchRequest): Promise<MessageSearchPage>;
}

/** Options of {@link RuntimeMessageStore.sumUsage}. */
export interface SumUsageOptions {
  /** Only the model calls of this turn. */
  turnId?: string;
}

/** A search of a session's history (see {@link RuntimeMessageStore.searchMessages}). */
export interface MessageSearchRequest {
  /** Text to find, case-insensitively; 1..1000 characters. */
  query: string;
  /** Only messages of these roles. */
  roles?: MessageRole[];
  /** Skip this many matches (default 0). */
  offset?: number;
  /** At most this many matches (1..100, default 20). */
  limit?: number;
}

/** One page of a {@link MessageSearchRequest}. */
export interface MessageSearchPage {
  /** The matching messages, oldest first. */
  messages: Message[];
  /** True when more matches follow this page. */
  hasMore: boolean;
}

/** Models and the default model. */
export interface RuntimeProviderStore {
  /** The model registered under `modelId`, or `null`. */
  getModelWithProvider(modelId: string): Promise<ModelWithProvider | null>;
  /** Registers or replaces a model under an id. */
  addModel(modelId: string, model: ModelWithProvider): Promise<void>;
  /** The default model, or `null` when none was set. */
  getDefaultModel(): Promise<ModelWithProvider | null>;
  setDefaultModel(model: ModelWithProvider): Promise<void>;
}

/**
 * Per-session key/value storage and secrets. Keys are opaque strings; listings are sorted.
 * Secret values are only returned by `getSecret`; listings return keys only.
 */
export interface SessionStorageStore {
  getValue(sessionId: string, key: string): Promise<string | null>;
  setValue(sessionId: string, key: string, value: string): Promise<void>;
  /** Returns false when nothing was stored. */
  deleteValue(sessionId: string, key: string): Promise<boolean>;
  /** Keys starting with `prefix` (literally), sorted. */
  listKeys(sessionId: string, prefix?: string): Promise<string[]>;
  /**
   * Stores the value only when `key` has none, atomically (two callers racing on one key: exactly
   * one gets `true`). Resolves `false` and changes nothing when a value exists. Optional: a
   * backend over a network offers it so a claim costs one statement instead of a read and a write.
   */
  setValueIfAbsent?(sessionId: string, key: string, value: string): Promise<boolean>;
  /**
   * Deletes every value whose key starts with `prefix` (literally; an empty prefix is refused with
   * `INVALID_INPUT`) and returns how many were deleted. Optional, as `setValueIfAbsent`.
   */
  deleteValuesWithPrefix?(sessionId: string, prefix: string): Promise<number>;
  getSecret(sessionId: string, key: string): Promise<string | null>;
  setSecret(sessionId: string, key: string, value: string): Promise<void>;
  deleteSecret(sessionId: string, key: string): Promise<boolean>;
  /** Secret keys starting with `prefix`, sorted. */
  listSecretKeys(sessionId: string, prefix?: string): Promise<string[]>;
}

/** One remembered fact of the memory capability. */
export interface MemoryEntry {
  key: string;
  content: string;
  tags: string[];
  createdAt: string;
  updatedAt: string;
}

/** Long-lived memory, per scope (for example an agent id or a session id). */
export interface MemoryStore {
  /** Creates or replaces the entry under `entry.key`. */
  remember(
    scope: string,
    entry: { key: string; content: string; tags?: string[] },
  ): Promise<MemoryEntry>;
  /** Entries whose key, content or tags contain `query` (case-insensitive), newest first. */
  recall(scope: string, query?: string, limit?: number): Promise<MemoryEntry[]>;
  /** Returns false when nothing was stored under `key`. */
  forget(scope: string, key: string): Promise<boolean>;
}

/** Everything the reason step reads about a session, loaded together. */
export interface TurnSnapshot {
  session: Session;
  /** The harness chain, root first; `null` when the session's harness or a parent is missing. */
  harnessChain: Harness[] | null;
  /** The session's agent; `null` when it has none or it is missing. */
  agent: Agent | null;
  /**
   * The history in `seq` order: the whole history, or, when `compaction` is set, the messages
   * after its `throughSeq` only.
   */
  messages: Message[];
  /**
   * Stands for the list `messages` was read from, as `RuntimeMessageStore.loadWithSource`'s
   * `source` does: the same object in every snapshot of the session for as long as that list only
   * grows (the messages after one compaction cut), another after anything else. Optional: with
   * it, the engine checks a longer history only past the part an earlier step checked, instead of
   * comparing the whole prefix message by message on every step.
   */
  messagesSource?: object;
  /**
   * The session's compaction record (see `COMPACTION_STORAGE_KEY`), when the backend reads it in
   * the same round trip: `null` for none; left out (`undefined`) when the backend does not, and
   * the runtime reads it from the session storage itself.
   */
  compaction?: CompactionRecord | null;
  /**
   * The provider store's default model (`null` when none is set), when the backend loads it in
   * the same round trip; left out (`undefined`) otherwise, and the runtime asks the provider store.
   */
  defaultModel?: ModelWithProvider | null;
}

/**
 * An {@link EventBus} that can also store several events of one session in one round trip:
 * consecutive `seq` in the given order, all stored or none, delivered in that order.
 */
export interface BatchingEventBus extends EventBus {
  emitMany(requests: EventRequest[]): Promise<RuntimeEvent[]>;
}

/**
 * What {@link StatusEventBus.updateSessionStatusAndEmit} resolves with: the updated session, and
 * the events when the bus wrote them with the status (`null` when it did not: the caller emits
 * them).
 */
export interface JointStatusWrite {
  session: Session;
  events: RuntimeEvent[] | null;
  /** True when the write also released the turn lease, as `options.releaseLease` asked. */
  leaseReleased?: boolean;
}

/** Options of {@link StatusEventBus.updateSessionStatusAndEmit}. */
export interface JointStatusOptions extends UpdateSessionStatusOptions {
  /**
   * With `leaseHolder`: also release that holder's turn lease in the same atomic step, and delete
   * the session storage values whose keys start with `deleteValuesWithPrefix` when given (as
   * {@link RuntimeBackends.releaseTurnLeaseAndDeleteValues} does): a turn's last write. A bus
   * that did so resolves `leaseReleased: true`; one that did not (it cannot, or does not know
   * the option) leaves the lease held, for the caller to release.
   */
  releaseLease?: { deleteValuesWithPrefix?: string };
}

/**
 * An {@link EventBus} that can set a session's status and store the events announcing it in one
 * round trip (`updateSessionStatusAndEmit` of `@everruns-ts/core` uses it when the bus has it).
 * As with {@link MessageEventBus}, a wrapper that acts on what `emit` emits must wrap this method
 * too, or hide it.
 */
export interface StatusEventBus extends EventBus {
  /**
   * Sets the session's status as `sessions.updateSessionStatus(sessionId, status, options)` does
   * (`options.leaseHolder` checked in the same step) and stores the `events` (one session's, in
   * order, numbered consecutively, delivered to subscribers as `emitEvents` does) in one atomic
   * step, when `sessions` is the session store of the bus's own backend: both or neither.
   * Resolves `null`, changing nothing, when `sessions` is another store (or a wrapper around one);
   * `{ session, events: null }` when it set the status but did not write the events (events it
   * cannot write with it): the caller then emits them. A refused or failed update throws (as
   * `updateSessionStatus`) and emits nothing.
   */
  updateSessionStatusAndEmit(
    sessions: RuntimeSessionStore,
    sessionId: string,
    status: SessionStatus,
    events: EventRequest[],
    options?: JointStatusOptions,
  ): Promise<JointStatusWrite | null>;
}

/** What {@link ClaimEventBus.setValueIfAbsentAndEmit} resolves with. */
export interface JointClaimWrite {
  /** True when the value was set now (the key had none). */
  set: boolean;
  /**
   * The events written with the value (only when `set`); `null` when the bus did not write them
   * with it (none were set, or events it cannot write so): the caller emits them when `set`.
   */
  events: RuntimeEvent[] | null;
}

/**
 * An {@link EventBus} that can set a session-storage value where the key has none and store
 * events with it in one round trip (`setValueIfAbsentAndEmit` of `@everruns-ts/core` uses it when
 * the bus has it: the runtime's tool-call journal claims a call and stores its `tool.started`
 * together). As with {@link MessageEventBus}, a wrapper that acts on what `emit` emits must wrap
 * this method too, or hide it.
 */
export interface ClaimEventBus extends EventBus {
  /**
   * Sets `key` to `value` as `storage.setValueIfAbsent` does and, only when it set it, stores
   * `events` (one session's, in order, numbered consecutively, delivered to subscribers) in the
   * same atomic step, when `storage` is the session storage of the bus's own backend. Resolves
   * `null`, changing nothing, for another store (or a wrapper around one); `{ set: false, events:
   * null }` when the key had a value (nothing emitted); `{ set: true, events: null }` when it set
   * the value without the events (events it cannot write with it): the caller emits them.
   */
  setValueIfAbsentAndEmit(
    storage: SessionStorageStore,
    sessionId: string,
    key: string,
    value: string,
    events: EventRequest[],
  ): Promise<JointClaimWrite | null>;
}

/** What `storeMessageAndEmit` of `@everruns-ts/core` resolves with. */
export interface StoredMessageAndEvents {
  /** The stored message (or the one already stored with its idempotency key). */
  message: Message;
  /** The events emitted after it, in order. */
  events: RuntimeEvent[];
  /** True when the session's status was set with the message (see {@link JointMessageOptions}). */
  statusSet?: boolean;
  /** The turn snapshot read with the write (see {@link JointMessageWrite.turnSnapshot}). */
  turnSnapshot?: TurnSnapshot;
  /** True when the turn lease was released with the message (see {@link JointMessageOptions}). */
  leaseReleased?: boolean;
  /** True when the value of `options.claimValue` was set with the message. */
  valueClaimed?: boolean;
}

/**
 * What {@link MessageEventBus.storeMessageAndEmit} resolves with: the message, and the events
 * when the bus wrote them with it (`null` when it did not: the caller emits them).
 */
export interface JointMessageWrite {
  message: Message;
  events: RuntimeEvent[] | null;
  /** True when the write also set the session's status, as `options.sessionStatus` asked. */
  statusSet?: boolean;
  /**
   * The session's turn snapshot as it stands with the message stored, when
   * `options.loadTurnSnapshot` asked for it and the bus read it in the same round trip (left
   * out otherwise: the caller loads it when it needs it).
   */
  turnSnapshot?: TurnSnapshot;
  /** True when the write also released the turn lease, as `options.releaseLease` asked. */
  leaseReleased?: boolean;
  /** True when the write also set the value of `options.claimValue` (its key had none). */
  valueClaimed?: boolean;
}

/** Options of {@link MessageEventBus.storeMessageAndEmit}. */
export interface JointMessageOptions extends StoreMessageOptions {
  /**
   * Also set the session's status in the same atomic step when the message is appended (with
   * `lease`, conditioned on its holder as the write is), as `updateSessionStatus` would: a
   * turn's first write. A bus that did so resolves `statusSet: true`; one that did not (an
   * answered write, events it did not write with the message, a bus that does not know the
   * option) leaves the status to the caller.
   */
  sessionStatus?: SessionStatus;
  /**
   * Also read the session's turn snapshot (what {@link RuntimeBackends.loadTurnSnapshot} loads)
   * in the same round trip, as it stands once the message is stored, and resolve it as
   * {@link JointMessageWrite.turnSnapshot}: a turn's write that the next reason step follows.
   * Only for a message the write appends with its events; a bus may always leave it out.
   */
  loadTurnSnapshot?: boolean;
  /**
   * With `sessionStatus` and `lease`: the write ends the turn. The same atomic step releases the
   * lease of `lease`'s holder instead of renewing it, and deletes the session storage values
   * whose keys start with `deleteValuesWithPrefix` when given (as
   * {@link JointStatusOptions.releaseLease} does with a status write): a turn's final answer
   * written with its end. A bus that did so resolves `leaseReleased: true` (and `statusSet`);
   * one that did not leaves the lease held and the status to the caller.
   */
  releaseLease?: { deleteValuesWithPrefix?: string };
  /**
   * Also set a session-storage value where its key has none (as `storage.setValueIfAbsent`: a
   * tool call's journal claim, written with the answer that makes the call) in the same atomic
   * step, when the message is appended with its events. A bus that did so, through its own
   * backend's `storage`, resolves `valueClaimed: true`; otherwise the caller claims it apart.
   */
  claimValue?: { storage: SessionStorageStore; key: string; value: string };
}

/**
 * An {@link EventBus} that can store a message and the events announcing it in one round trip
 * (`storeMessageAndEmit` of `@everruns-ts/core` uses it when the bus has it). A wrapper of a bus
 * that acts on what `emit` emits (a tracer, a tap) must wrap this method too, or hide it: the
 * events it writes never pass through `emit`.
 */
export interface MessageEventBus extends EventBus {
  /**
   * Stores `message` and the events `events(stored)` builds in one atomic step, when `messages`
   * is the message store of the bus's own backend and the message is appended: both or neither,
   * the message as `messages.storeMessage(sessionId, message, options)` stores it (the lease of
   * `options.lease` checked and renewed in the same step), the events as `emitEvents` emits them
   * (in order, numbered consecutively, delivered to subscribers). Resolves `null`, changing
   * nothing, when `messages` is another store (or a wrapper around one); and
   * `{ message, events: null }` when it stored or found the message but did not write the
   * events (an answered idempotent write, events it cannot write with it): the caller then emits
   * them. `events` must build the same requests from equal messages: it may be called more than
   * once (with other `seq` values) to prepare the write. A refused or failed write throws and
   * emits nothing.
   */
  storeMessageAndEmit(
    messages: RuntimeMessageStore,
    sessionId: string,
    message: NewMessage,
    events: (stored: Message) => EventRequest[],
    options?: JointMessageOptions,
  ): Promise<JointMessageWrite | null>;
}

/**
 * The part of a {@link TurnSnapshot} that defines a session's turn setup (no history), as
 * {@link RuntimeBackends.loadSessionSetup} loads it.
 */
export interface SessionSetupSnapshot
  extends Pick<TurnSnapshot, 'session' | 'harnessChain' | 'agent' | 'defaultModel'> {
  /**
   * The session storage's value keys starting with {@link LoadSessionSetupOptions.storageKeyPrefix}
   * (literally), sorted, as `SessionStorageStore.listKeys` lists them, when the backend read them in
   * the same round trip; left out (`undefined`) otherwise, and the caller lists them itself.
   */
  storageKeys?: string[];
}

/** Options of {@link RuntimeBackends.loadSessionSetup}. */
export interface LoadSessionSetupOptions {
  /**
   * Also read the session storage's value keys starting with this prefix into
   * {@link SessionSetupSnapshot.storageKeys} (a backend may leave them out). The runtime reads
   * the keys of turns waiting for client tool results this way when a turn starts.
   */
  storageKeyPrefix?: string;
}

/** Every store the runtime needs, as one bundle. */
export interface RuntimeBackends {
  harnesses: RuntimeHarnessStore;
  agents: RuntimeAgentStore;
  sessions: RuntimeSessionStore;
  messages: RuntimeMessageStore;
  providers: RuntimeProviderStore;
  storage: SessionStorageStore;
  memory: MemoryStore;
  events: EventBus;
  /**
   * Loads session, harness chain, agent and history in one round trip (`null` for an unknown
   * session). Optional: a backend over a network offers it so a reason step costs one request
   * instead of four; the runtime falls back to the single stores without it.
   */
  loadTurnSnapshot?(sessionId: string): Promise<TurnSnapshot | null>;
  /**
   * Loads session, harness chain and agent (no history) in one round trip (`null` for an unknown
   * session). Optional, as `loadTurnSnapshot`: resolving a turn's setup then costs one request.
   * A backend may also read, in the same round trip, the default model
   * ({@link SessionSetupSnapshot.defaultModel}) and the storage keys `options.storageKeyPrefix`
   * asks for ({@link SessionSetupSnapshot.storageKeys}); what it leaves out, callers read from the
   * single stores.
   */
  loadSessionSetup?(
    sessionId: string,
    options?: LoadSessionSetupOptions,
  ): Promise<SessionSetupSnapshot | null>;
  /**
   * Claims the session's turn lease for `holderId` (as `sessions.claimTurnLease`, with its
   * errors: `TURN_IN_PROGRESS`, `SESSION_NOT_FOUND`, `INVALID_INPUT`) and loads the session's
   * setup (as {@link loadSessionSetup}) in one round trip where it can: a new turn's first two
   * requests as one. Optional; the runtime falls back to the two calls without it. It claims the
   * lease `sessions` keeps: a bundle that replaces `sessions` with a wrapper must leave this out
   * (or wrap it the same way).
   */
  claimTurnLeaseAndLoadSetup?(
    sessionId: string,
    holderId: string,
    durationMs: number,
    options?: LoadSessionSetupOptions,
  ): Promise<{ lease: TurnLease; setup: SessionSetupSnapshot | null }>;
  /**
   * Releases the turn lease of `holderId` (as `sessions.releaseTurnLease`: resolves `false`,
   * releasing nothing, when it does not hold it) and deletes the session storage values whose
   * keys start with `prefix` (as `storage.deleteValuesWithPrefix`, whatever the release found;
   * `INVALID_INPUT` for an empty prefix), in one round trip. Optional: a backend whose session
   * store and session storage share one database offers it so a turn's end (its tool-call
   * journal forgotten, its lease released) costs one request; the runtime calls the two stores
   * without it.
   */
  releaseTurnLeaseAndDeleteValues?(
    sessionId: string,
    holderId: string,
    prefix: string,
  ): Promise<boolean>;
  /** Releases connections; optional. */
  close?(): Promise<void>;
}
