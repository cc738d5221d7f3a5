export { createHostTables, HOST_TABLES_VERSION } from './host-tables.js';
export { PgBossHost } from './pg-boss-host.js';
export type {
  PgBossHostOptions,
  PgBossRetryOptions,
  PgBossWorkOptions,
} from './pg-boss-host-options.js';
export {
  type HostClock,
  PgBossSchedules,
  type ScheduleJobData,
  scheduledTurnId,
  scheduleJobId,
  scheduleQueueOf,
} from './pg-boss-schedules.js';
export { subagentTurnId } from './pg-boss-subagents.js';
export { PostgresToolCallJournal } from './postgres-tool-call-journal.js';
export { stepJobId } from './step-jobs.js';
export { type HostTurnStatus, type HostTurnStatusName, TURN_CHANNEL } from './turn-records.js';
export type {
  StreamingTurnHandle,
  SubmitTurnOptions,
  TurnHandle,
  TurnResultOptions,
} from './turn-submission.js';
