import {
  checkAfterSeq,
  checkLatestLimit,
  everrunsError,
  type InputMessage,
  isoNow,
  type Message,
  type MessageFilter,
  type MessagePage,
  type MessagePageRequest,
  type MessageRole,
  type MessageSearchPage,
  type MessageSearchRequest,
  type MessageWriteLease,
  type MessageWriteOptions,
  type ModelUsageTotal,
  messagePageStart,
  messageSearchText,
  type NewMessage,
  newId,
  parseMessageSearchRequest,
  type RuntimeMessageStore,
  type SourcedHistory,
  type StoreMessageOptions,
  type SumUsageOptions,
  type TurnLease,
  turnInProgressError,
  UsageTally,
} from '@everruns-ts/core';
import { freezeCopy } from './freeze-copy.js';

const ROLES: ReadonlySet<MessageRole> = new Set(['user', 'agent', 'tool_result']);
const MAX_PAGE_SIZE = 1000;

interface SessionMessages {
  /** Messages in `seq` order: the message with `seq` n is at index n - 1. */
  readonly list: Message[];
  /**
   * Made on the first `get` or the first message stored with an id of the caller's (only such an
   * id can clash: a generated one is new), then kept up to date; most sessions never need it.
   */
  byId: Map<string, Message> | undefined;
  readonly byIdempotencyKey: Map<string, Message>;
  /** The model calls of `list` summed per model, kept up to date on append. */
  readonly usage: UsageTally;
  /** The same per turn id, for `sumUsage(sessionId, { turnId })`. */
  readonly usageByTurn: Map<string, UsageTally>;
  /** What `loadWithSource` gives as this list's source: made on its first call. */
  source: object | undefined;
}

const EMPTY: readonly Message[] = Object.freeze([]);

/** Lower-cased search text of each stored message, computed on a message's first search. */
const SEARCH_TEXT = new WeakMap<Message, string>();

function loweredSearchText(message: Message): string {
  let text = SEARCH_TEXT.get(message);
  if (text === undefined) {
    text = messageSearchText(message).toLowerCase();
    SEARCH_TEXT.set(message, text);
  }
  return text;
}

/** The fields every stored message has. */
type MessageBase = Pick<Message, 'id' | 'sessionId' | 'seq' | 'role' | 'content' | 'createdAt'>;

/**
 * A stored message built in one object literal, its optional fields present only when given (in
 * the order `turnId`, `idempotencyKey`, `metadata`): V8 then keeps every field inside the object
 * instead of adding a separate property array (~60 bytes per message) for fields added later.
 */
function storedMessage(
  base: MessageBase,
  turnId: string | undefined,
  idempotencyKey: string | undefined,
  metadata: Message['metadata'],
): Message {
  const { id, sessionId, seq, role, content, createdAt } = base;
  if (turnId !== undefined) {
    if (idempotencyKey !== undefined) {
      return metadata !== undefined
        ? { id, sessionId, seq, role, content, createdAt, turnId, idempotencyKey, metadata }
        : { id, sessionId, seq, role, content, createdAt, turnId, idempotencyKey };
    }
    return metadata !== undefined
      ? { id, sessionId, seq, role, content, createdAt, turnId, metadata }
      : { id, sessionId, seq, role, content, createdAt, turnId };
  }
  if (idempotencyKey !== undefined) {
    return metadata !== undefined
      ? { id, sessionId, seq, role, content, createdAt, idempotencyKey, metadata }
      : { id, sessionId, seq, role, content, createdAt, idempotencyKey };
  }
  return metadata !== undefined
    ? { id, sessionId, seq, role, content, createdAt, metadata }
    : { id, sessionId, seq, role, content, createdAt };
}

/**
 * The turn leases an {@link InMemoryMessageStore} conditions leased writes on, read and renewed
 * synchronously: the in-memory session store is one.
 */
export interface InMemoryTurnLeases {
  /** Renews the lease of `holderId` now; `null` when it does not hold it. */
  renewTurnLeaseNow(sessionId: string, holderId: string, durationMs: number): TurnLease | null;
  /** The lease while it has not lapsed, or `null`. */
  turnLeaseNow(sessionId: string): TurnLease | null;
}

/** Options of {@link InMemoryMessageStore}. */
export interface InMemoryMessageStoreOptions {
  /**
   * The turn leases of the sessions (the bundle's in-memory session store): with them the store
   * honours `options.lease` of its writes (`leaseConditionedWrites` is true). Without them a
   * write with a lease throws `CONFIGURATION`.
   */
  leases?: InMemoryTurnLeases;
}

/**
 * Append-only message histories kept in memory.
 *
 * Messages are frozen copies made once when stored, so reads hand out the stored objects without
 * copying them: `load` costs one array copy, `get`, `getByIdempotencyKey` and `count` are
 * constant time, `loadPage`, `loadAfter` and `loadLatest` are index arithmetic (`seq` n lives at
 * index n - 1) and `sumUsage` reads a tally kept up to date on append.
 */
export class InMemoryMessageStore implements RuntimeMessageStore {
  /** True when the store was given `leases`: its writes then honour `options.lease`. */
  readonly leaseConditionedWrites: boolean;
  readonly #sessions = new Map<string, SessionMessages>();
  readonly #leases: InMemoryTurnLeases | undefined;

  constructor(options: InMemoryMessageStoreOptions = {}) {
    this.#leases = options.leases;
    this.leaseConditionedWrites = options.leases !== undefined;
  }

  /** Appends the user's input as a `user` message (`options` as {@link storeMessage}'s). */
  async addInputMessage(
    sessionId: string,
    input: InputMessage,
    turnId?: string,
    options: MessageWriteOptions = {},
  ): Promise<Message> {
    const message: NewMessage = { role: 'user', content: input.content };
    if (turnId !== undefined) message.turnId = turnId;
    if (input.metadata !== undefined) message.metadata = input.metadata;
    this.#holdLease(sessionId, options.lease);
    return this.#append(sessionId, [message])[0] as Message;
  }

  /**
   * Appends a message at the next position, or returns the existing message with the same
   * idempotency key. Throws `STORE_CONFLICT` (retryable) when `options.expectedSeq` is not the
   * next position, `DUPLICATE_ID` when a message with the given id exists in the session and
   * `INVALID_INPUT` for a message without a known role or a content array. With
   * `options.lease`, the lease is renewed in the same synchronous step as the append, and
   * `TURN_IN_PROGRESS` (nothing written) when its holder no longer holds it.
   */
  async storeMessage(
    sessionId: string,
    message: NewMessage,
    options: StoreMessageOptions = {},
  ): Promise<Message> {
    this.#holdLease(sessionId, options.lease);
    return this.#append(sessionId, [message], options.expectedSeq)[0] as Message;
  }

  /** Appends several messages in order, all or none. Errors and `options` as {@link storeMessage}. */
  async storeMessages(
    sessionId: string,
    messages: NewMessage[],
    options: MessageWriteOptions = {},
  ): Promise<Message[]> {
    this.#holdLease(sessionId, options.lease);
    return this.#append(sessionId, messages);
  }

  /**
   * Renews `lease` (when given) before a write in the same synchronous step: `TURN_IN_PROGRESS`
   * when its holder no longer holds it, `CONFIGURATION` for a store made without `leases`.
   */
  #holdLease(sessionId: string, lease: MessageWriteLease | undefined): void {
    if (lease === undefined) return;
    if (this.#leases === undefined) {
      throw everrunsError(
        'CONFIGURATION',
        'This in-memory message store has no turn leases (give it the session store as `leases`); it cannot honour a write lease',
      );
    }
    if (lease === null || typeof lease !== 'object') {
      throw everrunsError(
        'INVALID_INPUT',
        'A write lease must be an object { holderId, durationMs }',
      );
    }
    if (this.#leases.renewTurnLeaseNow(sessionId, lease.holderId, lease.durationMs)) return;
    const current = this.#leases.turnLeaseNow(sessionId);
    throw turnInProgressError({
      sessionId,
      ...(current ? { holder: current.holderId, expiresAt: current.expiresAt } : {}),
    });
  }

  /** One message, or `null`. */
  async get(sessionId: string, messageId: string): Promise<Message | null> {
    const session = this.#sessions.get(sessionId);
    return session === undefined ? null : (messagesById(session).get(messageId) ?? null);
  }

  /** The message stored with this idempotency key, or `null`. */
  async getByIdempotencyKey(sessionId: string, idempotencyKey: string): Promise<Message | null> {
    return this.#sessions.get(sessionId)?.byIdempotencyKey.get(idempotencyKey) ?? null;
  }

  /** The whole history in `seq` order (a new array of the stored, frozen messages). */
  async load(sessionId: string): Promise<Message[]> {
    return (this.#sessions.get(sessionId)?.list ?? EMPTY).slice();
  }

  /**
   * {@link load} with the session's list as its source: one object for as long as the session's
   * messages are kept here (the list only grows); a session without messages gets a new one on
   * each call.
   */
  async loadWithSource(sessionId: string): Promise<SourcedHistory> {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return { messages: [], source: {} };
    session.source ??= Object.freeze({});
    return { messages: session.list.slice(), source: session.source };
  }

  /**
   * A page in `seq` order, after `afterSeq` or `offset`. Throws `INVALID_INPUT` for a limit
   * outside 1..1000, a negative start, or an `offset` and `afterSeq` that disagree.
   */
  async loadPage(sessionId: string, page: MessagePageRequest): Promise<MessagePage> {
    const afterSeq = messagePageStart(page);
    const { limit } = page;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw everrunsError('INVALID_INPUT', `limit must be an integer in 1..${MAX_PAGE_SIZE}`, {
        details: { limit },
      });
    }
    if (!Number.isInteger(afterSeq) || afterSeq < 0) {
      throw everrunsError('INVALID_INPUT', 'afterSeq must be a non-negative integer', {
        details: { afterSeq },
      });
    }
    const list = this.#sessions.get(sessionId)?.list ?? EMPTY;
    const end = afterSeq + limit;
    return {
      messages: list.slice(afterSeq, end),
      nextAfterSeq: end < list.length ? end : null,
    };
  }

  /** Messages with one of `filter.roles` and the given `filter.turnId`, in `seq` order. */
  async loadFiltered(sessionId: string, filter: MessageFilter): Promise<Message[]> {
    const list = this.#sessions.get(sessionId)?.list ?? EMPTY;
    const roles = filter.roles === undefined ? undefined : new Set(filter.roles);
    const { turnId } = filter;
    const result: Message[] = [];
    for (const message of list) {
      if (roles !== undefined && !roles.has(message.role)) continue;
      if (turnId !== undefined && message.turnId !== turnId) continue;
      result.push(message);
    }
    return result;
  }

  /** Number of messages in the session. */
  async count(sessionId: string): Promise<number> {
    return this.#sessions.get(sessionId)?.list.length ?? 0;
  }

  /** Every message after `afterSeq`, in `seq` order. Throws `INVALID_INPUT` for a bad `afterSeq`. */
  async loadAfter(sessionId: string, afterSeq: number): Promise<Message[]> {
    checkAfterSeq(afterSeq);
    return (this.#sessions.get(sessionId)?.list ?? EMPTY).slice(afterSeq);
  }

  /** The last `limit` messages, in `seq` order. Throws `INVALID_INPUT` for a bad `limit`. */
  async loadLatest(sessionId: string, limit: number): Promise<Message[]> {
    checkLatestLimit(limit);
    const list = this.#sessions.get(sessionId)?.list ?? EMPTY;
    return list.slice(Math.max(0, list.length - limit));
  }

  /** The session's model calls summed per model (see `RuntimeMessageStore.sumUsage`). */
  async sumUsage(sessionId: string, options: SumUsageOptions = {}): Promise<ModelUsageTotal[]> {
    const session = this.#sessions.get(sessionId);
    if (!session) return [];
    if (options.turnId === undefined) return session.usage.totals();
    return session.usageByTurn.get(options.turnId)?.totals() ?? [];
  }

  /**
   * Messages whose search text contains the query, case-insensitively, oldest first (see
   * `RuntimeMessageStore.searchMessages`): a scan of the session's list, each message's
   * lower-cased text computed once and kept. Throws `INVALID_INPUT` for a bad request.
   */
  async searchMessages(
    sessionId: string,
    request: MessageSearchRequest,
  ): Promise<MessageSearchPage> {
    const { query, roles, offset, limit } = parseMessageSearchRequest(request);
    const needle = query.toLowerCase();
    const found: Message[] = [];
    let skipped = 0;
    for (const message of this.#sessions.get(sessionId)?.list ?? EMPTY) {
      if (roles && !roles.includes(message.role)) continue;
      if (!loweredSearchText(message).includes(needle)) continue;
      if (skipped < offset) {
        skipped++;
        continue;
      }
      if (found.length === limit) return { messages: found, hasMore: true };
      found.push(message);
    }
    return { messages: found, hasMore: false };
  }

  /**
   * Validates every message first and then appends them in one synchronous step, so a batch is
   * all or none and concurrent callers cannot interleave.
   */
  #append(sessionId: string, messages: NewMessage[], expectedSeq?: number): Message[] {
    let session = this.#sessions.get(sessionId);
    const list = session?.list ?? EMPTY;
    const results: Message[] = [];
    const fresh: Message[] = [];
    // Ids of the caller's and idempotency keys within this batch, made only for a batch.
    const batchIds = messages.length > 1 ? new Set<string>() : undefined;
    const batchKeys = messages.length > 1 ? new Map<string, Message>() : undefined;
    let nextSeq = list.length + 1;
    const now = isoNow();

    for (const message of messages) {
      if (message === null || typeof message !== 'object') {
        throw everrunsError('INVALID_INPUT', 'A message must be an object');
      }
      const key = message.idempotencyKey;
      if (key !== undefined) {
        const existing = session?.byIdempotencyKey.get(key) ?? batchKeys?.get(key);
        if (existing !== undefined) {
          results.push(existing);
          continue;
        }
      }
      if (!ROLES.has(message.role) || !Array.isArray(message.content)) {
        throw everrunsError('INVALID_INPUT', 'A message needs a known role and a content array', {
          details: { sessionId, role: message.role },
        });
      }
      if (expectedSeq !== undefined && expectedSeq !== nextSeq) {
        throw everrunsError(
          'STORE_CONFLICT',
          `Expected to append at seq ${expectedSeq} but the next seq of session ${sessionId} is ${nextSeq}`,
          { retryable: true, details: { sessionId, expectedSeq, actualSeq: nextSeq } },
        );
      }
      const id = message.id ?? newId('msg');
      if (
        message.id !== undefined &&
        ((session !== undefined && messagesById(session).has(id)) || batchIds?.has(id))
      ) {
        throw everrunsError(
          'DUPLICATE_ID',
          `Message ${id} already exists in session ${sessionId}`,
          {
            details: { sessionId, messageId: id },
          },
        );
      }
      const frozen = Object.freeze(
        storedMessage(
          {
            id,
            sessionId,
            seq: nextSeq,
            role: message.role,
            content: freezeCopy(message.content),
            createdAt: freezeCopy(message.createdAt ?? now),
          },
          message.turnId,
          key,
          message.metadata === undefined ? undefined : freezeCopy(message.metadata),
        ),
      );
      nextSeq++;
      if (message.id !== undefined) batchIds?.add(id);
      if (key !== undefined) batchKeys?.set(key, frozen);
      fresh.push(frozen);
      results.push(frozen);
    }

    if (fresh.length > 0) {
      if (session === undefined) {
        session = {
          list: [],
          byId: undefined,
          byIdempotencyKey: new Map(),
          usage: new UsageTally(),
          usageByTurn: new Map(),
          source: undefined,
        };
        this.#sessions.set(sessionId, session);
      }
      for (const message of fresh) {
        session.list.push(message);
        session.byId?.set(message.id, message);
        if (session.usage.add(message) && message.turnId !== undefined) {
          let turn = session.usageByTurn.get(message.turnId);
          if (!turn) {
            turn = new UsageTally();
            session.usageByTurn.set(message.turnId, turn);
          }
          turn.add(message);
        }
        if (message.idempotencyKey !== undefined) {
          session.byIdempotencyKey.set(message.idempotencyKey, message);
        }
      }
    }
    return results;
  }
}

/** The session's messages by id, made from its list on first use (see `SessionMessages.byId`). */
function messagesById(session: SessionMessages): Map<string, Message> {
  if (session.byId === undefined) {
    session.byId = new Map();
    for (const message of session.list) session.byId.set(message.id, message);
  }
  return session.byId;
}
