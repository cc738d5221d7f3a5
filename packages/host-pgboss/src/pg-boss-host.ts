import { createHash } from 'node:crypto';
import {
  DEFAULT_TURN_LIMITS,
  ERROR_CODES,
  type ErrorCode,
  EverrunsError,
  errorMessage,
  formatZodError,
  type InputMessage,
  inputMessageSchema,
  newId,
  type PlatformDefinition,
  type RuntimeBackends,
  type SessionFileSystemFactory,
  type TurnLimits,
  type TurnSetup,
} from '@everruns-ts/core';
import {
  type ClientToolResult,
  clientToolResultsSchema,
  executeTurnStep,
  forgetWaitingTurn,
  initialTurnState,
  initialTurnStep,
  loadWaitingTurn,
  parseRuntimeTurnStep,
  planResumeAfterToolResults,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
  type RuntimeTurnState,
  type RuntimeTurnStep,
  settleTurn,
  storeClientToolResults,
  type TurnResult,
  turnStepKey,
} from '@everruns-ts/runtime';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { createHostTables, isValidSchemaName } from './host-tables.js';
import { PostgresToolCallJournal } from './postgres-tool-call-journal.js';
import {
  type HostTurnStatus,
  TurnRecords as Records,
  TURN_CHANNEL,
  type TurnRecords,
} from './turn-records.js';

/** How failing steps are retried. */
export interface PgBossRetryOptions {
  /** Retries after the first attempt. Default 5. */
  limit?: number;
  /** Delay before the first retry, in seconds. Default 1. */
  delaySeconds?: number;
  /** Double the delay after each retry (with jitter). Default true. */
  backoff?: boolean;
}

/** Options of {@link PgBossHost.start}. */
export interface PgBossHostOptions {
  /**
   * The PostgreSQL server of the queue and of the host's tables, usually the stores' server. Give
   * this or `pool`.
   */
  connectionString?: string;
  /**
   * A pool the caller owns (for example the stores' `backends.pool`), used for the queue and the
   * host's tables instead of a pool of the host's own; the host never ends it. Give this or
   * `connectionString`.
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
}

/** Options of {@link PgBossHost.work}. */
export interface PgBossWorkOptions {
  /** How many steps this process runs at once. Default 4. */
  concurrency?: number;
}

/** Options of {@link PgBossHost.submitTurn}. */
export interface SubmitTurnOptions {
  /** The turn id; generated when absent. */
  turnId?: string;
}

/** Options of {@link TurnHandle.result}. */
export interface TurnResultOptions {
  /** Stops waiting (rejects with `ABORTED`). */
  signal?: AbortSignal;
  /** Gives up waiting after this many milliseconds (rejects with `LIMIT_EXCEEDED`). */
  timeoutMs?: number;
}

/** A submitted turn: await its result or poll its status. */
export interface TurnHandle {
  readonly turnId: string;
  readonly sessionId: string;
  /** The turn as the host's table has it now. */
  status(): Promise<HostTurnStatus>;
  /**
   * Waits until the turn completes (or waits for client tool results) and resolves with its
   * result; rejects with the host's error when the turn `failed`.
   */
  result(options?: TurnResultOptions): Promise<TurnResult>;
}

interface StepJobData {
  step: unknown;
  generation: number;
}

interface DeadJobData {
  step?: unknown;
}

const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PERMANENT_CODES = new Set(['STATE_INVALID', 'SESSION_NOT_FOUND', 'INVALID_INPUT']);

/**
 * A durable, multi-process host on pg-boss: each step of a turn (`input`, `reason`, `act`) is a
 * job; after a step, `planNextHostTurn` decides and the next step is enqueued with an id derived
 * from the step, so a step replayed after a crash enqueues nothing twice. Any number of worker
 * processes may call {@link PgBossHost.work} on the same queue.
 *
 * Crash safety comes from the runtime: every write of a step is idempotent by a deterministic key,
 * tool calls are claimed in the `tool_calls` table before they run, and a step whose worker died
 * is retried by pg-boss after `stepTimeoutSeconds`.
 */
export class PgBossHost {
  /** The pg-boss instance (for monitoring; do not work its queues yourself). */
  readonly boss: PgBoss;
  /** The tool-call journal of this host. */
  readonly journal: PostgresToolCallJournal;
  readonly #pool: pg.Pool;
  readonly #turns: TurnRecords;
  readonly #adapter: RuntimeHostAdapter;
  readonly #queue: string;
  readonly #deadQueue: string;
  readonly #schema: string;
  readonly #ownsPool: boolean;
  readonly #listenerConfig: string | pg.ClientConfig;
  readonly #onError: (error: unknown) => void;
  readonly #workerIds: string[] = [];
  /** The step loops of this process (one pg-boss worker each) and whether each runs a step. */
  readonly #loops: Array<{ id: string | undefined; busy: boolean }> = [];
  readonly #stepPayload: string;
  readonly #waiters = new Map<string, Set<() => void>>();
  #listener: Promise<pg.Client | null> | undefined;
  #stopped = false;

  private constructor(
    boss: PgBoss,
    pool: pg.Pool,
    adapter: RuntimeHostAdapter,
    options: PgBossHostOptions,
    names: { queue: string; schema: string; ownsPool: boolean },
  ) {
    this.boss = boss;
    this.#pool = pool;
    this.#adapter = adapter;
    this.#queue = names.queue;
    this.#deadQueue = `${names.queue}-dead`;
    this.#schema = names.schema;
    this.#ownsPool = names.ownsPool;
    this.#listenerConfig =
      options.connectionString ?? (pool as unknown as { options: pg.ClientConfig }).options;
    this.#onError = options.onError ?? (() => {});
    this.#turns = new Records(pool, names.schema);
    this.#stepPayload = `${names.schema}:${names.queue}`;
    this.journal = adapter.toolCallJournal as PostgresToolCallJournal;
  }

  /**
   * Connects, creates pg-boss's schema, the host's tables and the queues when missing (safe from
   * many processes at once) and returns the host. Throws `CONFIGURATION` for bad names or limits.
   */
  static async start(options: PgBossHostOptions): Promise<PgBossHost> {
    const queue = options.queue ?? 'everruns-turn-steps';
    const schema = options.schema ?? 'everruns_host';
    const bossSchema = options.bossSchema ?? 'pgboss';
    if (!QUEUE_NAME.test(queue)) {
      throw configuration(`Invalid queue name ${JSON.stringify(queue)}`, { queue });
    }
    for (const name of [schema, bossSchema]) {
      if (!isValidSchemaName(name)) {
        throw configuration(`Invalid PostgreSQL schema name ${JSON.stringify(name)}`, {
          schema: name,
        });
      }
    }
    if ((options.pool === undefined) === (options.connectionString === undefined)) {
      throw configuration('Give PgBossHost.start either connectionString or pool', {});
    }
    const retry = options.retry ?? {};
    const limits: TurnLimits = { ...DEFAULT_TURN_LIMITS, ...options.limits };
    const ownsPool = options.pool === undefined;
    const pool =
      options.pool ??
      new pg.Pool({
        connectionString: options.connectionString,
        max: options.poolSize ?? 4,
        application_name: 'everruns-host-pgboss',
      });
    if (ownsPool) pool.on('error', (error) => options.onError?.(error));
    const journal = new PostgresToolCallJournal(pool, schema);
    const adapter: RuntimeHostAdapter = {
      backends: options.backends,
      capabilities: options.platform.capabilities,
      drivers: options.platform.drivers,
      fileSystems:
        options.fileSystems ??
        options.platform.fileSystemFactory ??
        new InMemorySessionFileSystemFactory(),
      limits,
      toolCallJournal: journal,
    };
    const boss = new PgBoss({
      // pg-boss runs its statements on the same pool.
      db: { executeSql: (text: string, values: unknown[]) => pool.query(text, values) },
      schema: bossSchema,
      schedule: false,
      supervise: options.supervise ?? true,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 30,
      pollingIntervalSeconds: options.pollingIntervalSeconds ?? 1,
    });
    boss.on('error', (error) => options.onError?.(error));
    const queueOptions = {
      retryLimit: retry.limit ?? 5,
      retryDelay: retry.delaySeconds ?? 1,
      retryBackoff: retry.backoff ?? true,
      expireInSeconds: options.stepTimeoutSeconds ?? 900,
    };
    const clientConfig =
      options.connectionString ?? (pool as unknown as { options: pg.ClientConfig }).options;
    try {
      // pg-boss creates its schema without IF NOT EXISTS: processes starting together take turns.
      await withAdvisoryLock(clientConfig, `everruns-host-pgboss-start:${bossSchema}`, async () => {
        await createHostTables(pool, schema);
        await boss.start();
        await createQueues(boss, [
          { name: `${queue}-dead`, ...queueOptions },
          { name: queue, ...queueOptions, deadLetter: `${queue}-dead` },
        ]);
      });
    } catch (error) {
      await boss.stop({ graceful: false, wait: true }).catch(() => {});
      if (ownsPool) await pool.end().catch(() => {});
      throw error;
    }
    return new PgBossHost(boss, pool, adapter, options, { queue, schema, ownsPool });
  }

  /** The adapter steps run with (stores, registries, journal). */
  get hostAdapter(): RuntimeHostAdapter {
    return this.#adapter;
  }

  /**
   * Makes this process a worker: it runs up to `concurrency` steps at once, and marks turns whose
   * steps exhausted their retries as failed.
   */
  async work(options: PgBossWorkOptions = {}): Promise<void> {
    this.#assertRunning();
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new TypeError('concurrency must be a positive integer');
    }
    const workOptions = { batchSize: 1, includeMetadata: true as const };
    // Steps other processes enqueue wake this one through NOTIFY instead of waiting for a poll.
    await this.#listen();
    for (let index = 0; index < concurrency; index++) {
      const loop: { id: string | undefined; busy: boolean } = { id: undefined, busy: false };
      this.#loops.push(loop);
      loop.id = await this.boss.work<StepJobData>(this.#queue, workOptions, async ([job]) => {
        if (!job) return;
        loop.busy = true;
        try {
          await this.#runStepJob(job);
        } finally {
          loop.busy = false;
          // Fetch again at once instead of sleeping a polling interval: more steps are likely
          // waiting (this step's successor among them). An empty fetch ends the streak.
          if (loop.id) this.boss.notifyWorker(loop.id);
        }
      });
      this.#workerIds.push(loop.id);
    }
    this.#workerIds.push(
      await this.boss.work<DeadJobData>(this.#deadQueue, workOptions, async ([job]) => {
        if (job) await this.#onDeadStep(job.data);
      }),
    );
  }

  /**
   * Submits a turn: records it and enqueues its input step. Throws `INVALID_INPUT`,
   * `SESSION_NOT_FOUND`, `TURN_IN_PROGRESS` (a turn of the session is still running) and
   * `DUPLICATE_ID` before anything runs.
   */
  async submitTurn(
    sessionId: string,
    input: InputMessage,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle> {
    this.#assertRunning();
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'sessionId must be a non-empty string',
      });
    }
    const parsed = inputMessageSchema.safeParse(input);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid input message: ${formatZodError(parsed.error)}`,
      });
    }
    if (!(await this.#adapter.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    const turnId = options.turnId ?? newId('turn');
    const step = initialTurnStep({
      sessionId,
      turnId,
      input: parsed.data,
      maxIterations: this.#adapter.limits.maxIterations,
      maxRepeatedToolCalls: this.#adapter.limits.maxRepeatedToolCalls,
    });
    await this.#turns.insert(turnId, sessionId, step);
    try {
      await this.#send(step, 0, true);
    } catch (error) {
      await this.#turns.delete(turnId).catch(() => {});
      throw error;
    }
    return this.turn(turnId, sessionId);
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
    this.#assertRunning();
    for (const [name, value] of [
      ['sessionId', sessionId],
      ['turnId', turnId],
    ] as const) {
      if (typeof value !== 'string' || value.length === 0) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `${name} must be a non-empty string`,
        });
      }
    }
    const parsed = clientToolResultsSchema.safeParse(results);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid tool results: ${formatZodError(parsed.error)}`,
      });
    }
    if (!(await this.#adapter.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    const row = await this.#turns.get(turnId);
    const resume =
      row?.sessionId === sessionId && row.status === 'waiting_for_tool_results'
        ? await loadWaitingTurn(this.#adapter, sessionId, turnId)
        : null;
    if (!resume) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Turn ${turnId} of session ${sessionId} does not wait for tool results`,
        details: { sessionId, turnId },
      });
    }
    const running = await this.#turns.runningTurnOf(sessionId);
    if (running !== null) {
      throw new EverrunsError({
        code: 'TURN_IN_PROGRESS',
        message: `A turn is already running on session ${sessionId}`,
        details: { sessionId, turnId: running },
      });
    }
    const { remaining } = await storeClientToolResults(this.#adapter, resume, parsed.data);
    if (remaining.length === 0) await this.#continueWaitingTurn(sessionId, turnId, resume);
    return this.turn(turnId, sessionId);
  }

  async #continueWaitingTurn(
    sessionId: string,
    turnId: string,
    resume: RuntimeTurnState,
  ): Promise<void> {
    const plan = planResumeAfterToolResults(resume);
    const step: RuntimeTurnStep = { activity: 'reason', state: plan.state };
    const generation = await this.#turns.resumeWaiting(turnId, step);
    // Another caller continued the turn first.
    if (generation === null) return;
    if (plan.kind === 'scheduleReason') {
      await this.#adapter.backends.sessions.updateSessionStatus(sessionId, 'active');
      await this.#send(step, generation, true);
    } else if (await this.#turns.claimEnding(turnId, `submit:${turnId}/${resume.iteration}`)) {
      // The pause used the last iteration: the turn completes here.
      const result = await settleTurn(this.#adapter, plan);
      await this.#turns.finish(turnId, 'completed', result, null);
    }
    await forgetWaitingTurn(this.#adapter, sessionId, turnId);
  }

  /** {@link submitTurn} with a plain user text. */
  submitTextTurn(
    sessionId: string,
    text: string,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle> {
    return this.submitTurn(sessionId, { role: 'user', content: [{ type: 'text', text }] }, options);
  }

  /** A handle on a turn submitted earlier (by any process). */
  turn(turnId: string, sessionId = ''): TurnHandle {
    return {
      turnId,
      sessionId,
      status: async () => {
        const status = await this.turnStatus(turnId);
        if (!status) {
          throw new EverrunsError({
            code: 'INVALID_INPUT',
            message: `Turn ${turnId} is unknown to this host`,
            details: { turnId },
          });
        }
        return status;
      },
      result: (options) => this.#awaitResult(turnId, options ?? {}),
    };
  }

  /** The turn as the host's table has it, or `null` for an unknown turn. */
  async turnStatus(turnId: string): Promise<HostTurnStatus | null> {
    const row = await this.#turns.get(turnId);
    if (!row) return null;
    const { stepValue: _step, ...status } = row;
    return status;
  }

  /**
   * Resumes a turn from its checkpoint as a new generation of jobs: for a turn whose steps failed
   * every retry, or one an operator believes stuck. Safe while the old generation still runs: the
   * steps' writes are idempotent, so racing generations store everything once. Does nothing for a
   * completed turn. Throws `INVALID_INPUT` for an unknown turn.
   */
  async resumeTurn(turnId: string): Promise<void> {
    this.#assertRunning();
    const next = await this.#turns.nextGeneration(turnId);
    if (!next) return;
    await this.#send(parseRuntimeTurnStep(next.step), next.generation, true);
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
    const listener = await this.#listener?.catch(() => null);
    await listener?.end().catch(() => {});
    for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
    if (this.#ownsPool) await this.#pool.end().catch(() => {});
  }

  /**
   * Enqueues a step. A step sent from a step job is fetched by that job's loop as soon as the job
   * ends; other processes are woken with a NOTIFY when asked (`wakeOthers`, for steps sent by a
   * client) or when no loop of this process is idle.
   */
  async #send(step: RuntimeTurnStep, generation: number, wakeOthers = false): Promise<void> {
    const data: StepJobData = { step, generation };
    await this.boss.send(this.#queue, data as unknown as object, {
      id: stepJobId(this.#queue, step, generation),
    });
    const wokeLocal = wakeOthers ? this.#wakeIdleLoop() : this.#hasIdleLoop();
    if (wakeOthers || !wokeLocal) {
      await this.#pool
        .query('SELECT pg_notify($1, $2)', [STEP_CHANNEL, this.#stepPayload])
        .catch((error: unknown) => this.#onError(error));
    }
  }

  #hasIdleLoop(): boolean {
    return this.#loops.some((loop) => !loop.busy);
  }

  /** Wakes one idle step loop of this process; false when none is idle. */
  #wakeIdleLoop(): boolean {
    const idle = this.#loops.find((loop) => !loop.busy && loop.id !== undefined);
    if (!idle?.id) return false;
    this.boss.notifyWorker(idle.id);
    return true;
  }

  async #runStepJob(job: PgBoss.JobWithMetadata<StepJobData>): Promise<void> {
    const data = job.data;
    let step: RuntimeTurnStep;
    try {
      step = parseRuntimeTurnStep(data?.step);
    } catch (error) {
      await this.#failFromRawStep(data?.step, error);
      return;
    }
    const { turnId } = step.state;
    const row = await this.#turns.get(turnId);
    if (row?.status !== 'running') return;
    const generation = typeof data.generation === 'number' ? data.generation : 0;
    const adapter: RuntimeHostAdapter = {
      ...this.#adapter,
      setupCache: new Map<string, TurnSetup>(),
    };
    try {
      const outcome = await executeTurnStep(adapter, step);
      if (outcome.next) {
        await this.#turns.checkpoint(turnId, outcome.next);
        await this.#send(outcome.next, generation);
        return;
      }
      if (!(await this.#turns.claimEnding(turnId, job.id))) return;
      const result = await settleTurn(adapter, outcome.plan);
      await this.#turns.finish(
        turnId,
        outcome.plan.kind === 'waitForToolResults' ? 'waiting_for_tool_results' : 'completed',
        result,
        null,
      );
    } catch (error) {
      const summary = summarize(error);
      if (EverrunsError.isInstance(error) && PERMANENT_CODES.has(error.code)) {
        await this.#failTurn(row.sessionId, turnId, step, summary);
        return;
      }
      await this.#turns.recordError(turnId, summary).catch(() => {});
      throw error;
    }
  }

  /** A step failed every retry (or its worker died on the last one): the turn fails. */
  async #onDeadStep(data: DeadJobData | undefined): Promise<void> {
    let step: RuntimeTurnStep;
    try {
      step = parseRuntimeTurnStep(data?.step);
    } catch (error) {
      await this.#failFromRawStep(data?.step, error);
      return;
    }
    const row = await this.#turns.get(step.state.turnId);
    if (row?.status !== 'running') return;
    await this.#failTurn(
      row.sessionId,
      row.turnId,
      step,
      row.error ?? { code: 'INTERNAL', message: `Step ${turnStepKey(step)} failed every retry` },
    );
  }

  async #failFromRawStep(raw: unknown, error: unknown): Promise<void> {
    const turnId = (raw as { state?: { turnId?: unknown } })?.state?.turnId;
    if (typeof turnId !== 'string') return;
    const row = await this.#turns.get(turnId);
    if (row?.status !== 'running') return;
    await this.#failTurn(row.sessionId, turnId, null, summarize(error));
  }

  async #failTurn(
    sessionId: string,
    turnId: string,
    step: RuntimeTurnStep | null,
    error: { code: string; message: string },
  ): Promise<void> {
    const state = step?.state ?? initialTurnState({ sessionId, turnId });
    try {
      await new RuntimeSessionLifecycle(this.#adapter, sessionId).turnEnded(state, {
        success: false,
        response: state.lastResponseText,
        stopReason: 'error',
        error,
      });
    } catch (lifecycleError) {
      this.#onError(lifecycleError);
    }
    await this.#turns.finish(turnId, 'failed', null, error);
  }

  async #awaitResult(turnId: string, options: TurnResultOptions): Promise<TurnResult> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    await this.#listen();
    for (;;) {
      if (options.signal?.aborted) {
        throw new EverrunsError({
          code: 'ABORTED',
          message: 'Stopped waiting for the turn',
          cause: options.signal.reason,
        });
      }
      const status = await this.turnStatus(turnId);
      if (!status) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Turn ${turnId} is unknown to this host`,
          details: { turnId },
        });
      }
      if (status.result && status.status !== 'running') return status.result;
      if (status.status === 'failed') {
        const code = status.error?.code;
        throw new EverrunsError({
          code: code && isErrorCode(code) ? code : 'INTERNAL',
          message: status.error?.message ?? `Turn ${turnId} failed`,
          details: { turnId, ...(code ? { errorCode: code } : {}) },
        });
      }
      if (this.#stopped)
        throw new EverrunsError({ code: 'ABORTED', message: 'The host was stopped' });
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new EverrunsError({
          code: 'LIMIT_EXCEEDED',
          message: `Turn ${turnId} did not finish within ${options.timeoutMs} ms`,
          details: { turnId },
        });
      }
      await this.#waitForChange(turnId, Math.min(remaining, 1_000), options.signal);
    }
  }

  #waitForChange(turnId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(turnId);
      if (!waiters) {
        waiters = new Set();
        this.#waiters.set(turnId, waiters);
      }
      const set = waiters;
      const wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        set.delete(wake);
        if (set.size === 0 && this.#waiters.get(turnId) === set) this.#waiters.delete(turnId);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', wake, { once: true });
      set.add(wake);
    });
  }

  /** One LISTEN connection per host wakes waiting handles; polling covers a lost connection. */
  #listen(): Promise<pg.Client | null> {
    this.#listener ??= (async () => {
      const client = new pg.Client(this.#listenerConfig);
      client.on('error', (error) => {
        this.#onError(error);
        this.#listener = undefined;
      });
      client.on('notification', (message) => {
        if (message.channel === STEP_CHANNEL) {
          if (message.payload === this.#stepPayload) this.#wakeIdleLoop();
          return;
        }
        const prefix = `${this.#schema}:`;
        if (!message.payload?.startsWith(prefix)) return;
        const waiters = this.#waiters.get(message.payload.slice(prefix.length));
        for (const wake of [...(waiters ?? [])]) wake();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${TURN_CHANNEL}; LISTEN ${STEP_CHANNEL}`);
        return client;
      } catch (error) {
        this.#onError(error);
        this.#listener = undefined;
        await client.end().catch(() => {});
        return null;
      }
    })();
    return this.#listener;
  }

  #assertRunning(): void {
    if (this.#stopped)
      throw new EverrunsError({ code: 'CONFIGURATION', message: 'The host was stopped' });
  }
}

/** The channel that announces new steps (payload `hostSchema:queue`). */
const STEP_CHANNEL = 'everruns_host_step';

/** Creates the queues that are missing. */
async function createQueues(
  boss: PgBoss,
  queues: Array<PgBoss.Queue & { name: string }>,
): Promise<void> {
  for (const queue of queues) {
    if (!(await boss.getQueue(queue.name))) await boss.createQueue(queue.name, queue);
  }
}

/**
 * Runs `task` while holding a session-level advisory lock on a connection of its own: pg-boss
 * creates its schema and each queue's partition without IF NOT EXISTS, so processes starting at
 * the same time take turns.
 */
async function withAdvisoryLock<T>(
  clientConfig: string | pg.ClientConfig,
  key: string,
  task: () => Promise<T>,
): Promise<T> {
  const client = new pg.Client(clientConfig);
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [key]);
    return await task();
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The job id of a step: a UUID derived from the queue, the step (`turnId/activity/iteration`) and
 * the generation, so enqueueing the same step twice inserts one job.
 */
export function stepJobId(queue: string, step: RuntimeTurnStep, generation: number): string {
  const hex = createHash('sha256')
    .update(`${queue}\n${turnStepKey(step)}\n${generation}`)
    .digest('hex')
    .slice(0, 32)
    .split('');
  hex[12] = '8';
  hex[16] = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  const value = hex.join('');
  return `${value.slice(0, 8)}-${value.slice(8, 12)}-${value.slice(12, 16)}-${value.slice(16, 20)}-${value.slice(20)}`;
}

function summarize(error: unknown): { code: string; message: string } {
  return {
    code: EverrunsError.isInstance(error) ? error.code : 'INTERNAL',
    message: errorMessage(error),
  };
}

function configuration(message: string, details: Record<string, unknown>): EverrunsError {
  return new EverrunsError({ code: 'CONFIGURATION', message, details });
}

function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}
