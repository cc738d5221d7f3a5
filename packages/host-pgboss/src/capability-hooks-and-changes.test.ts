import { randomBytes } from 'node:crypto';
import {
  CapabilityRegistry,
  DriverRegistry,
  defineCapability,
  defineTool,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  PlatformDefinition,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PgBossHost } from './index.js';
import { DATABASE_URL, dropSchemas, randomSchemaName } from './test-support/database.js';

// Issue 18, items 4-6 in the durable host: capability hooks run inside the pg-boss steps (a veto,
// an argument rewrite, a result rewrite, a system-prompt addition), a tool switching a capability
// on mid-turn is seen by the next step's job, and the embedder's live changes and commands work on
// the host (PgBossHost.activateCapability, listCommands, …).

const storesSchema = randomSchemaName('hooks_stores');
const hostSchema = randomSchemaName('hooks_host');
const bossSchema = randomSchemaName('hooks_boss');

let backends: PostgresBackends;
let host: PgBossHost | undefined;

beforeAll(async () => {
  backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema: storesSchema, secretKey: { id: 'k', key: randomBytes(32) } },
  );
  await backends.migrate();
});

afterAll(async () => {
  await host?.stop().catch(() => {});
  await backends?.close();
  await dropSchemas(storesSchema, hostSchema, bossSchema);
});

let secretRuns = 0;

const calc = defineCapability({
  id: 'calc',
  name: 'Calc',
  description: 'Adds; has a forbidden operation; switches notes on.',
  tools: [
    defineTool({
      name: 'add',
      description: 'Adds two numbers.',
      inputSchema: z.strictObject({ a: z.number(), b: z.number() }),
      execute: ({ a, b }) => String(a + b),
    }),
    defineTool({
      name: 'secret_op',
      description: 'Must never run.',
      inputSchema: z.strictObject({}),
      execute: () => {
        secretRuns++;
        return 'ran';
      },
    }),
    defineTool({
      name: 'enable_notes',
      description: 'Switches the notes capability on.',
      inputSchema: z.strictObject({}),
      execute: async (_input, context) => {
        const change = await context.capabilityChanges?.activate('notes');
        return `added ${change?.toolsAdded.join(',')}`;
      },
    }),
  ],
});

const notes = defineCapability({
  id: 'notes',
  name: 'Notes',
  description: 'Looks notes up.',
  tools: [
    defineTool({
      name: 'lookup_note',
      description: 'Looks a note up.',
      inputSchema: z.strictObject({ key: z.string() }),
      execute: ({ key }) => `note ${key}`,
    }),
  ],
  commands: [
    {
      name: 'notes',
      description: 'Counts the notes.',
      execute: (args, context) => `notes of ${context.sessionId}${args ? ` (${args})` : ''}`,
    },
  ],
});

const guard = defineCapability({
  id: 'guard',
  name: 'Guard',
  description: 'Hooks around the model and the tools.',
  tools: [],
  beforeModelCall: (context) => ({
    systemPromptAddition: `Guard saw iteration ${context.iteration}.`,
  }),
  beforeToolCall: (context) => {
    if (context.toolName === 'secret_op') return { veto: 'vetoed by guard' };
    if (context.toolName === 'add') {
      return { arguments: { ...context.arguments, b: (context.arguments.b as number) * 10 } };
    }
    return undefined;
  },
  afterToolCall: (context) =>
    context.toolName === 'add' ? { content: `rewritten ${context.content}` } : undefined,
});

function toolResults(request: LlmRequest): string[] {
  return request.messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part.content] : [])),
  );
}

describe('PgBossHost with capability hooks and live changes', () => {
  it('runs the hooks in the steps, and a capability a tool switches on is offered by the next step', async () => {
    const requests: LlmRequest[] = [];
    const drivers = new DriverRegistry();
    drivers.register(
      new LlmSimDriver(
        LlmSimConfig.fromFunction((request, { index }) => {
          requests.push(request);
          if (index === 0) {
            return {
              toolCalls: [
                { id: 'c_add', name: 'add', arguments: { a: 1, b: 2 } },
                { id: 'c_secret', name: 'secret_op', arguments: {} },
                { id: 'c_enable', name: 'enable_notes', arguments: {} },
              ],
            };
          }
          if (index === 1) {
            return { toolCalls: [{ id: 'c_note', name: 'lookup_note', arguments: { key: 'k' } }] };
          }
          return `tools ${request.tools.map((tool) => tool.name).join(',')}`;
        }),
      ),
    );
    const capabilities = new CapabilityRegistry().register(calc).register(notes).register(guard);
    const platform = new PlatformDefinition(capabilities, drivers);
    await backends.providers.setDefaultModel(LLMSIM_DEFAULT_MODEL);
    const now = new Date().toISOString();
    const harnessId = `harness_${randomBytes(6).toString('hex')}`;
    const sessionId = `session_${randomBytes(6).toString('hex')}`;
    await backends.harnesses.addHarness({
      id: harnessId,
      name: 'h',
      systemPrompt: 'Be brief.',
      tags: [],
      capabilities: [{ id: 'calc' }, { id: 'guard' }],
      initialFiles: [],
      status: 'active',
      createdAt: now,
      updatedAt: now,
    });
    await backends.sessions.createSession({
      id: sessionId,
      harnessId,
      tags: [],
      capabilities: [],
      initialFiles: [],
      status: 'started',
      createdAt: now,
      updatedAt: now,
    });
    host = await PgBossHost.start({
      connectionString: DATABASE_URL,
      backends,
      platform,
      schema: hostSchema,
      bossSchema,
      pollingIntervalSeconds: 0.5,
    });
    await host.work({ concurrency: 1 });

    const first = await (await host.submitTextTurn(sessionId, 'go')).result({ timeoutMs: 30_000 });
    expect(first).toMatchObject({
      success: true,
      response: 'tools add,secret_op,enable_notes,lookup_note',
    });
    // beforeModelCall: every step's system prompt carries the guard's section for its iteration.
    expect(
      requests.map((request) => request.systemPrompt.match(/Guard saw iteration \d/)?.[0]),
    ).toEqual(['Guard saw iteration 1', 'Guard saw iteration 2', 'Guard saw iteration 3']);
    // beforeToolCall rewrote b (2 → 20) and vetoed secret_op; afterToolCall rewrote the result.
    expect(toolResults(requests[1] as LlmRequest)).toEqual([
      'rewritten 21',
      'vetoed by guard',
      'added lookup_note',
    ]);
    expect(secretRuns).toBe(0);
    // The step after enable_notes offered lookup_note; the one before did not.
    expect(requests[0]?.tools.map((tool) => tool.name)).not.toContain('lookup_note');
    expect(toolResults(requests[2] as LlmRequest).at(-1)).toBe('note k');
    const events = await backends.events.loadEvents(sessionId, { afterSeq: 0, limit: 1000 });
    const activated = events.filter((event) => event.type === 'capability.activated');
    expect(activated).toHaveLength(1);
    expect(activated[0]).toMatchObject({
      turnId: first.turnId,
      data: { capabilityId: 'notes', source: 'tool:enable_notes', toolsAdded: ['lookup_note'] },
    });

    // The embedder's live changes and commands on the host's adapter.
    expect((await host.listCommands(sessionId)).map((entry) => entry.command)).toEqual(['/notes']);
    expect((await host.executeCommand(sessionId, '/notes', 'all')).text).toBe(
      `notes of ${sessionId} (all)`,
    );
    const commands = (await backends.events.loadEvents(sessionId, { afterSeq: 0, limit: 1000 }))
      .filter((event) => event.type === 'command.executed')
      .map((event) => event.data);
    expect(commands).toEqual([{ command: 'notes', capabilityId: 'notes', hasArgs: true }]);
    const off = await host.deactivateCapability(sessionId, 'guard');
    expect(off).toMatchObject({
      changed: true,
      capabilities: [{ id: 'notes' }, { id: 'guard', disabled: true }],
    });
    const second = await (await host.submitTextTurn(sessionId, 'again')).result({
      timeoutMs: 30_000,
    });
    expect(second.success).toBe(true);
    expect(requests.at(-1)?.systemPrompt).not.toContain('Guard saw');
    const on = await host.activateCapability(sessionId, 'guard');
    expect(on).toMatchObject({ changed: true, capabilities: [{ id: 'notes' }] });
  }, 60_000);
});
