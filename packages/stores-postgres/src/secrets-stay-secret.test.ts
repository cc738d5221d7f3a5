import { randomBytes } from 'node:crypto';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import {
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
  LlmSimDriver,
} from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { PostgresEventBus } from './postgres-event-bus.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

// Issue 13, invariant 7: provider keys never reach contexts, events, messages or results; a
// secret a tool read is redacted from its error message and result before they are stored.

async function allEvents(backends: RuntimeBackends, sessionId: string): Promise<RuntimeEvent[]> {
  if (backends.events instanceof PostgresEventBus) {
    return backends.events.loadEvents(sessionId, { afterSeq: 0, limit: 10_000 });
  }
  return backends.events.collectedEvents?.(sessionId) ?? [];
}

const secretTools = defineCapability({
  id: 'secret_tools',
  name: 'Secret tools',
  description: 'Tools that use a session secret and echo it by mistake',
  systemPrompt: 'Call the API.',
  tools: [
    defineTool({
      name: 'call_api_failing',
      description: 'Fails with the token in its message',
      inputSchema: z.object({}),
      execute: async (_input, context) => {
        const token = (await context.storage.getSecret(context.sessionId, 'token')) ?? '';
        const base64 = Buffer.from(token).toString('base64');
        throw new Error(
          `401 Unauthorized for Bearer ${token}; url ?t=${encodeURIComponent(token)}; basic ${base64}`,
        );
      },
    }),
    defineTool({
      name: 'call_api_echoing',
      description: 'Returns the request it sent, token included',
      inputSchema: z.object({}),
      execute: async (_input, context) => ({
        sent: {
          authorization: `Bearer ${await context.storage.getSecret(context.sessionId, 'token')}`,
        },
      }),
    }),
  ],
});

async function checkSecretsStaySecret(backends: RuntimeBackends): Promise<void> {
  const apiKey = `sk-provider-${randomBytes(12).toString('hex')}`;
  const token = `tok/${randomBytes(12).toString('hex')}+=`;
  const keysSeenByDriver: Array<string | undefined> = [];
  let answers = 0;
  const driver = new LlmSimDriver(
    LlmSimConfig.fromFunction((request) => {
      keysSeenByDriver.push(request.model.apiKey);
      answers++;
      if (answers === 1) {
        return {
          toolCalls: [
            { id: 'call_failing', name: 'call_api_failing', arguments: {} },
            { id: 'call_echoing', name: 'call_api_echoing', arguments: {} },
          ],
        };
      }
      if (answers === 2) return 'done';
      throw new EverrunsError({
        code: 'LLM_ERROR',
        message: `provider refused the key ${apiKey}`,
        details: { status: 401, body: { error: `Incorrect API key provided: ${apiKey}` } },
      });
    }),
  );
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(secretTools)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim', apiKey })
    .singleSession((session) => session.harness('secrets', 'Help.').withCapability('secret_tools'))
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  await backends.storage.setSecret(sessionId, 'token', token);

  const before = await runtime.loadContext(sessionId);
  expect(before.model).toEqual({ model: 'llmsim-model', providerType: 'llmsim' });

  const first = await runtime.runTextTurn(sessionId, 'call the api');
  expect(first).toMatchObject({ success: true, response: 'done', toolCallsCount: 2 });
  const second = await runtime.runTextTurn(sessionId, 'again');
  expect(second).toMatchObject({ success: false, error: { code: 'llm_error' } });
  expect(second.error?.message).toContain('[redacted api key]');
  expect(second.error?.details).toMatchObject({
    status: 401,
    body: { error: 'Incorrect API key provided: [redacted api key]' },
  });

  // The driver got the key; nothing shown or stored has it.
  expect(keysSeenByDriver).toEqual([apiKey, apiKey, apiKey]);
  const turnContext = runtime.turnContext(first.turnId);
  expect(turnContext?.model).toEqual({ model: 'llmsim-model', providerType: 'llmsim' });
  const messages = await runtime.messages(sessionId);
  const results = messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
  expect(results.map((part) => [part.toolCallId, part.isError])).toEqual([
    ['call_failing', true],
    ['call_echoing', false],
  ]);
  for (const part of results) expect(part.content).toContain('secret://token');
  const shown = JSON.stringify({
    before,
    turnContext,
    messages,
    events: await allEvents(backends, sessionId),
    first,
    second,
    latest: await runtime.loadContext(sessionId),
  });
  const tokenForms = [
    token,
    encodeURIComponent(token),
    Buffer.from(token).toString('base64'),
    Buffer.from(token).toString('base64url'),
  ];
  for (const leak of [apiKey, ...tokenForms]) expect(shown).not.toContain(leak);
}

describe('secrets stay secret (issue 13, invariant 7)', () => {
  const opened: PostgresBackends[] = [];
  afterAll(async () => {
    for (const backends of opened) await destroyTestBackends(backends);
  });

  it('keeps the provider key and tool-read secrets out of contexts, events, messages and results on memory', async () => {
    await checkSecretsStaySecret(inMemoryBackends());
  });

  it('keeps the provider key and tool-read secrets out of contexts, events, messages and results on PostgreSQL', async () => {
    const backends = await createTestBackends();
    opened.push(backends);
    await checkSecretsStaySecret(backends);
  });
});
