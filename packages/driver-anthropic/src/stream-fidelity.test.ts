import { randomUUID } from 'node:crypto';
import type { LlmRequest, LlmStreamEvent } from '@everruns-ts/core';
import {
  ADD_TOOL,
  byteByByteFetch,
  closeFakeServers,
  json,
  newMessage,
  type Reply,
  rejection,
  splitAtRandomBytes,
  sse,
  stall,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { AnthropicDriver, type RetryInfo } from './index.js';

// Messages API streams shaped as Anthropic sends them (documented and recorded), including the
// ways a stream can go wrong: an error event after HTTP 200, events out of order, a cut.

afterEach(closeFakeServers);

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: {
      model: 'claude-sonnet-4-5',
      providerType: 'anthropic',
      apiKey: 'test-key-123456',
      baseUrl,
    },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const event = (type: string, data: Record<string, unknown> = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

const messageStart = (id = 'msg_01') =>
  event('message_start', {
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5-20250929',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 30,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 1,
      },
    },
  });
const blockStart = (index: number, block: Record<string, unknown>) =>
  event('content_block_start', { index, content_block: block });
const delta = (index: number, value: Record<string, unknown>) =>
  event('content_block_delta', { index, delta: value });
const blockStop = (index: number) => event('content_block_stop', { index });
const messageEnd = (stopReason: string, outputTokens: number) =>
  event('message_delta', {
    delta: { stop_reason: stopReason, stop_sequence: null },
    usage: { output_tokens: outputTokens },
  }) + event('message_stop');
const overloaded = event('error', {
  error: { type: 'overloaded_error', message: 'Overloaded' },
});

const THINKING_TOOL_STREAM =
  messageStart() +
  event('ping') +
  blockStart(0, { type: 'thinking', thinking: '', signature: '' }) +
  delta(0, { type: 'thinking_delta', thinking: 'I should use add, ü.' }) +
  delta(0, { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3h' }) +
  blockStop(0) +
  blockStart(1, { type: 'text', text: '' }) +
  delta(1, { type: 'text_delta', text: 'Adding — ' }) +
  delta(1, { type: 'text_delta', text: 'now.' }) +
  blockStop(1) +
  blockStart(2, { type: 'tool_use', id: 'toolu_01', name: 'add', input: {} }) +
  delta(2, { type: 'input_json_delta', partial_json: '' }) +
  delta(2, { type: 'input_json_delta', partial_json: '{"a": 2, ' }) +
  delta(2, { type: 'input_json_delta', partial_json: '"b": 2}' }) +
  blockStop(2) +
  messageEnd('tool_use', 80);

describe('anthropic driver: recorded-shape streams', () => {
  it('reads thinking, text and a tool call the same whole, in random byte pieces and byte by byte', async () => {
    const server = await startFakeServer([
      sse([THINKING_TOOL_STREAM]),
      sse(splitAtRandomBytes(THINKING_TOOL_STREAM, 60, 7)),
      sse([THINKING_TOOL_STREAM]),
    ]);
    const responses = [
      await new AnthropicDriver().generate(llmRequest(server.baseUrl)),
      await new AnthropicDriver().generate(llmRequest(server.baseUrl)),
      await new AnthropicDriver({ fetch: byteByByteFetch }).generate(llmRequest(server.baseUrl)),
    ];
    for (const response of responses) {
      expect(response.text).toBe('Adding — now.');
      expect(response.toolCalls).toEqual([
        { id: 'toolu_01', name: 'add', arguments: { a: 2, b: 2 } },
      ]);
      expect(response.stopReason).toBe('tool_calls');
      expect(response.usage).toEqual({ inputTokens: 30, outputTokens: 80 });
    }
  });

  it('makes a refusal visible: its text with stop reason content_filter', async () => {
    const server = await startFakeServer([
      sse([
        messageStart() +
          blockStart(0, { type: 'text', text: '' }) +
          delta(0, { type: 'text_delta', text: 'I can’t help with that.' }) +
          blockStop(0) +
          messageEnd('refusal', 8),
      ]),
    ]);
    const response = await new AnthropicDriver().generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('I can’t help with that.');
    expect(response.stopReason).toBe('content_filter');
  });
});

describe('anthropic driver: a stream without message_stop is a retryable typed error', () => {
  const cut =
    messageStart() +
    blockStart(0, { type: 'text', text: '' }) +
    delta(0, { type: 'text_delta', text: 'The answer' });
  const cases: Array<[string, Reply]> = [
    ['the connection closing cleanly', sse([cut])],
    ['the connection being cut', sse([cut], 'cut')],
    [
      'message_delta with a stop reason but no message_stop',
      sse([
        `${cut}${blockStop(0)}${event('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } })}`,
      ]),
    ],
  ];
  for (const [name, reply] of cases) {
    it(`fails on ${name}, with no finish event and no retry after output`, async () => {
      const server = await startFakeServer([reply]);
      const events: LlmStreamEvent[] = [];
      const error = await rejection(
        (async () => {
          for await (const each of new AnthropicDriver().stream(llmRequest(server.baseUrl))) {
            events.push(each);
          }
        })(),
      );
      expect(error.code).toBe('LLM_ERROR');
      expect(error.retryable).toBe(true);
      expect(events.some((each) => each.type === 'finish')).toBe(false);
      expect(server.requests).toHaveLength(1);
    });
  }
});

describe('anthropic driver: protocol violations are typed errors', () => {
  const text =
    blockStart(0, { type: 'text', text: '' }) + delta(0, { type: 'text_delta', text: 'Hi' });
  const cases: Array<[string, string, string]> = [
    [
      'a second message_start replacing an open tool call',
      messageStart() +
        blockStart(0, { type: 'tool_use', id: 'toolu_01', name: 'add', input: {} }) +
        delta(0, { type: 'input_json_delta', partial_json: '{"a":' }) +
        messageStart('msg_02') +
        text +
        messageEnd('end_turn', 3),
      'second message_start',
    ],
    [
      'a content_block_delta for an index that never started',
      messageStart() +
        text +
        delta(3, { type: 'text_delta', text: '!' }) +
        messageEnd('end_turn', 3),
      'never started',
    ],
    [
      'a delta after its block stopped',
      messageStart() +
        text +
        blockStop(0) +
        delta(0, { type: 'text_delta', text: '!' }) +
        messageEnd('end_turn', 3),
      'has stopped',
    ],
    [
      'a block started twice',
      messageStart() + text + blockStart(0, { type: 'text', text: '' }) + messageEnd('end_turn', 3),
      'started twice',
    ],
    [
      'a tool_use block without an id',
      messageStart() +
        blockStart(0, { type: 'tool_use', name: 'add', input: {} }) +
        messageEnd('tool_use', 3),
      'no id or name',
    ],
    [
      'an input_json_delta for a text block',
      messageStart() +
        text +
        delta(0, { type: 'input_json_delta', partial_json: '{}' }) +
        messageEnd('end_turn', 3),
      'input_json_delta',
    ],
    ['content before message_start', text + messageEnd('end_turn', 3), 'before message_start'],
  ];
  for (const [name, body, words] of cases) {
    it(`fails on ${name}`, async () => {
      const server = await startFakeServer([sse([body])]);
      const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));
      expect(error.code).toBe('LLM_ERROR');
      expect(error.retryable).toBe(false);
      expect(error.details.kind).toBe('protocol_violation');
      expect(error.message).toContain(words);
      expect(server.requests).toHaveLength(1);
    });
  }

  it('fails on a non-streamed tool_use block without a name', async () => {
    const server = await startFakeServer([
      json(200, {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'toolu_1', input: {} }],
        stop_reason: 'tool_use',
        usage: { input_tokens: 1, output_tokens: 1 },
      }),
    ]);
    const error = await rejection(
      new AnthropicDriver({ streaming: false }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.details.kind).toBe('protocol_violation');
  });
});

describe('anthropic driver: error events after HTTP 200', () => {
  const answer =
    messageStart() +
    blockStart(0, { type: 'text', text: '' }) +
    delta(0, { type: 'text_delta', text: '4' }) +
    blockStop(0) +
    messageEnd('end_turn', 2);

  it('retries overloaded_error as the first event like a 529, with the same backoff', async () => {
    const server = await startFakeServer([sse([overloaded]), sse([answer])]);
    const retries: RetryInfo[] = [];
    const response = await new AnthropicDriver({
      retryBaseDelayMs: 1,
      onRetry: (info) => retries.push(info),
    }).generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.body).toEqual(server.requests[0]?.body);
    expect(retries).toEqual([
      {
        attempt: 1,
        delayMs: expect.any(Number),
        status: 200,
        message: expect.stringContaining('Overloaded'),
      },
    ]);
  });

  it('retries an error that follows message_start and pings, before any output', async () => {
    const server = await startFakeServer([
      sse([messageStart() + event('ping') + overloaded]),
      sse([answer]),
    ]);
    const response = await new AnthropicDriver({ retryBaseDelayMs: 1 }).generate(
      llmRequest(server.baseUrl),
    );
    expect(response.text).toBe('4');
    expect(response.responseId).toBe('msg_01');
  });

  it('gives up after maxRetries overloaded streams with a retryable typed error', async () => {
    const server = await startFakeServer([sse([overloaded]), sse([overloaded]), sse([overloaded])]);
    const error = await rejection(
      new AnthropicDriver({ retryBaseDelayMs: 1 }).generate(llmRequest(server.baseUrl)),
    );
    expect(server.requests).toHaveLength(3);
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({
      kind: 'stream_error',
      providerErrorType: 'overloaded_error',
    });
  });

  it('does not retry silently once output reached the stream consumer', async () => {
    const server = await startFakeServer([
      sse([
        messageStart() +
          blockStart(0, { type: 'text', text: '' }) +
          delta(0, { type: 'text_delta', text: 'Par' }) +
          overloaded,
      ]),
      sse([answer]),
    ]);
    const events: LlmStreamEvent[] = [];
    const error = await rejection(
      (async () => {
        for await (const each of new AnthropicDriver({ retryBaseDelayMs: 1 }).stream(
          llmRequest(server.baseUrl),
        )) {
          events.push(each);
        }
      })(),
    );
    expect(error.retryable).toBe(true);
    expect(events).toEqual([{ type: 'text_delta', text: 'Par' }]);
    expect(server.requests).toHaveLength(1);
  });

  it('does not retry a non-retryable error event (invalid_request_error)', async () => {
    const server = await startFakeServer([
      sse([event('error', { error: { type: 'invalid_request_error', message: 'Bad input' } })]),
    ]);
    const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));
    expect(server.requests).toHaveLength(1);
    expect(error.retryable).toBe(false);
  });
});

describe('anthropic driver timeouts', () => {
  it('times out at each stalled point with a typed retryable error', async () => {
    const server = await startFakeServer([
      stall('headers'),
      stall('first-byte'),
      stall('idle', [
        messageStart() +
          blockStart(0, { type: 'text', text: '' }) +
          delta(0, { type: 'text_delta', text: 'x' }),
      ]),
    ]);
    const driver = new AnthropicDriver({
      maxRetries: 0,
      timeouts: { connectTimeoutMs: 80, firstByteTimeoutMs: 80, idleTimeoutMs: 80 },
    });
    const phases: unknown[] = [];
    for (let each = 0; each < 3; each += 1) {
      const error = await rejection(driver.generate(llmRequest(server.baseUrl)));
      expect(error.retryable).toBe(true);
      expect(error.details.kind).toBe('timeout');
      phases.push(error.details.timeout);
    }
    expect(phases).toEqual(['connect', 'firstByte', 'idle']);
  });

  it('refuses a 429 that says the account is out of quota without retrying', async () => {
    const server = await startFakeServer([
      json(429, {
        type: 'error',
        error: { type: 'billing_hard_limit_reached', message: 'Billing limit reached' },
      }),
    ]);
    const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));
    expect(server.requests).toHaveLength(1);
    expect(error.retryable).toBe(false);
    expect(error.details.kind).toBe('insufficient_quota');
  });
});
