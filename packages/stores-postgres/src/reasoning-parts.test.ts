import {
  defineCapability,
  defineTool,
  type LlmDriver,
  type LlmResponse,
  type Message,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

// Reasoning parts (thinking text, a provider signature, redacted data) are stored on the agent
// message and read back identically on memory and on PostgreSQL, with no migration, and reach
// the driver again on the next model call.

const SIGNATURE = `sig_${crypto.randomUUID()}+/=`;
const REDACTED = `EmwK${crypto.randomUUID().replaceAll('-', '')}/+==`;
const THINKING = 'Thinking: "2 + 2" → add(2, 2).\n\u2028 ünïcödé 😀';

const mathCapability = defineCapability({
  id: 'reasoning_math',
  name: 'Math',
  description: 'Adds',
  systemPrompt: 'Add.',
  tools: [
    defineTool({
      name: 'add',
      description: 'Adds two numbers',
      inputSchema: z.object({ a: z.number(), b: z.number() }),
      execute: ({ a, b }) => ({ result: a + b }),
    }),
  ],
});

/** A model that thinks (signed and redacted) before calling add, then answers. */
function thinkingDriver(seen: Message[][]): LlmDriver {
  return {
    providerType: 'thinking-test',
    async generate(request): Promise<LlmResponse> {
      seen.push([...request.messages]);
      if (request.iteration === 1) {
        return {
          text: 'Adding.',
          toolCalls: [
            { id: `call_${crypto.randomUUID()}`, name: 'add', arguments: { a: 2, b: 2 } },
          ],
          usage: { inputTokens: 10, outputTokens: 5, reasoningTokens: 3 },
          stopReason: 'tool_calls',
          reasoning: [
            { type: 'reasoning', text: THINKING, signature: SIGNATURE },
            { type: 'reasoning', text: '', redactedData: REDACTED },
            { type: 'reasoning', text: 'unsigned' },
          ],
        };
      }
      return {
        text: '4',
        toolCalls: [],
        usage: { inputTokens: 20, outputTokens: 1 },
        stopReason: 'end_turn',
      };
    },
  };
}

async function roundTrip(backends: RuntimeBackends) {
  const seen: Message[][] = [];
  const runtime = await new InProcessRuntimeBuilder()
    .capability(mathCapability)
    .backends(backends)
    .driver(thinkingDriver(seen))
    .defaultModel({ model: 'thinker', providerType: 'thinking-test' })
    .singleSession((session) => session.harness('math', 'Math.').withCapability('reasoning_math'))
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
  expect(result).toMatchObject({ success: true, response: '4', iterations: 2 });
  const messages = await runtime.messages(sessionId);
  await runtime.close();
  return { messages, seen };
}

describe('reasoning parts in stored messages', () => {
  const opened: PostgresBackends[] = [];
  afterAll(async () => {
    for (const backends of opened) await destroyTestBackends(backends);
  });

  it('stores reasoning parts on memory and PostgreSQL identically and sends them to the next model call', async () => {
    const backends = await createTestBackends();
    opened.push(backends);
    const onMemory = await roundTrip(inMemoryBackends());
    const onPostgres = await roundTrip(backends);

    const agentContent = (messages: Message[]) =>
      messages.filter((message) => message.role === 'agent').map((message) => message.content);
    const expected = [
      { type: 'reasoning', text: THINKING, signature: SIGNATURE },
      { type: 'reasoning', text: '', redactedData: REDACTED },
      { type: 'reasoning', text: 'unsigned' },
      { type: 'text', text: 'Adding.' },
    ];
    for (const { messages, seen } of [onMemory, onPostgres]) {
      const [first, second] = agentContent(messages);
      expect(first?.slice(0, 4)).toEqual(expected);
      expect(JSON.stringify(first?.slice(0, 2))).toBe(JSON.stringify(expected.slice(0, 2)));
      expect(second).toEqual([{ type: 'text', text: '4' }]);
      // The second model call sees the first answer's reasoning, as stored.
      const agentSeen = seen[1]?.find((message) => message.role === 'agent');
      expect(agentSeen?.content.slice(0, 4)).toEqual(expected);
    }
    const strip = (messages: Message[]) =>
      agentContent(messages).map((content) =>
        content.map((part) => (part.type === 'tool_call' ? { ...part, id: 'x' } : part)),
      );
    expect(strip(onPostgres.messages)).toEqual(strip(onMemory.messages));
  });
});
