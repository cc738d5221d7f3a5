export {
  CollectingEventBus,
  type CollectingEventBusOptions,
  DEFAULT_MAX_EVENTS_PER_SESSION,
} from './collecting-event-bus.js';
export { InMemoryAgentStore } from './in-memory-agent-store.js';
export {
  type InMemoryBackendsOptions,
  type InMemoryRuntimeBackends,
  inMemoryBackends,
} from './in-memory-backends.js';
export { InMemoryHarnessStore } from './in-memory-harness-store.js';
export { InMemoryMemoryStore } from './in-memory-memory-store.js';
export {
  InMemoryMessageStore,
  type InMemoryMessageStoreOptions,
  type InMemoryTurnLeases,
} from './in-memory-message-store.js';
export {
  InMemoryProviderStore,
  type InMemoryProviderStoreOptions,
} from './in-memory-provider-store.js';
export {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_GREP_FILES,
  InMemorySessionFileStore,
  type InMemorySessionFileStoreOptions,
} from './in-memory-session-file-store.js';
export { InMemorySessionFileSystemFactory } from './in-memory-session-file-system-factory.js';
export { InMemorySessionStorageStore } from './in-memory-session-storage-store.js';
export { InMemorySessionStore } from './in-memory-session-store.js';
