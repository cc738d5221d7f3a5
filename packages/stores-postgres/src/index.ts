export {
  MIGRATIONS,
  type MigrationResult,
  POSTGRES_SCHEMA_VERSION,
  type PostgresMigration,
} from './migrations.js';
export { PostgresAgentStore } from './postgres-agent-store.js';
export {
  type PostgresBackends,
  type PostgresBackendsOptions,
  type PostgresConnection,
  postgresBackends,
} from './postgres-backends.js';
export { type PostgresRetryOptions, quoteIdentifier, sendStatement } from './postgres-database.js';
export { errorState, violatedConstraint } from './postgres-errors.js';
export {
  type EventPageRequest,
  type EventSubscriptionOptions,
  PostgresEventBus,
  type PostgresEventBusOptions,
  type PostgresEventSubscription,
} from './postgres-event-bus.js';
export { MAX_HARNESS_CHAIN_DEPTH, PostgresHarnessStore } from './postgres-harness-store.js';
export { PostgresMemoryStore } from './postgres-memory-store.js';
export {
  PostgresMessageStore,
  type PostgresMessageStoreOptions,
} from './postgres-message-store.js';
export {
  createPostgresPool,
  type DedicatedConnection,
  isValidSchemaName,
  openDedicatedConnection,
} from './postgres-pool.js';
export { PostgresProviderStore } from './postgres-provider-store.js';
export { PostgresSessionStorageStore } from './postgres-session-storage-store.js';
export { PostgresSessionStore } from './postgres-session-store.js';
export type { SecretKey, SecretKeyring } from './secret-cipher.js';
export { DEFAULT_MAX_VALUE_BYTES, MAX_VALUE_BYTES_CEILING } from './store-context.js';
export type { SessionSetupSnapshot, TurnSnapshot } from './turn-snapshot.js';
