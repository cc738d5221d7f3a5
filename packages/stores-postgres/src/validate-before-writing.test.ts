import {
  defineCapability,
  type ErrorCode,
  EverrunsError,
  type InputMessage,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import {
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
} from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { PostgresEventBus } from './postgres-event-bus.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

// Issue 13, invariant 5: everything checkable is checked before the user message is stored; a
// rejected call changes nothing (message count, events, status).

const unitsCapability = defineCapability({
  id: 'units',
  name: 'Units',
  description: 'A capability whose configuration has a schema',
  systemPrompt: 'Use units.',
  configSchema: z.object({ unit: z.enum(['cm', 'in']) }),
  tools: [],
});

async function eventsOf(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  if (backends.events instanceof PostgresEventBus) {
    return backends.events.loadEvents(sessionId, { afterSeq: 0, limit: 10_000 });
  }
  return backends.events.collectedEvents?.(sessionId) ?? [];
}

async function snapshot(runtime: InProcessRuntime, sessionId: string) {
  const session = await runtime.getSession(sessionId);
  return {
    messages: (await runtime.messages(sessionId)).length,
    events: (await eventsOf(runtime.backends, sessionId)).length,
    status: session?.status ?? null,
  };
}

async function expectRejected(
  runtime: InProcessRuntime,
  sessionId: string,
  call: () => Promise<unknown>,
  code: ErrorCode,
): Promise<EverrunsError> {
  const before = await snapshot(runtime, sessionId);
  const error = await call().then(
    () => {
      throw new Error(`expected ${code}, the call resolved`);
    },
    (caught: unknown) => caught,
  );
  if (!EverrunsError.isInstance(error)) throw error;
  expect(error.code, error.message).toBe(code);
  expect(await snapshot(runtime, sessionId)).toEqual(before);
  return error;
}

async function checkValidateBeforeWriting(backends: RuntimeBackends): Promise<void> {
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(unitsCapability)
    .llmSim(LlmSimConfig.fixed('ok'))
    .model('elsewhere', { model: 'remote', providerType: 'no-such-provider' })
    .limits({ maxInputBytes: 1_000 })
    .singleSession((session) => session.harness('validate', 'Help.'))
    .build();
  const good = runtime.defaultSessionId() as string;
  // A first turn, so the session holds messages and events and is idle.
  expect(await runtime.runTextTurn(good, 'hello')).toMatchObject({ success: true });
  const harnessId = (await runtime.getSession(good))?.harnessId as string;
  const session = async (overrides: Record<string, unknown>) =>
    (await runtime.createSession({ harnessId, ...overrides })).id;

  // Unknown session.
  const unknown = `session_${'0'.repeat(31)}9`;
  await expectRejected(
    runtime,
    unknown,
    () => runtime.runTextTurn(unknown, 'hi'),
    'SESSION_NOT_FOUND',
  );

  // Input schema.
  for (const input of [
    42,
    null,
    { role: 'user', content: [] },
    { role: 'user', content: [{ type: 'tool_call', id: 'c', name: 'x', arguments: {} }] },
    { role: 'agent', content: [{ type: 'text', text: 'hi' }] },
  ]) {
    await expectRejected(
      runtime,
      good,
      () => runtime.runTurn(good, input as InputMessage),
      'INVALID_INPUT',
    );
  }
  await expectRejected(
    runtime,
    good,
    () => runtime.runTextTurn(good, 42 as never),
    'INVALID_INPUT',
  );

  // Input size: 1,000 bytes is the configured limit; UTF-8 bytes count, not characters.
  const tooLarge = await expectRejected(
    runtime,
    good,
    () => runtime.runTextTurn(good, 'é'.repeat(501)),
    'LIMIT_EXCEEDED',
  );
  expect(tooLarge.details).toMatchObject({ size: 1_002, maxInputBytes: 1_000 });
  await expectRejected(
    runtime,
    good,
    () =>
      runtime.runTurn(good, {
        role: 'user',
        content: [
          { type: 'text', text: 'x'.repeat(600) },
          { type: 'image', mediaType: 'image/png', data: 'A'.repeat(600) },
        ],
      }),
    'LIMIT_EXCEEDED',
  );
  expect(await runtime.runTextTurn(good, 'x'.repeat(1_000))).toMatchObject({ success: true });

  // Unknown and misconfigured capabilities.
  const unknownCapability = await session({ capabilities: [{ id: 'no_such_capability' }] });
  await expectRejected(
    runtime,
    unknownCapability,
    () => runtime.runTextTurn(unknownCapability, 'hi'),
    'CAPABILITY_NOT_FOUND',
  );
  const misconfigured = await session({ capabilities: [{ id: 'units', config: { unit: 'km' } }] });
  await expectRejected(
    runtime,
    misconfigured,
    () => runtime.runTextTurn(misconfigured, 'hi'),
    'INVALID_INPUT',
  );
  const configured = await session({ capabilities: [{ id: 'units', config: { unit: 'cm' } }] });
  expect(await runtime.runTextTurn(configured, 'hi')).toMatchObject({ success: true });

  // Missing model, and a model whose provider has no driver.
  const missingModel = await session({ modelId: 'no-such-model' });
  await expectRejected(
    runtime,
    missingModel,
    () => runtime.runTextTurn(missingModel, 'hi'),
    'MODEL_NOT_FOUND',
  );
  const noDriver = await session({ modelId: 'elsewhere' });
  await expectRejected(
    runtime,
    noDriver,
    () => runtime.runTextTurn(noDriver, 'hi'),
    'DRIVER_NOT_FOUND',
  );

  // After all that, the good session still runs turns.
  expect(await runtime.runTextTurn(good, 'still fine')).toMatchObject({ success: true });
  expect((await runtime.getSession(good))?.status).toBe('idle');
}

describe('validate before writing (issue 13, invariant 5)', () => {
  const opened: PostgresBackends[] = [];
  afterAll(async () => {
    for (const backends of opened) await destroyTestBackends(backends);
  });

  it('refuses an unknown session, bad or oversized input, unknown or misconfigured capabilities and a missing model, changing nothing, on memory', async () => {
    await checkValidateBeforeWriting(inMemoryBackends());
  });

  it('refuses an unknown session, bad or oversized input, unknown or misconfigured capabilities and a missing model, changing nothing, on PostgreSQL', async () => {
    const backends = await createTestBackends();
    opened.push(backends);
    await checkValidateBeforeWriting(backends);
  });
});
