import { randomBytes } from 'node:crypto';
import {
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type Message,
  messageText,
  type RuntimeBackends,
  SCHEDULED_MESSAGE_METADATA_KEY,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimResult } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  SCHEDULE_CAPABILITY_ID,
  type ScheduleConfigInput,
  type ScheduleView,
  scheduleCapability,
} from './index.js';

// The session_schedule capability through real turns on the in-memory stores and on PostgreSQL.
// Schedules fire on real timers set a fraction of a second ahead; tests wait for what a fired
// schedule leaves in the store, never for a duration.

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `schedule_${randomBytes(6).toString('hex')}`;
const secretKey = { id: 'k', key: randomBytes(32) };

function openPostgres(): PostgresBackends {
  return postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema, secretKey },
  );
}

beforeAll(async () => {
  const backends = openPostgres();
  await backends.migrate();
  await backends.close();
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

const WAIT = { timeout: 15_000, interval: 50 };

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

function scheduledMessages(messages: readonly Message[]): Message[] {
  return messages.filter(
    (message) => message.role === 'user' && message.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY],
  );
}

/**
 * The model: a user text `call <tool> <json>` makes it call that tool; a tool result is answered
 * `tool said: …`; a scheduled message is answered `doing: <its text>`.
 */
function scriptedModel(): LlmSimDriver {
  return new LlmSimDriver(
    LlmSimConfig.fromFunction((request: LlmRequest): LlmSimResult => {
      const last = request.messages.at(-1);
      if (last?.role === 'tool_result') {
        const part = last.content.find((entry) => entry.type === 'tool_result');
        return { text: `tool said: ${part?.type === 'tool_result' ? part.content : ''}` };
      }
      const text = last ? messageText(last) : '';
      if (last?.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY]) return { text: `doing: ${text}` };
      const call = /^call (\S+) (.*)$/s.exec(text);
      if (call) {
        return {
          toolCalls: [
            {
              id: `c_${randomBytes(4).toString('hex')}`,
              name: call[1] as string,
              arguments: JSON.parse(call[2] as string),
            },
          ],
        };
      }
      return { text: 'ok' };
    }),
  );
}

describe.each(Object.keys(backendsByName))('session_schedule on %s', (backendName) => {
  async function build(
    config: ScheduleConfigInput = {},
    backends: RuntimeBackends = backendsByName[backendName]!(),
  ): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(scheduleCapability)
      .driver(scriptedModel())
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'Plan ahead.')
          .withCapability(SCHEDULE_CAPABILITY_ID, config),
      )
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string };
  }

  async function call(
    runtime: InProcessRuntime,
    sessionId: string,
    tool: string,
    args: unknown,
  ): Promise<{ isError: boolean; content: string }> {
    const before = toolResults(await runtime.messages(sessionId)).length;
    // A scheduled turn may still be finishing in the runtime (its status already idle).
    const turn = await vi.waitFor(
      () => runtime.runTextTurn(sessionId, `call ${tool} ${JSON.stringify(args)}`),
      WAIT,
    );
    expect(turn.success).toBe(true);
    const results = toolResults(await runtime.messages(sessionId));
    expect(results).toHaveLength(before + 1);
    const result = results.at(-1) as { isError: boolean; content: string };
    return { isError: result.isError, content: result.content };
  }

  it('a one-shot schedule after a delay sends its description as a scheduled message that starts a turn', async () => {
    const { runtime, sessionId } = await build();
    const created = await call(runtime, sessionId, 'create_schedule', {
      description: 'check the oven',
      delay_seconds: 0.2,
    });
    expect(created.isError).toBe(false);
    const view = JSON.parse(created.content) as ScheduleView & { created: boolean };
    expect(view).toMatchObject({
      description: 'check the oven',
      schedule_type: 'one_shot',
      cron_expression: null,
      timezone: 'UTC',
      enabled: true,
      trigger_count: 0,
      created: true,
    });
    expect(view.schedule_id).toMatch(/^schedule_[0-9a-f]{32}$/);
    expect(view.next_trigger_at).toBe(view.scheduled_at);

    // The scheduled turn runs by itself: a user message marked as scheduled, then the answer.
    await vi.waitFor(async () => {
      const messages = await runtime.messages(sessionId);
      expect(messages.at(-1)?.role).toBe('agent');
      expect(scheduledMessages(messages)).toHaveLength(1);
      expect((await runtime.getSession(sessionId))?.status).toBe('idle');
    }, WAIT);
    const messages = await runtime.messages(sessionId);
    const [scheduled] = scheduledMessages(messages);
    expect(messageText(scheduled as Message)).toBe('check the oven');
    expect(scheduled?.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY]).toMatchObject({
      scheduleId: view.schedule_id,
      kind: 'once',
    });
    expect(messageText(messages.at(-1) as Message)).toBe('doing: check the oven');

    // Fired once, then disabled; the model sees it so.
    const listed = await call(runtime, sessionId, 'list_schedules', {});
    const { schedules, total } = JSON.parse(listed.content) as {
      schedules: ScheduleView[];
      total: number;
    };
    expect(total).toBe(1);
    expect(schedules[0]).toMatchObject({
      schedule_id: view.schedule_id,
      enabled: false,
      next_trigger_at: null,
      trigger_count: 1,
    });
    expect(schedules[0]?.last_triggered_at).not.toBeNull();
    await runtime.close();
  });

  it('a cron schedule is listed with its next match in its time zone, and cancel disables it', async () => {
    const { runtime, sessionId } = await build();
    const before = Date.now();
    const created = await call(runtime, sessionId, 'create_schedule', {
      description: 'daily report',
      cron_expression: '30 3 * * *',
      timezone: 'Europe/Paris',
    });
    const view = JSON.parse(created.content) as ScheduleView;
    expect(view).toMatchObject({
      schedule_type: 'recurring',
      cron_expression: '30 3 * * *',
      scheduled_at: null,
    });
    // The next trigger is 03:30 in Paris, within the next day.
    const next = new Date(view.next_trigger_at as string);
    const paris = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Paris',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).format(next);
    expect(paris).toBe('03:30');
    expect(next.getTime()).toBeGreaterThan(before);
    expect(next.getTime() - before).toBeLessThanOrEqual(25 * 3600 * 1000);

    const cancelled = await call(runtime, sessionId, 'cancel_schedule', {
      schedule_id: view.schedule_id,
    });
    expect(JSON.parse(cancelled.content)).toEqual({
      schedule_id: view.schedule_id,
      description: 'daily report',
      enabled: false,
      cancelled: true,
    });
    const [stored] = (await runtime.hostAdapter.schedules?.list(sessionId)) ?? [];
    expect(stored).toMatchObject({ id: view.schedule_id, enabled: false, nextRunAt: null });
    const unknown = await call(runtime, sessionId, 'cancel_schedule', {
      schedule_id: 'schedule_nope',
    });
    expect(unknown).toEqual({
      isError: true,
      content: 'No schedule schedule_nope in this session.',
    });
    await runtime.close();
  });

  it('bad schedules and one over maxActiveSchedules are tool errors; nothing is stored for them', async () => {
    const { runtime, sessionId } = await build({ maxActiveSchedules: 1 });
    const far = new Date(Date.now() + 3600_000).toISOString();
    const cases: [unknown, string][] = [
      [{ description: 'x', cron_expression: 'every day' }, 'Invalid cron expression "every day"'],
      [{ description: 'x', cron_expression: '0 0 * * * *' }, 'expected 5 fields'],
      [{ description: 'x', scheduled_at: 'tomorrow' }, 'Invalid runAt "tomorrow"'],
      [
        { description: 'x', scheduled_at: far, cron_expression: '0 3 * * *' },
        'Give exactly one of',
      ],
      [{ description: 'x' }, 'Give exactly one of'],
      [
        { description: 'x', cron_expression: '0 3 * * *', timezone: 'Mars/Olympus' },
        'Unknown time zone',
      ],
    ];
    for (const [args, message] of cases) {
      const result = await call(runtime, sessionId, 'create_schedule', args);
      expect(result.isError).toBe(true);
      expect(result.content).toContain(message);
    }
    expect(await runtime.hostAdapter.schedules?.list(sessionId)).toEqual([]);
    expect(
      (await call(runtime, sessionId, 'create_schedule', { description: 'one', scheduled_at: far }))
        .isError,
    ).toBe(false);
    const over = await call(runtime, sessionId, 'create_schedule', {
      description: 'two',
      scheduled_at: far,
    });
    expect(over.isError).toBe(true);
    expect(over.content).toContain('already has 1 active schedules (the most is 1)');
    expect(await runtime.hostAdapter.schedules?.list(sessionId)).toHaveLength(1);
    await runtime.close();
  });

  if (backendName === 'postgres') {
    it('two runtimes on one database both arm a schedule; it is delivered once', async () => {
      const first = await build();
      const second = await new InProcessRuntimeBuilder()
        .backends(openPostgres())
        .capability(scheduleCapability)
        .driver(scriptedModel())
        .defaultModel(LLMSIM_DEFAULT_MODEL)
        .build();
      // The second runtime's own pass at start (and any schedule of earlier tests) is over
      // before the schedule exists: a pass still reading the sessions could arm it first.
      await second.rearmSchedules();
      const created = await call(first.runtime, first.sessionId, 'create_schedule', {
        description: 'ring once',
        delay_seconds: 0.6,
      });
      const { schedule_id: scheduleId } = JSON.parse(created.content) as ScheduleView;
      // The second runtime arms what the first stored.
      expect(await second.rearmSchedules()).toBe(1);
      await vi.waitFor(async () => {
        const [stored] = (await second.hostAdapter.schedules?.list(first.sessionId)) ?? [];
        expect(stored).toMatchObject({ id: scheduleId, enabled: false, runCount: 1 });
        const messages = await first.runtime.messages(first.sessionId);
        expect(scheduledMessages(messages)).toHaveLength(1);
        expect(messages.at(-1)?.role).toBe('agent');
        expect((await first.runtime.getSession(first.sessionId))?.status).toBe('idle');
      }, WAIT);
      await first.runtime.close();
      await second.close();
      // After both runtimes closed: still exactly one delivery.
      const reader = openPostgres();
      expect(scheduledMessages(await reader.messages.load(first.sessionId))).toHaveLength(1);
      await reader.close();
    });

    it('a schedule stored before close fires once in the next runtime on the same database', async () => {
      const first = await build();
      const created = await call(first.runtime, first.sessionId, 'create_schedule', {
        description: 'water the plants',
        delay_seconds: 0.5,
      });
      const { schedule_id: scheduleId } = JSON.parse(created.content) as ScheduleView;
      // Closing clears the timer before it fires.
      await first.runtime.close();

      const second = await new InProcessRuntimeBuilder()
        .backends(openPostgres())
        .capability(scheduleCapability)
        .driver(scriptedModel())
        .defaultModel(LLMSIM_DEFAULT_MODEL)
        .build();
      await vi.waitFor(async () => {
        const messages = await second.messages(first.sessionId);
        expect(messages.at(-1)?.role).toBe('agent');
        expect(scheduledMessages(messages)).toHaveLength(1);
        expect((await second.getSession(first.sessionId))?.status).toBe('idle');
      }, WAIT);
      const messages = await second.messages(first.sessionId);
      expect(messageText(messages.at(-1) as Message)).toBe('doing: water the plants');
      const [stored] = (await second.hostAdapter.schedules?.list(first.sessionId)) ?? [];
      expect(stored).toMatchObject({ id: scheduleId, enabled: false, runCount: 1 });
      // Armed already: another pass arms nothing.
      expect(await second.rearmSchedules()).toBe(0);
      await second.close();
    });
  }
});
