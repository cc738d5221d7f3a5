import { runtimeStoreConformance } from '@everruns-ts/store-conformance';
import type { PostgresBackends } from './postgres-backends.js';
import {
  assertPostgresReachable,
  createTestBackends,
  destroyTestBackends,
} from './test-support/database.js';

// Every backend instance gets its own schema, created and migrated in create() and dropped in
// destroy(), so instances share nothing and parallel runs do not interfere.
runtimeStoreConformance({
  name: 'postgres',
  ephemeralEvents: true,
  beforeAll: assertPostgresReachable,
  create: () => createTestBackends({ events: { keepEvents: true } }),
  destroy: (backends) => destroyTestBackends(backends as PostgresBackends),
});
