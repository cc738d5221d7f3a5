import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { DriverRegistry, type LlmRequest, type LlmStreamEvent } from '@everruns-ts/core';
import {
  MAX_RESPONSE_BODY_CHARS,
  MAX_STREAM_DATA_CHARS,
  MAX_UNFINISHED_EVENT_CHARS,
} from '@everruns-ts/driver-http';
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
import { OPENAI_DEFAULT_BASE_URL, OpenAiDriver, type RetryInfo } from './index.js';

// ---------------------------------------------------------------------------------------------
// A fake Chat Completions server on 127.0.0.1 that records every request and replies from a
// script, one reply per request (`@everruns-ts/driver-test-support`).

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies, { basePath: '/v1' });

// ---------------------------------------------------------------------------------------------
// Fixtures: shapes as the OpenAI API sends them.

const API_KEY = `sk-test-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'gpt-4.1-mini';

function llmRequest(baseUrl: string, overrides: Partial<LlmRequest> = {}): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'openai', apiKey: API_KEY, baseUrl },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...overrides,
  };
}

const CHUNK_ID = 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG';

/** One `chat.completion.chunk` event line pair. */
function chunkEvent(
  delta: Record<string, unknown>,
  finishReason: string | null = null,
  extra: Record<string, unknown> = {},
): string {
  const chunk = {
    id: CHUNK_ID,
    object: 'chat.completion.chunk',
    created: 1741570283,
    model: 'gpt-4.1-mini-2025-04-14',
    service_tier: 'default',
    system_fingerprint: 'fp_eb9dce56a8',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    usage: null,
    ...extra,
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

function usageEvent(promptTokens: number, completionTokens: number): string {
  const chunk = {
    id: CHUNK_ID,
    object: 'chat.completion.chunk',
    created: 1741570283,
    model: 'gpt-4.1-mini-2025-04-14',
    service_tier: 'default',
    system_fingerprint: 'fp_eb9dce56a8',
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
    },
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

const DONE = 'data: [DONE]\n\n';

function toolCallDelta(
  index: number,
  argumentsDelta: string,
  start?: { id: string; name: string },
): Record<string, unknown> {
  const call: Record<string, unknown> = { index, function: { arguments: argumentsDelta } };
  if (start) {
    call.id = start.id;
    call.type = 'function';
    call.function = { name: start.name, arguments: argumentsDelta };
  }
  return { tool_calls: [call] };
}

function textStream(parts: string[]): string {
  return (
    chunkEvent({ role: 'assistant', content: '', refusal: null }) +
    parts.map((part) => chunkEvent({ content: part })).join('') +
    chunkEvent({}, 'stop') +
    usageEvent(19, 10) +
    DONE
  );
}

function toolCallStream(): string {
  return (
    chunkEvent({
      role: 'assistant',
      content: null,
      ...toolCallDelta(0, '', { id: 'call_w1TNkOGmU3rx8TuQ4uNtBLwS', name: 'add' }),
      refusal: null,
    }) +
    chunkEvent(toolCallDelta(0, '{"')) +
    chunkEvent(toolCallDelta(0, 'a":2,"b')) +
    chunkEvent(toolCallDelta(0, '":2}')) +
    chunkEvent({}, 'tool_calls') +
    usageEvent(82, 18) +
    DONE
  );
}

// ---------------------------------------------------------------------------------------------

describe('openai driver: requests', () => {
  it('sends the whole history, system prompt and tools as one Chat Completions request', async () => {
    const server = await startServer([
      json(200, {
        id: 'chatcmpl-AbC123',
        object: 'chat.completion',
        created: 1741569952,
        model: 'gpt-4.1-mini-2025-04-14',
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: 'The answer is 4.',
              refusal: null,
              annotations: [],
            },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage: {
          prompt_tokens: 120,
          completion_tokens: 7,
          total_tokens: 127,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
        },
        service_tier: 'default',
        system_fingerprint: 'fp_6f2eabb9a5',
      }),
    ]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const request = llmRequest(server.baseUrl, {
      sessionId,
      maxOutputTokens: 256,
      tools: [ADD_TOOL, MULTIPLY_TOOL],
      messages: [
        newMessage(sessionId, 1, 'user', [
          { type: 'text', text: 'What is 2 + 2? And what is on this picture?' },
          { type: 'image', mediaType: 'image/png', data: 'iVBORw0KGgo=' },
        ]),
        newMessage(sessionId, 2, 'agent', [
          { type: 'text', text: 'Let me compute.' },
          { type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } },
          { type: 'tool_call', id: 'call_2', name: 'multiply', arguments: '{"a": 2,' },
        ]),
        newMessage(sessionId, 3, 'tool_result', [
          { type: 'tool_result', toolCallId: 'call_1', content: '4', isError: false },
          {
            type: 'tool_result',
            toolCallId: 'call_2',
            content: 'Invalid arguments: not JSON',
            isError: true,
          },
        ]),
        newMessage(sessionId, 4, 'agent', [
          { type: 'tool_call', id: 'call_3', name: 'add', arguments: {} },
        ]),
        newMessage(sessionId, 5, 'tool_result', [
          { type: 'tool_result', toolCallId: 'call_3', content: '0', isError: false },
        ]),
        newMessage(sessionId, 6, 'agent', [{ type: 'text', text: '2 + 2 = 4.' }]),
        newMessage(sessionId, 7, 'user', [{ type: 'text', text: 'Thanks! Say it once more.' }]),
      ],
    });
    const driver = new OpenAiDriver({ streaming: false });

    const response = await driver.generate(request);

    expect(response).toEqual({
      text: 'The answer is 4.',
      toolCalls: [],
      usage: { inputTokens: 120, outputTokens: 7 },
      responseId: 'chatcmpl-AbC123',
      stopReason: 'end_turn',
      model: 'gpt-4.1-mini-2025-04-14',
    });
    expect(server.requests).toHaveLength(1);
    const [sent] = server.requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/v1/chat/completions');
    expect(sent?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(sent?.headers['content-type']).toBe('application/json');
    expect(sent?.headers.accept).toBe('application/json');
    expect(sent?.body).toEqual({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are a calculator.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is 2 + 2? And what is on this picture?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: 'Let me compute.',
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'add', arguments: '{"a":2,"b":2}' },
            },
            {
              id: 'call_2',
              type: 'function',
              function: { name: 'multiply', arguments: '{"a": 2,' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '4' },
        { role: 'tool', tool_call_id: 'call_2', content: 'Invalid arguments: not JSON' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_3', type: 'function', function: { name: 'add', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_3', content: '0' },
        { role: 'assistant', content: '2 + 2 = 4.' },
        { role: 'user', content: 'Thanks! Say it once more.' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'add',
            description: 'Adds two numbers',
            parameters: ADD_TOOL.inputSchema,
          },
        },
        {
          type: 'function',
          function: {
            name: 'multiply',
            description: 'Multiplies',
            parameters: MULTIPLY_TOOL.inputSchema,
          },
        },
      ],
      max_completion_tokens: 256,
    });
  });

  it('sends a streaming request with usage and reads a streamed text answer', async () => {
    const server = await startServer([sse([textStream(['2 + 2', ' = ', '4.'])])]);
    const driver = new OpenAiDriver();

    const events = await collect(driver.stream(llmRequest(server.baseUrl, { tools: [] })));

    expect(events).toEqual([
      { type: 'text_delta', text: '2 + 2' },
      { type: 'text_delta', text: ' = ' },
      { type: 'text_delta', text: '4.' },
      {
        type: 'finish',
        response: {
          text: '2 + 2 = 4.',
          toolCalls: [],
          usage: { inputTokens: 19, outputTokens: 10 },
          responseId: CHUNK_ID,
          stopReason: 'end_turn',
          model: 'gpt-4.1-mini-2025-04-14',
        },
      },
    ]);
    const [sent] = server.requests;
    expect(sent?.headers.accept).toBe('text/event-stream');
    expect(sent?.body).toEqual({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are a calculator.' },
        { role: 'user', content: 'What is 2 + 2?' },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('uses max_tokens and leaves out stream_options when configured for an older server', async () => {
    const server = await startServer([sse([textStream(['ok'])])]);
    const driver = new OpenAiDriver({ maxTokensParameter: 'max_tokens', streamUsage: false });

    await driver.generate(llmRequest(server.baseUrl, { maxOutputTokens: 64, systemPrompt: '' }));

    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      messages: [{ role: 'user', content: 'What is 2 + 2?' }],
      tools: [expect.objectContaining({ type: 'function' })],
      max_tokens: 64,
      stream: true,
    });
  });

  it('keeps the query string of a gateway base URL and sends extra headers', async () => {
    const server = await startServer([sse([textStream(['ok'])])]);
    const driver = new OpenAiDriver({ headers: { 'x-gateway-tenant': 'tenant-7' } });

    await driver.generate(llmRequest(`${server.baseUrl}/?api-version=2024-10-21`));

    expect(server.requests[0]?.path).toBe('/v1/chat/completions?api-version=2024-10-21');
    expect(server.requests[0]?.headers['x-gateway-tenant']).toBe('tenant-7');
  });
});

describe('openai driver: credentials', () => {
  it('reads the key and base URL from OPENAI_API_KEY and OPENAI_BASE_URL when the model has none', async () => {
    const server = await startServer([sse([textStream(['hi'])])]);
    const saved = { key: process.env.OPENAI_API_KEY, url: process.env.OPENAI_BASE_URL };
    const environmentKey = `sk-env-${randomUUID().replaceAll('-', '')}`;
    process.env.OPENAI_API_KEY = environmentKey;
    process.env.OPENAI_BASE_URL = server.baseUrl;
    try {
      const request = llmRequest(server.baseUrl);
      request.model = { model: MODEL, providerType: 'openai' };
      const response = await new OpenAiDriver().generate(request);
      expect(response.text).toBe('hi');
      expect(server.requests[0]?.headers.authorization).toBe(`Bearer ${environmentKey}`);
    } finally {
      if (saved.key === undefined) delete process.env.OPENAI_API_KEY;
      else process.env.OPENAI_API_KEY = saved.key;
      if (saved.url === undefined) delete process.env.OPENAI_BASE_URL;
      else process.env.OPENAI_BASE_URL = saved.url;
    }
  });

  it('sends no Authorization header to a keyless compatible server', async () => {
    const server = await startServer([sse([textStream(['hi'])])]);
    const saved = process.env.OPENAI_API_KEY;
    delete process.env.OPENAI_API_KEY;
    try {
      const request = llmRequest(server.baseUrl);
      request.model = { model: 'llama3.2', providerType: 'ollama', baseUrl: server.baseUrl };
      const driver = new OpenAiDriver({ providerType: 'ollama' });
      expect(new DriverRegistry().register(driver).get('ollama')).toBe(driver);
      await driver.generate(request);
      expect(server.requests[0]?.headers.authorization).toBeUndefined();
    } finally {
      if (saved !== undefined) process.env.OPENAI_API_KEY = saved;
    }
  });

  it('refuses to call api.openai.com without a key', async () => {
    const saved = { key: process.env.OPENAI_API_KEY, url: process.env.OPENAI_BASE_URL };
    delete process.env.OPENAI_API_KEY;
    delete process.env.OPENAI_BASE_URL;
    try {
      const request = llmRequest(OPENAI_DEFAULT_BASE_URL);
      request.model = { model: MODEL, providerType: 'openai' };
      const error = await rejection(new OpenAiDriver().generate(request));
      expect(error.code).toBe('CONFIGURATION');
    } finally {
      if (saved.key !== undefined) process.env.OPENAI_API_KEY = saved.key;
      if (saved.url !== undefined) process.env.OPENAI_BASE_URL = saved.url;
    }
  });

  it('registers under the openai provider type', () => {
    const registry = new DriverRegistry().register(new OpenAiDriver());
    expect(registry.get('openai').providerType).toBe('openai');
  });
});

describe('openai driver: streaming', () => {
  it('assembles an answer split inside a UTF-8 character and inside the JSON of tool arguments', async () => {
    const text = 'Ça fait 4 🙂, größer als 3.';
    const body =
      chunkEvent({ role: 'assistant', content: '' }) +
      chunkEvent({ content: text }) +
      chunkEvent(toolCallDelta(0, '', { id: 'call_split', name: 'add' })) +
      chunkEvent(toolCallDelta(0, '{"a": 2, "b": 2, "note": "naïve ✓"}')) +
      chunkEvent({}, 'tool_calls') +
      usageEvent(30, 12) +
      DONE;
    const bytes = Buffer.from(body, 'utf8');
    const emoji = bytes.indexOf(Buffer.from('🙂', 'utf8'));
    const cedilla = bytes.indexOf(Buffer.from('Ç', 'utf8'));
    const checkMark = bytes.indexOf(Buffer.from('✓', 'utf8'));
    const insideArgumentKey = bytes.indexOf(Buffer.from('\\"note', 'utf8')) + 3;
    expect(Math.min(emoji, cedilla, checkMark, insideArgumentKey - 3)).toBeGreaterThan(0);
    const offsets = [cedilla + 1, emoji + 1, emoji + 3, insideArgumentKey, checkMark + 2];
    const server = await startServer([sse(splitBytes(body, offsets))]);

    const events = await collect(new OpenAiDriver().stream(llmRequest(server.baseUrl)));
    const finish = events.at(-1);

    expect(finish?.type).toBe('finish');
    if (finish?.type !== 'finish') return;
    expect(finish.response.text).toBe(text);
    expect(finish.response.toolCalls).toEqual([
      { id: 'call_split', name: 'add', arguments: { a: 2, b: 2, note: 'naïve ✓' } },
    ]);
    expect(finish.response.stopReason).toBe('tool_calls');
    expect(finish.response.usage).toEqual({ inputTokens: 30, outputTokens: 12 });
  });

  it('gives the same answer when every byte of the stream arrives on its own', async () => {
    const body = toolCallStream();
    const server = await startServer([sse([body]), sse([body])]);
    const request = llmRequest(server.baseUrl);

    const whole = await new OpenAiDriver().generate(request);
    const byteByByte = await new OpenAiDriver({ fetch: byteByByteFetch }).generate(request);

    expect(byteByByte).toEqual(whole);
    expect(whole.toolCalls).toEqual([
      { id: 'call_w1TNkOGmU3rx8TuQ4uNtBLwS', name: 'add', arguments: { a: 2, b: 2 } },
    ]);
    expect(whole.usage).toEqual({ inputTokens: 82, outputTokens: 18 });
  });

  it('assembles parallel tool calls whose argument pieces interleave', async () => {
    const body =
      chunkEvent({
        role: 'assistant',
        content: null,
        ...toolCallDelta(0, '', { id: 'call_add', name: 'add' }),
      }) +
      chunkEvent(toolCallDelta(0, '{"a":1,')) +
      chunkEvent(toolCallDelta(1, '', { id: 'call_multiply', name: 'multiply' })) +
      chunkEvent(toolCallDelta(1, '{"a":3,')) +
      chunkEvent(toolCallDelta(0, '"b":2}')) +
      chunkEvent(toolCallDelta(1, '"b":4}')) +
      chunkEvent({}, 'tool_calls') +
      usageEvent(90, 40) +
      DONE;
    const server = await startServer([sse([body])]);

    const events = await collect(
      new OpenAiDriver().stream(llmRequest(server.baseUrl, { tools: [ADD_TOOL, MULTIPLY_TOOL] })),
    );

    expect(events.filter((event) => event.type === 'tool_call_delta')).toEqual([
      { type: 'tool_call_delta', index: 0, id: 'call_add', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":1,' },
      {
        type: 'tool_call_delta',
        index: 1,
        id: 'call_multiply',
        name: 'multiply',
        argumentsDelta: '',
      },
      { type: 'tool_call_delta', index: 1, argumentsDelta: '{"a":3,' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '"b":2}' },
      { type: 'tool_call_delta', index: 1, argumentsDelta: '"b":4}' },
    ]);
    const finish = events.at(-1);
    expect(finish).toEqual({
      type: 'finish',
      response: {
        text: '',
        toolCalls: [
          { id: 'call_add', name: 'add', arguments: { a: 1, b: 2 } },
          { id: 'call_multiply', name: 'multiply', arguments: { a: 3, b: 4 } },
        ],
        usage: { inputTokens: 90, outputTokens: 40 },
        responseId: CHUNK_ID,
        stopReason: 'tool_calls',
        model: 'gpt-4.1-mini-2025-04-14',
      },
    });
  });

  it('passes unparseable tool arguments through as the raw string and empty ones as {}', async () => {
    const body =
      chunkEvent(toolCallDelta(0, '{"a": 2, "b":', { id: 'call_bad', name: 'add' })) +
      chunkEvent(toolCallDelta(1, '', { id: 'call_empty', name: 'add' })) +
      chunkEvent({}, 'tool_calls') +
      DONE;
    const server = await startServer([sse([body])]);

    const response = await new OpenAiDriver().generate(llmRequest(server.baseUrl));

    expect(response.toolCalls).toEqual([
      { id: 'call_bad', name: 'add', arguments: '{"a": 2, "b":' },
      { id: 'call_empty', name: 'add', arguments: {} },
    ]);
    expect(response.usage).toEqual({ inputTokens: 0, outputTokens: 0 });
  });

  it('passes arguments nested past the bound through as the raw string, without parsing them', async () => {
    const deep = `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)},"b":2}`;
    const body =
      chunkEvent(toolCallDelta(0, deep, { id: 'call_deep', name: 'add' })) +
      chunkEvent({}, 'tool_calls') +
      DONE;
    const server = await startServer([sse([body])]);
    const response = await new OpenAiDriver().generate(llmRequest(server.baseUrl));
    expect(response.toolCalls).toEqual([{ id: 'call_deep', name: 'add', arguments: deep }]);
  });

  /**
   * A reply that starts a body with `head` and writes megabytes of `x` after it, up to twice
   * `bound` characters, stopping early when the client hangs up; `written()` says how far it got.
   */
  function endlessReply(status: number, contentType: string, head: string, bound: number) {
    let count = 0;
    const reply: Reply = async (response) => {
      response.writeHead(status, { 'content-type': contentType });
      response.write(head);
      const piece = 'x'.repeat(1024 * 1024);
      while (count <= 2 * bound && !response.destroyed) {
        const drained = response.write(piece);
        count += piece.length;
        if (!drained) await new Promise((resolve) => response.once('drain', resolve));
      }
      response.end();
    };
    return { reply, written: () => count };
  }

  it('stops a stream that sends data without ever completing an event, with a typed error', async () => {
    const endless = endlessReply(200, 'text/event-stream', 'data: ', MAX_UNFINISHED_EVENT_CHARS);
    const server = await startServer([endless.reply]);
    const error = await new OpenAiDriver().generate(llmRequest(server.baseUrl)).catch((e) => e);
    expect(error).toMatchObject({
      code: 'LLM_ERROR',
      details: { kind: 'invalid_event', limit: MAX_UNFINISHED_EVENT_CHARS, retryable: false },
    });
    expect(endless.written()).toBeLessThan(2 * MAX_UNFINISHED_EVENT_CHARS);
  });

  it('stops a stream of valid events that never ends once its data passes the bound, with a typed error', async () => {
    // Each event a text delta of one character padded with a field the driver ignores (so the
    // answer it puts together stays small here), written until the client hangs up.
    const event = chunkEvent({ content: 'x' }, null, { pad: 'p'.repeat(1024 * 1024) });
    let written = 0;
    let events = 0;
    const endless: Reply = async (response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      while (written <= 2 * MAX_STREAM_DATA_CHARS && !response.destroyed) {
        const drained = response.write(event);
        written += event.length;
        events++;
        if (!drained) await new Promise((resolve) => response.once('drain', resolve));
      }
      response.end();
    };
    const server = await startServer([endless]);
    let deltas = 0;
    let error: unknown;
    try {
      for await (const streamed of new OpenAiDriver().stream(llmRequest(server.baseUrl))) {
        if (streamed.type === 'text_delta') deltas++;
      }
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({
      code: 'LLM_ERROR',
      details: { kind: 'response_too_large', limit: MAX_STREAM_DATA_CHARS, retryable: false },
    });
    // The events up to the bound were read as events (each one delta; those parsed in the chunk
    // that passed it are dropped); the server stopped well short of twice the bound.
    const withinBound = Math.floor(MAX_STREAM_DATA_CHARS / (event.length - 'data: \n\n'.length));
    expect(deltas).toBeLessThanOrEqual(withinBound);
    expect(deltas).toBeGreaterThan(withinBound - 4);
    expect(events).toBeGreaterThan(deltas);
    expect(written).toBeLessThan(2 * MAX_STREAM_DATA_CHARS);
  }, 60_000);

  it('stops reading an answer body longer than the bound, and reads an error body only in part', async () => {
    const head = '{"error":{"message":"';
    const answer = endlessReply(200, 'application/json', head, MAX_RESPONSE_BODY_CHARS);
    const failure = endlessReply(400, 'application/json', head, MAX_RESPONSE_BODY_CHARS);
    const server = await startServer([answer.reply, failure.reply]);
    const driver = new OpenAiDriver({ streaming: false });
    const tooLarge = await driver.generate(llmRequest(server.baseUrl)).catch((e) => e);
    expect(tooLarge).toMatchObject({
      code: 'LLM_ERROR',
      details: { kind: 'response_too_large', limit: MAX_RESPONSE_BODY_CHARS, retryable: false },
    });
    expect(answer.written()).toBeLessThan(2 * MAX_RESPONSE_BODY_CHARS);
    const refused = await driver.generate(llmRequest(server.baseUrl)).catch((e) => e);
    expect(refused).toMatchObject({
      code: 'LLM_ERROR',
      details: { status: 400, retryable: false },
    });
    expect(refused.message.length).toBeLessThan(2_000);
    expect(failure.written()).toBeLessThan(2 * MAX_RESPONSE_BODY_CHARS);
  }, 60_000);

  it('maps finish reasons to stop reasons', async () => {
    const server = await startServer([
      sse([chunkEvent({ content: 'cut sh' }, 'length') + DONE]),
      sse([chunkEvent({ content: '' }, 'content_filter') + DONE]),
      // Some compatible servers answer `stop` although they called a tool.
      sse([chunkEvent(toolCallDelta(0, '{}', { id: 'call_x', name: 'add' }), 'stop') + DONE]),
    ]);
    const driver = new OpenAiDriver();
    const request = llmRequest(server.baseUrl);

    expect((await driver.generate(request)).stopReason).toBe('max_tokens');
    expect((await driver.generate(request)).stopReason).toBe('content_filter');
    expect((await driver.generate(request)).stopReason).toBe('tool_calls');
  });

  it('fails with a typed error when the server reports an error inside the stream', async () => {
    const server = await startServer([
      sse([
        chunkEvent({ content: 'Hel' }) +
          `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`,
      ]),
    ]);

    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));

    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('The server had an error while processing your request.');
    expect(error.details).toMatchObject({ providerErrorType: 'server_error', retryable: true });
  });
});

describe('openai driver: failures and retries', () => {
  const rateLimited = (retryAfter: string) =>
    json(
      429,
      {
        error: {
          message: 'Rate limit reached for gpt-4.1-mini on tokens per min (TPM).',
          type: 'tokens',
          param: null,
          code: 'rate_limit_exceeded',
        },
      },
      { 'retry-after': retryAfter },
    );

  it('retries a 429 after the wait retry-after asks for, then succeeds', async () => {
    const server = await startServer([rateLimited('0'), sse([textStream(['4'])])]);
    const retries: RetryInfo[] = [];
    // The backoff base is an hour: the test only finishes because retry-after (0 s) wins.
    const driver = new OpenAiDriver({
      retryBaseDelayMs: 3_600_000,
      maxRetryDelayMs: 3_600_000,
      onRetry: (info) => retries.push(info),
    });

    const response = await driver.generate(llmRequest(server.baseUrl));

    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.body).toEqual(server.requests[0]?.body);
    expect(retries).toEqual([
      {
        attempt: 1,
        delayMs: 0,
        status: 429,
        message: expect.stringContaining('Rate limit reached'),
      },
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
    const driver = new OpenAiDriver({
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
      error: {
        message: 'The server had an error processing your request.',
        type: 'server_error',
        param: null,
        code: null,
      },
    });
    const server = await startServer([serverError, serverError, serverError, serverError]);
    const driver = new OpenAiDriver({ retryBaseDelayMs: 1 });

    const error = await rejection(driver.generate(llmRequest(server.baseUrl)));

    expect(server.requests).toHaveLength(3);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.details).toEqual({
      provider: 'openai',
      status: 500,
      providerErrorType: 'server_error',
      providerErrorMessage: 'The server had an error processing your request.',
      retryable: true,
      attempts: 3,
    });
  });

  it('surfaces the message of a 400 without retrying and with the key redacted', async () => {
    const server = await startServer([
      json(400, {
        error: {
          message: `Invalid 'messages[1].content': string too long. Request made with key ${API_KEY}.`,
          type: 'invalid_request_error',
          param: 'messages[1].content',
          code: 'string_above_max_length',
        },
      }),
    ]);

    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));

    expect(server.requests).toHaveLength(1);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain("Invalid 'messages[1].content': string too long.");
    expect(error.message).toContain('invalid_request_error');
    expect(error.details).toMatchObject({
      status: 400,
      providerErrorType: 'invalid_request_error',
      providerErrorCode: 'string_above_max_length',
      retryable: false,
    });
    const everything = JSON.stringify({ message: error.message, details: error.details });
    expect(everything).not.toContain(API_KEY);
    expect(everything).toContain('[REDACTED]');
  });

  it('redacts a half-masked key echoed by a 401', async () => {
    const masked = `${API_KEY.slice(0, 10)}**********${API_KEY.slice(-4)}`;
    const server = await startServer([
      json(401, {
        error: {
          message: `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      }),
    ]);

    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));

    expect(error.details.status).toBe(401);
    expect(error.message).toContain('Incorrect API key provided: [REDACTED].');
    expect(error.message).not.toContain(API_KEY.slice(-4));
  });

  it('fails with a retryable typed error when the stream is cut in the middle', async () => {
    const body = toolCallStream();
    // Cut inside the JSON string of the tool arguments, which arrive escaped: `a\":2,\"b`.
    const cutAt = body.indexOf('a\\":2') + 3;
    expect(cutAt).toBeGreaterThan(3);
    const server = await startServer([
      sse([body.slice(0, cutAt)], 'cut'),
      sse([body.slice(0, cutAt)], 'hold'),
    ]);
    const driver = new OpenAiDriver();

    const error = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(server.requests).toHaveLength(1);

    // Through stream(): the deltas before the cut arrive, the finish event never does.
    const events: LlmStreamEvent[] = [];
    const streamError = await rejection(
      (async () => {
        for await (const event of driver.stream(llmRequest(server.baseUrl))) {
          events.push(event);
          // The connection drops once the first delta has been read.
          server.responses[1]?.socket?.destroy();
        }
      })(),
    );
    expect(streamError.code).toBe('LLM_ERROR');
    expect(events.length).toBeGreaterThan(0);
    expect(events.some((event) => event.type === 'finish')).toBe(false);
  });

  it('fails when the stream ends cleanly before the answer is complete', async () => {
    const server = await startServer([sse([chunkEvent({ content: 'The answer is' })])]);

    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));

    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('ended before the answer was complete');
  });

  it('retries a refused connection and then fails with a retryable typed error', async () => {
    const closed = await startServer([]);
    await closed.close();
    const retries: RetryInfo[] = [];
    const driver = new OpenAiDriver({
      retryBaseDelayMs: 1,
      onRetry: (info) => retries.push(info),
    });

    const error = await rejection(driver.generate(llmRequest(closed.baseUrl)));

    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(retries).toHaveLength(2);
    expect(retries[0]?.status).toBeUndefined();
  });

  it('stops reading and rejects with ABORTED when aborted mid-stream', async () => {
    const server = await startServer([sse([chunkEvent({ content: 'Thinking' })], 'hold')]);
    const controller = new AbortController();
    const events: LlmStreamEvent[] = [];

    const error = await rejection(
      (async () => {
        const stream = new OpenAiDriver().stream(llmRequest(server.baseUrl), {
          signal: controller.signal,
        });
        for await (const event of stream) {
          events.push(event);
          controller.abort(new Error('user pressed stop'));
        }
      })(),
    );

    expect(error.code).toBe('ABORTED');
    expect(events).toEqual([{ type: 'text_delta', text: 'Thinking' }]);
    // The driver dropped the connection.
    await server.closedConnections[0];
  });

  it('rejects with ABORTED while waiting between retries', async () => {
    const server = await startServer([rateLimited('3600')]);
    const controller = new AbortController();
    const driver = new OpenAiDriver({
      maxRetryDelayMs: 3_600_000,
      onRetry: () => controller.abort(),
    });

    const error = await rejection(
      driver.generate(llmRequest(server.baseUrl), { signal: controller.signal }),
    );

    expect(error.code).toBe('ABORTED');
    expect(server.requests).toHaveLength(1);
  });

  it('rejects with ABORTED without calling the server when the signal has already fired', async () => {
    const server = await startServer([]);

    const error = await rejection(
      new OpenAiDriver().generate(llmRequest(server.baseUrl), { signal: AbortSignal.abort() }),
    );

    expect(error.code).toBe('ABORTED');
    expect(server.requests).toHaveLength(0);
  });
});

describe('openai driver: in the runtime', () => {
  it('runs the math session end to end: a tool call to add, then the answer 4', async () => {
    const server = await startServer([sse([toolCallStream()]), sse([textStream(['4'])])]);
    const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
    const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
    const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiDriver())
      .defaultModel({
        model: MODEL,
        providerType: 'openai',
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
    const first = server.requests[0]?.body as {
      messages: Array<Record<string, unknown>>;
      tools: unknown[];
    };
    expect(first.messages[0]).toMatchObject({ role: 'system' });
    expect(first.messages[0]?.content).toContain('You are a math assistant.');
    expect(first.messages.slice(1)).toEqual([{ role: 'user', content: 'What is 2 + 2?' }]);
    expect(first.tools).toContainEqual({
      type: 'function',
      function: expect.objectContaining({ name: 'add', parameters: expect.any(Object) }),
    });
    const second = server.requests[1]?.body as { messages: Array<Record<string, unknown>> };
    expect(second.messages.slice(1)).toEqual([
      { role: 'user', content: 'What is 2 + 2?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_w1TNkOGmU3rx8TuQ4uNtBLwS',
            type: 'function',
            function: { name: 'add', arguments: '{"a":2,"b":2}' },
          },
        ],
      },
      {
        role: 'tool',
        tool_call_id: 'call_w1TNkOGmU3rx8TuQ4uNtBLwS',
        content: expect.stringContaining('"result":4'),
      },
    ]);
    const agentMessages = (await runtime.messages(session.sessionId())).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages.map((message) => message.metadata?.usage)).toEqual([
      { inputTokens: 82, outputTokens: 18 },
      { inputTokens: 19, outputTokens: 10 },
    ]);
    await runtime.close();
  });

  it('fails the turn with llm_error and records no agent message when the stream is cut', async () => {
    const body = toolCallStream();
    const server = await startServer([sse([body.slice(0, body.length / 2)], 'cut')]);
    const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiDriver())
      .defaultModel({
        model: MODEL,
        providerType: 'openai',
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
  it('fails the turn and stores no agent message when [DONE] comes without a finish_reason', async () => {
    // Output comes before the cut, so nothing is retried; the turn must not pass it off as an answer.
    const truncated = chunkEvent({ role: 'assistant', content: 'The answer is' }) + DONE;
    const server = await startServer([sse([truncated])]);
    const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiDriver())
      .defaultModel({
        model: MODEL,
        providerType: 'openai',
        apiKey: API_KEY,
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .session(session.build())
      .build();

    const result = await runtime.runTextTurn(session.sessionId(), 'What is 2 + 2?');

    expect(result.success).toBe(false);
    expect(result.error?.code).toBe('llm_error');
    const messages = await runtime.messages(session.sessionId());
    expect(messages.map((message) => message.role)).toEqual(['user']);
    await runtime.close();
  });
});
