import type { RuntimeBackends } from '@everruns-ts/core';
import { InMemoryMessageStore, inMemoryBackends } from '@everruns-ts/stores-memory';
import { CountingMessageStore } from './counting-message-store.js';

/** The in-memory backends with the message store replaced by a {@link CountingMessageStore}. */
export function countingBackends(): RuntimeBackends & { messages: CountingMessageStore } {
  return { ...inMemoryBackends(), messages: new CountingMessageStore(new InMemoryMessageStore()) };
}
