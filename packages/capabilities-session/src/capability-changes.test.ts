import { randomBytes } from 'node:crypto';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type Message,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CAPABILITY_REQUESTS_CAPABILITY_ID, capabilityRequestsCapability } from './index.js';

// Live capability changes of a session (runtime.activateCapability / deactivateCapability and the
// request_capability tool), through the public API on the in-memory stores and on PostgreSQL.

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `capability_changes_${randomBytes(6).toString('hex')}`;
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
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
});

/** A capability with a tool, a prompt section and a configuration schema. */
const notesCapability = defineCapability<{ prefix: string }>({
  id: 'notes',
  name: 'Notes',
  description: 'Looks notes up.',
  configSchema: z.strictObject({ prefix: z.string().min(1).default('note') }) as z.ZodType<{
    prefix: string;
  }>,
  systemPrompt: ({ config }) => `Notes are prefixed "${config.prefix}".`,
  tools: [
    defineTool({
      name: 'lookup_note',
      description: 'Looks a note up.',
      inputSchema: z.strictObject({ key: z.string() }),
      execute: ({ key }, context) => `${(context.config as { prefix: string }).prefix}:${key}`,
    }),
  ],
});

/** A capability the harness switches on. */
const clockCapability = defineCapability({
  id: 'clock',
  name: 'Clock',
  description: 'Tells a fixed time.',
  systemPrompt: 'The clock tool tells the time.',
  tools: [
    defineTool({
      name: 'read_clock',
      description: 'Reads the clock.',
      inputSchema: z.strictObject({}),
      execute: () => '12:00',
    }),
  ],
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

interface PagedEventBus {
  loadEvents(sessionId: string, page?: { afterSeq?: number }): Promise<RuntimeEvent[]>;
}

/** The events the backend keeps for the session (the PostgreSQL table, or the memory bus). */
async function keptEvents(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  const bus = backends.events as RuntimeBackends['events'] & Partial<PagedEventBus>;
  if (typeof bus.loadEvents === 'function') return bus.loadEvents(sessionId, { afterSeq: 0 });
  return bus.collectedEvents?.(sessionId) ?? [];
}

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(EverrunsError);
  expect((error as EverrunsError).code).toBe(code);
  return error as EverrunsError;
}

describe.each(Object.keys(backendsByName))('live capability changes on %s', (backendName) => {
  async function build(
    sim: LlmSimConfig = LlmSimConfig.fixed('ok'),
    requests?: { allowed: string[]; allowDeactivate?: boolean },
  ): Promise<{ runtime: InProcessRuntime; sessionId: string; backends: RuntimeBackends }> {
    const backends = backendsByName[backendName]!();
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(notesCapability)
      .capability(clockCapability)
      .capability(capabilityRequestsCapability)
      .driver(new LlmSimDriver(sim))
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) => {
        session.harness(`h_${randomBytes(6).toString('hex')}`, 'Be brief.').withCapability('clock');
        if (requests) session.sessionCapability(CAPABILITY_REQUESTS_CAPABILITY_ID, requests);
        return session;
      })
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string, backends };
  }

  async function toolNames(runtime: InProcessRuntime, sessionId: string): Promise<string[]> {
    return (await runtime.loadContext(sessionId)).tools.map((tool) => tool.name);
  }

  it('activates a capability: reports tools and prompt added, stores it, emits once, and a later runtime sees it', async () => {
    const { runtime, sessionId, backends } = await build();
    try {
      expect(await toolNames(runtime, sessionId)).toEqual(['read_clock']);
      const change = await runtime.activateCapability(sessionId, 'notes', { prefix: 'n' });
      expect(change).toEqual({
        sessionId,
        capabilityId: 'notes',
        action: 'activated',
        changed: true,
        toolsAdded: ['lookup_note'],
        toolsRemoved: [],
        promptSectionsAdded: ['notes'],
        promptSectionsRemoved: [],
        capabilities: [{ id: 'notes', config: { prefix: 'n' } }],
      });
      const context = await runtime.loadContext(sessionId);
      expect(context.tools.map((tool) => tool.name)).toEqual(['read_clock', 'lookup_note']);
      expect(context.systemPrompt).toContain('<capability id="notes">\nNotes are prefixed "n".');

      // The same activation again changes nothing and emits nothing.
      const again = await runtime.activateCapability(sessionId, 'notes', { prefix: 'n' });
      expect(again).toMatchObject({ changed: false, toolsAdded: [], promptSectionsAdded: [] });
      const events = (await keptEvents(backends, sessionId)).filter((event) =>
        event.type.startsWith('capability.'),
      );
      expect(events.map((event) => [event.type, event.data])).toEqual([
        [
          'capability.activated',
          {
            capabilityId: 'notes',
            source: 'embedder',
            configured: true,
            toolsAdded: ['lookup_note'],
            toolsRemoved: [],
            promptSectionsAdded: ['notes'],
            promptSectionsRemoved: [],
          },
        ],
      ]);
    } finally {
      await runtime.close();
    }
    if (backendName === 'postgres') {
      // Persisted: a fresh connection reads the session's list.
      const fresh = openPostgres();
      try {
        expect((await fresh.sessions.getSession(sessionId))?.capabilities).toEqual([
          { id: 'notes', config: { prefix: 'n' } },
        ]);
      } finally {
        await fresh.close();
      }
    }
  });

  it('deactivates an inherited capability with a disabled marker, and activating again removes the marker', async () => {
    const { runtime, sessionId, backends } = await build();
    try {
      const off = await runtime.deactivateCapability(sessionId, 'clock');
      expect(off).toMatchObject({
        action: 'deactivated',
        changed: true,
        toolsAdded: [],
        toolsRemoved: ['read_clock'],
        promptSectionsRemoved: ['clock'],
        capabilities: [{ id: 'clock', disabled: true }],
      });
      expect(await toolNames(runtime, sessionId)).toEqual([]);
      expect((await backends.sessions.getSession(sessionId))?.capabilities).toEqual([
        { id: 'clock', disabled: true },
      ]);
      const result = await runtime.runTextTurn(sessionId, 'what time is it?');
      expect(result.success).toBe(true);
      expect((await runtime.deactivateCapability(sessionId, 'clock')).changed).toBe(false);

      const on = await runtime.activateCapability(sessionId, 'clock');
      expect(on).toMatchObject({ changed: true, toolsAdded: ['read_clock'], capabilities: [] });
      expect(await toolNames(runtime, sessionId)).toEqual(['read_clock']);
      const types = (await keptEvents(backends, sessionId))
        .map((event) => event.type)
        .filter((type) => type.startsWith('capability.'));
      expect(types).toEqual(['capability.deactivated', 'capability.activated']);
    } finally {
      await runtime.close();
    }
  });

  it('concurrent changes of one session in one process both land (one at a time, not last-writer-wins)', async () => {
    const { runtime, sessionId, backends } = await build();
    try {
      const [on, off] = await Promise.all([
        runtime.activateCapability(sessionId, 'notes'),
        runtime.deactivateCapability(sessionId, 'clock'),
      ]);
      expect(on.changed && off.changed).toBe(true);
      // The second change read the list the first one wrote.
      expect(off.capabilities).toEqual([{ id: 'notes' }, { id: 'clock', disabled: true }]);
      expect((await backends.sessions.getSession(sessionId))?.capabilities).toEqual([
        { id: 'notes' },
        { id: 'clock', disabled: true },
      ]);
      expect(await toolNames(runtime, sessionId)).toEqual(['lookup_note']);
    } finally {
      await runtime.close();
    }
  });

  it('refuses an unknown id and a configuration the schema refuses, writing nothing', async () => {
    const { runtime, sessionId, backends } = await build();
    try {
      await expectCode(runtime.activateCapability(sessionId, 'no_such'), 'CAPABILITY_NOT_FOUND');
      await expectCode(runtime.deactivateCapability(sessionId, 'no_such'), 'CAPABILITY_NOT_FOUND');
      const bad = await expectCode(
        runtime.activateCapability(sessionId, 'notes', { prefix: '' }),
        'INVALID_INPUT',
      );
      expect(bad.message).toContain('prefix');
      await expectCode(runtime.activateCapability(sessionId, 'clock', { any: 1 }), 'INVALID_INPUT');
      await expectCode(runtime.activateCapability('', 'notes'), 'INVALID_INPUT');
      await expectCode(runtime.activateCapability('session_missing', 'notes'), 'SESSION_NOT_FOUND');
      expect((await backends.sessions.getSession(sessionId))?.capabilities).toEqual([]);
      expect(
        (await keptEvents(backends, sessionId)).filter((event) =>
          event.type.startsWith('capability.'),
        ),
      ).toEqual([]);
    } finally {
      await runtime.close();
    }
  });

  it('request_capability switches an allowed capability on mid-turn; the next reason step offers its tools', async () => {
    const calls: LlmSimToolCall[][] = [
      [{ name: 'request_capability', arguments: { capability_id: 'clock_not_allowed' } }],
      [{ name: 'request_capability', arguments: { capability_id: 'notes' } }],
      [{ name: 'lookup_note', arguments: { key: 'k1' } }],
      [{ name: 'request_capability', arguments: { capability_id: 'notes', action: 'deactivate' } }],
      [],
    ];
    const sim = LlmSimConfig.sequence(['', '', '', '', 'done']).withToolCallSequence(calls);
    const { runtime, sessionId, backends } = await build(sim, { allowed: ['notes'] });
    try {
      const result = await runtime.runTextTurn(sessionId, 'look up k1');
      expect(result).toMatchObject({ success: true, response: 'done' });
      const results = toolResults(await runtime.messages(sessionId));
      expect(results.map((part) => part.isError)).toEqual([true, false, false, true]);
      expect(results[0]?.content).toContain('may not be requested');
      expect(JSON.parse(results[1]?.content ?? '')).toMatchObject({
        capability_id: 'notes',
        changed: true,
        tools_added: ['lookup_note'],
      });
      // The tool did not exist when the turn started; the step after the request offered it.
      expect(results[2]?.content).toBe('note:k1');
      expect(results[3]?.content).toContain('not allowed');
      const sent = runtime.turnContext(result.turnId)?.tools.map((tool) => tool.name);
      expect(sent).toEqual(['read_clock', 'request_capability', 'lookup_note']);
      const activated = (await keptEvents(backends, sessionId)).filter(
        (event) => event.type === 'capability.activated',
      );
      expect(activated).toHaveLength(1);
      expect(activated[0]).toMatchObject({
        turnId: result.turnId,
        data: { capabilityId: 'notes', source: 'tool:request_capability' },
      });
      expect((await backends.sessions.getSession(sessionId))?.capabilities).toEqual([
        { id: CAPABILITY_REQUESTS_CAPABILITY_ID, config: { allowed: ['notes'] } },
        { id: 'notes' },
      ]);
    } finally {
      await runtime.close();
    }
  });

  it('an embedder change while a turn runs is seen by its next reason step', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const waiting = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const sim = LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
      [{ name: 'read_clock', arguments: {} }],
      [],
    ]);
    const slowClock = defineCapability({
      id: 'slow_clock',
      name: 'Slow clock',
      description: 'Waits for the test before answering.',
      tools: [
        defineTool({
          name: 'read_clock',
          description: 'Reads the clock.',
          inputSchema: z.strictObject({}),
          execute: async () => {
            entered();
            await gate;
            return '12:00';
          },
        }),
      ],
    });
    const backends = backendsByName[backendName]!();
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(notesCapability)
      .capability(slowClock)
      .driver(new LlmSimDriver(sim))
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session.harness(`h_${randomBytes(6).toString('hex')}`, '').withCapability('slow_clock'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    try {
      const turn = runtime.runTextTurn(sessionId, 'time?');
      await waiting;
      await runtime.activateCapability(sessionId, 'notes');
      release();
      const result = await turn;
      expect(result.success).toBe(true);
      const sent = runtime.turnContext(result.turnId)?.tools.map((tool) => tool.name);
      expect(sent).toEqual(['read_clock', 'lookup_note']);
    } finally {
      release();
      await runtime.close();
    }
  });
});
