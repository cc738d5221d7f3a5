// On a bus that writes a message with its events in one round trip (PostgreSQL), the reason step
// stores its `reason.started` with the step's end (the answer, or a failed call's
// `reason.completed`) instead of on its own. What a reader sees must not change: the same events
// in the same order as on the in-memory stores, `reason.started` stamped with the time the model
// was called (not the time it was stored), delivered before the answer's events; and a streamed
// answer's pieces still follow their `reason.started`.
import {
  EverrunsError,
  type LlmDriver,
  type LlmResponse,
  PlatformDefinition,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';
import { calculatorCapability } from './test-support/math-runtime.js';

const MODEL_MS = 40;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A model that calls `add` once, then answers; `fail` makes every call fail instead. */
function mathDriver(calls: number[], mode: 'answer' | 'fail' | 'stream'): LlmDriver {
  const respond = (last: string | undefined): LlmResponse =>
    last === 'tool_result'
      ? {
          text: '4',
          toolCalls: [],
          usage: { inputTokens: 1, outputTokens: 1 },
          stopReason: 'end_turn',
        }
      : {
          text: '',
          toolCalls: [{ id: `call_${calls.length}`, name: 'add', arguments: { a: 2, b: 2 } }],
          usage: { inputTokens: 1, outputTokens: 1 },
          stopReason: 'tool_calls',
        };
  const driver: LlmDriver = {
    providerType: 'fake',
    async generate(request) {
      calls.push(Date.now());
      await sleep(MODEL_MS);
      if (mode === 'fail') {
        throw new EverrunsError({ code: 'LLM_ERROR', message: 'the provider is down' });
      }
      return respond(request.messages[request.messages.length - 1]?.role);
    },
  };
  if (mode === 'stream') {
    driver.stream = async function* (request) {
      calls.push(Date.now());
      const response = respond(request.messages[request.messages.length - 1]?.role);
      await sleep(MODEL_MS);
      if (response.text) yield { type: 'text_delta', text: response.text };
      yield { type: 'finish', response };
    };
  }
  return driver;
}

async function mathRuntime(
  backends: RuntimeBackends,
  calls: number[],
  mode: 'answer' | 'fail' | 'stream',
) {
  const platform = new PlatformDefinition();
  platform.capabilities.register(calculatorCapability());
  platform.drivers.register(mathDriver(calls, mode));
  const runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: 'math', name: 'math', capabilities: [{ id: 'calculator' }] })
    .build();
  const session = await runtime.createSession({ harnessId: 'math' });
  return { runtime, sessionId: session.id };
}

/** The kept events of a session as a reader loads them (PostgreSQL) or the bus kept them. */
async function keptEvents(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  const bus = backends.events as RuntimeBackends['events'] & {
    loadEvents?(sessionId: string): Promise<RuntimeEvent[]>;
  };
  return bus.loadEvents ? bus.loadEvents(sessionId) : (bus.collectedEvents?.(sessionId) ?? []);
}

const shape = (events: readonly RuntimeEvent[]) =>
  events.map(
    (event) => `${event.type}${event.type.startsWith('reason.') ? `#${event.data.iteration}` : ''}`,
  );

describe('reason.started stored with the step it starts (PostgreSQL)', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(() => destroyTestBackends(backends));

  it('stores, stamps and delivers the same events as the in-memory stores', async () => {
    const calls: number[] = [];
    const { runtime, sessionId } = await mathRuntime(backends, calls, 'answer');
    const delivered: RuntimeEvent[] = [];
    const stop = backends.events.subscribe((event) => {
      if (event.sessionId === sessionId) delivered.push(event);
    });
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    stop();
    expect(result.response).toBe('4');
    const kept = await keptEvents(backends, sessionId);

    const memory = inMemoryBackends();
    const inMemory = await mathRuntime(memory, [], 'answer');
    await inMemory.runtime.runTextTurn(inMemory.sessionId, 'What is 2 + 2?');
    const expected = shape(await keptEvents(memory, inMemory.sessionId));
    expect(expected).toContain('reason.started#2');
    expect(shape(kept)).toEqual(expected);
    // Delivered in the order stored, numbered without gaps.
    expect(shape(delivered.filter((event) => event.ephemeral !== true))).toEqual(expected);
    expect(kept.map((event) => event.seq)).toEqual(kept.map((_, index) => index + 1));

    const started = kept.filter((event) => event.type === 'reason.started');
    const answered = kept.filter((event) => event.type === 'output.message.completed');
    expect(started).toHaveLength(2);
    for (const [index, event] of started.entries()) {
      // Stamped when the model was called, the model's time before its answer's events.
      const calledAt = calls[index] as number;
      expect(Date.parse(event.ts)).toBeLessThanOrEqual(calledAt);
      expect(calledAt - Date.parse(event.ts)).toBeLessThan(MODEL_MS);
      const answer = answered[index] as RuntimeEvent;
      expect(Date.parse(answer.ts) - Date.parse(event.ts)).toBeGreaterThanOrEqual(MODEL_MS - 2);
      expect(answer.seq).toBe(event.seq + 1);
    }
  });

  it("stores a failed model call's reason.started with its reason.completed", async () => {
    const calls: number[] = [];
    const { runtime, sessionId } = await mathRuntime(backends, calls, 'fail');
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    expect(result.success).toBe(false);
    const kept = await keptEvents(backends, sessionId);

    const memory = inMemoryBackends();
    const inMemory = await mathRuntime(memory, [], 'fail');
    await inMemory.runtime.runTextTurn(inMemory.sessionId, 'What is 2 + 2?');
    expect(shape(kept)).toEqual(shape(await keptEvents(memory, inMemory.sessionId)));
    const started = kept.find((event) => event.type === 'reason.started') as RuntimeEvent;
    const completed = kept.find((event) => event.type === 'reason.completed') as RuntimeEvent;
    expect(completed.seq).toBe(started.seq + 1);
    expect(completed.data).toMatchObject({ success: false, error: { code: 'llm_error' } });
    expect(Date.parse(started.ts)).toBeLessThanOrEqual(calls[0] as number);
    expect(Date.parse(completed.ts) - Date.parse(started.ts)).toBeGreaterThanOrEqual(MODEL_MS - 2);
  });

  it("delivers a streamed answer's pieces after their reason.started", async () => {
    const calls: number[] = [];
    const { runtime, sessionId } = await mathRuntime(backends, calls, 'stream');
    const delivered: RuntimeEvent[] = [];
    const stop = backends.events.subscribe((event) => {
      if (event.sessionId === sessionId) delivered.push(event);
    });
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.type);
    const result = await stream.result;
    stop();
    expect(result.response).toBe('4');
    expect(parts).toContain('text-delta');
    const order = delivered
      .map((event) => event.type)
      .filter((type) => type === 'reason.started' || type === 'output.message.delta');
    expect(order).toEqual(['reason.started', 'reason.started', 'output.message.delta']);
    // Emitted on its own before the model call, as on any bus: stamped before the call.
    const started = delivered.filter((event) => event.type === 'reason.started');
    expect(Date.parse(started[1]!.ts)).toBeLessThanOrEqual(calls[1] as number);
  });
});
