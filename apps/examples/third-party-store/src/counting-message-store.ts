import type {
  InputMessage,
  Message,
  MessageFilter,
  MessagePage,
  MessagePageRequest,
  NewMessage,
  RuntimeMessageStore,
  StoreMessageOptions,
} from '@everruns-ts/core';

/** Names of the message store's methods. */
export type MessageStoreMethod = keyof RuntimeMessageStore;

/**
 * A third-party message store: it counts every call by method and delegates to another store.
 * Real backends (a database, a remote service) implement the same interface and are checked by
 * the same conformance suite.
 */
export class CountingMessageStore implements RuntimeMessageStore {
  /** Calls so far, by method. */
  readonly calls = new Map<MessageStoreMethod, number>();
  readonly #inner: RuntimeMessageStore;

  constructor(inner: RuntimeMessageStore) {
    this.#inner = inner;
  }

  /** How many times `method` was called. */
  callCount(method: MessageStoreMethod): number {
    return this.calls.get(method) ?? 0;
  }

  addInputMessage(sessionId: string, input: InputMessage, turnId?: string): Promise<Message> {
    this.#count('addInputMessage');
    return this.#inner.addInputMessage(sessionId, input, turnId);
  }

  storeMessage(
    sessionId: string,
    message: NewMessage,
    options?: StoreMessageOptions,
  ): Promise<Message> {
    this.#count('storeMessage');
    return this.#inner.storeMessage(sessionId, message, options);
  }

  storeMessages(sessionId: string, messages: NewMessage[]): Promise<Message[]> {
    this.#count('storeMessages');
    return this.#inner.storeMessages(sessionId, messages);
  }

  get(sessionId: string, messageId: string): Promise<Message | null> {
    this.#count('get');
    return this.#inner.get(sessionId, messageId);
  }

  getByIdempotencyKey(sessionId: string, idempotencyKey: string): Promise<Message | null> {
    this.#count('getByIdempotencyKey');
    return this.#inner.getByIdempotencyKey(sessionId, idempotencyKey);
  }

  load(sessionId: string): Promise<Message[]> {
    this.#count('load');
    return this.#inner.load(sessionId);
  }

  loadPage(sessionId: string, page: MessagePageRequest): Promise<MessagePage> {
    this.#count('loadPage');
    return this.#inner.loadPage(sessionId, page);
  }

  loadFiltered(sessionId: string, filter: MessageFilter): Promise<Message[]> {
    this.#count('loadFiltered');
    return this.#inner.loadFiltered(sessionId, filter);
  }

  count(sessionId: string): Promise<number> {
    this.#count('count');
    return this.#inner.count(sessionId);
  }

  #count(method: MessageStoreMethod): void {
    this.calls.set(method, this.callCount(method) + 1);
  }
}
