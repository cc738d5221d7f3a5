// On PostgreSQL the in-process runtime writes the first tool call's `tool.started` (and, for a
// tool that is not idempotent, its journal claim) with the model's answer that makes the call.
// What a reader sees must not change: the same events in the same order as on the in-memory
// stores for answers with several calls, an unknown tool, a client-side tool first; each tool
// runs once, and the journal is empty once the turn ended.
import {
  defineCapability,
  defineTool,
  type LlmResponse,
  PlatformDefinition,
  type RuntimeBackends,
  type RuntimeEvent,
  type ToolCall,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import {
  executeTurnStep,
  initialTurnStep,
  type RuntimeTurnStep,
  settleTurn,
  TurnStepChain,
} from '@everruns-ts/runtime/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

/** A runtime whose model answers `calls`, then `done` once a tool result is in; one session. */
async function toolSession(backends: RuntimeBackends, calls: ToolCall[]) {
  const runs: string[] = [];
  const platform = new PlatformDefinition();
  platform.capabilities.register(
    defineCapability({
      id: 'shop',
      name: 'Shop',
      description: 'Tools of every kind',
      tools: [
        defineTool({
          name: 'charge',
          description: 'Charges a card (not idempotent)',
          inputSchema: z.object({ cents: z.number() }),
          execute: ({ cents }) => {
            runs.push(`charge ${cents}`);
            return 'charged';
          },
        }),
        defineTool({
          name: 'look',
          description: 'Looks a price up (idempotent)',
          inputSchema: z.object({ item: z.string() }),
          idempotent: true,
          execute: async ({ item }) => {
            runs.push(`look ${item}`);
            return '5 cents';
          },
        }),
        defineTool({
          name: 'ask_user',
          description: 'Asks the person in the client',
          inputSchema: z.object({ question: z.string() }),
          clientSide: true,
          execute: () => {
            throw new Error('a client-side tool does not run on the server');
          },
        }),
      ],
    }),
  );
  platform.drivers.register({
    providerType: 'fake',
    async generate(request): Promise<LlmResponse> {
      const answered = request.messages.some((message) => message.role === 'tool_result');
      return answered
        ? {
            text: 'done',
            toolCalls: [],
            usage: { inputTokens: 1, outputTokens: 1 },
            stopReason: 'end_turn',
          }
        : {
            text: '',
            toolCalls: calls,
            usage: { inputTokens: 1, outputTokens: 1 },
            stopReason: 'tool_calls',
          };
    },
  });
  const runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: 'shop', name: 'shop', capabilities: [{ id: 'shop' }] })
    .build();
  const sessionId = (await runtime.createSession({ harnessId: 'shop' })).id;
  return { runtime, sessionId, runs };
}

/** {@link toolSession} with one turn run in process. */
async function toolRuntime(backends: RuntimeBackends, calls: ToolCall[]) {
  const session = await toolSession(backends, calls);
  const result = await session.runtime.runTextTurn(session.sessionId, 'buy it');
  return { ...session, result };
}

async function kept(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  const bus = backends.events as RuntimeBackends['events'] & {
    loadEvents?(sessionId: string): Promise<RuntimeEvent[]>;
  };
  return bus.loadEvents ? bus.loadEvents(sessionId) : (bus.collectedEvents?.(sessionId) ?? []);
}

const shape = (events: readonly RuntimeEvent[]) =>
  events.map((event) =>
    event.type.startsWith('tool.') ? `${event.type} ${event.data.toolCallId}` : event.type,
  );

const CASES: Record<string, ToolCall[]> = {
  'a call that is not idempotent, then an idempotent one': [
    { id: 'call_a', name: 'charge', arguments: { cents: 5 } },
    { id: 'call_b', name: 'look', arguments: { item: 'tea' } },
  ],
  'an idempotent call, then one that is not': [
    { id: 'call_a', name: 'look', arguments: { item: 'tea' } },
    { id: 'call_b', name: 'charge', arguments: { cents: 5 } },
  ],
  'an unknown tool, then a known one': [
    { id: 'call_a', name: 'no_such_tool', arguments: {} },
    { id: 'call_b', name: 'charge', arguments: { cents: 5 } },
  ],
  'malformed arguments first': [{ id: 'call_a', name: 'charge', arguments: { cents: 'five' } }],
};

describe('the first call started with the answer (PostgreSQL)', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(() => destroyTestBackends(backends));

  for (const [name, calls] of Object.entries(CASES)) {
    it(`stores and runs ${name} as the in-memory stores do`, async () => {
      const onPostgres = await toolRuntime(backends, calls);
      const memory = inMemoryBackends();
      const inMemory = await toolRuntime(memory, calls);
      expect(onPostgres.result).toMatchObject({ success: true, response: 'done' });
      expect(onPostgres.runs).toEqual(inMemory.runs);
      const events = await kept(backends, onPostgres.sessionId);
      expect(shape(events)).toEqual(shape(await kept(memory, inMemory.sessionId)));
      // Each call started once, right before its own result.
      for (const call of calls) {
        expect(shape(events).filter((entry) => entry === `tool.started ${call.id}`)).toHaveLength(
          1,
        );
      }
      expect(await backends.storage.listKeys(onPostgres.sessionId)).toEqual([]);
      expect(await backends.sessions.getTurnLease(onPostgres.sessionId)).toBeNull();
    });
  }

  it('leaves a client-side first call to the client: the turn waits as on the in-memory stores', async () => {
    const calls: ToolCall[] = [
      { id: 'call_q', name: 'ask_user', arguments: { question: 'which card?' } },
      { id: 'call_b', name: 'charge', arguments: { cents: 5 } },
    ];
    const onPostgres = await toolRuntime(backends, calls);
    const memory = inMemoryBackends();
    const inMemory = await toolRuntime(memory, calls);
    expect(onPostgres.result.stopReason).toBe('waiting_for_tool_results');
    expect(onPostgres.runs).toEqual(inMemory.runs);
    expect(shape(await kept(backends, onPostgres.sessionId))).toEqual(
      shape(await kept(memory, inMemory.sessionId)),
    );
    const done = await onPostgres.runtime.submitToolResults(
      onPostgres.sessionId,
      onPostgres.result.turnId,
      [{ toolCallId: 'call_q', content: 'the blue one' }],
    );
    expect(done).toMatchObject({ success: true, response: 'done' });
  });
});

describe('executeTurnStep with startFirstCall (PostgreSQL): a host step chain starts the first call with the answer', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(() => destroyTestBackends(backends));

  /** The turn's steps as a host runs them, the act step in `actIn` (see the cases). */
  async function hostTurn(calls: ToolCall[], actIn: 'the same chain' | 'a new job') {
    const session = await toolSession(backends, calls);
    const adapter = session.runtime.hostAdapter;
    const stored = (step: RuntimeTurnStep): unknown => JSON.parse(JSON.stringify(step));
    const chain = new TurnStepChain();
    const first = initialTurnStep({
      sessionId: session.sessionId,
      turnId: `turn_${crypto.randomUUID().replaceAll('-', '')}`,
      input: { role: 'user', content: [{ type: 'text', text: 'buy it' }] },
    });
    let outcome = await executeTurnStep(adapter, stored(first), { chain, startFirstCall: true });
    const started: (readonly string[] | undefined)[] = [];
    while (outcome.next) {
      const step = outcome.next;
      const startedCalls = outcome.startedCalls;
      if (step.activity === 'act' && actIn === 'a new job') {
        // Read back from the job's data, with the started calls the job carries.
        outcome = await executeTurnStep(adapter, stored(step), {
          chain: new TurnStepChain(),
          ...(startedCalls ? { startedCalls: [...startedCalls] } : {}),
        });
      } else {
        outcome = await executeTurnStep(adapter, stored(step), { chain, startFirstCall: true });
      }
      if (step.activity === 'reason') started.push(outcome.startedCalls);
    }
    const result = await settleTurn(adapter, outcome.plan);
    return { ...session, result, started };
  }

  for (const actIn of ['the same chain', 'a new job'] as const) {
    for (const [name, calls] of Object.entries(CASES)) {
      it(`with the act step in ${actIn}: ${name}, stored and run as in process`, async () => {
        const hosted = await hostTurn(calls, actIn);
        const memory = inMemoryBackends();
        const inMemory = await toolRuntime(memory, calls);
        expect(hosted.result).toMatchObject({ success: true, response: 'done' });
        expect(hosted.runs).toEqual(inMemory.runs);
        const events = shape(await kept(backends, hosted.sessionId));
        expect(events).toEqual(shape(await kept(memory, inMemory.sessionId)));
        for (const call of calls) {
          expect(events.filter((entry) => entry === `tool.started ${call.id}`)).toHaveLength(1);
        }
      });
    }
  }

  it("names the idempotent first call it started in the reason step's outcome, and no call of the final answer", async () => {
    const hosted = await hostTurn(
      CASES['an idempotent call, then one that is not'] ?? [],
      'a new job',
    );
    expect(hosted.started).toEqual([['call_a'], undefined]);
  });

  it('starts nothing with the answer unless asked: the act step starts every call', async () => {
    const session = await toolSession(
      backends,
      CASES['an idempotent call, then one that is not'] ?? [],
    );
    const adapter = session.runtime.hostAdapter;
    const chain = new TurnStepChain();
    const first = initialTurnStep({
      sessionId: session.sessionId,
      turnId: `turn_${crypto.randomUUID().replaceAll('-', '')}`,
      input: { role: 'user', content: [{ type: 'text', text: 'buy it' }] },
    });
    const input = await executeTurnStep(adapter, first, { chain });
    const reason = await executeTurnStep(adapter, input.next, { chain });
    expect(reason.startedCalls).toBeUndefined();
    const events = shape(await kept(backends, session.sessionId));
    expect(events.filter((entry) => entry.startsWith('tool.started'))).toEqual([]);
  });

  it('refuses startedCalls that are not an array of call ids', async () => {
    const session = await toolSession(backends, CASES['malformed arguments first'] ?? []);
    const first = initialTurnStep({
      sessionId: session.sessionId,
      turnId: `turn_${crypto.randomUUID().replaceAll('-', '')}`,
      input: { role: 'user', content: [{ type: 'text', text: 'buy it' }] },
    });
    await expect(
      executeTurnStep(session.runtime.hostAdapter, first, {
        startedCalls: 'call_a' as unknown as string[],
      }),
    ).rejects.toThrow(TypeError);
  });
});
