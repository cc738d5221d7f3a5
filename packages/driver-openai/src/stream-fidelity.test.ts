import { randomUUID } from 'node:crypto';
import type { LlmRequest, LlmResponse, LlmStreamEvent } from '@everruns-ts/core';
import {
  ADD_TOOL,
  byteByByteFetch,
  closeFakeServers,
  collect,
  json,
  newMessage,
  type Reply,
  rejection,
  splitAtRandomBytes,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver, type RetryInfo } from './index.js';

// Streams shaped as OpenAI-compatible providers send them (from their documentation and from
// recorded traffic), replayed whole, in random byte pieces and byte by byte.

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies, { basePath: '/v1' });

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: 'some-model', providerType: 'openai', apiKey: 'test-key-123456', baseUrl },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const DONE = 'data: [DONE]\n\n';
const data = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

/** A chunk with one choice. */
function chunk(
  delta: Record<string, unknown>,
  finishReason: string | null = null,
  extra: Record<string, unknown> = {},
): string {
  return data({
    id: 'chatcmpl-fixture',
    object: 'chat.completion.chunk',
    created: 1741570283,
    model: 'fixture-model',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...extra,
  });
}

/** OpenAI's `include_usage` chunk: no choices, the usage. */
const usageChunk = (input: number, output: number) =>
  data({
    id: 'chatcmpl-fixture',
    object: 'chat.completion.chunk',
    choices: [],
    usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
  });

interface Fixture {
  name: string;
  body: string;
  text: string;
  usage?: LlmResponse['usage'];
  stopReason: LlmResponse['stopReason'];
  toolCalls?: Array<{ name: string; arguments: unknown }>;
}

const FIXTURES: Fixture[] = [
  {
    name: 'OpenAI: finish_reason alone, then usage with empty choices, then [DONE]',
    body:
      chunk({ role: 'assistant', content: '', refusal: null }) +
      chunk({ content: 'The answer ' }) +
      chunk({ content: 'is 4.' }) +
      chunk({}, 'stop') +
      usageChunk(19, 6) +
      DONE,
    text: 'The answer is 4.',
    usage: { inputTokens: 19, outputTokens: 6 },
    stopReason: 'end_turn',
  },
  {
    name: 'Azure: a first chunk with no choices (prompt filter results) and content filter results',
    body:
      data({
        choices: [],
        created: 0,
        id: '',
        model: '',
        object: '',
        prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }],
      }) +
      chunk({ role: 'assistant', content: '' }, null, { content_filter_results: {} }) +
      chunk({ content: '4' }, null, { content_filter_results: { hate: { filtered: false } } }) +
      chunk({}, 'stop') +
      DONE,
    text: '4',
    stopReason: 'end_turn',
  },
  {
    name: 'DeepSeek: reasoning_content before the answer, keep-alive comments, usage with the finish',
    body:
      ': keep-alive\n\n' +
      chunk({ role: 'assistant', content: null, reasoning_content: '' }) +
      chunk({ content: null, reasoning_content: 'Two plus two ' }) +
      chunk({ content: null, reasoning_content: 'is four.' }) +
      chunk({ content: '4', reasoning_content: null }) +
      chunk({ content: '', reasoning_content: null }, 'stop', {
        usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 },
      }) +
      DONE,
    text: '4',
    usage: { inputTokens: 12, outputTokens: 30 },
    stopReason: 'end_turn',
  },
  {
    name: 'Groq: usage under x_groq in the last chunk',
    body:
      chunk({ role: 'assistant', content: '' }, null, { x_groq: { id: 'req_01' } }) +
      chunk({ content: '4' }) +
      chunk({}, 'stop', {
        x_groq: { id: 'req_01', usage: { prompt_tokens: 40, completion_tokens: 2 } },
      }) +
      DONE,
    text: '4',
    usage: { inputTokens: 40, outputTokens: 2 },
    stopReason: 'end_turn',
  },
  {
    name: 'Mistral magistral: content as an array of thinking and text parts',
    body:
      chunk({ role: 'assistant', content: '' }) +
      chunk({
        content: [{ type: 'thinking', thinking: [{ type: 'text', text: 'The user asks 2 + 2.' }] }],
      }) +
      chunk({ content: [{ type: 'text', text: 'It is ' }] }) +
      chunk({ content: [{ type: 'text', text: '4.' }] }, 'stop', {
        usage: { prompt_tokens: 9, completion_tokens: 21, total_tokens: 30 },
      }) +
      DONE,
    text: 'It is 4.',
    usage: { inputTokens: 9, outputTokens: 21 },
    stopReason: 'end_turn',
  },
  {
    name: 'Gemini compatible: finish_reason with the last content, tool calls without index',
    body:
      chunk({ role: 'assistant', content: 'Let me add.' }) +
      chunk(
        {
          role: 'assistant',
          tool_calls: [
            {
              id: 'call_g1',
              type: 'function',
              function: { name: 'add', arguments: '{"a":2,"b":2}' },
            },
            {
              id: 'call_g2',
              type: 'function',
              function: { name: 'add', arguments: '{"a":1,"b":1}' },
            },
          ],
        },
        'stop',
        { usage: { prompt_tokens: 50, completion_tokens: 10, total_tokens: 60 } },
      ) +
      DONE,
    text: 'Let me add.',
    usage: { inputTokens: 50, outputTokens: 10 },
    stopReason: 'tool_calls',
    toolCalls: [
      { name: 'add', arguments: { a: 2, b: 2 } },
      { name: 'add', arguments: { a: 1, b: 1 } },
    ],
  },
  {
    name: 'GLM: reasoning_content, a whole tool call in one piece, usage with the finish',
    body:
      chunk({ role: 'assistant', reasoning_content: 'I should call add.' }) +
      chunk({
        role: 'assistant',
        tool_calls: [
          {
            id: 'call_-8',
            index: 0,
            type: 'function',
            function: { name: 'add', arguments: '{"a": 2, "b": 2}' },
          },
        ],
      }) +
      chunk({ role: 'assistant', content: '' }, 'tool_calls', {
        usage: { prompt_tokens: 70, completion_tokens: 15, total_tokens: 85 },
      }) +
      DONE,
    text: '',
    usage: { inputTokens: 70, outputTokens: 15 },
    stopReason: 'tool_calls',
    toolCalls: [{ name: 'add', arguments: { a: 2, b: 2 } }],
  },
  {
    name: 'xAI: reasoning under `reasoning`, usage on the finishing chunk, no [DONE] before close',
    body:
      chunk({ role: 'assistant', reasoning: 'Adding.' }) +
      chunk({ content: 'Four ü' }) +
      chunk({}, 'stop', { usage: { prompt_tokens: 5, completion_tokens: 3 } }),
    text: 'Four ü',
    usage: { inputTokens: 5, outputTokens: 3 },
    stopReason: 'end_turn',
  },
  {
    name: 'OpenAI refusal: refusal deltas with null content',
    body:
      chunk({ role: 'assistant', content: null, refusal: '' }) +
      chunk({ refusal: "I'm sorry, " }) +
      chunk({ refusal: 'I cannot help with that.' }) +
      chunk({}, 'stop') +
      usageChunk(20, 9) +
      DONE,
    text: "I'm sorry, I cannot help with that.",
    usage: { inputTokens: 20, outputTokens: 9 },
    stopReason: 'content_filter',
  },
];

function expectAnswer(response: LlmResponse, fixture: Fixture) {
  expect(response.text).toBe(fixture.text);
  expect(response.stopReason).toBe(fixture.stopReason);
  if (fixture.usage) expect(response.usage).toEqual(fixture.usage);
  expect(
    response.toolCalls.map(({ name, arguments: input }) => ({ name, arguments: input })),
  ).toEqual(fixture.toolCalls ?? []);
  for (const call of response.toolCalls) expect(call.id).not.toBe('');
}

describe('openai driver: recorded-shape streams of compatible providers', () => {
  for (const fixture of FIXTURES) {
    it(`${fixture.name}: whole, in random byte pieces and byte by byte`, async () => {
      const server = await startServer([
        sse([fixture.body]),
        sse(splitAtRandomBytes(fixture.body, 40, fixture.body.length)),
        sse([fixture.body]),
      ]);
      const whole = await new OpenAiDriver().generate(llmRequest(server.baseUrl));
      const pieces = await new OpenAiDriver().generate(llmRequest(server.baseUrl));
      const bytes = await new OpenAiDriver({ fetch: byteByByteFetch }).generate(
        llmRequest(server.baseUrl),
      );
      for (const response of [whole, pieces, bytes]) expectAnswer(response, fixture);
    });
  }

  it('streams the text deltas that add up to the stored text, reasoning kept out of both', async () => {
    const fixture = FIXTURES.find((each) => each.name.startsWith('Mistral'))!;
    const server = await startServer([sse([fixture.body])]);
    const events = await collect(new OpenAiDriver().stream(llmRequest(server.baseUrl)));
    const streamed = events
      .filter(
        (event): event is Extract<LlmStreamEvent, { type: 'text_delta' }> =>
          event.type === 'text_delta',
      )
      .map((event) => event.text)
      .join('');
    const finish = events.at(-1);
    expect(finish?.type).toBe('finish');
    expect(streamed).toBe('It is 4.');
    expect(finish?.type === 'finish' && finish.response.text).toBe(streamed);
  });

  it('reads a non-streamed message whose content is an array of parts, thinking left out', async () => {
    const server = await startServer([
      json(200, {
        id: 'cmpl-1',
        object: 'chat.completion',
        model: 'magistral-medium-latest',
        choices: [
          {
            index: 0,
            finish_reason: 'stop',
            message: {
              role: 'assistant',
              content: [
                { type: 'thinking', thinking: [{ type: 'text', text: 'Simple sum.' }] },
                { type: 'text', text: '2 + 2 = 4' },
              ],
            },
          },
        ],
        usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
      }),
    ]);
    const response = await new OpenAiDriver({ streaming: false }).generate(
      llmRequest(server.baseUrl),
    );
    expect(response.text).toBe('2 + 2 = 4');
    expect(response.stopReason).toBe('end_turn');
  });

  it('makes a non-streamed refusal the answer text with stop reason content_filter', async () => {
    const server = await startServer([
      json(200, {
        id: 'cmpl-2',
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            finish_reason: 'stop',
            message: { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
          },
        ],
      }),
    ]);
    const response = await new OpenAiDriver({ streaming: false }).generate(
      llmRequest(server.baseUrl),
    );
    expect(response.text).toBe('I cannot help with that.');
    expect(response.stopReason).toBe('content_filter');
  });
});

describe('openai driver: a stream cut short is a retryable typed error', () => {
  const cases: Array<[string, Reply]> = [
    ['[DONE] without any finish_reason', sse([chunk({ content: 'The answer is' }) + DONE])],
    [
      'usage with empty choices and [DONE], but no finish_reason',
      sse([chunk({ content: 'The answer is' }) + usageChunk(3, 3) + DONE]),
    ],
    ['the connection closing without a finish_reason', sse([chunk({ content: 'The answer is' })])],
    [
      'an empty finish_reason string then [DONE]',
      sse([chunk({ content: 'The answer is' }, '') + DONE]),
    ],
  ];
  for (const [name, reply] of cases) {
    it(`fails on ${name}, with no finish event`, async () => {
      const server = await startServer([reply]);
      const events: LlmStreamEvent[] = [];
      const error = await rejection(
        (async () => {
          for await (const event of new OpenAiDriver().stream(llmRequest(server.baseUrl))) {
            events.push(event);
          }
        })(),
      );
      expect(error.code).toBe('LLM_ERROR');
      expect(error.retryable).toBe(true);
      expect(error.details.kind).toBe('incomplete_stream');
      expect(events.some((event) => event.type === 'finish')).toBe(false);
      // Output had reached the consumer: no silent retry.
      expect(server.requests).toHaveLength(1);
    });
  }

  it('retries a stream that ends before any output, then answers', async () => {
    const good = chunk({ content: '4' }) + chunk({}, 'stop') + DONE;
    const server = await startServer([
      sse([chunk({ role: 'assistant', content: '' }) + DONE]),
      sse([good]),
    ]);
    const retries: RetryInfo[] = [];
    const response = await new OpenAiDriver({
      retryBaseDelayMs: 1,
      onRetry: (info) => retries.push(info),
    }).generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
    expect(retries).toHaveLength(1);
  });
});

describe('openai driver: protocol violations are typed errors', () => {
  it('fails when the first piece of a tool call has no function name', async () => {
    const server = await startServer([
      sse([
        chunk({ tool_calls: [{ index: 0, id: 'call_1', function: { arguments: '{"a":1' } }] }) +
          chunk({}, 'tool_calls') +
          DONE,
      ]),
    ]);
    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(false);
    expect(error.details.kind).toBe('protocol_violation');
    expect(error.message).toContain('no function name');
  });

  it('fails when a non-streamed tool call has no function name', async () => {
    const server = await startServer([
      json(200, {
        choices: [
          {
            index: 0,
            finish_reason: 'tool_calls',
            message: {
              role: 'assistant',
              content: null,
              tool_calls: [{ id: 'call_1', type: 'function', function: { arguments: '{}' } }],
            },
          },
        ],
      }),
    ]);
    const error = await rejection(
      new OpenAiDriver({ streaming: false }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.details.kind).toBe('protocol_violation');
    expect(error.retryable).toBe(false);
  });
});

describe('openai driver: errors sent as stream events', () => {
  const errorEvent = data({
    error: { message: 'The server is overloaded.', type: 'server_error', param: null, code: null },
  });

  it('retries an error chunk that comes before any output, with the same backoff and onRetry', async () => {
    const server = await startServer([
      sse([errorEvent]),
      sse([chunk({ content: '4' }) + chunk({}, 'stop') + DONE]),
    ]);
    const retries: RetryInfo[] = [];
    const response = await new OpenAiDriver({
      retryBaseDelayMs: 1,
      onRetry: (info) => retries.push(info),
    }).generate(llmRequest(server.baseUrl));
    expect(response.text).toBe('4');
    expect(server.requests).toHaveLength(2);
    expect(retries).toEqual([
      {
        attempt: 1,
        delayMs: expect.any(Number),
        status: 200,
        message: expect.stringContaining('overloaded'),
      },
    ]);
  });

  it('gives up after maxRetries error chunks before output', async () => {
    const server = await startServer([sse([errorEvent]), sse([errorEvent])]);
    const error = await rejection(
      new OpenAiDriver({ retryBaseDelayMs: 1, maxRetries: 1 }).generate(llmRequest(server.baseUrl)),
    );
    expect(server.requests).toHaveLength(2);
    expect(error.retryable).toBe(true);
    expect(error.details.kind).toBe('stream_error');
  });

  it('does not retry an error chunk once output reached the consumer', async () => {
    const server = await startServer([
      sse([chunk({ content: 'Hel' }) + errorEvent]),
      sse([chunk({ content: 'Hello' }) + chunk({}, 'stop') + DONE]),
    ]);
    const events: LlmStreamEvent[] = [];
    const error = await rejection(
      (async () => {
        for await (const event of new OpenAiDriver({ retryBaseDelayMs: 1 }).stream(
          llmRequest(server.baseUrl),
        )) {
          events.push(event);
        }
      })(),
    );
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(events).toEqual([{ type: 'text_delta', text: 'Hel' }]);
    expect(server.requests).toHaveLength(1);
  });

  it('does not retry an out-of-quota error chunk', async () => {
    const server = await startServer([
      sse([
        data({
          error: {
            message: 'You exceeded your current quota.',
            type: 'insufficient_quota',
            code: 'insufficient_quota',
          },
        }),
      ]),
    ]);
    const error = await rejection(new OpenAiDriver().generate(llmRequest(server.baseUrl)));
    expect(server.requests).toHaveLength(1);
    expect(error.retryable).toBe(false);
    expect(error.details.kind).toBe('insufficient_quota');
  });
});
