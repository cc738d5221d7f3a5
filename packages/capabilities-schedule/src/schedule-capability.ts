import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  type SessionSchedule,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link scheduleCapability}, as upstream (`session_schedule`). */
export const SCHEDULE_CAPABILITY_ID = 'session_schedule';

/** Default of `maxActiveSchedules`, as upstream: 5 enabled schedules per session. */
export const DEFAULT_MAX_ACTIVE_SCHEDULES = 5;

/** Schema of {@link ScheduleConfig}. */
export const scheduleConfigSchema = z.strictObject({
  /** Enabled schedules a session may have at once. Default 5. */
  maxActiveSchedules: z.number().int().min(0).max(1000).default(DEFAULT_MAX_ACTIVE_SCHEDULES),
});
/** Configuration of the `session_schedule` capability (validated; defaults applied). */
export type ScheduleConfig = z.infer<typeof scheduleConfigSchema>;
/** What a harness, agent or session gives as the capability's configuration. */
export type ScheduleConfigInput = z.input<typeof scheduleConfigSchema>;

/** One schedule as the tools show it. */
export interface ScheduleView {
  schedule_id: string;
  description: string;
  /** `one_shot` or `recurring`. */
  schedule_type: 'one_shot' | 'recurring';
  cron_expression: string | null;
  scheduled_at: string | null;
  timezone: string;
  enabled: boolean;
  next_trigger_at: string | null;
  last_triggered_at: string | null;
  trigger_count: number;
}

/** The tools' view of a stored schedule. */
export function scheduleView(schedule: SessionSchedule): ScheduleView {
  return {
    schedule_id: schedule.id,
    description: schedule.description,
    schedule_type: schedule.kind === 'cron' ? 'recurring' : 'one_shot',
    cron_expression: schedule.cronExpression ?? null,
    scheduled_at: schedule.runAt ?? null,
    timezone: schedule.timezone,
    enabled: schedule.enabled,
    next_trigger_at: schedule.nextRunAt,
    last_triggered_at: schedule.lastRunAt ?? null,
    trigger_count: schedule.runCount,
  };
}

function noHost(): ReturnType<typeof toolError> {
  return toolError('This runtime cannot keep schedules (no schedule host in the tool context).');
}

const createScheduleInput = z.strictObject({
  description: z
    .string()
    .trim()
    .min(1)
    .max(10_000)
    .describe('What you should do when the schedule fires; sent to you as a message then.'),
  scheduled_at: z
    .string()
    .min(1)
    .optional()
    .describe("ISO 8601 instant of a one-shot schedule, e.g. '2026-02-19T03:00:00Z'."),
  delay_seconds: z
    .number()
    .positive()
    .max(366 * 24 * 3600)
    .optional()
    .describe('Seconds from now of a one-shot schedule (instead of scheduled_at).'),
  cron_expression: z
    .string()
    .min(1)
    .optional()
    .describe(
      "Five-field cron expression of a recurring schedule, e.g. '0 3 * * *' (daily at 03:00).",
    ),
  timezone: z
    .string()
    .min(1)
    .optional()
    .describe("IANA time zone of the cron expression, e.g. 'America/New_York'. Default UTC."),
});

const createScheduleTool = defineTool<typeof createScheduleInput, ScheduleConfig>({
  name: 'create_schedule',
  description:
    'Schedule a future task in this session: give a description and one of scheduled_at (one-shot, ISO 8601), delay_seconds (one-shot, from now) or cron_expression (recurring). When it fires you receive the description as a message.',
  inputSchema: createScheduleInput,
  async execute(input, context: ToolContext<ScheduleConfig>) {
    if (!context.schedules) return noHost();
    const given = [input.scheduled_at, input.delay_seconds, input.cron_expression].filter(
      (value) => value !== undefined,
    );
    if (given.length !== 1) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message:
          'Give exactly one of scheduled_at (one-shot), delay_seconds (one-shot) and cron_expression (recurring)',
      });
    }
    const config = scheduleConfigSchema.parse(context.config ?? {});
    const active = (await context.schedules.list()).filter((schedule) => schedule.enabled);
    if (active.length >= config.maxActiveSchedules) {
      throw new EverrunsError({
        code: 'LIMIT_EXCEEDED',
        message: `This session already has ${active.length} active schedules (the most is ${config.maxActiveSchedules}); cancel one first.`,
        details: { max: config.maxActiveSchedules, active: active.length },
      });
    }
    const runAt =
      input.delay_seconds !== undefined
        ? new Date(Date.now() + input.delay_seconds * 1000).toISOString()
        : input.scheduled_at;
    const schedule = await context.schedules.create({
      description: input.description,
      ...(runAt !== undefined ? { runAt } : {}),
      ...(input.cron_expression !== undefined ? { cronExpression: input.cron_expression } : {}),
      ...(input.timezone !== undefined ? { timezone: input.timezone } : {}),
    });
    return { ...scheduleView(schedule), created: true };
  },
});

const listSchedulesTool = defineTool<z.ZodObject<Record<string, never>>, ScheduleConfig>({
  name: 'list_schedules',
  description: 'List the schedules of this session (active, fired and cancelled).',
  inputSchema: z.strictObject({}),
  idempotent: true,
  async execute(_input, context) {
    if (!context.schedules) return noHost();
    const schedules = (await context.schedules.list()).map(scheduleView);
    return { schedules, total: schedules.length };
  },
});

const cancelScheduleInput = z.strictObject({
  schedule_id: z.string().trim().min(1).describe("The schedule's id (schedule_…)."),
});

const cancelScheduleTool = defineTool<typeof cancelScheduleInput, ScheduleConfig>({
  name: 'cancel_schedule',
  description: 'Cancel (disable) a schedule of this session by its id.',
  inputSchema: cancelScheduleInput,
  idempotent: true,
  async execute(input, context) {
    if (!context.schedules) return noHost();
    const schedule = await context.schedules.cancel(input.schedule_id);
    if (!schedule) return toolError(`No schedule ${input.schedule_id} in this session.`);
    return {
      schedule_id: schedule.id,
      description: schedule.description,
      enabled: schedule.enabled,
      cancelled: true,
    };
  },
});

/**
 * The `session_schedule` capability (tools `create_schedule`, `list_schedules`,
 * `cancel_schedule`): the model schedules future messages to its own session, one-shot (at an
 * instant or after a delay) or recurring (five-field cron, in a time zone). A due schedule sends
 * its description as a user message marked `metadata.scheduled`, which starts a turn like user
 * input. At most `maxActiveSchedules` (default 5) enabled at once. Needs a host that offers
 * `ToolContext.schedules` (the in-process runtime and `host-pgboss` do).
 */
export const scheduleCapability: Capability<ScheduleConfig> = defineCapability<ScheduleConfig>({
  id: SCHEDULE_CAPABILITY_ID,
  name: 'Schedules',
  description:
    'Schedule future tasks within the current session: one-shot (at a time or after a delay) or recurring (cron).',
  configSchema: scheduleConfigSchema as unknown as z.ZodType<ScheduleConfig>,
  systemPrompt: ({ config }) => {
    const { maxActiveSchedules } = scheduleConfigSchema.parse(config ?? {});
    return `You can schedule future work in this session with create_schedule. When a schedule fires you receive its description as a message (marked as scheduled) and should carry it out. At most ${maxActiveSchedules} active schedules per session.`;
  },
  tools: [createScheduleTool, listSchedulesTool, cancelScheduleTool],
});
