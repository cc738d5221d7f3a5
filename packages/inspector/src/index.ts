export { FileApprovalQueue, type FileApprovalQueueOptions } from './approval-queue.js';
export { createInspectorDemo, type InspectorDemo } from './demo.js';
export {
  type ApprovalDecision,
  type DecidedApproval,
  durableApprovalsView,
  type FileApprovalRequestLike,
  type InspectorApprovals,
  type PendingApproval,
} from './inspector-approvals.js';
export {
  type BackendsInspectorSourceOptions,
  backendsInspectorSource,
  type InspectorSource,
  type InspectorSubscribeOptions,
  type InspectorSubscription,
  type RuntimeInspectorSourceOptions,
  runtimeInspectorSource,
  type TurnContextView,
} from './inspector-source.js';
export {
  DEFAULT_HEARTBEAT_MS,
  type LiveEventsQuery,
  liveEventsQuerySchema,
  MAX_UNSENT_BYTES,
} from './live-events.js';
export { openPostgresSource, type PostgresSourceOptions } from './postgres-source.js';
export {
  createInspectorHandler,
  type InspectorHandlerOptions,
  type InspectorRequestHandler,
  type InspectorServer,
  type InspectorServerOptions,
  startInspectorServer,
} from './server.js';
export {
  buildTimeline,
  buildTurns,
  callSignature,
  type HostPlanStep,
  type HostPlanView,
  type ReplayLimits,
  replayHostPlan,
  type TimelineEntry,
  type ToolCallView,
  type TurnView,
} from './session-view.js';
