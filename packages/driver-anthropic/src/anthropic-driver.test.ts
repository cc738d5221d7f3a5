import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { DriverRegistry, type LlmRequest, type LlmStreamEvent } from '@everruns-ts/core';
import {
  ADD_TOOL,
  byteByByteFetch,
  closeFakeServers,
  collect,
  json,
  MULTIPLY_TOOL,
  newMessage,
  type Reply,
  rejection,
  splitBytes,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  SessionBuilder,
} from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ANTHROPIC_DEFAULT_BASE_URL,
  ANTHROPIC_DEFAULT_MAX_TOKENS,
  AnthropicDriver,
  type RetryInfo,
} from './index.js';

// ---------------------------------------------------------------------------------------------
// A fake Messages API server on 127.0.0.1 that records every request and replies from a
// script, one reply per request (`@everruns-ts/driver-test-support`).

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies);

// ---------------------------------------------------------------------------------------------
// Fixtures: shapes as the Anthropic Messages API sends them.

const API_KEY = `sk-ant-api03-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'claude-sonnet-4-5';
const MESSAGE_ID = 'msg_01XFDUDYJgAACzvnptvVoYEL';
const ANSWERING_MODEL = 'claude-sonnet-4-5-20250929';

function llmRequest(baseUrl: string, overrides: Partial<LlmRequest> = {}): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'anthropic', apiKey: API_KEY, baseUrl },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...overrides,
  };
}

/** One server-sent event as the API writes it: a named event whose data repeats the type. */
function event(type: string, data: Record<string, unknown> = {}): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

function messageStart(inputTokens = 472): string {
  return event('message_start', {
    message: {
      id: MESSAGE_ID,
      type: 'message',
      role: 'assistant',
      model: ANSWERING_MODEL,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: inputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 2,
        service_tier: 'standard',
      },
    },
  });
}

function textBlock(index: number, pieces: string[]): string {
  return (
    event('content_block_start', { index, content_block: { type: 'text', text: '' } }) +
    pieces
      .map((text) => event('content_block_delta', { index, delta: { type: 'text_delta', text } }))
      .join('') +
    event('content_block_stop', { index })
  );
}

function toolUseBlock(index: number, id: string, name: string, pieces: string[]): string {
  return (
    event('content_block_start', {
      index,
      content_block: { type: 'tool_use', id, name, input: {} },
    }) +
    ['', ...pieces]
      .map((partial_json) =>
        event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } }),
      )
      .join('') +
    event('content_block_stop', { index })
  );
}

function messageEnd(stopReason: string, outputTokens: number): string {
  return (
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: outputTokens },
    }) + event('message_stop')
  );
}

function textStream(pieces: string[]): string {
  return messageStart(21) + event('ping') + textBlock(0, pieces) + messageEnd('end_turn', 12);
}

function toolUseStream(): string {
  return (
    messageStart() +
    textBlock(0, ['I will add ', 'them.']) +
    toolUseBlock(1, 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', 'add', ['{"a": 2', ', "b": 2}']) +
    messageEnd('tool_use', 89)
  );
}

// ---------------------------------------------------------------------------------------------

describe('anthropic driver: requests', () => {
  it('sends system, tools and the history as alternating content blocks', async () => {
    const server = await startServer([
      json(200, {
        id: MESSAGE_ID,
        type: 'message',
        role: 'assistant',
        model: ANSWERING_MODEL,
        content: [
          { type: 'text', text: 'Let me multiply too.' },
          {
            type: 'tool_use',
            id: 'toolu_01A09q90qw90lq917835lq9',
            name: 'multiply',
            input: { a: 4, b: 3 },
          },
        ],
        stop_reason: 'tool_use',
        stop_sequence: null,
        usage: {
          input_tokens: 380,
          cache_creation_input_tokens: 20,
          cache_read_input_tokens: 100,
          output_tokens: 61,
          service_tier: 'standard',
        },
      }),
    ]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const request = llmRequest(server.baseUrl, {
      sessionId,
      tools: [ADD_TOOL, MULTIPLY_TOOL],
      messages: [
        newMessage(sessionId, 1, 'user', [
          { type: 'text', text: 'What is 2 + 2?' },
          { type: 'image', mediaType: 'image/png', data: 'iVBORw0KGgo=' },
        ]),
        newMessage(sessionId, 2, 'agent', [
          { type: 'text', text: 'Let me compute.' },
          { type: 'tool_call', id: 'toolu_1', name: 'add', arguments: { a: 2, b: 2 } },
          { type: 'tool_call', id: 'toolu_2', name: 'add', arguments: '{"a": 2,' },
        ]),
        newMessage(sessionId, 3, 'tool_result', [
          { type: 'tool_result', toolCallId: 'toolu_1', content: '4', isError: false },
          {
            type: 'tool_result',
            toolCallId: 'toolu_2',
            content: 'Invalid arguments: not JSON',
            isError: true,
          },
        ]),
        // A user message that arrived while the tools ran: merged into the tool results' turn.
        newMessage(sessionId, 4, 'user', [{ type: 'text', text: 'Then multiply it by 3.' }]),
        newMessage(sessionId, 5, 'agent', [{ type: 'text', text: '' }]),
      ],
    });
    const driver = new AnthropicDriver({ streaming: false });

    const response = await driver.generate(request);

    expect(response).toEqual({
      text: 'Let me multiply too.',
      toolCalls: [
        { id: 'toolu_01A09q90qw90lq917835lq9', name: 'multiply', arguments: { a: 4, b: 3 } },
      ],
      usage: {
        inputTokens: 500,
        outputTokens: 61,
        cachedInputTokens: 100,
        cacheWriteInputTokens: 20,
      },
      responseId: MESSAGE_ID,
      stopReason: 'tool_calls',
      model: ANSWERING_MODEL,
    });
    expect(server.requests).toHaveLength(1);
    const [sent] = server.requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/v1/messages');
    expect(sent?.headers['x-api-key']).toBe(API_KEY);
    expect(sent?.headers['anthropic-version']).toBe('2023-06-01');
    expect(sent?.headers['content-type']).toBe('application/json');
    expect(sent?.headers.authorization).toBeUndefined();
    // Prompt caching is on by default: breakpoints on the system prompt, the last tool and the
    // last block of the last message.
    expect(sent?.body).toEqual({
      model: MODEL,
      max_tokens: ANTHROPIC_DEFAULT_MAX_TOKENS,
      system: [
        { type: 'text', text: 'You are a calculator.', cache_control: { type: 'ephemeral' } },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is 2 + 2?' },
            {
              type: 'image',
              source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' },
            },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Let me compute.' },
            { type: 'tool_use', id: 'toolu_1', name: 'add', input: { a: 2, b: 2 } },
            { type: 'tool_use', id: 'toolu_2', name: 'add', input: {} },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: '4' },
            {
              type: 'tool_result',
              tool_use_id: 'toolu_2',
              content: 'Invalid arguments: not JSON',
              is_error: true,
            },
            {
              type: 'text',
              text: 'Then multiply it by 3.',
              cache_control: { type: 'ephemeral' },
            },
          ],
        },
      ],
      tools: [
        { name: 'add', description: 'Adds two numbers', input_schema: ADD_TOOL.inputSchema },
        {
          name: 'multiply',
          description: 'Multiplies',
          input_schema: MULTIPLY_TOOL.inputSchema,
          cache_control: { type: 'ephemeral' },
        },
      ],
    });
  });

  it('sends a streaming request and reads a streamed text answer', async () => {
    const server = await startServer([sse([textStream(['2 + 2', ' = ', '4.'])])]);
    const driver = new AnthropicDriver();

    const events = await collect(
      driver.stream(llmRequest(server.baseUrl, { tools: [], maxOutputTokens: 512 })),
    );

    expect(events).toEqual([
      { type: 'text_delta', text: '2 + 2' },
      { type: 'text_delta', text: ' = ' },
      { type: 'text_delta', text: '4.' },
      {
        type: 'finish',
        response: {
          text: '2 + 2 = 4.',
          toolCalls: [],
          usage: { inputTokens: 21, outputTokens: 12 },
          responseId: MESSAGE_ID,
          stopReason: 'end_turn',
          model: ANSWERING_MODEL,
        },
      },
    ]);
    const [sent] = server.requests;
    expect(sent?.headers.accept).toBe('text/event-stream');
    expect(sent?.body).toEqual({
      model: MODEL,
      max_tokens: 512,
      system: [
        { type: 'text', text: 'You are a calculator.', cache_control: { type: 'ephemeral' } },
      ],
      messages: [
        {
          role: 'user',
          content: [{ type: 'text', text: 'What is 2 + 2?', cache_control: { type: 'ephemeral' } }],
        },
      ],
      stream: true,
    });
  });

  it('takes max_tokens, version and extra headers from the options', async () => {
    const server = await startServer([sse([textStream(['ok'])])]);
    const driver = new AnthropicDriver({
      maxTokens: 1024,
      anthropicVersion: '2023-01-01',
      headers: { 'anthropic-beta': 'fine-grained-tool-streaming-2025-05-14' },
    });

    await driver.generate(llmRequest(server.baseUrl, { systemPrompt: '  ' }));

    const [sent] = server.requests;
    expect(sent?.headers['anthropic-version']).toBe('2023-01-01');
    expect(sent?.headers['anthropic-beta']).toBe('fine-grained-tool-streaming-2025-05-14');
    expect(sent?.body).toMatchObject({ max_tokens: 1024 });
    expect(sent?.body).not.toHaveProperty('system');
  });
});

describe('anthropic driver: credentials', () => {
  it('reads the key and base URL from ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL when the model has none', async () => {
    const server = await startServer([sse([textStream(['hi'])])]);
    const saved = { key: process.env.ANTHROPIC_API_KEY, url: process.env.ANTHROPIC_BASE_URL };
    const environmentKey = `sk-ant-env-${randomUUID().replaceAll('-', '')}`;
    process.env.ANTHROPIC_API_KEY = environmentKey;
    process.env.ANTHROPIC_BASE_URL = server.baseUrl;
    try {
      const request = llmRequest(server.baseUrl);
      request.model = { model: MODEL, providerType: 'anthropic' };
      const response = await new AnthropicDriver().generate(request);
      expect(response.text).toBe('hi');
      expect(server.requests[0]?.headers['x-api-key']).toBe(environmentKey);
    } finally {
      if (saved.key === undefined) delete process.env.ANTHROPIC_API_KEY;
      else process.env.ANTHROPIC_API_KEY = saved.key;
      if (saved.url === undefined) delete process.env.ANTHROPIC_BASE_URL;
      else process.env.ANTHROPIC_BASE_URL = saved.url;
    }
  });

  it('refuses to call api.anthropic.com without a key', async () => {
    const saved = { key: process.env.ANTHROPIC_API_KEY, url: process.env.ANTHROPIC_BASE_URL };
    delete process.env.ANTHROPIC_API_KEY;
    delete process.env.ANTHROPIC_BASE_URL;
    try {
      const request = llmRequest(ANTHROPIC_DEFAULT_BASE_URL);
      request.model = { model: MODEL, providerType: 'anthropic' };
      const error = await rejection(new AnthropicDriver().generate(request));
      expect(error.code).toBe('CONFIGURATION');
    } finally {
      if (saved.key !== undefined) process.env.ANTHROPIC_API_KEY = saved.key;
      if (saved.url !== undefined) process.env.ANTHROPIC_BASE_URL = saved.url;
    }
  });

  it('registers under the anthropic provider type', () => {
    const registry = new DriverRegistry().register(new AnthropicDriver());
    expect(registry.get('anthropic').providerType).toBe('anthropic');
  });
});

describe('anthropic driver: streaming', () => {
  it('assembles an answer split inside a UTF-8 character and inside the JSON of tool input', async () => {
    const text = 'Ça fait 4 🙂, größer als 3.';
    const body =
      messageStart() +
      textBlock(0, [text]) +
      toolUseBlock(1, 'toolu_split', 'add', ['{"a": 2, "b": 2, "note": "naïve ✓"}']) +
      messageEnd('tool_use', 40);
    const bytes = Buffer.from(body, 'utf8');
    const emoji = bytes.indexOf(Buffer.from('🙂', 'utf8'));
    const cedilla = bytes.indexOf(Buffer.from('Ç', 'utf8'));
    const checkMark = bytes.indexOf(Buffer.from('✓', 'utf8'));
    const insideArgumentKey = bytes.indexOf(Buffer.from('\\"note', 'utf8')) + 3;
    expect(Math.min(emoji, cedilla, checkMark, insideArgumentKey - 3)).toBeGreaterThan(0);
    const offsets = [cedilla + 1, emoji + 1, emoji + 3, insideArgumentKey, checkMark + 2];
    const server = await startServer([sse(splitBytes(body, offsets))]);

    const events = await collect(new AnthropicDriver().stream(llmRequest(server.baseUrl)));
    const finish = events.at(-1);

    expect(finish?.type).toBe('finish');
    if (finish?.type !== 'finish') return;
    expect(finish.response.text).toBe(text);
    expect(finish.response.toolCalls).toEqual([
      { id: 'toolu_split', name: 'add', arguments: { a: 2, b: 2, note: 'naïve ✓' } },
    ]);
    expect(finish.response.stopReason).toBe('tool_calls');
    expect(finish.response.usage).toEqual({ inputTokens: 472, outputTokens: 40 });
  });

  it('gives the same answer when every byte of the stream arrives on its own', async () => {
    const body = toolUseStream();
    const server = await startServer([sse([body]), sse([body])]);
    const request = llmRequest(server.baseUrl);

    const whole = await new AnthropicDriver().generate(request);
    const byteByByte = await new AnthropicDriver({ fetch: byteByByteFetch }).generate(request);

    expect(byteByByte).toEqual(whole);
    expect(whole).toEqual({
      text: 'I will add them.',
      toolCalls: [{ id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'add', arguments: { a: 2, b: 2 } }],
      usage: { inputTokens: 472, outputTokens: 89 },
      responseId: MESSAGE_ID,
      stopReason: 'tool_calls',
      model: ANSWERING_MODEL,
    });
  });

  it('numbers parallel tool calls in the order their blocks start', async () => {
    const body =
      messageStart() +
      textBlock(0, ['Both at once.']) +
      toolUseBlock(1, 'toolu_add', 'add', ['{"a":1,', '"b":2}']) +
      toolUseBlock(2, 'toolu_multiply', 'multiply', ['{"a":3,', '"b":4}']) +
      messageEnd('tool_use', 120);
    const server = await startServer([sse([body])]);

    const events = await collect(
      new AnthropicDriver().stream(
        llmRequest(server.baseUrl, { tools: [ADD_TOOL, MULTIPLY_TOOL] }),
      ),
    );

    expect(events.filter((entry) => entry.type === 'tool_call_delta')).toEqual([
      { type: 'tool_call_delta', index: 0, id: 'toolu_add', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":1,' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '"b":2}' },
      {
        type: 'tool_call_delta',
        index: 1,
        id: 'toolu_multiply',
        name: 'multiply',
        argumentsDelta: '',
      },
      { type: 'tool_call_delta', index: 1, argumentsDelta: '' },
      { type: 'tool_call_delta', index: 1, argumentsDelta: '{"a":3,' },
      { type: 'tool_call_delta', index: 1, argumentsDelta: '"b":4}' },
    ]);
    const finish = events.at(-1);
    expect(finish?.type === 'finish' && finish.response.toolCalls).toEqual([
      { id: 'toolu_add', name: 'add', arguments: { a: 1, b: 2 } },
      { id: 'toolu_multiply', name: 'multiply', arguments: { a: 3, b: 4 } },
    ]);
  });

  it('passes unparseable tool input through as the raw string and empty input as {}', async () => {
    const body =
      messageStart() +
      toolUseBlock(0, 'toolu_bad', 'add', ['{"a": 2, "b":']) +
      toolUseBlock(1, 'toolu_empty', 'add', []) +
      messageEnd('tool_use', 30);
    const server = await startServer([sse([body])]);

    const response = await new AnthropicDriver().generate(llmRequest(server.baseUrl));

    expect(response.toolCalls).toEqual([
      { id: 'toolu_bad', name: 'add', arguments: '{"a": 2, "b":' },
      { id: 'toolu_empty', name: 'add', arguments: {} },
    ]);
  });

  it('maps stop reasons', async () => {
    const server = await startServer([
      sse([messageStart() + textBlock(0, ['cut sh']) + messageEnd('max_tokens', 5)]),
      sse([messageStart() + messageEnd('refusal', 1)]),
      sse([messageStart() + textBlock(0, ['Done']) + messageEnd('stop_sequence', 1)]),
    ]);
    const driver = new AnthropicDriver();
    const request = llmRequest(server.baseUrl);

    expect((await driver.generate(request)).stopReason).toBe('max_tokens');
    expect((await driver.generate(request)).stopReason).toBe('content_filter');
    expect((await driver.generate(request)).stopReason).toBe('end_turn');
  });

  it('fails with a retryable typed error on an overloaded_error event mid-stream', async () => {
    const server = await startServer([
      sse([
        messageStart() +
          event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
          event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hel' } }) +
          event('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }),
      ]),
    ]);

    const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));

    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('Overloaded');
    expect(error.details).toMatchObject({ providerErrorType: 'overloaded_error' });
  });
});

describe('anthropic driver: failures and retries', () => {
  const rateLimited = (retryAfter: string) =>
    json(
      429,
      {
        type: 'error',
        error: {
          type: 'rate_limit_error',
          message: 'This request would exceed the rate limit for your organization.',
        },
      },
      { 'retry-after': retryAfter },
    );

  it('retries a 429 after the wait retry-after asks for, then succeeds', async () => {
    const server = await startServer([rateLimited('0'), sse([textStream(['4'])])]);
    const retries: RetryInfo[] = [];
    // The backoff base is an hour: the test only finishes because retry-after (0 s) wins.
    const driver = new AnthropicDriver({
      retryBaseDelayMs: 3_600_000,
      maxRetryDelayMs: 3_600_000,
      onRetry: (info) => retries.push(info),
    });

    const response = await driver.generate(llmRequest(server.baseUrl));

    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.body).toEqual(server.requests[0]?.body);
    expect(retries).toEqual([
      { attempt: 1, delayMs: 0, status: 429, message: expect.stringContaining('rate limit') },
    ]);
  });

  it('caps a long retry-after, in seconds or as an HTTP date', async () => {
    const inAnHour = new Date(Date.now() + 3_600_000).toUTCString();
    const server = await startServer([
      rateLimited('120'),
      rateLimited(inAnHour),
      sse([textStream(['4'])]),
    ]);
    const retries: RetryInfo[] = [];
    const driver = new AnthropicDriver({
      maxRetryDelayMs: 3,
      onRetry: (info) => retries.push(info),
    });

    await driver.generate(llmRequest(server.baseUrl));

    expect(retries.map((retry) => [retry.attempt, retry.delayMs])).toEqual([
      [1, 3],
      [2, 3],
    ]);
  });

  it('gives up after a 500 three times with a retryable typed error', async () => {
    const serverError = json(500, {
      type: 'error',
      error: { type: 'api_error', message: 'Internal server error' },
    });
    const server = await startServer([serverError, serverError, serverError, serverError]);
    const driver = new AnthropicDriver({ retryBaseDelayMs: 1 });

    const error = await rejection(driver.generate(llmRequest(server.baseUrl)));

    expect(server.requests).toHaveLength(3);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.details).toEqual({
      provider: 'anthropic',
      status: 500,
      providerErrorType: 'api_error',
      providerErrorMessage: 'Internal server error',
      retryable: true,
      attempts: 3,
    });
  });

  it('retries a 529 overloaded answer', async () => {
    const server = await startServer([
      json(529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }),
      sse([textStream(['4'])]),
    ]);

    const response = await new AnthropicDriver({ retryBaseDelayMs: 1 }).generate(
      llmRequest(server.baseUrl),
    );

    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
  });

  it('surfaces the message of a 400 without retrying and with the key redacted', async () => {
    const server = await startServer([
      json(400, {
        type: 'error',
        error: {
          type: 'invalid_request_error',
          message: `messages.1.content.0: text content blocks must be non-empty (key ${API_KEY})`,
        },
      }),
    ]);

    const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));

    expect(server.requests).toHaveLength(1);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('messages.1.content.0: text content blocks must be non-empty');
    expect(error.details).toMatchObject({
      status: 400,
      providerErrorType: 'invalid_request_error',
      retryable: false,
    });
    const everything = JSON.stringify({ message: error.message, details: error.details });
    expect(everything).not.toContain(API_KEY);
    expect(everything).toContain('[REDACTED]');
  });

  it('fails with a retryable typed error when the stream is cut in the middle', async () => {
    const body = toolUseStream();
    // Cut inside the JSON of the tool input, which arrives escaped: `{\"a\": 2`.
    const cutAt = body.indexOf('\\"a\\": 2') + 3;
    expect(cutAt).toBeGreaterThan(3);
    const server = await startServer([
      sse([body.slice(0, cutAt)], 'cut'),
      sse([body.slice(0, cutAt)], 'hold'),
    ]);
    const driver = new AnthropicDriver();

    const error = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(server.requests).toHaveLength(1);

    // Through stream(): the deltas before the cut arrive, the finish event never does.
    const events: LlmStreamEvent[] = [];
    const streamError = await rejection(
      (async () => {
        for await (const entry of driver.stream(llmRequest(server.baseUrl))) {
          events.push(entry);
          // The connection drops once the first delta has been read.
          server.responses[1]?.socket?.destroy();
        }
      })(),
    );
    expect(streamError.code).toBe('LLM_ERROR');
    expect(streamError.retryable).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    expect(events.some((entry) => entry.type === 'finish')).toBe(false);
  });

  it('fails when the stream ends cleanly before message_stop', async () => {
    const server = await startServer([sse([messageStart() + textBlock(0, ['The answer is'])])]);

    const error = await rejection(new AnthropicDriver().generate(llmRequest(server.baseUrl)));

    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('ended before the answer was complete');
  });

  it('stops reading and rejects with ABORTED when aborted mid-stream', async () => {
    const server = await startServer([
      sse(
        [messageStart() + textBlock(0, ['Thinking']).split('event: content_block_stop')[0]!],
        'hold',
      ),
    ]);
    const controller = new AbortController();
    const events: LlmStreamEvent[] = [];

    const error = await rejection(
      (async () => {
        const stream = new AnthropicDriver().stream(llmRequest(server.baseUrl), {
          signal: controller.signal,
        });
        for await (const entry of stream) {
          events.push(entry);
          controller.abort(new Error('user pressed stop'));
        }
      })(),
    );

    expect(error.code).toBe('ABORTED');
    expect(events).toEqual([{ type: 'text_delta', text: 'Thinking' }]);
    await server.closedConnections[0];
  });

  it('rejects with ABORTED while waiting between retries', async () => {
    const server = await startServer([rateLimited('3600')]);
    const controller = new AbortController();
    const driver = new AnthropicDriver({
      maxRetryDelayMs: 3_600_000,
      onRetry: () => controller.abort(),
    });

    const error = await rejection(
      driver.generate(llmRequest(server.baseUrl), { signal: controller.signal }),
    );

    expect(error.code).toBe('ABORTED');
    expect(server.requests).toHaveLength(1);
  });
});

describe('anthropic driver: in the runtime', () => {
  it('runs the math session end to end: a tool call to add, then the answer 4', async () => {
    const server = await startServer([sse([toolUseStream()]), sse([textStream(['4'])])]);
    const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
    const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
    const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new AnthropicDriver())
      .defaultModel({
        model: MODEL,
        providerType: 'anthropic',
        apiKey: API_KEY,
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .agent(agent.build())
      .session(session.build())
      .build();

    const result = await runtime.runTextTurn(session.sessionId(), 'What is 2 + 2?');

    expect(result).toMatchObject({
      success: true,
      response: '4',
      toolCallsCount: 1,
      iterations: 2,
    });
    expect(server.requests).toHaveLength(2);
    const first = server.requests[0]?.body as Record<string, unknown> & { tools: unknown[] };
    expect(first.system).toEqual([
      {
        type: 'text',
        text: expect.stringContaining('You are a math assistant.'),
        cache_control: { type: 'ephemeral' },
      },
    ]);
    expect(first.messages).toEqual([
      {
        role: 'user',
        content: [{ type: 'text', text: 'What is 2 + 2?', cache_control: { type: 'ephemeral' } }],
      },
    ]);
    expect(first.tools).toContainEqual(
      expect.objectContaining({ name: 'add', input_schema: expect.any(Object) }),
    );
    expect(server.requests[1]?.body).toMatchObject({
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'I will add them.' },
            {
              type: 'tool_use',
              id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6',
              name: 'add',
              input: { a: 2, b: 2 },
            },
          ],
        },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6',
              content: expect.stringContaining('"result":4'),
            },
          ],
        },
      ],
    });
    const agentMessages = (await runtime.messages(session.sessionId())).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages.map((message) => message.metadata?.usage)).toEqual([
      { inputTokens: 472, outputTokens: 89 },
      { inputTokens: 21, outputTokens: 12 },
    ]);
    await runtime.close();
  });

  it('fails the turn with llm_error and records no agent message when the stream is cut', async () => {
    const body = toolUseStream();
    const server = await startServer([sse([body.slice(0, body.length / 2)], 'cut')]);
    const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new AnthropicDriver())
      .defaultModel({
        model: MODEL,
        providerType: 'anthropic',
        apiKey: API_KEY,
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .session(session.build())
      .build();

    const result = await runtime.runTextTurn(session.sessionId(), 'What is 2 + 2?');

    expect(result.success).toBe(false);
    expect(result.error?.code).toBe('llm_error');
    expect(JSON.stringify(result.error)).not.toContain(API_KEY);
    const messages = await runtime.messages(session.sessionId());
    expect(messages.map((message) => message.role)).toEqual(['user']);
    await runtime.close();
  });
});
