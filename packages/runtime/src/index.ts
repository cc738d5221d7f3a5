/**
 * `@everruns-ts/runtime`: what an application embedding the runtime uses. Build a runtime, run
 * and steer turns, inspect their contexts, and wrap session workspaces in the file-store
 * decorators. A durable host's pieces (activities, planner, lifecycle, journals, approvals) are
 * in `@everruns-ts/runtime/host`.
 *
 * @module
 */
export {
  type AssembledTurnContext,
  type CapabilityChange,
  type CapabilityCommand,
  type CommandContext,
  type CommandResult,
  InputMessage,
  type McpServerConfig,
  type McpTool,
  type McpToolSource,
  type ModelPrice,
  type ModelPrices,
  type ModelWithProvider,
  PlatformDefinition,
  type RuntimeBackends,
  type SessionCommandInfo,
  type SessionCommandResult,
} from '@everruns-ts/core';
export {
  LlmSimConfig,
  LlmSimDriver,
  type LlmSimOnExhausted,
  LlmSimTurn,
} from '@everruns-ts/driver-llmsim';
export { inMemoryBackends } from '@everruns-ts/stores-memory';
export {
  ApprovalGatingFileStore,
  type ApprovalGatingFileStoreOptions,
  type DestructiveFileOperation,
  type FileApprovalGate,
  type FileApprovalGateOptions,
  type FileApprovalGateResult,
  type FileApprovalRequest,
} from './approval-gating-file-store.js';
export {
  AgentBuilder,
  DefinitionBuilder,
  type DefinitionInput,
  HarnessBuilder,
  NamedDefinitionBuilder,
  SessionBuilder,
  SingleSessionBuilder,
} from './builders.js';
export type { ClientToolResult } from './client-tool-results.js';
export {
  DelegatingFileStore,
  hasRealPathResolver,
  type RealPathResolver,
} from './delegating-file-store.js';
export type { TurnLeaseOptions } from './held-turn-lease.js';
export {
  InProcessRuntime,
  type InProcessRuntimeOptions,
  type RunTurnOptions,
  type SteeringReceipt,
  type StreamTurnOptions,
} from './in-process-runtime.js';
export { InProcessRuntimeBuilder } from './in-process-runtime-builder.js';
export type { ModelUsage, SessionUsage } from './session-usage.js';
export {
  OUTPUT_FEEDBACK_METADATA_KEY,
  TURN_OUTPUT_FORMAT_NAME,
  TURN_OUTPUT_WRAPPER_KEY,
  type TurnOutputSchema,
} from './structured-output.js';
export type { TurnStopReason } from './turn-plan.js';
export type { TurnResult } from './turn-step.js';
export {
  DEFAULT_TURN_STREAM_HIGH_WATER_MARK,
  TurnStream,
  type TurnStreamOptions,
  type TurnStreamSink,
} from './turn-stream.js';
export {
  TurnEventTranslator,
  type TurnEventTranslatorOptions,
} from './turn-stream-events.js';
export {
  errorPartSchema,
  reasoningDeltaPartSchema,
  stepFinishPartSchema,
  stepStartPartSchema,
  type TurnStreamLike,
  type TurnStreamPart,
  type TurnStreamPartType,
  textDeltaPartSchema,
  toolCallDeltaPartSchema,
  toolCallPartSchema,
  toolCallStartPartSchema,
  toolResultPartSchema,
  turnFinishPartSchema,
  turnResultSchema,
  turnStartPartSchema,
  turnStreamPartSchema,
} from './turn-stream-parts.js';
export {
  turnStreamToReadableStream,
  turnStreamToSSEResponse,
  turnStreamToUIMessageStreamResponse,
  type UIMessageStreamResponseOptions,
} from './turn-stream-web.js';
export {
  DEFAULT_WRITE_BLOCKLIST,
  WriteBlocklistFileStore,
  type WriteBlocklistFileStoreOptions,
} from './write-blocklist-file-store.js';
