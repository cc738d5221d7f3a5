import type {
  EverrunsLogger,
  ModelPrices,
  PlatformDefinition,
  RuntimeBackends,
  SessionFileSystemFactory,
  TurnLimits,
} from '@everruns-ts/core';
import type pg from 'pg';
import type { HostClock } from './pg-boss-schedules.js';

/** How failing steps are retried. */
export interface PgBossRetryOptions {
  /** Retries after the first attempt. Default 5. */
  limit?: number;
  /** Delay before the first retry, in seconds. Default 1. */
  delaySeconds?: number;
  /** Double the delay after each retry (with jitter). Default true. */
  backoff?: boolean;
}

/** Options of `PgBossHost.start`. */
export interface PgBossHostOptions {
  /**
   * The PostgreSQL server of the queue and of the host's tables, usually the stores' server. Give
   * this or `pool`.
   */
  connectionString?: string;
  /**
   * A pool the caller owns (for example the stores' `backends.pool`), used for the queue and the
   * host's tables instead of a pool of the host's own; the host never ends it. Give this or
   * `connectionString`. The host also needs a connection of its own for `LISTEN` (while it works
   * or awaits a result) and one while it starts: a pool `postgresBackends` created from a
   * connection string opens them beside the pool; any other pool lends one of its connections
   * (so give it at least two).
   */
  pool?: pg.Pool;
  /**
   * The stores turns run on, shared by every process: normally
   * `postgresBackends(...)` of `@everruns-ts/stores-postgres`, migrated.
   */
  backends: RuntimeBackends;
  /** Capabilities and drivers; every worker must register the same ones. */
  platform: PlatformDefinition;
  /**
   * Session workspaces. Defaults to the platform's factory, else an in-memory one (which workers
   * do not share: use a shared one, such as `@everruns-ts/fs-realdisk` on a shared volume).
   */
  fileSystems?: SessionFileSystemFactory;
  /** Turn limits; `maxIterations` is fixed into each turn's state when it is submitted. */
  limits?: Partial<TurnLimits>;
  /**
   * Prices per model, as `InProcessRuntimeBuilder.prices`: handed to capability hooks and tools
   * (budgets in cost). Validated by `modelPricesSchema`; none are built in.
   */
  prices?: ModelPrices;
  /** Name of the step queue; the dead-letter queue is `<queue>-dead`. Default `everruns-turn-steps`. */
  queue?: string;
  /** Schema of pg-boss's tables. Default `pgboss`. */
  bossSchema?: string;
  /** Schema of the host's `turns` and `tool_calls` tables. Default `everruns_host`. */
  schema?: string;
  /** Retries of a failing step. */
  retry?: PgBossRetryOptions;
  /**
   * A step still active after this many seconds (for example because its worker was killed) is
   * failed and retried. Default 900.
   */
  stepTimeoutSeconds?: number;
  /**
   * A step job whose turn has a next step runs that step itself, instead of enqueueing it as a job
   * of its own, until this many seconds have passed since the job started; then (or while the
   * host stops) the next step is enqueued as before (its checkpoint moving with it). A job retried
   * after its worker died goes on from the checkpoint its steps reached (see
   * `checkpointIntervalSeconds`). A continued step saves the queue's round trips (the job's fetch and completion, the turn's
   * claim, the lease's first renewal); it runs within the time its job has left, so keep this well
   * under `stepTimeoutSeconds`. 0 makes every step a job of its own. Default: a tenth of
   * `stepTimeoutSeconds` (90).
   */
  continueStepsSeconds?: number;
  /**
   * While a job runs its turn's next steps itself (see `continueStepsSeconds`), it moves the
   * turn's checkpoint before a next step only once this many seconds have passed since the
   * checkpoint last moved (or since the job claimed the turn); the turn's ending records the step
   * it ended at either way. A job retried after its worker died goes on from the checkpoint and
   * replays the steps after it from what they stored (their messages and tool results, kept by
   * idempotency keys): no model call or tool runs twice for it, so a crash costs only the replayed
   * steps' reads. Steps that answer in milliseconds (tools that compute, a fast model) then need
   * no statement of their own for the checkpoint; a step that takes longer than this moves it
   * before the next, as every step did before. A step fenced off by `resumeTurn` notices at its
   * next checkpoint, status write, lifecycle event or ending. 0 moves the checkpoint before every
   * next step. Default 1.
   */
  checkpointIntervalSeconds?: number;
  /**
   * How long a turn's session lease lasts without renewal, in milliseconds (see
   * `RuntimeSessionStore.claimTurnLease`). A host turn holds the lease of its session from
   * submission to its end (not while it waits for client tool results), renewed by each step while
   * it runs, so no other runtime on the same stores runs a turn on the session meanwhile. Default
   * 60,000.
   */
  turnLeaseMs?: number;
  /** How often pg-boss looks for timed-out steps, in seconds. Default 30. */
  maintenanceIntervalSeconds?: number;
  /** How often an idle worker polls for steps, in seconds (at least 0.5). Default 1. */
  pollingIntervalSeconds?: number;
  /**
   * Whether this instance takes part in pg-boss maintenance (expiring timed-out steps). Default
   * true; a client that only submits turns may pass false.
   */
  supervise?: boolean;
  /** Size of the host's own pool when `connectionString` is given. Default 4. */
  poolSize?: number;
  /** Receives errors that have no caller to go to (queue polling, notifications). */
  onError?: (error: unknown) => void;
  /**
   * Where the host reports what happens to turns on their way (the pino/console shape,
   * `level(obj, msg)`): a failed step pg-boss will retry (`warn`), a step fenced off because
   * another attempt took its turn and a session lease taken over by another holder (`warn`), a
   * step that failed every retry (`error`). Entries carry ids, counts and error codes, never
   * message content or secrets. Validated (`CONFIGURATION` without the four functions). Default:
   * silent. The stores' own logger is `postgresBackends(…, { events: { logger } })`.
   */
  logger?: EverrunsLogger;
  /**
   * The clock scheduled messages (`capabilities-schedule`) are computed on: when a one-shot
   * schedule is due, a cron schedule's next match. Default the system clock. A clock that runs
   * faster than real time (tests, simulations) gives `millisecondsUntil`; pg-boss waits count
   * from the database's clock.
   */
  clock?: HostClock;
}

/** The default of {@link PgBossHostOptions.checkpointIntervalSeconds}: 1 second. */
export const DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 1;

/** The default of {@link PgBossHostOptions.stepTimeoutSeconds}. */
export const DEFAULT_STEP_TIMEOUT_SECONDS = 900;

/** Options of `PgBossHost.work`. */
export interface PgBossWorkOptions {
  /** How many steps this process runs at once. Default 4. */
  concurrency?: number;
}
