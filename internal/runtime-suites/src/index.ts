// Suites a backend's own test file calls with a factory of fresh backends.
export type { BackendsUnderTest, LlmSimFunction } from './turn-assertions.js';
export { describeTurnIntegrityPaths } from './turn-integrity-paths-suite.js';
export { describeTurnIntegrity } from './turn-integrity-suite.js';
