export { createHostTables, HOST_TABLES_VERSION } from './host-tables.js';
export {
  PgBossHost,
  type PgBossHostOptions,
  type PgBossRetryOptions,
  type PgBossWorkOptions,
  type SubmitTurnOptions,
  stepJobId,
  type TurnHandle,
  type TurnResultOptions,
} from './pg-boss-host.js';
export { PostgresToolCallJournal } from './postgres-tool-call-journal.js';
export { type HostTurnStatus, type HostTurnStatusName, TURN_CHANNEL } from './turn-records.js';
