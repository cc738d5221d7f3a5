import { randomUUID } from 'node:crypto';
import type { LlmRequest } from '@everruns-ts/core';
import {
  closeFakeServers,
  newMessage,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { AnthropicDriver } from './index.js';

afterEach(closeFakeServers);

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: 'claude-sonnet-4-5', providerType: 'anthropic', apiKey: 'k', baseUrl },
    systemPrompt: 'A long, cached system prompt.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
    tools: [],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const event = (type: string, data: Record<string, unknown> = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

function stream(startUsage: Record<string, unknown>, endUsage: Record<string, unknown>): string {
  return (
    event('message_start', {
      message: {
        id: 'msg_cache',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5-20250929',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: startUsage,
      },
    }) +
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
    event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }) +
    event('content_block_stop', { index: 0 }) +
    event('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: endUsage,
    }) +
    event('message_stop')
  );
}

describe('anthropic driver: usage details', () => {
  it('reports cache reads and writes from message_start apart, counted in the input total', async () => {
    const server = await startFakeServer([
      sse([
        stream(
          {
            input_tokens: 12,
            cache_creation_input_tokens: 300,
            cache_read_input_tokens: 2400,
            output_tokens: 1,
          },
          { output_tokens: 40 },
        ),
      ]),
    ]);

    const response = await new AnthropicDriver().generate(llmRequest(server.baseUrl));

    expect(response.usage).toEqual({
      inputTokens: 2712,
      outputTokens: 40,
      cachedInputTokens: 2400,
      cacheWriteInputTokens: 300,
    });
  });

  it('takes the cumulative usage of message_delta over message_start, zero details left out', async () => {
    const server = await startFakeServer([
      sse([
        stream(
          { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
          {
            input_tokens: 12,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 2400,
            output_tokens: 40,
          },
        ),
      ]),
    ]);

    const response = await new AnthropicDriver().generate(llmRequest(server.baseUrl));

    expect(response.usage).toEqual({
      inputTokens: 2412,
      outputTokens: 40,
      cachedInputTokens: 2400,
    });
  });
});
