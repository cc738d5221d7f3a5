import { createRequire } from 'node:module';
import {
  EverrunsError,
  type InputMessage,
  type RuntimeBackends,
  SCHEDULED_MESSAGE_METADATA_KEY,
  type ScheduledMessageMetadata,
  type ScheduleHost,
  type SessionSchedule,
  type SessionScheduleRequest,
  sessionScheduleSchema,
} from '@everruns-ts/core';

/** The session storage prefix under which schedules are kept (`schedules/<scheduleId>`). */
export const SCHEDULE_STORAGE_PREFIX = 'schedules/';

/**
 * The session storage prefix of run claims (`schedule-runs/<scheduleId>/<due instant>`): of the
 * runtimes sharing the stores, the one that stores the claim delivers that run.
 */
export const SCHEDULE_RUN_CLAIM_PREFIX = 'schedule-runs/';

/**
 * cron-parser (CommonJS, with luxon) is loaded on the first cron expression rather than with the
 * runtime: it takes ~20 ms to load, which every process would pay at start for a feature most
 * never use.
 */
let cronParser: typeof import('cron-parser') | undefined;
function loadCronParser(): typeof import('cron-parser') {
  // The `require` is made here too: making it costs ~0.6 ms, not worth paying at import.
  cronParser ??= createRequire(import.meta.url)('cron-parser') as typeof import('cron-parser');
  return cronParser;
}

/** The longest a Node timer may wait; longer waits are chained. */
const MAX_TIMER_MS = 2_147_483_647;

/** What {@link InProcessSchedules} needs of its runtime. */
export interface InProcessSchedulesOptions {
  backends: Pick<RuntimeBackends, 'sessions' | 'storage'>;
  /** Delivers a due message to its session (starts a turn); errors are the deliverer's to keep. */
  deliver(sessionId: string, input: InputMessage): Promise<void>;
  /** The clock, in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
}

function invalid(message: string, details: Record<string, unknown> = {}): EverrunsError {
  return new EverrunsError({ code: 'INVALID_INPUT', message, details });
}

/** Whether `timezone` is an IANA time zone this Node knows. */
function isKnownTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The first match of a five-field cron expression strictly after `after`, in `timezone`. Throws
 * `INVALID_INPUT` for an expression that is not five fields or does not parse.
 */
export function nextCronRun(expression: string, timezone: string, after: Date): Date {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw invalid(
      `Invalid cron expression ${JSON.stringify(expression)}: expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`,
      { cronExpression: expression },
    );
  }
  try {
    return loadCronParser()
      .parseExpression(fields.join(' '), { currentDate: after, tz: timezone })
      .next()
      .toDate();
  } catch (error) {
    throw invalid(
      `Invalid cron expression ${JSON.stringify(expression)}: ${(error as Error).message}`,
      { cronExpression: expression },
    );
  }
}

/**
 * The in-process {@link ScheduleHost}: schedules are kept in each session's storage under
 * {@link SCHEDULE_STORAGE_PREFIX} (so another runtime on the same stores finds them: see
 * {@link rearm}) and armed as timers that never keep the process alive (`unref`). A due schedule
 * is marked fired (a one-shot one disabled, a cron one moved to its next match) before its
 * message is delivered, so a restart delivers it at most once.
 */
export class InProcessSchedules implements ScheduleHost {
  readonly #options: InProcessSchedulesOptions;
  readonly #now: () => number;
  /** Armed timers by schedule id, made on the first (most runtimes arm none). */
  #timers: Map<string, ReturnType<typeof setTimeout>> | undefined;
  #closed = false;

  constructor(options: InProcessSchedulesOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async create(sessionId: string, request: SessionScheduleRequest): Promise<SessionSchedule> {
    const schedule = await newSessionSchedule(
      this.#options.backends,
      sessionId,
      request,
      new Date(this.#now()),
    );
    await saveSessionSchedule(this.#options.backends.storage, schedule);
    this.#arm(schedule);
    return schedule;
  }

  list(sessionId: string): Promise<SessionSchedule[]> {
    return listSessionSchedules(this.#options.backends.storage, sessionId);
  }

  async cancel(sessionId: string, scheduleId: string): Promise<SessionSchedule | null> {
    const schedule = await this.#load(sessionId, scheduleId);
    if (!schedule) return null;
    this.#disarm(scheduleId);
    if (!schedule.enabled) return schedule;
    const cancelled = cancelledSessionSchedule(schedule, new Date(this.#now()));
    await saveSessionSchedule(this.#options.backends.storage, cancelled);
    return cancelled;
  }

  /**
   * Arms every enabled schedule of every session in the stores (a runtime started on stores that
   * outlived the last one); one that came due meanwhile fires at once. Resolves with how many
   * were armed.
   */
  async rearm(): Promise<number> {
    let armed = 0;
    for (const session of await this.#options.backends.sessions.listSessions()) {
      for (const schedule of await this.list(session.id)) {
        if (this.#closed) return armed;
        if (schedule.enabled && schedule.nextRunAt !== null && !this.#timers?.has(schedule.id)) {
          this.#arm(schedule);
          armed++;
        }
      }
    }
    return armed;
  }

  /** Clears every timer; nothing fires afterwards. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#timers?.values() ?? []) clearTimeout(timer);
    this.#timers?.clear();
  }

  #arm(schedule: SessionSchedule): void {
    if (this.#closed || !schedule.enabled || schedule.nextRunAt === null) return;
    this.#disarm(schedule.id);
    const due = Date.parse(schedule.nextRunAt);
    const wait = Math.max(0, due - this.#now());
    const timer = setTimeout(
      () => {
        this.#timers?.delete(schedule.id);
        if (wait > MAX_TIMER_MS) this.#arm(schedule);
        else void this.#fire(schedule.sessionId, schedule.id).catch(() => {});
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    timer.unref?.();
    this.#timers ??= new Map();
    this.#timers.set(schedule.id, timer);
  }

  #disarm(scheduleId: string): void {
    const timer = this.#timers?.get(scheduleId);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers?.delete(scheduleId);
  }

  async #fire(sessionId: string, scheduleId: string): Promise<void> {
    if (this.#closed) return;
    const schedule = await this.#load(sessionId, scheduleId);
    if (!schedule?.enabled || schedule.nextRunAt === null) return;
    // Runtimes sharing the stores all arm the schedule; the one that claims this run delivers it.
    const { storage } = this.#options.backends;
    if (
      storage.setValueIfAbsent &&
      !(await storage.setValueIfAbsent(
        sessionId,
        `${SCHEDULE_RUN_CLAIM_PREFIX}${scheduleId}/${schedule.nextRunAt}`,
        new Date(this.#now()).toISOString(),
      ))
    ) {
      return;
    }
    const firedAt = new Date(this.#now());
    const fired = firedSessionSchedule(schedule, firedAt);
    await saveSessionSchedule(storage, fired);
    this.#arm(fired);
    await this.#options.deliver(sessionId, scheduledMessage(schedule, firedAt));
  }

  #load(sessionId: string, scheduleId: string): Promise<SessionSchedule | null> {
    return loadSessionSchedule(this.#options.backends.storage, sessionId, scheduleId);
  }
}

/**
 * A new, enabled schedule of `sessionId` for `request` (not yet stored), its first run computed
 * at `now`. Throws `INVALID_INPUT` (no description, both or neither of `runAt` and
 * `cronExpression`, a bad instant, cron expression or time zone) and `SESSION_NOT_FOUND`. Shared
 * by every host's {@link ScheduleHost}, so they validate and store schedules alike.
 */
export async function newSessionSchedule(
  backends: Pick<RuntimeBackends, 'sessions'>,
  sessionId: string,
  request: SessionScheduleRequest,
  now: Date,
): Promise<SessionSchedule> {
  const description = typeof request?.description === 'string' ? request.description.trim() : '';
  if (description === '') throw invalid('A schedule needs a non-empty description');
  const hasRunAt = request.runAt !== undefined;
  const hasCron = request.cronExpression !== undefined;
  if (hasRunAt === hasCron) {
    throw invalid('Give exactly one of runAt (one-shot) and cronExpression (recurring)');
  }
  const timezone = request.timezone ?? 'UTC';
  if (!isKnownTimeZone(timezone)) {
    throw invalid(`Unknown time zone ${JSON.stringify(timezone)}`, { timezone });
  }
  if (!(await backends.sessions.getSession(sessionId))) {
    throw new EverrunsError({
      code: 'SESSION_NOT_FOUND',
      message: `Session ${sessionId} does not exist`,
      details: { sessionId },
    });
  }
  let nextRunAt: Date;
  if (hasRunAt) {
    const runAt = new Date(request.runAt as string);
    if (Number.isNaN(runAt.getTime())) {
      throw invalid(`Invalid runAt ${JSON.stringify(request.runAt)}: expected ISO 8601`);
    }
    nextRunAt = runAt;
  } else {
    nextRunAt = nextCronRun(request.cronExpression as string, timezone, now);
  }
  return {
    id: `schedule_${crypto.randomUUID().replaceAll('-', '')}`,
    sessionId,
    description,
    kind: hasRunAt ? 'once' : 'cron',
    ...(hasRunAt ? { runAt: nextRunAt.toISOString() } : {}),
    ...(hasCron ? { cronExpression: (request.cronExpression as string).trim() } : {}),
    timezone,
    enabled: true,
    nextRunAt: nextRunAt.toISOString(),
    runCount: 0,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
}

/**
 * `schedule` after firing at `firedAt`: one run more, a one-shot schedule disabled, a cron one
 * moved to its first match after `after` (default `firedAt`, so matches missed while nothing ran
 * are skipped rather than delivered in a burst).
 */
export function firedSessionSchedule(
  schedule: SessionSchedule,
  firedAt: Date,
  after: Date = firedAt,
): SessionSchedule {
  const next =
    schedule.kind === 'cron' && schedule.cronExpression
      ? nextCronRun(schedule.cronExpression, schedule.timezone, after).toISOString()
      : null;
  return {
    ...schedule,
    enabled: next !== null,
    nextRunAt: next,
    lastRunAt: firedAt.toISOString(),
    runCount: schedule.runCount + 1,
    updatedAt: firedAt.toISOString(),
  };
}

/** `schedule` cancelled at `now`: disabled, with no next run. */
export function cancelledSessionSchedule(schedule: SessionSchedule, now: Date): SessionSchedule {
  return { ...schedule, enabled: false, nextRunAt: null, updatedAt: now.toISOString() };
}

/**
 * The user message a due schedule delivers: its description, marked with
 * {@link SCHEDULED_MESSAGE_METADATA_KEY} (`{ scheduleId, firedAt, kind }`).
 */
export function scheduledMessage(schedule: SessionSchedule, firedAt: Date): InputMessage {
  const metadata: ScheduledMessageMetadata = {
    scheduleId: schedule.id,
    firedAt: firedAt.toISOString(),
    kind: schedule.kind,
  };
  return {
    role: 'user',
    content: [{ type: 'text', text: schedule.description }],
    metadata: { [SCHEDULED_MESSAGE_METADATA_KEY]: metadata },
  };
}

/** A schedule kept in its session's storage, or `null` (absent, or not a schedule). */
export async function loadSessionSchedule(
  storage: RuntimeBackends['storage'],
  sessionId: string,
  scheduleId: string,
): Promise<SessionSchedule | null> {
  const raw = await storage.getValue(sessionId, `${SCHEDULE_STORAGE_PREFIX}${scheduleId}`);
  if (raw === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = sessionScheduleSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/** Stores `schedule` in its session's storage under {@link SCHEDULE_STORAGE_PREFIX}. */
export async function saveSessionSchedule(
  storage: RuntimeBackends['storage'],
  schedule: SessionSchedule,
): Promise<void> {
  await storage.setValue(
    schedule.sessionId,
    `${SCHEDULE_STORAGE_PREFIX}${schedule.id}`,
    JSON.stringify(schedule),
  );
}

/** Every schedule kept in a session's storage, oldest first. */
export async function listSessionSchedules(
  storage: RuntimeBackends['storage'],
  sessionId: string,
): Promise<SessionSchedule[]> {
  const keys = await storage.listKeys(sessionId, SCHEDULE_STORAGE_PREFIX);
  const schedules: SessionSchedule[] = [];
  for (const key of keys) {
    const schedule = await loadSessionSchedule(
      storage,
      sessionId,
      key.slice(SCHEDULE_STORAGE_PREFIX.length),
    );
    if (schedule) schedules.push(schedule);
  }
  return schedules.sort(
    (left, right) =>
      left.createdAt.localeCompare(right.createdAt) || left.id.localeCompare(right.id),
  );
}
