import type { RuntimeTurnStep } from '@everruns-ts/runtime/host';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import { type StepJobData, stepJobId } from './step-jobs.js';
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
   * enqueues one job). A step sent from a step job is fetched by that job's loop as soon as the
   * job ends; other processes are woken with a `NOTIFY` when asked (`wakeOthers`, for steps sent
   * by a client) or when no loop of this process is idle.
   */
  async send(step: RuntimeTurnStep, generation: number, wakeOthers = false): Promise<void> {
    const { boss, queue, pool, stepPayload, onError } = this.#options;
    const data: StepJobData = { step, generation };
    await boss.send(queue, data as unknown as object, { id: stepJobId(queue, step, generation) });
    const wokeLocal = wakeOthers ? this.wakeIdleLoop() : this.#hasIdleLoop();
    if (wakeOthers || !wokeLocal) {
      await pool
        .query('SELECT pg_notify($1, $2)', [STEP_CHANNEL, stepPayload])
        .catch((error: unknown) => onError(error));
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
