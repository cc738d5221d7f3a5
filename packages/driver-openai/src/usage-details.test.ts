import { randomUUID } from 'node:crypto';
import type { LlmRequest } from '@everruns-ts/core';
import {
  closeFakeServers,
  collect,
  json,
  newMessage,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver } from './index.js';

afterEach(closeFakeServers);

function llmRequest(baseUrl: string, model: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model, providerType: 'openai', apiKey: 'sk-test', baseUrl },
    systemPrompt: '',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Think, then answer.' }])],
    tools: [],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;

describe('openai driver: usage details', () => {
  it('reports cached and reasoning tokens of an o-series answer (non-streamed)', async () => {
    const server = await startFakeServer(
      [
        json(200, {
          id: 'chatcmpl-o4',
          object: 'chat.completion',
          model: 'o4-mini-2025-04-16',
          choices: [
            { index: 0, message: { role: 'assistant', content: '42' }, finish_reason: 'stop' },
          ],
          usage: {
            prompt_tokens: 2048,
            completion_tokens: 900,
            total_tokens: 2948,
            prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
            completion_tokens_details: {
              reasoning_tokens: 832,
              audio_tokens: 0,
              accepted_prediction_tokens: 0,
              rejected_prediction_tokens: 0,
            },
          },
        }),
      ],
      { basePath: '/v1' },
    );
    const driver = new OpenAiDriver({ streaming: false });

    const response = await driver.generate(llmRequest(server.baseUrl, 'o4-mini'));

    expect(response.usage).toEqual({
      inputTokens: 2048,
      outputTokens: 900,
      cachedInputTokens: 1920,
      reasoningTokens: 832,
    });
  });

  it('reports the details of the final usage chunk of a stream, zero details left out', async () => {
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
      data({
        id: 'chatcmpl-o3',
        object: 'chat.completion.chunk',
        model: 'o3-2025-04-16',
        choices: [{ index: 0, delta, finish_reason: finish }],
        usage: null,
      });
    const server = await startFakeServer(
      [
        sse([
          chunk({ role: 'assistant', content: '' }) +
            chunk({ content: 'Yes.' }) +
            chunk({}, 'stop') +
            data({
              id: 'chatcmpl-o3',
              object: 'chat.completion.chunk',
              model: 'o3-2025-04-16',
              choices: [],
              usage: {
                prompt_tokens: 30,
                completion_tokens: 270,
                total_tokens: 300,
                prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
                completion_tokens_details: { reasoning_tokens: 256, audio_tokens: 0 },
              },
            }) +
            'data: [DONE]\n\n',
        ]),
      ],
      { basePath: '/v1' },
    );

    const events = await collect(new OpenAiDriver().stream(llmRequest(server.baseUrl, 'o3')));

    expect(events.at(-1)).toMatchObject({ type: 'finish' });
    const finish = events.at(-1) as Extract<(typeof events)[number], { type: 'finish' }>;
    expect(finish.response.usage).toEqual({
      inputTokens: 30,
      outputTokens: 270,
      reasoningTokens: 256,
    });
  });

  it("reports DeepSeek's prompt_cache_hit_tokens as cached input", async () => {
    const server = await startFakeServer([
      sse([
        data({
          id: 'ds-1',
          object: 'chat.completion.chunk',
          model: 'deepseek-chat',
          choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }],
        }) +
          data({
            id: 'ds-1',
            object: 'chat.completion.chunk',
            model: 'deepseek-chat',
            choices: [{ index: 0, delta: { content: '' }, finish_reason: 'stop' }],
            usage: {
              prompt_tokens: 1200,
              completion_tokens: 3,
              total_tokens: 1203,
              prompt_cache_hit_tokens: 1152,
              prompt_cache_miss_tokens: 48,
            },
          }) +
          'data: [DONE]\n\n',
      ]),
    ]);

    const response = await new OpenAiDriver().generate(llmRequest(server.baseUrl, 'deepseek-chat'));

    expect(response.usage).toEqual({ inputTokens: 1200, outputTokens: 3, cachedInputTokens: 1152 });
  });
});
