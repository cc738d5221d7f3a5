import { createHash } from 'node:crypto';
import {
  EverrunsError,
  type RuntimeBackends,
  type ScheduleHost,
  type SessionSchedule,
  type SessionScheduleRequest,
} from '@everruns-ts/core';
import {
  cancelledSessionSchedule,
  firedSessionSchedule,
  listSessionSchedules,
  loadSessionSchedule,
  newSessionSchedule,
  saveSessionSchedule,
  scheduledMessage,
} from '@everruns-ts/runtime/host';
import type PgBoss from 'pg-boss';
import type { HostContext } from './host-context.js';
import { uuidOf } from './step-jobs.js';
import type { TurnSubmission } from './turn-submission.js';

/**
 * The clock a host's schedules run on. `now` gives the time in epoch milliseconds;
 * `millisecondsUntil` how many real milliseconds pass until the clock reads an instant (for a
 * clock that does not run at real speed, as in tests and simulations; default `instant - now()`).
 */
export interface HostClock {
  now(): number;
  millisecondsUntil?(instant: number): number;
}

/** The data of a job of the schedule queue: one due time of one schedule. */
export interface ScheduleJobData {
  sessionId: string;
  scheduleId: string;
  /** The due instant (the schedule's `nextRunAt` when the job was sent), ISO 8601. */
  dueAt: string;
  /** How many times this due time was put off because its session was busy. */
  attempt: number;
}

/** The queue of a step queue's schedule jobs. */
export function scheduleQueueOf(queue: string): string {
  return `${queue}-schedules`;
}

/**
 * The job id of one due time of a schedule (and of its `attempt`-th putting off): sending it
 * twice inserts one job.
 */
export function scheduleJobId(
  queue: string,
  scheduleId: string,
  dueAt: string,
  attempt: number,
): string {
  return uuidOf(`${queue}\nschedule\n${scheduleId}\n${dueAt}\n${attempt}`);
}

/**
 * The id of the turn a schedule starts for one due time: a second delivery of that due time (a
 * job retried after a crash, a duplicate job) finds the turn exists and starts none.
 */
export function scheduledTurnId(scheduleId: string, dueAt: string): string {
  const hash = createHash('sha256').update(`${scheduleId}\n${dueAt}\nscheduled-turn`).digest('hex');
  return `turn_${hash.slice(0, 32)}`;
}

/** What {@link PgBossSchedules} needs of the host. */
export interface PgBossSchedulesOptions {
  context: HostContext;
  boss: PgBoss;
  /** The schedule queue ({@link scheduleQueueOf} of the step queue). */
  queue: string;
  submission: TurnSubmission;
  clock: HostClock;
}

/** Longest wait before a due message whose session is busy is tried again, in seconds. */
const MAX_PUT_OFF_SECONDS = 30;

/**
 * The pg-boss host's `ScheduleHost` (`capabilities-schedule`). Schedules are stored as in-process,
 * in their session's storage (`schedules/<id>`, through the runtime's shared helpers), so
 * `list_schedules` reads the same records on either host. Each due time is one job of the
 * schedule queue, sent with pg-boss's `startAfter` (relative to the database's clock) and an id
 * derived from the schedule and the due instant: a one-shot schedule sends one job; a cron
 * schedule sends the job of its next match each time it fires (re-armed per fire, so any cron
 * expression and time zone work, not only pg-boss's per-queue minute schedules). Jobs live in
 * PostgreSQL, so a stopped or crashed host delivers what came due once a worker runs again.
 *
 * Delivery is exactly once per due time: the job submits the turn with the id
 * {@link scheduledTurnId} (a retried job finds the turn and submits nothing), then moves the
 * schedule to its next run and sends that job. A job whose due time is no longer the schedule's
 * (cancelled, already fired) delivers nothing. A session busy with another turn puts the delivery
 * off (a follow-up job, backing off up to 30 s) until it is free; a delivery its session refuses
 * for good (deleted, a capability gone) is skipped and reported to `onError`.
 */
export class PgBossSchedules implements ScheduleHost {
  readonly #options: PgBossSchedulesOptions;

  constructor(options: PgBossSchedulesOptions) {
    this.#options = options;
  }

  get #backends(): RuntimeBackends {
    return this.#options.context.adapter.backends;
  }

  async create(sessionId: string, request: SessionScheduleRequest): Promise<SessionSchedule> {
    const now = new Date(this.#options.clock.now());
    const schedule = await newSessionSchedule(this.#backends, sessionId, request, now);
    await saveSessionSchedule(this.#backends.storage, schedule);
    await this.#arm(schedule, 0);
    return schedule;
  }

  list(sessionId: string): Promise<SessionSchedule[]> {
    return listSessionSchedules(this.#backends.storage, sessionId);
  }

  async cancel(sessionId: string, scheduleId: string): Promise<SessionSchedule | null> {
    const schedule = await loadSessionSchedule(this.#backends.storage, sessionId, scheduleId);
    if (!schedule) return null;
    if (!schedule.enabled) return schedule;
    const cancelled = cancelledSessionSchedule(schedule, new Date(this.#options.clock.now()));
    await saveSessionSchedule(this.#backends.storage, cancelled);
    if (schedule.nextRunAt !== null) {
      // The pending job is dropped; one already fetched finds the schedule disabled.
      const { boss, queue } = this.#options;
      await boss
        .cancel(queue, scheduleJobId(queue, scheduleId, schedule.nextRunAt, 0))
        .catch(() => {});
    }
    return cancelled;
  }

  /** Runs one job of the schedule queue. Throws (pg-boss retries) on a retryable failure. */
  async deliver(data: ScheduleJobData): Promise<void> {
    const { storage } = this.#backends;
    const { clock, submission } = this.#options;
    const schedule = await loadSessionSchedule(storage, data.sessionId, data.scheduleId);
    if (!schedule?.enabled || schedule.nextRunAt === null) return;
    if (schedule.nextRunAt !== data.dueAt) {
      // A stale job (its due time fired already): make sure the current due time has its job.
      await this.#arm(schedule, 0);
      return;
    }
    const due = Date.parse(data.dueAt);
    const early = this.#millisecondsUntil(due);
    if (early > 1_000) {
      // The clock runs slower than the database's: wait the rest in a follow-up job.
      await this.#send(schedule, data.dueAt, data.attempt + 1, early);
      return;
    }
    const firedAt = new Date(clock.now());
    const turnId = scheduledTurnId(schedule.id, data.dueAt);
    if (!(await submission.status(turnId))) {
      try {
        await submission.submitTurn(schedule.sessionId, scheduledMessage(schedule, firedAt), {
          turnId,
        });
      } catch (error) {
        if (!(await submission.status(turnId))) {
          if (
            EverrunsError.hasCode(error, 'TURN_IN_PROGRESS') ||
            EverrunsError.hasCode(error, 'TURN_WAITING_FOR_TOOL_RESULTS')
          ) {
            const seconds = Math.min(MAX_PUT_OFF_SECONDS, 0.5 * 2 ** Math.min(data.attempt, 6));
            await this.#send(schedule, data.dueAt, data.attempt + 1, seconds * 1_000);
            return;
          }
          if (EverrunsError.isInstance(error) && error.retryable) throw error;
          if (!EverrunsError.isInstance(error)) throw error;
          // Refused for good (session deleted, input refused): this run is skipped.
          this.#options.context.onError(error);
        }
      }
    }
    // Re-read: a cancel that landed meanwhile wins over the move to the next run.
    const current = await loadSessionSchedule(storage, data.sessionId, data.scheduleId);
    if (!current?.enabled || current.nextRunAt !== data.dueAt) return;
    const after = new Date(Math.max(firedAt.getTime(), due));
    const fired = firedSessionSchedule(current, firedAt, after);
    await saveSessionSchedule(storage, fired);
    await this.#arm(fired, 0);
  }

  /** Sends the job of the schedule's next due time, if it has one. */
  async #arm(schedule: SessionSchedule, attempt: number): Promise<void> {
    if (!schedule.enabled || schedule.nextRunAt === null) return;
    const wait = this.#millisecondsUntil(Date.parse(schedule.nextRunAt));
    await this.#send(schedule, schedule.nextRunAt, attempt, wait);
  }

  async #send(
    schedule: SessionSchedule,
    dueAt: string,
    attempt: number,
    waitMs: number,
  ): Promise<void> {
    const { boss, queue } = this.#options;
    const data: ScheduleJobData = {
      sessionId: schedule.sessionId,
      scheduleId: schedule.id,
      dueAt,
      attempt,
    };
    const seconds = Math.max(0, waitMs) / 1_000;
    await boss.send(queue, data as unknown as object, {
      id: scheduleJobId(queue, schedule.id, dueAt, attempt),
      // Seconds from the database's now(): the workers' clocks need not agree with it.
      ...(seconds > 0 ? { startAfter: seconds } : {}),
    });
  }

  #millisecondsUntil(instant: number): number {
    const { clock } = this.#options;
    return clock.millisecondsUntil ? clock.millisecondsUntil(instant) : instant - clock.now();
  }
}
