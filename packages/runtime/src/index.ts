export {
  type AssembledTurnContext,
  InputMessage,
  type ModelWithProvider,
  PlatformDefinition,
  type RuntimeBackends,
} from '@everruns-ts/core';
export { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
export { inMemoryBackends } from '@everruns-ts/stores-memory';
export * from './activities.js';
export * from './approval-gating-file-store.js';
export * from './builders.js';
export * from './client-tool-results.js';
export * from './delegating-file-store.js';
export * from './durable-file-approvals.js';
export * from './in-process-runtime.js';
export * from './in-process-runtime-builder.js';
export * from './runtime-host-adapter.js';
export * from './runtime-session-lifecycle.js';
export * from './tool-call-journal.js';
export * from './turn-plan.js';
export * from './turn-step.js';
export * from './write-blocklist-file-store.js';
