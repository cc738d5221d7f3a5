// The turn-integrity suites on the in-memory stores (PostgreSQL: packages/stores-postgres).
import { inMemoryBackends } from '@everruns-ts/runtime';
import { describeTurnIntegrity, describeTurnIntegrityPaths } from './index.js';

describeTurnIntegrity('memory', async () => ({ backends: inMemoryBackends() }));
describeTurnIntegrityPaths('memory', async () => ({ backends: inMemoryBackends() }));
