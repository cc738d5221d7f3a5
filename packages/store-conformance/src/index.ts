export { agentStoreTests } from './agent-store-tests.js';
export { ephemeralEventTests, eventBusTests } from './event-bus-tests.js';
export { withEventLoopProbe } from './event-loop-probe.js';
export { harnessStoreTests } from './harness-store-tests.js';
export {
  expectErrorCode,
  HOSTILE_STRINGS,
  makeAgent,
  makeHarness,
  makeSession,
  randomId,
  TRICKY_TEXT,
} from './helpers.js';
export { mcpServerDefinitionTests, sampleMcpServers } from './mcp-server-definition-tests.js';
export { memoryStoreTests } from './memory-store-tests.js';
export { messageAndEventsTests } from './message-and-events-tests.js';
export { messageSearchTests } from './message-search-tests.js';
export { messageStoreTests } from './message-store-tests.js';
export { providerStoreTests } from './provider-store-tests.js';
export { runtimeStoreConformance } from './runtime-store-conformance.js';
export { sessionFileSystemConformance } from './session-file-system-conformance.js';
export { sessionStorageTests } from './session-storage-tests.js';
export { sessionStoreTests } from './session-store-tests.js';
export type {
  RuntimeStoreInitializer,
  RuntimeStoreTestContext,
  SessionFileSystemCapabilities,
  SessionFileSystemInitializer,
  SessionFileSystemTestContext,
} from './types.js';
export { upsertAndPagingTests } from './upsert-and-paging-tests.js';
