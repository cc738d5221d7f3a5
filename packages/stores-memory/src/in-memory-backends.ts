import type { RuntimeBackends } from '@everruns-ts/core';
import { CollectingEventBus, type CollectingEventBusOptions } from './collecting-event-bus.js';
import { InMemoryAgentStore } from './in-memory-agent-store.js';
import { InMemoryHarnessStore } from './in-memory-harness-store.js';
import { InMemoryMemoryStore } from './in-memory-memory-store.js';
import { InMemoryMessageStore } from './in-memory-message-store.js';
import {
  InMemoryProviderStore,
  type InMemoryProviderStoreOptions,
} from './in-memory-provider-store.js';
import { InMemorySessionStorageStore } from './in-memory-session-storage-store.js';
import { InMemorySessionStore } from './in-memory-session-store.js';

/** {@link RuntimeBackends} with the concrete in-memory types (so `events.collectedEvents` is there). */
export interface InMemoryRuntimeBackends extends RuntimeBackends {
  harnesses: InMemoryHarnessStore;
  agents: InMemoryAgentStore;
  sessions: InMemorySessionStore;
  messages: InMemoryMessageStore;
  providers: InMemoryProviderStore;
  storage: InMemorySessionStorageStore;
  memory: InMemoryMemoryStore;
  events: CollectingEventBus;
  close(): Promise<void>;
}

/** Options of {@link inMemoryBackends}. */
export interface InMemoryBackendsOptions {
  providers?: InMemoryProviderStoreOptions;
  events?: CollectingEventBusOptions;
}

/** A fresh, empty set of in-memory stores: the runtime's default backends. */
export function inMemoryBackends(options: InMemoryBackendsOptions = {}): InMemoryRuntimeBackends {
  const sessions = new InMemorySessionStore();
  return {
    harnesses: new InMemoryHarnessStore(),
    agents: new InMemoryAgentStore(),
    sessions,
    // Message writes may be conditioned on the sessions' turn leases (`options.lease`).
    messages: new InMemoryMessageStore({ leases: sessions }),
    providers: new InMemoryProviderStore(options.providers),
    storage: new InMemorySessionStorageStore(),
    memory: new InMemoryMemoryStore(),
    events: new CollectingEventBus(options.events),
    async close() {},
  };
}
