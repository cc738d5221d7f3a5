// The turn-integrity suite of internal/runtime-suites on the PostgreSQL stores, each test in its
// own schema (the same suite runs on the in-memory stores there).
import { describeTurnIntegrity } from '@everruns-ts/runtime-suites';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

describeTurnIntegrity('postgres', async () => {
  const backends = await createTestBackends({ events: { keepEvents: true } });
  return { backends, destroy: () => destroyTestBackends(backends) };
});
