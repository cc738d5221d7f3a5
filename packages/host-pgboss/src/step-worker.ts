import { EverrunsError, type TurnSetup } from '@everruns-ts/core';
import {
  type ExecuteTurnStepOptions,
  executeTurnStep,
  initialTurnState,
  parseRuntimeTurnStep,
  type RuntimeHostAdapter,
  type RuntimeTurnState,
  type RuntimeTurnStep,
  TurnStepChain,
  type TurnStepOutcome,
  turnStepKey,
} from '@everruns-ts/runtime/host';
import type PgBoss from 'pg-boss';
import { fencedStepAdapter } from './fenced-step-adapter.js';
import { assertRunning, type HostContext } from './host-context.js';
import {
  isPermanentStepError,
  type RecordedError,
  recordedError,
  StaleStepError,
} from './host-errors.js';
import { holdTurnLease } from './host-turn-lease.js';
import { fromJsonbValue } from './jsonb-text.js';
import { stepSubagents } from './pg-boss-subagents.js';
import { type DeadJobData, deadLetterQueueOf, type StepJobData } from './step-jobs.js';
import type { StepLoop } from './step-queue.js';
import { deliverEnding } from './turn-ending.js';
import { type PendingEnding, type StepClaim, stepOrder } from './turn-records.js';
import type { TurnSubmission } from './turn-submission.js';

/**
 * The pg-boss side of the host: step loops that claim the turn of each step job (a new fencing
 * token), run the step with the runtime's `executeTurnStep` on a fenced adapter, move the
 * checkpoint and enqueue the next step in one transaction, record and deliver the turn's ending
 * once, and fail turns whose steps cannot succeed (a permanent error, every retry spent, a state
 * that does not parse). A step whose claim was taken over stops without writing to the turn or
 * its session.
 */
export class StepWorker {
  readonly #context: HostContext;
  readonly #boss: PgBoss;
  readonly #queue: string;
  readonly #submission: TurnSubmission;
  /** True once {@link work} started the step loops. */
  #working = false;

  constructor(context: HostContext, boss: PgBoss, queue: string, submission: TurnSubmission) {
    this.#context = context;
    this.#boss = boss;
    this.#queue = queue;
    this.#submission = submission;
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
    for (let index = 0; index < concurrency; index++) await this.#startLoop();
    this.#working = true;
    await this.#boss.work<DeadJobData>(
      deadLetterQueueOf(this.#queue),
      workOptions,
      async ([job]) => {
        if (job) await this.#onDeadStep(fromJsonbValue(job.data));
      },
    );
  }

  /**
   * Lends the slot of a step that waits for other steps (a parent's act job waiting for its
   * subagent's turn): starts one more step loop in this process and resolves with the function
   * that stops it (a step it runs meanwhile finishes first). Nothing is started in a process that
   * does not work the queue, or once the host stopped.
   */
  async lendSlot(): Promise<() => Promise<void>> {
    if (!this.#working || this.#context.stopped) return async () => {};
    const loop = await this.#startLoop();
    return async () => {
      const { loops } = this.#context.steps;
      const index = loops.indexOf(loop);
      if (index >= 0) loops.splice(index, 1);
      if (loop.id && !this.#context.stopped) {
        await this.#boss.offWork({ id: loop.id }).catch(this.#context.onError);
      }
    };
  }

  /** Starts one step loop on the step queue and registers it for wake-ups. */
  async #startLoop(): Promise<StepLoop> {
    const loop: StepLoop = { id: undefined, busy: false };
    this.#context.steps.loops.push(loop);
    loop.id = await this.#boss.work<StepJobData>(
      this.#queue,
      { batchSize: 1, includeMetadata: true as const },
      async ([job]) => {
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
      },
    );
    return loop;
  }

  async #runStepJob(job: PgBoss.JobWithMetadata<StepJobData>): Promise<void> {
    const started = Date.now();
    const { turns, steps } = this.#context;
    // As the queue wrote it (see `jsonb-text.ts`).
    const data = fromJsonbValue(job.data);
    let step: RuntimeTurnStep;
    try {
      step = parseRuntimeTurnStep(data?.step);
    } catch (error) {
      await this.#failFromRawStep(data, error, true);
      return;
    }
    const { turnId } = step.state;
    const generation = typeof data.generation === 'number' ? data.generation : 0;
    // Claiming the turn fences off whatever step held it before (this step's first attempt
    // still running past stepTimeoutSeconds, an older generation); a stale job claims nothing.
    const claim = await turns.claimStep(turnId, generation, stepOrder(step));
    if (!claim) return;
    // Set once the ending is recorded: from then on errors are retried, never turned into a
    // second, different ending.
    let ending = claim.ending !== null;
    try {
      if (claim.ending) {
        // The step decided the turn's ending before its worker died: deliver what is left.
        await deliverEnding(this.#context.adapter, turns, { ...claim, ending: claim.ending });
        return;
      }
      // A job that ran its turn's later steps itself before its worker stopped goes on from the
      // checkpoint those steps reached.
      const ownStep = step;
      const checkpoint = checkpointOf(claim, step);
      if (checkpoint === undefined) {
        throw new EverrunsError({
          code: 'STATE_INVALID',
          message: `The checkpoint of turn ${turnId} is not a step of it`,
        });
      }
      // The input step's first claim takes fence 1; a later one replays it.
      const replay = checkpoint.activity === 'input' && claim.fence > 1;
      step = checkpoint;
      // The session's lease, renewed while the steps run (TURN_IN_PROGRESS, retried, when another
      // runtime took the session after the lease lapsed). The turn's first claim of a job fetched
      // soon after it was sent (both times the database's) runs right after the submission
      // claimed the lease: the timer's renewals are enough.
      const stopRenewing = await holdTurnLease(
        this.#context.adapter.backends.sessions,
        claim.sessionId,
        turnId,
        this.#context.turnLeaseMs,
        this.#context.logger,
        claim.fence === 1 && queuedFor(job) < this.#context.turnLeaseMs / 6,
      );
      let outcome: TurnStepOutcome;
      // Steps after the first use what the one before read with its last write (this job holds
      // the turn's fence and the session's lease meanwhile).
      const chain = new TurnStepChain();
      // One setup cache for the steps of this job, as the in-process runtime keeps one per turn
      // (a capability change a step makes drops the session's entries).
      const setupCache = new Map<string, TurnSetup>();
      // When the checkpoint last moved: the claim left it at `step`.
      let checkpointAt = Date.now();
      // The calls the reason step before this job's act step started with its answer: only for
      // the job's own step (a checkpoint past it is another step).
      const ownStartedCalls = step === ownStep ? startedCallsOf(data, step) : undefined;
      try {
        for (let first = true; ; first = false) {
          // A reason step starts the answer's first call with the answer (one write less); the
          // act step after it gets the started calls from the chain, or from the job's data.
          const options: ExecuteTurnStepOptions = { chain, startFirstCall: true };
          if (first && ownStartedCalls) options.startedCalls = ownStartedCalls;
          outcome = await executeTurnStep(
            this.#stepAdapter(turnId, claim.fence, replay && first, setupCache),
            step,
            options,
          );
          const next = outcome.next;
          if (!next || !this.#continuesSteps(started)) break;
          // The next step runs in this job. Once `checkpointIntervalMs` have passed the checkpoint
          // moves first, so that a retry of this job (its worker died) goes on from there; before
          // that a retry replays the steps since the checkpoint from what they stored.
          if (Date.now() - checkpointAt >= this.#context.checkpointIntervalMs) {
            if (!(await turns.move(turnId, claim.fence, next))) throw new StaleStepError(turnId);
            checkpointAt = Date.now();
          }
          step = next;
        }
      } finally {
        stopRenewing();
      }
      const next = outcome.next;
      if (next) {
        const advanced = await turns.advance(turnId, claim.fence, next, (db) =>
          steps.enqueue(next, generation, db, outcome.startedCalls),
        );
        if (advanced) await steps.wake();
        return;
      }
      ending = true;
      await this.#end(claim, { kind: 'settle', plan: outcome.plan }, step);
    } catch (error) {
      if (StaleStepError.isInstance(error)) {
        this.#context.logger.warn(
          { turnId, sessionId: claim.sessionId, step: turnStepKey(step), fence: claim.fence },
          'host step fenced off: another attempt took its turn; this one writes nothing more',
        );
        return;
      }
      const recorded = recordedError(error);
      if (
        step.activity === 'input' &&
        !ending &&
        EverrunsError.hasCode(error, 'TURN_WAITING_FOR_TOOL_RESULTS')
      ) {
        // Another turn of the session (of another runtime on the same stores) waits for client
        // tool results: this turn is refused; its input step wrote nothing.
        await ignoreStale(this.#end(claim, { kind: 'reject', error: recorded }));
        return;
      }
      if (isPermanentStepError(error) && !ending) {
        await ignoreStale(this.#failTurn(claim, step.state, recorded, step));
        return;
      }
      await turns.recordError(turnId, claim.fence, recorded).catch(() => {});
      this.#context.logger.warn(
        {
          turnId,
          sessionId: claim.sessionId,
          step: turnStepKey(step),
          attempt: job.retryCount + 1,
          retryLimit: job.retryLimit,
          errorCode: recorded.code,
        },
        'host step failed; pg-boss retries it',
      );
      throw error;
    }
  }

  /**
   * The adapter one step of a claimed turn runs with: fenced by the claim's token, with the job's
   * setup cache and the subagents of its tool calls (their turns are jobs too, see
   * `stepSubagents`). `replay` for an input step claimed again (its first attempt may have
   * written).
   */
  #stepAdapter(
    turnId: string,
    fence: number,
    replay: boolean,
    setupCache: Map<string, TurnSetup>,
  ): RuntimeHostAdapter {
    const adapter = fencedStepAdapter(
      { ...this.#context.adapter, setupCache },
      this.#context.turns,
      turnId,
      fence,
      { replay },
    );
    adapter.subagents = stepSubagents({
      adapter: { ...adapter, setupCache },
      submission: this.#submission,
      lendSlot: () => this.lendSlot(),
    });
    return adapter;
  }

  /**
   * Whether a step job that started at `started` runs its turn's next step itself (see
   * `continueStepsSeconds`): not once that long has passed, nor while the host stops (the step is
   * then enqueued for another worker).
   */
  #continuesSteps(started: number): boolean {
    return !this.#context.stopped && Date.now() - started < this.#context.continueStepsMs;
  }

  /**
   * Records how the claimed turn ends (and, given `reached`, the step it got to as its
   * checkpoint), then delivers it; a stale claim records nothing.
   */
  async #end(claim: StepClaim, ending: PendingEnding, reached?: RuntimeTurnStep): Promise<void> {
    const { adapter, turns } = this.#context;
    const recorded = await turns.beginEnding(claim.turnId, claim.fence, ending, { reached });
    if (!recorded) return;
    await deliverEnding(adapter, turns, {
      ...claim,
      ending: recorded,
      endingStarted: 0,
      endingDone: 0,
      firstEffectBegun: true,
    });
  }

  /** A step failed every retry (or its worker died on the last one): the turn fails. */
  async #onDeadStep(data: DeadJobData | undefined): Promise<void> {
    let step: RuntimeTurnStep;
    try {
      step = parseRuntimeTurnStep(data?.step);
    } catch (error) {
      await this.#failFromRawStep(data, error, false);
      return;
    }
    const generation = typeof data?.generation === 'number' ? data.generation : null;
    // Only the step the turn is at, in its current generation, may fail it.
    const claim = await this.#context.turns.claimStep(
      step.state.turnId,
      generation,
      stepOrder(step),
    );
    if (!claim) return;
    // The job may have gone on to run later steps itself: the turn failed where they got to.
    const reached = checkpointOf(claim, step) ?? step;
    const error = claim.error ?? {
      code: 'INTERNAL',
      message: `Step ${turnStepKey(reached)} failed every retry`,
    };
    this.#context.logger.error(
      {
        turnId: step.state.turnId,
        sessionId: claim.sessionId,
        step: turnStepKey(step),
        errorCode: error.code,
      },
      'host step failed every retry; the turn fails',
    );
    await this.#settleDead(claim, reached.state, error, false, data?.step);
  }

  async #failFromRawStep(
    data: DeadJobData | undefined,
    error: unknown,
    deliverHere: boolean,
  ): Promise<void> {
    const turnId = (data?.step as { state?: { turnId?: unknown } })?.state?.turnId;
    if (typeof turnId !== 'string') return;
    const generation = typeof data?.generation === 'number' ? data.generation : null;
    const claim = await this.#context.turns.claimStep(turnId, generation, null);
    if (!claim) return;
    await this.#settleDead(claim, null, recordedError(error), deliverHere);
  }

  /**
   * Fails a claimed turn, or keeps the ending it already has (its outcome was decided). A step
   * job delivers the ending itself (`deliverHere`); the dead-letter queue's handler only records
   * it and sends a job of the step queue to deliver it, because pg-boss gives dead-letter jobs
   * its default expiry (15 minutes) rather than `stepTimeoutSeconds`, so a handler killed while
   * delivering would hold the session that long. That job carries `jobStep`, the step of the job
   * that claimed the turn (the one the turn's claims go by while a job runs later steps itself),
   * else the checkpoint.
   */
  async #settleDead(
    claim: StepClaim,
    state: RuntimeTurnState | null,
    error: RecordedError,
    deliverHere: boolean,
    jobStep: unknown = claim.step,
  ): Promise<void> {
    const { adapter, turns, steps } = this.#context;
    try {
      if (deliverHere) {
        if (claim.ending) await deliverEnding(adapter, turns, { ...claim, ending: claim.ending });
        else await this.#failTurn(claim, state, error);
        return;
      }
      const enqueue = (db?: PgBoss.Db) =>
        steps.enqueueEnding(claim.turnId, claim.fence, jobStep, claim.generation, db);
      if (claim.ending) await enqueue();
      else if (
        !(await turns.beginEnding(
          claim.turnId,
          claim.fence,
          await this.#failureOf(claim, state, error),
          { enqueue },
        ))
      ) {
        return;
      }
      await steps.wake();
    } catch (deliveryError) {
      if (!StaleStepError.isInstance(deliveryError)) this.#context.onError(deliveryError);
    }
  }

  /** Ends the claimed turn with `turn.failed` and `session.idled`, once. */
  async #failTurn(
    claim: StepClaim,
    known: RuntimeTurnState | null,
    error: RecordedError,
    reached?: RuntimeTurnStep,
  ): Promise<void> {
    await this.#end(claim, await this.#failureOf(claim, known, error), reached);
  }

  /**
   * The ending of a turn that fails with `error`: `reject` (nothing to announce) when its input
   * step wrote nothing, else `fail` from the state it reached (if known).
   */
  async #failureOf(
    claim: StepClaim,
    known: RuntimeTurnState | null,
    error: RecordedError,
  ): Promise<PendingEnding> {
    let state = known;
    if (!state?.inputMessageId) {
      const input = await this.#context.adapter.backends.messages.getByIdempotencyKey(
        claim.sessionId,
        `${claim.turnId}/input`,
      );
      if (!input) return { kind: 'reject', error };
      if (state) state = { ...state, inputMessageId: input.id };
    }
    return failure(claim, state, error);
  }
}

/** The ending of a turn that fails with `error`, from the state it reached (if known). */
function failure(
  claim: StepClaim,
  known: RuntimeTurnState | null,
  error: RecordedError,
): PendingEnding {
  const state = known ?? initialTurnState({ sessionId: claim.sessionId, turnId: claim.turnId });
  return {
    kind: 'fail',
    state,
    outcome: { success: false, response: state.lastResponseText, stopReason: 'error', error },
    error,
  };
}

/** Waits for `task`; a step that lost its claim meanwhile stops quietly (the new holder goes on). */
async function ignoreStale(task: Promise<void>): Promise<void> {
  try {
    await task;
  } catch (error) {
    if (!StaleStepError.isInstance(error)) throw error;
  }
}

/**
 * The step a claimed job runs: its own, or the checkpoint the turn reached when the job (its
 * worker died) had gone on to run later steps itself; `undefined` when the checkpoint does not
 * parse or is not a step of the job's turn.
 */
function checkpointOf(claim: StepClaim, own: RuntimeTurnStep): RuntimeTurnStep | undefined {
  const stored = claim.step as { activity?: unknown; state?: { iteration?: unknown } } | null;
  if (stored?.activity === own.activity && stored?.state?.iteration === own.state.iteration) {
    return own;
  }
  try {
    const step = parseRuntimeTurnStep(claim.step);
    return step.state.turnId === own.state.turnId && step.state.sessionId === own.state.sessionId
      ? step
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The started calls a job of an act step carries (see `StepJobData.startedCalls`); `undefined`
 * for another step or data that does not hold a list of ids (the act step then starts its calls).
 */
function startedCallsOf(data: StepJobData, step: RuntimeTurnStep): string[] | undefined {
  const started = data.startedCalls;
  if (step.activity !== 'act' || !Array.isArray(started)) return undefined;
  return started.every((id) => typeof id === 'string') ? started : undefined;
}

/**
 * How long a job waited between being sent and being fetched, in ms, by the database's clock
 * (`Infinity` when pg-boss did not say).
 */
function queuedFor(job: PgBoss.JobWithMetadata<unknown>): number {
  const sent = job.createdOn instanceof Date ? job.createdOn.getTime() : Number.NaN;
  const fetched = job.startedOn instanceof Date ? job.startedOn.getTime() : Number.NaN;
  const waited = fetched - sent;
  return Number.isFinite(waited) && waited >= 0 ? waited : Number.POSITIVE_INFINITY;
}
