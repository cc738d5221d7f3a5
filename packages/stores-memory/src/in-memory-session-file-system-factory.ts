import type { SessionFileSystemFactory } from '@everruns-ts/core';
import {
  InMemorySessionFileStore,
  type InMemorySessionFileStoreOptions,
} from './in-memory-session-file-store.js';

/** Gives every session its own {@link InMemorySessionFileStore}, the same one on every call. */
export class InMemorySessionFileSystemFactory implements SessionFileSystemFactory {
  readonly #stores = new Map<string, InMemorySessionFileStore>();
  readonly #options: InMemorySessionFileStoreOptions;

  /** `options` apply to every session's store. */
  constructor(options: InMemorySessionFileStoreOptions = {}) {
    this.#options = options;
  }

  /** The workspace of `sessionId`, created empty on first use. */
  forSession(sessionId: string): InMemorySessionFileStore {
    let store = this.#stores.get(sessionId);
    if (store === undefined) {
      store = new InMemorySessionFileStore(this.#options);
      this.#stores.set(sessionId, store);
    }
    return store;
  }

  /** Drops a session's workspace; returns false when it had none. */
  dropSession(sessionId: string): boolean {
    return this.#stores.delete(sessionId);
  }
}
