import type { TurnSetup } from '@everruns-ts/core';
import {
  executeTurnStep,
  initialTurnState,
  parseRuntimeTurnStep,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
  type RuntimeTurnStep,
  settleTurn,
  turnStepKey,
} from '@everruns-ts/runtime/host';
import type PgBoss from 'pg-boss';
import { assertRunning, type HostContext } from './host-context.js';
import { isPermanentStepError, type RecordedError, recordedError } from './host-errors.js';
import { type DeadJobData, deadLetterQueueOf, type StepJobData } from './step-jobs.js';
import type { StepLoop } from './step-queue.js';

/**
 * The pg-boss side of the host: step loops that run each step job with the runtime's
 * `executeTurnStep`, checkpoint and enqueue the next step, end the turn with `settleTurn`, and
 * fail turns whose steps cannot succeed (a permanent error, every retry spent, a state that does
 * not parse).
 */
export class StepWorker {
  readonly #context: HostContext;
  readonly #boss: PgBoss;
  readonly #queue: string;

  constructor(context: HostContext, boss: PgBoss, queue: string) {
    this.#context = context;
    this.#boss = boss;
    this.#queue = queue;
  }

  /**
   * Starts `concurrency` step loops on the step queue and one on its dead-letter queue. Throws a
   * `TypeError` for a bad `concurrency`, `CONFIGURATION` when the host was stopped.
   */
  async work(concurrency: number): Promise<void> {
    assertRunning(this.#context);
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new TypeError('concurrency must be a positive integer');
    }
    const workOptions = { batchSize: 1, includeMetadata: true as const };
    // Steps other processes enqueue wake this one through NOTIFY instead of waiting for a poll.
    await this.#context.notifications.listen();
    for (let index = 0; index < concurrency; index++) {
      const loop: StepLoop = { id: undefined, busy: false };
      this.#context.steps.loops.push(loop);
      loop.id = await this.#boss.work<StepJobData>(this.#queue, workOptions, async ([job]) => {
        if (!job) return;
        loop.busy = true;
        try {
          await this.#runStepJob(job);
        } finally {
          loop.busy = false;
          // Fetch again at once instead of sleeping a polling interval: more steps are likely
          // waiting (this step's successor among them). An empty fetch ends the streak.
          if (loop.id) this.#boss.notifyWorker(loop.id);
        }
      });
    }
    await this.#boss.work<DeadJobData>(
      deadLetterQueueOf(this.#queue),
      workOptions,
      async ([job]) => {
        if (job) await this.#onDeadStep(job.data);
      },
    );
  }

  async #runStepJob(job: PgBoss.JobWithMetadata<StepJobData>): Promise<void> {
    const { turns, steps } = this.#context;
    const data = job.data;
    let step: RuntimeTurnStep;
    try {
      step = parseRuntimeTurnStep(data?.step);
    } catch (error) {
      await this.#failFromRawStep(data?.step, error);
      return;
    }
    const { turnId } = step.state;
    const row = await turns.get(turnId);
    if (row?.status !== 'running') return;
    const generation = typeof data.generation === 'number' ? data.generation : 0;
    const adapter: RuntimeHostAdapter = {
      ...this.#context.adapter,
      setupCache: new Map<string, TurnSetup>(),
    };
    try {
      const outcome = await executeTurnStep(adapter, step);
      if (outcome.next) {
        await turns.checkpoint(turnId, outcome.next);
        await steps.send(outcome.next, generation);
        return;
      }
      if (!(await turns.claimEnding(turnId, job.id))) return;
      const result = await settleTurn(adapter, outcome.plan);
      await turns.finish(
        turnId,
        outcome.plan.kind === 'waitForToolResults' ? 'waiting_for_tool_results' : 'completed',
        result,
        null,
      );
    } catch (error) {
      const recorded = recordedError(error);
      if (isPermanentStepError(error)) {
        await this.#failTurn(row.sessionId, turnId, step, recorded);
        return;
      }
      await turns.recordError(turnId, recorded).catch(() => {});
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
    const row = await this.#context.turns.get(step.state.turnId);
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
    const row = await this.#context.turns.get(turnId);
    if (row?.status !== 'running') return;
    await this.#failTurn(row.sessionId, turnId, null, recordedError(error));
  }

  async #failTurn(
    sessionId: string,
    turnId: string,
    step: RuntimeTurnStep | null,
    error: RecordedError,
  ): Promise<void> {
    const state = step?.state ?? initialTurnState({ sessionId, turnId });
    try {
      await new RuntimeSessionLifecycle(this.#context.adapter, sessionId).turnEnded(state, {
        success: false,
        response: state.lastResponseText,
        stopReason: 'error',
        error,
      });
    } catch (lifecycleError) {
      this.#context.onError(lifecycleError);
    }
    await this.#context.turns.finish(turnId, 'failed', null, error);
  }
}
