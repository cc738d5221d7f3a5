import type { RuntimeTurnStep } from '@everruns-ts/runtime/host';
import { sendStatement } from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import { toJsonbValue } from './jsonb-text.js';
import { endingJobId, type StepJobData, stepJobId } from './step-jobs.js';
import { STEP_CHANNEL } from './turn-notifications.js';

/** A step loop of this process (one pg-boss worker) and whether it runs a step now. */
export interface StepLoop {
  id: string | undefined;
  busy: boolean;
}

/** What {@link StepQueue} needs. */
export interface StepQueueOptions {
  boss: PgBoss;
  /** The step queue's name. */
  queue: string;
  /** The pool `NOTIFY`s go through. */
  pool: pg.Pool;
  /** The payload of this queue's step notifications (`hostSchema:queue`). */
  stepPayload: string;
  /** Receives failed notifications (the step is enqueued all the same; polling finds it). */
  onError: (error: unknown) => void;
}

/**
 * Enqueues steps on the pg-boss step queue and wakes a worker for them: a loop of this process
 * when one is idle, other processes through a `NOTIFY` on {@link STEP_CHANNEL}.
 */
export class StepQueue {
  /** The step loops of this process, registered by the step worker. */
  readonly loops: StepLoop[] = [];
  readonly #options: StepQueueOptions;

  constructor(options: StepQueueOptions) {
    this.#options = options;
  }

  /**
   * Enqueues a step (its job id derives from the step and the generation, so sending it twice
   * enqueues one job), then wakes a worker for it (see {@link StepQueue.wake}).
   */
  async send(step: RuntimeTurnStep, generation: number, wakeOthers = false): Promise<void> {
    await this.enqueue(step, generation);
    await this.wake(wakeOthers);
  }

  /**
   * Inserts a step's job, through `db` when given (a transaction's connection: the job exists
   * once that transaction commits). Wakes nobody: call {@link StepQueue.wake} after the commit.
   * `startedCalls`: for an act step, the calls the reason step before it started with its answer.
   */
  async enqueue(
    step: RuntimeTurnStep,
    generation: number,
    db?: PgBoss.Db,
    startedCalls?: readonly string[],
  ): Promise<void> {
    const data: StepJobData = { step: toJsonbValue(step), generation };
    if (startedCalls !== undefined && step.activity === 'act')
      data.startedCalls = [...startedCalls];
    await this.#insert(data, stepJobId(this.#options.queue, step, generation), db);
  }

  /**
   * Inserts the job that delivers a turn's recorded ending (a job of its checkpoint `step`, which
   * finds the ending when it claims the turn), through `db` as {@link StepQueue.enqueue}.
   */
  async enqueueEnding(
    turnId: string,
    fence: number,
    step: unknown,
    generation: number,
    db?: PgBoss.Db,
  ): Promise<void> {
    await this.#insert(
      { step: toJsonbValue(step), generation },
      endingJobId(this.#options.queue, turnId, fence),
      db,
    );
  }

  async #insert(data: StepJobData, id: string, db: PgBoss.Db | undefined): Promise<void> {
    await this.#options.boss.send(this.#options.queue, data as unknown as object, {
      id,
      ...(db ? { db } : {}),
    });
  }

  /**
   * Wakes a worker for a step just enqueued. A step sent from a step job is fetched by that job's
   * loop as soon as the job ends; other processes are woken with a `NOTIFY` when asked
   * (`wakeOthers`, for steps sent by a client) or when no loop of this process is idle.
   */
  async wake(wakeOthers = false): Promise<void> {
    const { pool, stepPayload, onError } = this.#options;
    const wokeLocal = wakeOthers ? this.wakeIdleLoop() : this.#hasIdleLoop();
    if (wakeOthers || !wokeLocal) {
      await sendStatement(pool, 'SELECT pg_notify($1, $2)', [STEP_CHANNEL, stepPayload]).catch(
        (error: unknown) => onError(error),
      );
    }
  }

  /** Wakes one idle step loop of this process; false when none is idle. */
  wakeIdleLoop(): boolean {
    const idle = this.loops.find((loop) => !loop.busy && loop.id !== undefined);
    if (!idle?.id) return false;
    this.#options.boss.notifyWorker(idle.id);
    return true;
  }

  #hasIdleLoop(): boolean {
    return this.loops.some((loop) => !loop.busy);
  }
}
