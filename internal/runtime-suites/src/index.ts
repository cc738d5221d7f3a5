// Suites a backend's own test file calls with a factory of fresh backends.

/** The probe of event-loop stalls of the attack suites (`@everruns-ts/store-conformance`'s). */
export { withEventLoopProbe } from '@everruns-ts/store-conformance';
export {
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
  storedEvents,
} from './postgres-test-support.js';
export type { BackendsUnderTest, LlmSimFunction } from './turn-assertions.js';
export { describeTurnIntegrityPaths } from './turn-integrity-paths-suite.js';
export { describeTurnIntegrity } from './turn-integrity-suite.js';
