import {
  activateSessionCapability,
  type CapabilityChange,
  DEFAULT_TURN_LIMITS,
  deactivateSessionCapability,
  type ExecuteSessionCommandOptions,
  everrunsLoggerSchema,
  executeSessionCommand,
  formatZodError,
  type InputMessage,
  listSessionCommands,
  type ModelPrices,
  modelPricesSchema,
  type SessionCommandInfo,
  type SessionCommandResult,
  silentLogger,
  type TurnLimits,
} from '@everruns-ts/core';
import {
  type ClientToolResult,
  type RuntimeHostAdapter,
  workspaceLinkingFileSystems,
} from '@everruns-ts/runtime/host';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import { ClientToolSubmission } from './client-tool-submission.js';
import type { HostContext } from './host-context.js';
import { configurationError } from './host-errors.js';
import {
  createBoss,
  type HostNames,
  hostPool,
  resolveHostNames,
  startQueues,
} from './host-setup.js';
import { DEFAULT_HOST_TURN_LEASE_MS } from './host-turn-lease.js';
import {
  DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
  DEFAULT_STEP_TIMEOUT_SECONDS,
  type PgBossHostOptions,
  type PgBossWorkOptions,
} from './pg-boss-host-options.js';
import { PgBossSchedules, type ScheduleJobData, scheduleQueueOf } from './pg-boss-schedules.js';
import { PostgresToolCallJournal } from './postgres-tool-call-journal.js';
import { StepQueue } from './step-queue.js';
import { StepWorker } from './step-worker.js';
import { TurnNotifications } from './turn-notifications.js';
import { type HostTurnStatus, TurnRecords } from './turn-records.js';
import {
  type StreamingTurnHandle,
  type SubmitTurnOptions,
  type TurnHandle,
  TurnSubmission,
} from './turn-submission.js';

/**
 * A durable, multi-process host on pg-boss: the steps of a turn (`input`, `reason`, `act`) run in
 * jobs; after a step, `planNextHostTurn` decides and the turn's checkpoint moves to the next step,
 * which the same job runs while `continueStepsSeconds` last, else a job of its own with an id
 * derived from the step (so a step replayed after a crash enqueues nothing twice). Any number of
 * worker processes may call {@link PgBossHost.work} on the same queue.
 *
 * Crash safety: every write of a step is idempotent by a deterministic key, tool calls are claimed
 * in the `tool_calls` table before they run, and a step whose worker died is retried by pg-boss
 * after `stepTimeoutSeconds`. Each step job claims its turn with a fencing token; a step that lost
 * it (one still running past `stepTimeoutSeconds` while its retry ran) writes nothing to the turn
 * or the session status. A turn's ending is recorded before its end events go out and delivered
 * once (`turn.completed` / `turn.failed`, `session.idled`), whatever kills a worker.
 */
export class PgBossHost {
  /** The pg-boss instance (for monitoring; do not work its queues yourself). */
  readonly boss: PgBoss;
  /** The tool-call journal of this host. */
  readonly journal: PostgresToolCallJournal;
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #context: HostContext;
  readonly #notifications: TurnNotifications;
  readonly #submission: TurnSubmission;
  readonly #clientTools: ClientToolSubmission;
  readonly #worker: StepWorker;
  readonly #schedules: PgBossSchedules;
  readonly #scheduleQueue: string;
  #stopped = false;

  private constructor(
    boss: PgBoss,
    pool: pg.Pool,
    ownsPool: boolean,
    adapter: RuntimeHostAdapter,
    options: PgBossHostOptions,
    names: HostNames,
  ) {
    this.boss = boss;
    this.journal = adapter.toolCallJournal as PostgresToolCallJournal;
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    const onError = options.onError ?? (() => {});
    const stepPayload = `${names.schema}:${names.queue}`;
    const steps = new StepQueue({ boss, queue: names.queue, pool, stepPayload, onError });
    this.#notifications = new TurnNotifications({
      pool,
      schema: names.schema,
      stepPayload,
      onStepAnnounced: () => steps.wakeIdleLoop(),
      onError,
    });
    const host = this;
    this.#context = {
      adapter,
      turns: new TurnRecords(pool, names.schema),
      steps,
      notifications: this.#notifications,
      turnLeaseMs: options.turnLeaseMs ?? DEFAULT_HOST_TURN_LEASE_MS,
      continueStepsMs: continueStepsSecondsOf(options) * 1000,
      checkpointIntervalMs: checkpointIntervalSecondsOf(options) * 1000,
      onError,
      logger: options.logger ?? silentLogger,
      get stopped() {
        return host.#stopped;
      },
    };
    this.#submission = new TurnSubmission(this.#context);
    this.#clientTools = new ClientToolSubmission(this.#context);
    this.#worker = new StepWorker(this.#context, boss, names.queue, this.#submission);
    this.#scheduleQueue = scheduleQueueOf(names.queue);
    this.#schedules = new PgBossSchedules({
      context: this.#context,
      boss,
      queue: this.#scheduleQueue,
      submission: this.#submission,
      clock: options.clock ?? { now: Date.now },
    });
    // Tools of capabilities-schedule get `context.schedules` (capabilities-subagents get
    // `context.subagents` per step, from the step worker).
    adapter.schedules = this.#schedules;
  }

  /**
   * Connects, creates pg-boss's schema, the host's tables and the queues when missing (safe from
   * many processes at once) and returns the host. Throws `CONFIGURATION` for bad names or limits.
   */
  static async start(options: PgBossHostOptions): Promise<PgBossHost> {
    const names = resolveHostNames(options);
    if (options.logger !== undefined && !everrunsLoggerSchema.safeParse(options.logger).success) {
      throw configurationError('logger must have debug, info, warn and error functions');
    }
    const leaseMs = options.turnLeaseMs ?? DEFAULT_HOST_TURN_LEASE_MS;
    if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) {
      throw configurationError(`turnLeaseMs must be a positive integer, got ${String(leaseMs)}`);
    }
    continueStepsSecondsOf(options);
    checkpointIntervalSecondsOf(options);
    const limits: TurnLimits = { ...DEFAULT_TURN_LIMITS, ...options.limits };
    const { pool, ownsPool } = hostPool(options);
    const adapter: RuntimeHostAdapter = {
      backends: options.backends,
      capabilities: options.platform.capabilities,
      drivers: options.platform.drivers,
      // A subagent sharing its parent's files (`workspaceSessionId`) gets the parent's workspace.
      fileSystems: workspaceLinkingFileSystems(
        options.fileSystems ??
          options.platform.fileSystemFactory ??
          new InMemorySessionFileSystemFactory(),
        options.backends.sessions,
      ),
      limits,
      toolCallJournal: new PostgresToolCallJournal(pool, names.schema),
      // Workers list a session's MCP tools on demand, in each step, from the platform's source.
      ...(options.platform.mcpToolSource ? { mcp: options.platform.mcpToolSource } : {}),
      ...(options.prices !== undefined ? { prices: parseHostPrices(options.prices) } : {}),
    };
    const boss = createBoss(pool, options, names.bossSchema);
    try {
      await startQueues(boss, pool, options, names);
    } catch (error) {
      await boss.stop({ graceful: false, wait: true }).catch(() => {});
      if (ownsPool) await pool.end().catch(() => {});
      throw error;
    }
    return new PgBossHost(boss, pool, ownsPool, adapter, options, names);
  }

  /** The adapter steps run with (stores, registries, journal). */
  get hostAdapter(): RuntimeHostAdapter {
    return this.#context.adapter;
  }

  /**
   * Makes this process a worker: it runs up to `concurrency` steps at once, marks turns whose
   * steps exhausted their retries as failed, and delivers due scheduled messages. A step waiting
   * for a subagent's turn lends its slot (one more step loop runs meanwhile), so `concurrency: 1`
   * cannot deadlock on a parent and its children.
   */
  async work(options: PgBossWorkOptions = {}): Promise<void> {
    await this.#worker.work(options.concurrency ?? 4);
    await this.boss.work<ScheduleJobData>(this.#scheduleQueue, { batchSize: 1 }, async ([job]) => {
      if (job) await this.#schedules.deliver(job.data);
    });
  }

  /**
   * The schedules of sessions on this host (`capabilities-schedule`'s `ScheduleHost`, as the
   * tools see it through `context.schedules`): create, list and cancel them from the embedder.
   */
  get schedules(): PgBossSchedules {
    return this.#schedules;
  }

  /**
   * Submits a turn: records it and enqueues its input step. Throws `INVALID_INPUT`,
   * `SESSION_NOT_FOUND`, `TURN_IN_PROGRESS` (a turn of the session is still running),
   * `TURN_WAITING_FOR_TOOL_RESULTS` (a turn of the session waits for client tool results, details
   * `turnId` and `pendingToolCallIds`: submit them first, `isError: true` abandons a call) and
   * `DUPLICATE_ID` before anything runs. With `stream: true` the handle is also an
   * `AsyncIterable<TurnStreamPart>` ({@link StreamingTurnHandle}): it listens to the stores'
   * event bus before the turn is enqueued, so it sees every part whichever worker process runs
   * the steps (`CONFIGURATION` when the bus cannot hear other processes; `STORE_UNAVAILABLE`
   * when it cannot listen).
   */
  submitTurn(
    sessionId: string,
    input: InputMessage,
    options: SubmitTurnOptions & { stream: true },
  ): Promise<StreamingTurnHandle>;
  submitTurn(
    sessionId: string,
    input: InputMessage,
    options?: SubmitTurnOptions,
  ): Promise<TurnHandle>;
  submitTurn(
    sessionId: string,
    input: InputMessage,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle | StreamingTurnHandle> {
    return this.#submission.submitTurn(sessionId, input, options);
  }

  /**
   * Submits the results of client-side tool calls of a turn that waits for them (status
   * `waiting_for_tool_results`) and returns the turn's handle. Stores one `tool_result` message
   * per call (idempotent by `<turnId>/tool/<callId>`, as the act step); once no call of the pause
   * lacks a result, the turn continues as jobs with the planner's resume plan (or completes with
   * `max_iterations` when the pause used the last iteration). Throws, writing nothing:
   * `INVALID_INPUT` (bad arguments, a turn of another session or not waiting, a call id that is
   * not pending), `SESSION_NOT_FOUND`, and `TURN_IN_PROGRESS` when another turn runs on the
   * session.
   */
  async submitToolResults(
    sessionId: string,
    turnId: string,
    results: ClientToolResult[],
  ): Promise<TurnHandle> {
    await this.#clientTools.submitToolResults(sessionId, turnId, results);
    return this.turn(turnId, sessionId);
  }

  /** {@link submitTurn} with a plain user text. */
  submitTextTurn(
    sessionId: string,
    text: string,
    options: SubmitTurnOptions & { stream: true },
  ): Promise<StreamingTurnHandle>;
  submitTextTurn(sessionId: string, text: string, options?: SubmitTurnOptions): Promise<TurnHandle>;
  submitTextTurn(
    sessionId: string,
    text: string,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle | StreamingTurnHandle> {
    return this.#submission.submitTurn(
      sessionId,
      { role: 'user', content: [{ type: 'text', text }] },
      options,
    );
  }

  /** A handle on a turn submitted earlier (by any process). */
  turn(turnId: string, sessionId = ''): TurnHandle {
    return this.#submission.handle(turnId, sessionId);
  }

  /** The turn as the host's table has it, or `null` for an unknown turn. */
  turnStatus(turnId: string): Promise<HostTurnStatus | null> {
    return this.#submission.status(turnId);
  }

  /**
   * Resumes a turn from its checkpoint as a new generation of jobs: for a turn whose steps failed
   * every retry, or one an operator believes stuck. Safe while the old generation still runs: the
   * new generation takes the turn's fencing token, so the old one's steps write nothing to the
   * turn or its session from then on (messages are stored once by their keys), and an ending the
   * old generation had begun is delivered by the new one, once. Does nothing for a completed turn
   * or one that waits for client tool results. Throws `INVALID_INPUT` for an unknown turn.
   */
  resumeTurn(turnId: string): Promise<void> {
    return this.#submission.resumeTurn(turnId);
  }

  /**
   * Switches a capability on for a session (live capability changes, as
   * `InProcessRuntime.activateCapability`): stored in the session's capability list, emitted as
   * `capability.activated`, and seen by the next step any worker runs (each step resolves the
   * session's setup afresh). Returns the tools and prompt sections added or removed. Throws
   * `INVALID_INPUT` (also a `config` the capability's schema refuses), `CAPABILITY_NOT_FOUND`,
   * `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED`.
   */
  activateCapability(
    sessionId: string,
    capabilityId: string,
    config?: unknown,
  ): Promise<CapabilityChange> {
    return activateSessionCapability(this.#context.adapter, sessionId, capabilityId, config);
  }

  /**
   * Switches a capability off for a session (an inherited one through a `disabled` entry), emits
   * `capability.deactivated`; seen by the next step. Throws as {@link activateCapability}.
   */
  deactivateCapability(sessionId: string, capabilityId: string): Promise<CapabilityChange> {
    return deactivateSessionCapability(this.#context.adapter, sessionId, capabilityId);
  }

  /** The slash commands of a session's capabilities. Throws `SESSION_NOT_FOUND`, `INVALID_INPUT`. */
  listCommands(sessionId: string): Promise<SessionCommandInfo[]> {
    return listSessionCommands(this.#context.adapter, sessionId);
  }

  /**
   * Runs a slash command of a session in this process, without a model call or a job (`'/todos'`,
   * arguments after the name or in `args`). Throws `INVALID_INPUT`, `COMMAND_NOT_FOUND`,
   * `CAPABILITY_FAILED`, `ABORTED`, `SESSION_NOT_FOUND`.
   */
  executeCommand(
    sessionId: string,
    command: string,
    args?: string,
    options: ExecuteSessionCommandOptions = {},
  ): Promise<SessionCommandResult> {
    return executeSessionCommand(this.#context.adapter, sessionId, command, args, options);
  }

  /** Deletes tool-call journal entries older than `before` (they are kept after turns end). */
  pruneToolCallJournal(before: Date): Promise<number> {
    return this.journal.prune(before);
  }

  /**
   * Stops working and closes the connections. Steps in progress get up to `timeoutMs` to finish;
   * the rest are retried by another worker.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.boss.stop({ graceful: true, wait: true, timeout: options.timeoutMs ?? 10_000 });
    await this.#notifications.close();
    if (this.#ownsPool) await this.#pool.end().catch(() => {});
  }
}

/** The host's prices, validated; `CONFIGURATION` naming the field when malformed. */
function parseHostPrices(prices: unknown): ModelPrices {
  const parsed = modelPricesSchema.safeParse(prices);
  if (!parsed.success) {
    throw configurationError(`prices are invalid: ${formatZodError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * `checkpointIntervalSeconds`, defaulted to {@link DEFAULT_CHECKPOINT_INTERVAL_SECONDS};
 * `CONFIGURATION` unless it is a finite number of at least 0.
 */
function checkpointIntervalSecondsOf(options: PgBossHostOptions): number {
  const seconds = options.checkpointIntervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw configurationError(
      `checkpointIntervalSeconds must be a finite number of at least 0, got ${String(seconds)}`,
    );
  }
  return seconds;
}

/**
 * `continueStepsSeconds`, defaulted to a tenth of `stepTimeoutSeconds`; `CONFIGURATION` unless it
 * is a finite number from 0 to under `stepTimeoutSeconds`.
 */
function continueStepsSecondsOf(options: PgBossHostOptions): number {
  const timeout = options.stepTimeoutSeconds ?? DEFAULT_STEP_TIMEOUT_SECONDS;
  const seconds = options.continueStepsSeconds ?? timeout / 10;
  if (
    typeof seconds !== 'number' ||
    !Number.isFinite(seconds) ||
    seconds < 0 ||
    !(seconds < timeout)
  ) {
    throw configurationError(
      `continueStepsSeconds must be a number from 0 to under stepTimeoutSeconds (${String(timeout)}), got ${String(seconds)}`,
    );
  }
  return seconds;
}
