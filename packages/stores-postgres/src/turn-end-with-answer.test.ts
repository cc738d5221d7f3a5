// On PostgreSQL the in-process runtime writes a turn's final answer and the turn's end (status
// idle, `turn.completed`, `session.idled`, the lease released, the tool-call journal forgotten) in
// one statement. Whatever could still continue the turn must keep it going as on the in-memory
// stores, which end a turn apart: a message steered in while the model answers, structured
// output whose answer fails its check. And the session must be free for the next turn at once.
import {
  type LlmRequest,
  type LlmResponse,
  PlatformDefinition,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

type Runtime = Awaited<ReturnType<InProcessRuntimeBuilder['build']>>;

/** A runtime whose model answers with `answers` in turn, calling `during(n)` inside call n. */
async function scriptedRuntime(
  backends: RuntimeBackends,
  answers: string[],
  during?: (call: number, runtime: Runtime, sessionId: string) => void,
) {
  const sent: LlmRequest[] = [];
  let runtime: Runtime | undefined;
  let sessionId = '';
  const platform = new PlatformDefinition();
  platform.drivers.register({
    providerType: 'fake',
    async generate(request): Promise<LlmResponse> {
      sent.push(request);
      during?.(sent.length, runtime!, sessionId);
      await new Promise((resolve) => setTimeout(resolve, 5));
      return {
        text: answers[sent.length - 1] ?? 'done',
        toolCalls: [],
        usage: { inputTokens: 1, outputTokens: 1 },
        stopReason: 'end_turn',
      };
    },
  });
  runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: 'plain', name: 'plain' })
    .build();
  sessionId = (await runtime.createSession({ harnessId: 'plain' })).id;
  return { runtime, sessionId, sent };
}

const texts = (request: LlmRequest) =>
  request.messages.map((message) =>
    message.content.map((part) => (part.type === 'text' ? part.text : part.type)).join(''),
  );

async function keptTypes(backends: RuntimeBackends, sessionId: string): Promise<string[]> {
  const bus = backends.events as RuntimeBackends['events'] & {
    loadEvents?(sessionId: string): Promise<RuntimeEvent[]>;
  };
  const events = bus.loadEvents
    ? await bus.loadEvents(sessionId)
    : (bus.collectedEvents?.(sessionId) ?? []);
  return events.map((event) => event.type);
}

describe('the final answer written with the turn end (PostgreSQL)', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(() => destroyTestBackends(backends));

  it('takes a message steered in while the model answers, as on the in-memory stores', async () => {
    const run = async (store: RuntimeBackends) => {
      let receipt: Promise<unknown> | undefined;
      const scripted = await scriptedRuntime(store, ['first', 'second'], (call, runtime, id) => {
        if (call === 1) receipt = runtime.steerText(id, 'and also this');
      });
      const result = await scripted.runtime.runTextTurn(scripted.sessionId, 'hello');
      await expect(receipt).resolves.toMatchObject({ turnId: result.turnId });
      return { ...scripted, result, store };
    };
    const onPostgres = await run(backends);
    const inMemory = await run(inMemoryBackends());
    expect(onPostgres.result).toMatchObject({ success: true, response: 'second', iterations: 2 });
    expect(onPostgres.sent.map(texts)).toEqual(inMemory.sent.map(texts));
    expect(texts(onPostgres.sent[1]!)).toEqual(['hello', 'first', 'and also this']);
    expect(await keptTypes(backends, onPostgres.sessionId)).toEqual(
      await keptTypes(inMemory.store, inMemory.sessionId),
    );
    // The turn ended once, and the session is free for the next turn.
    const types = await keptTypes(backends, onPostgres.sessionId);
    expect(types.filter((type) => type === 'turn.completed')).toHaveLength(1);
    expect(await backends.sessions.getTurnLease(onPostgres.sessionId)).toBeNull();
    const next = await onPostgres.runtime.runTextTurn(onPostgres.sessionId, 'again');
    expect(next.success).toBe(true);
  });

  it('feeds a structured answer that fails its check back to the model before ending', async () => {
    const run = async (store: RuntimeBackends) => {
      const scripted = await scriptedRuntime(store, ['not json', '{"answer":4}']);
      const result = await scripted.runtime.runTextTurn(scripted.sessionId, 'What is 2 + 2?', {
        output: z.object({ answer: z.number() }),
      });
      return { ...scripted, result, store };
    };
    const onPostgres = await run(backends);
    const inMemory = await run(inMemoryBackends());
    expect(onPostgres.result.output).toEqual({ answer: 4 });
    expect(onPostgres.sent).toHaveLength(2);
    expect(onPostgres.sent.map(texts)).toEqual(inMemory.sent.map(texts));
    expect(await keptTypes(backends, onPostgres.sessionId)).toEqual(
      await keptTypes(inMemory.store, inMemory.sessionId),
    );
    expect((await backends.sessions.getSession(onPostgres.sessionId))?.status).toBe('idle');
    expect(await backends.sessions.getTurnLease(onPostgres.sessionId)).toBeNull();
  });

  it('ends a plain turn in the answer’s write: idle, unleased, ended once, the result whole', async () => {
    const { runtime, sessionId } = await scriptedRuntime(backends, ['hi there']);
    const result = await runtime.runTextTurn(sessionId, 'hello');
    expect(result).toMatchObject({
      success: true,
      response: 'hi there',
      iterations: 1,
      stopReason: 'end_turn',
      usage: { inputTokens: 1, outputTokens: 1 },
    });
    const types = await keptTypes(backends, sessionId);
    expect(types.slice(-4)).toEqual([
      'output.message.completed',
      'reason.completed',
      'turn.completed',
      'session.idled',
    ]);
    expect((await backends.sessions.getSession(sessionId))?.status).toBe('idle');
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();
  });
});
