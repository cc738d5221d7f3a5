/**
 * `@everruns-ts/runtime/host`: what a durable host needs to run turns step by step on its own
 * queue (pg-boss, a workflow engine, …): the activities and the session lifecycle, the planner and
 * its plain-JSON turn state, persisted turn steps, the tool-call journal, durable file approvals
 * and client-side tool results. An application that only embeds the runtime imports `.` instead.
 *
 * @module
 */

export {
  type ActActivityOptions,
  type ActActivityResult,
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  type InputActivityResult,
} from './activities.js';
export {
  type ClientToolResult,
  clientToolResultSchema,
  clientToolResultsSchema,
  forgetWaitingTurn,
  loadWaitingTurn,
  pendingClientToolCalls,
  rememberWaitingTurn,
  type StoredClientToolResults,
  storeClientToolResults,
  WAITING_TURN_KEY_PREFIX,
} from './client-tool-results.js';
export {
  DurableFileApprovals,
  type DurableFileApprovalsOptions,
  FILE_APPROVAL_KEY_PREFIX,
  type FileApprovalDecision,
  type FileApprovalQuestion,
  type FileApprovalRecord,
  fileApprovalId,
} from './durable-file-approvals.js';
export {
  cancelledSessionSchedule,
  firedSessionSchedule,
  listSessionSchedules,
  loadSessionSchedule,
  newSessionSchedule,
  nextCronRun,
  SCHEDULE_STORAGE_PREFIX,
  saveSessionSchedule,
  scheduledMessage,
} from './in-process-schedules.js';
export {
  InProcessSubagents,
  type InProcessSubagentsOptions,
  workspaceLinkingFileSystems,
} from './in-process-subagents.js';
export {
  forOrganization,
  type RuntimeHostAdapter,
  type RuntimeHostOverrides,
  toolCallJournalOf,
  withHostOverrides,
} from './runtime-host-adapter.js';
export { RuntimeSessionLifecycle } from './runtime-session-lifecycle.js';
export {
  type CompletePlan,
  OUTPUT_FEEDBACK_METADATA_KEY,
  StructuredOutput,
  TURN_OUTPUT_FORMAT_NAME,
  TURN_OUTPUT_WRAPPER_KEY,
  type TurnOutputSchema,
} from './structured-output.js';
export {
  SessionStorageToolCallJournal,
  TOOL_CALL_JOURNAL_KEY_PREFIX,
  type ToolCallJournal,
} from './tool-call-journal.js';
export {
  type CompletedActivity,
  initialTurnState,
  type PlanOptions,
  planNextHostTurn,
  planResumeAfterToolResults,
  type RuntimeActPlan,
  type RuntimeTurnOutcome,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
  runtimeActPlanSchema,
  runtimeTurnStateSchema,
  type TurnStopReason,
  turnStopReasonSchema,
} from './turn-plan.js';
export {
  type ExecuteTurnStepOptions,
  executeTurnStep,
  initialTurnStep,
  nextTurnStep,
  parseRuntimeTurnStep,
  type RuntimeTurnStep,
  runtimeTurnStepSchema,
  settleTurn,
  type TurnResult,
  TurnStepChain,
  type TurnStepOutcome,
  turnResultOf,
  turnStepKey,
} from './turn-step.js';
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
  type TurnStreamLike,
  type TurnStreamPart,
  turnStreamPartSchema,
} from './turn-stream-parts.js';
