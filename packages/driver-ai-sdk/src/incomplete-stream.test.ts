import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { LlmStreamEvent } from '@everruns-ts/core';
import {
  closeFakeServers,
  collect,
  mathRequest,
  rejection,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { convertArrayToReadableStream, MockLanguageModelV4 } from 'ai/test';
import { afterEach, describe, expect, it } from 'vitest';
import { AiSdkDriver } from './index.js';

// A model stream that closes with no `finish` part is a truncated answer: the typed, retryable
// LLM_ERROR of kind `incomplete_stream` the HTTP drivers give, never a success. A `finish` part of
// reason `other` is a whole answer.

afterEach(closeFakeServers);

const USAGE = {
  inputTokens: { total: 10, noCache: 10, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 3, text: 3, reasoning: undefined },
};

const streamOf = (parts: LanguageModelV4StreamPart[]) => ({
  stream: convertArrayToReadableStream(parts),
});

const TRUNCATED: LanguageModelV4StreamPart[] = [
  { type: 'stream-start', warnings: [] },
  { type: 'text-start', id: 't' },
  { type: 'text-end', id: 't' },
];

describe('driver-ai-sdk: a stream that closes without a finish part', () => {
  it('fails with the retryable LLM_ERROR of kind incomplete_stream', async () => {
    const model = new MockLanguageModelV4({ doStream: streamOf(TRUNCATED) });
    const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 0 });

    const error = await rejection(collect(driver.stream(mathRequest('m', 'ai-sdk'))));

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: true });
    expect(error.details).toMatchObject({ kind: 'incomplete_stream', model: 'm', retryable: true });
  });

  it('is retried when no output reached the consumer, and the next attempt answers', async () => {
    const model = new MockLanguageModelV4({
      doStream: [
        streamOf(TRUNCATED),
        streamOf([
          { type: 'text-delta', id: 't', delta: '4' },
          { type: 'finish', usage: USAGE, finishReason: { unified: 'stop', raw: 'stop' } },
        ]),
      ],
    });
    const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 1 });

    const events = await collect(driver.stream(mathRequest('m', 'ai-sdk')));

    expect(events.map((event) => event.type)).toEqual(['text_delta', 'finish']);
    expect(model.doStreamCalls).toHaveLength(2);
  });

  it('is thrown, not retried, once a delta reached the consumer; no finish comes', async () => {
    const model = new MockLanguageModelV4({
      doStream: [
        streamOf([{ type: 'text-delta', id: 't', delta: 'Four is' }]),
        streamOf([
          { type: 'text-delta', id: 't', delta: 'never' },
          { type: 'finish', usage: USAGE, finishReason: { unified: 'stop', raw: 'stop' } },
        ]),
      ],
    });
    const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 1 });
    const events: LlmStreamEvent[] = [];

    const error = await rejection(
      (async () => {
        for await (const event of driver.stream(mathRequest('m', 'ai-sdk'))) events.push(event);
      })(),
    );

    expect(events).toEqual([{ type: 'text_delta', text: 'Four is' }]);
    expect(error.details.kind).toBe('incomplete_stream');
    expect(model.doStreamCalls).toHaveLength(1);
  });

  it('makes generate reject with the same error under the streaming option, resolving nothing partial', async () => {
    const model = new MockLanguageModelV4({
      doStream: streamOf([{ type: 'text-delta', id: 't', delta: 'partial' }]),
    });
    const driver = new AiSdkDriver({ models: { m: model }, streaming: true, maxRetries: 0 });

    const error = await rejection(driver.generate(mathRequest('m', 'ai-sdk')));

    expect(error.details.kind).toBe('incomplete_stream');
  });

  it('is what @ai-sdk/openai-compatible reading a stream with [DONE] and no finish_reason gives', async () => {
    const chunk = (delta: Record<string, unknown>) =>
      `data: ${JSON.stringify({
        id: 'chatcmpl-cut',
        object: 'chat.completion.chunk',
        created: 1764547200,
        model: 'local-model-2025',
        choices: [{ index: 0, delta, finish_reason: null }],
      })}\n\n`;
    const server = await startFakeServer(
      [
        sse([
          chunk({ role: 'assistant', content: '' }),
          chunk({ content: '' }),
          'data: [DONE]\n\n',
        ]),
      ],
      { basePath: '/v1' },
    );
    const provider = createOpenAICompatible({
      name: 'local',
      baseURL: server.baseUrl,
      apiKey: 'local-key',
    });
    const driver = new AiSdkDriver({ models: { m: provider('local-model') }, maxRetries: 0 });

    const error = await rejection(collect(driver.stream(mathRequest('m', 'ai-sdk'))));

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: true });
    expect(error.details.kind).toBe('incomplete_stream');
  });
});

describe('driver-ai-sdk: a finish part of reason other', () => {
  it('is a whole answer with stop reason other, whether or not the provider gave a raw reason', async () => {
    for (const raw of ['provider_specific', undefined]) {
      const model = new MockLanguageModelV4({
        doStream: streamOf([
          { type: 'text-delta', id: 't', delta: 'done' },
          { type: 'finish', usage: USAGE, finishReason: { unified: 'other', raw } },
        ]),
      });
      const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 0 });

      const events = await collect(driver.stream(mathRequest('m', 'ai-sdk')));

      expect(events.at(-1)).toEqual({
        type: 'finish',
        response: {
          text: 'done',
          toolCalls: [],
          usage: { inputTokens: 10, outputTokens: 3 },
          stopReason: 'other',
        },
      });
    }
  });
});
