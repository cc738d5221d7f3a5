import { z } from 'zod';
import { lazySchema } from './lazy-schema.js';

// The contract between a capability that schedules messages to its own session
// (`capabilities-schedule`) and the host that keeps the schedules and delivers them (the
// in-process runtime's timers, a durable host's queue). A third party's capability uses the same
// contract through `ToolContext.schedules`.

/** Schema of {@link SessionSchedule}. */
export const sessionScheduleSchema = lazySchema(() =>
  z.object({
    /** `schedule_` + 32 hex digits. */
    id: z.string().min(1),
    sessionId: z.string().min(1),
    /** What the agent should do when it fires; the text of the message it sends. */
    description: z.string().min(1),
    /** `once` (at {@link runAt}) or `cron` (every match of {@link cronExpression}). */
    kind: z.enum(['once', 'cron']),
    /** ISO 8601 instant of a one-shot schedule. */
    runAt: z.string().optional(),
    /** Five-field cron expression of a recurring schedule. */
    cronExpression: z.string().optional(),
    /** IANA time zone the cron expression is read in. Default `UTC`. */
    timezone: z.string().default('UTC'),
    /** False once cancelled, or once a one-shot schedule has fired. */
    enabled: z.boolean(),
    /** When it fires next (ISO 8601); `null` when it never will again. */
    nextRunAt: z.string().nullable(),
    /** When it last fired (ISO 8601). */
    lastRunAt: z.string().optional(),
    /** How many times it fired. */
    runCount: z.number().int().nonnegative(),
    createdAt: z.string(),
    updatedAt: z.string(),
  }),
);
/** A message a session scheduled to itself (one-shot or recurring). */
export type SessionSchedule = z.infer<typeof sessionScheduleSchema>;

/** What a tool asks to schedule: exactly one of `runAt` and `cronExpression`. */
export interface SessionScheduleRequest {
  description: string;
  /** ISO 8601 instant of a one-shot schedule (in the past or now: fires at once). */
  runAt?: string;
  /** Five-field cron expression of a recurring schedule. */
  cronExpression?: string;
  /** IANA time zone of the cron expression. Default `UTC`. */
  timezone?: string;
}

/**
 * The metadata key of a message a schedule delivered (`message.metadata.scheduled`), whose value
 * is {@link ScheduledMessageMetadata}.
 */
export const SCHEDULED_MESSAGE_METADATA_KEY = 'scheduled';

/** What a delivered message carries under {@link SCHEDULED_MESSAGE_METADATA_KEY}. */
export interface ScheduledMessageMetadata {
  scheduleId: string;
  /** When the host delivered it (ISO 8601). */
  firedAt: string;
  kind: SessionSchedule['kind'];
}

/**
 * The schedules of the session whose tool is running ({@link ToolContext.schedules}). A due
 * schedule sends its description to the session as a user message marked with
 * {@link SCHEDULED_MESSAGE_METADATA_KEY}, which starts a turn like user input.
 */
export interface SessionSchedules {
  /**
   * Stores and arms a schedule. Rejects with `INVALID_INPUT` for a bad instant, cron expression
   * or time zone, or a request with both or neither of `runAt` and `cronExpression`.
   */
  create(request: SessionScheduleRequest): Promise<SessionSchedule>;
  /** Every schedule of the session (cancelled and fired ones too), oldest first. */
  list(): Promise<SessionSchedule[]>;
  /** Disables a schedule; resolves `null` when the session has none of that id. */
  cancel(scheduleId: string): Promise<SessionSchedule | null>;
}

/**
 * The host side of {@link SessionSchedules}, given once to the atoms' dependencies
 * (`AtomDependencies.schedules`); the act step binds it to each tool call's session.
 */
export interface ScheduleHost {
  create(sessionId: string, request: SessionScheduleRequest): Promise<SessionSchedule>;
  list(sessionId: string): Promise<SessionSchedule[]>;
  cancel(sessionId: string, scheduleId: string): Promise<SessionSchedule | null>;
}

/** {@link SessionSchedules} of one session. */
export function bindSchedules(host: ScheduleHost, sessionId: string): SessionSchedules {
  return {
    create: (request) => host.create(sessionId, request),
    list: () => host.list(sessionId),
    cancel: (scheduleId) => host.cancel(sessionId, scheduleId),
  };
}
