import { randomUUID } from 'node:crypto';
import type { LlmRequest, LlmStreamEvent } from '@everruns-ts/core';
import {
  closeFakeServers,
  json,
  newMessage,
  type Reply,
  rejection,
  slowSse,
  sse,
  stall,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver, type RetryInfo } from './index.js';

// Each timeout proven against a local server that stalls at that point of the exchange.

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies, { basePath: '/v1' });

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: 'gpt-4.1-mini', providerType: 'openai', apiKey: 'test-key-123456', baseUrl },
    systemPrompt: '',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
    tools: [],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const data = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;
const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
  data({
    id: 'c',
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  });
const ANSWER = chunk({ content: 'Hi!' }) + chunk({}, 'stop') + 'data: [DONE]\n\n';

describe('openai driver timeouts', () => {
  it('times out a server that never sends headers (connect), retries, then fails typed', async () => {
    const server = await startServer([stall('headers'), stall('headers')]);
    const retries: RetryInfo[] = [];
    const driver = new OpenAiDriver({
      maxRetries: 1,
      retryBaseDelayMs: 1,
      timeouts: { connectTimeoutMs: 100 },
      onRetry: (info) => retries.push(info),
    });
    const started = Date.now();
    const error = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({ kind: 'timeout', timeout: 'connect', timeoutMs: 100 });
    expect(error.message).toContain('connect timeout');
    expect(server.requests).toHaveLength(2);
    expect(retries).toHaveLength(1);
  });

  it('recovers when the retry after a connect timeout answers', async () => {
    const server = await startServer([stall('headers'), sse([ANSWER])]);
    const response = await new OpenAiDriver({
      retryBaseDelayMs: 1,
      timeouts: { connectTimeoutMs: 100 },
    }).generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('Hi!');
  });

  it('times out a stream whose headers come but whose body never starts (first byte)', async () => {
    const server = await startServer([stall('first-byte')]);
    const error = await rejection(
      new OpenAiDriver({ maxRetries: 0, timeouts: { firstByteTimeoutMs: 100 } }).generate(
        llmRequest(server.baseUrl),
      ),
    );
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({ kind: 'timeout', timeout: 'firstByte', timeoutMs: 100 });
    await server.closedConnections[0];
  });

  it('times out a silence between chunks (idle) after output, without a silent retry', async () => {
    const server = await startServer([stall('idle', [chunk({ content: 'Hel' })]), sse([ANSWER])]);
    const events: LlmStreamEvent[] = [];
    const error = await rejection(
      (async () => {
        const driver = new OpenAiDriver({ retryBaseDelayMs: 1, timeouts: { idleTimeoutMs: 100 } });
        for await (const event of driver.stream(llmRequest(server.baseUrl))) events.push(event);
      })(),
    );
    expect(error.details).toMatchObject({ kind: 'timeout', timeout: 'idle', timeoutMs: 100 });
    expect(error.retryable).toBe(true);
    expect(events).toEqual([{ type: 'text_delta', text: 'Hel' }]);
    expect(server.requests).toHaveLength(1);
  });

  it('retries an idle timeout that came before any output', async () => {
    const server = await startServer([
      stall('idle', [chunk({ role: 'assistant', content: '' })]),
      sse([ANSWER]),
    ]);
    const response = await new OpenAiDriver({
      retryBaseDelayMs: 1,
      timeouts: { idleTimeoutMs: 100 },
    }).generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('Hi!');
    expect(server.requests).toHaveLength(2);
  });

  it('does not count the consumer’s own time between reads as idle', async () => {
    const server = await startServer([
      sse([chunk({ content: 'a' }), chunk({ content: 'b' }), ANSWER]),
    ]);
    const driver = new OpenAiDriver({ timeouts: { idleTimeoutMs: 150 } });
    const events: LlmStreamEvent[] = [];
    for await (const event of driver.stream(llmRequest(server.baseUrl))) {
      events.push(event);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(events.at(-1)?.type).toBe('finish');
  });

  it('ends a call that trickles past its total timeout, and does not retry it', async () => {
    const pieces = Array.from({ length: 20 }, (_, index) => chunk({ content: `${index} ` }));
    const server = await startServer([slowSse([...pieces, ANSWER], 40), sse([ANSWER])]);
    const error = await rejection(
      new OpenAiDriver({
        retryBaseDelayMs: 1,
        timeouts: { idleTimeoutMs: 1_000, totalTimeoutMs: 200 },
      }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.details).toMatchObject({ kind: 'timeout', timeout: 'total', timeoutMs: 200 });
    expect(error.retryable).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('lets a per-call timeout replace the driver’s', async () => {
    const server = await startServer([stall('headers')]);
    const driver = new OpenAiDriver({ maxRetries: 0, timeouts: { connectTimeoutMs: 60_000 } });
    const error = await rejection(
      driver.generate(llmRequest(server.baseUrl), { timeouts: { connectTimeoutMs: 80 } }),
    );
    expect(error.details).toMatchObject({ timeout: 'connect', timeoutMs: 80 });
  });

  it('times the header wait of a non-streamed call as first byte', async () => {
    const server = await startServer([stall('headers')]);
    const error = await rejection(
      new OpenAiDriver({
        streaming: false,
        maxRetries: 0,
        timeouts: { connectTimeoutMs: 50, firstByteTimeoutMs: 120 },
      }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.details).toMatchObject({ timeout: 'firstByte', timeoutMs: 120 });
  });

  it('refuses bad timeouts with INVALID_INPUT, on the driver and per call, before any request', async () => {
    const server = await startServer([]);
    expect(() => new OpenAiDriver({ timeouts: { idleTimeoutMs: -5 } })).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    const error = await rejection(
      new OpenAiDriver().generate(llmRequest(server.baseUrl), {
        timeouts: { idleTimeoutMs: 'soon' } as never,
      }),
    );
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toContain('idleTimeoutMs');
    const unknown = await rejection(
      new OpenAiDriver().generate(llmRequest(server.baseUrl), {
        timeouts: { readTimeoutMs: 5 } as never,
      }),
    );
    expect(unknown.code).toBe('INVALID_INPUT');
    expect(server.requests).toHaveLength(0);
  });

  it('switches a timeout off with false', async () => {
    const server = await startServer([slowSse([chunk({ content: 'a' }), ANSWER], 120)]);
    const response = await new OpenAiDriver({
      timeouts: { idleTimeoutMs: 50 },
    }).generate(llmRequest(server.baseUrl), { timeouts: { idleTimeoutMs: false } });
    expect(response.text).toBe('aHi!');
  });

  it('still rejects with ABORTED when the caller aborts during a stall', async () => {
    const server = await startServer([stall('first-byte')]);
    const error = await rejection(
      new OpenAiDriver().generate(llmRequest(server.baseUrl), { signal: AbortSignal.timeout(80) }),
    );
    expect(error.code).toBe('ABORTED');
  });
});

describe('openai driver: a permanent 429 is not retried like a rate limit', () => {
  for (const code of ['insufficient_quota', 'billing_hard_limit_reached']) {
    it(`fails at once, non-retryable, on 429 ${code}`, async () => {
      const server = await startServer([
        json(
          429,
          {
            error: {
              message:
                'You exceeded your current quota, please check your plan and billing details.',
              type: code === 'insufficient_quota' ? 'insufficient_quota' : 'invalid_request_error',
              param: null,
              code,
            },
          },
          { 'retry-after': '0' },
        ),
        sse([ANSWER]),
      ]);
      const retries: RetryInfo[] = [];
      const error = await rejection(
        new OpenAiDriver({ onRetry: (info) => retries.push(info) }).generate(
          llmRequest(server.baseUrl),
        ),
      );
      expect(server.requests).toHaveLength(1);
      expect(retries).toEqual([]);
      expect(error.code).toBe('LLM_ERROR');
      expect(error.retryable).toBe(false);
      expect(error.details).toMatchObject({
        status: 429,
        providerErrorCode: code,
        kind: 'insufficient_quota',
        retryable: false,
      });
    });
  }

  it('still retries an ordinary 429 rate limit', async () => {
    const server = await startServer([
      json(
        429,
        { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
        { 'retry-after': '0' },
      ),
      sse([ANSWER]),
    ]);
    const response = await new OpenAiDriver().generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('Hi!');
    expect(server.requests).toHaveLength(2);
  });
});
