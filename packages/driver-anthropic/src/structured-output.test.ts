import { randomUUID } from 'node:crypto';
import {
  EverrunsError,
  type LlmRequest,
  type LlmRequestOptions,
  type LlmResponseFormat,
  type LlmStreamEvent,
} from '@everruns-ts/core';
import {
  ADD_TOOL,
  closeFakeServers,
  collect,
  json,
  MULTIPLY_TOOL,
  newMessage,
  rejection,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { ANTHROPIC_STRUCTURED_OUTPUT_TOOL, AnthropicDriver } from './index.js';

afterEach(closeFakeServers);

const API_KEY = `sk-ant-api03-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'claude-sonnet-4-5';
const CACHE_CONTROL = { type: 'ephemeral' };

const CITY_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string' }, population: { type: 'integer' } },
  required: ['city', 'population'],
  additionalProperties: false,
};

const FORMAT: LlmResponseFormat = { type: 'json_schema', name: 'city', schema: CITY_SCHEMA };

const OUTPUT_TOOL_ON_THE_WIRE = {
  name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
  description:
    'Give your final answer by calling this tool once: its input is the answer (city). Call it only when you have everything you need.',
  input_schema: CITY_SCHEMA,
};

const USER_MESSAGE = {
  role: 'user',
  content: [{ type: 'text', text: 'Biggest city of France?', cache_control: CACHE_CONTROL }],
};

function llmRequest(
  baseUrl: string,
  options: LlmRequestOptions | undefined,
  overrides: Partial<LlmRequest> = {},
): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'anthropic', apiKey: API_KEY, baseUrl },
    systemPrompt: '',
    messages: [
      newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Biggest city of France?' }]),
    ],
    tools: [],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...(options ? { options } : {}),
    ...overrides,
  };
}

function message(content: unknown[], stopReason: string): Record<string, unknown> {
  return {
    id: 'msg_01Structured',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5-20250929',
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: 30, output_tokens: 12 },
  };
}

function event(type: string, data: Record<string, unknown> = {}): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** A stream whose blocks are given as [start block, deltas]; stop reason at the end. */
function stream(blocks: Array<[Record<string, unknown>, unknown[]]>, stopReason: string): string[] {
  const events = [
    event('message_start', {
      message: { ...message([], stopReason), stop_reason: null, usage: { input_tokens: 30 } },
    }),
  ];
  blocks.forEach(([block, deltas], index) => {
    events.push(event('content_block_start', { index, content_block: block }));
    for (const delta of deltas) events.push(event('content_block_delta', { index, delta }));
    events.push(event('content_block_stop', { index }));
  });
  events.push(
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: 12 },
    }),
    event('message_stop'),
  );
  return events;
}

const ANSWER = { city: 'Paris', population: 2102650 };

describe('Anthropic driver structured output (responseFormat as a forced tool)', () => {
  it('offers the structured output tool, forces it when it is the only tool, and returns its input as the answer text', async () => {
    const server = await startFakeServer([
      json(
        200,
        message(
          [
            {
              type: 'tool_use',
              id: 'toolu_01Out',
              name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
              input: ANSWER,
            },
          ],
          'tool_use',
        ),
      ),
    ]);
    const driver = new AnthropicDriver({ streaming: false });
    const response = await driver.generate(llmRequest(server.baseUrl, { responseFormat: FORMAT }));
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      messages: [USER_MESSAGE],
      tools: [{ ...OUTPUT_TOOL_ON_THE_WIRE, cache_control: CACHE_CONTROL }],
      tool_choice: { type: 'tool', name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL },
    });
    expect(response.text).toBe(JSON.stringify(ANSWER));
    expect(JSON.parse(response.text)).toEqual(ANSWER);
    expect(response.toolCalls).toEqual([]);
    expect(response.stopReason).toBe('end_turn');
  });

  it('uses the schema description and forces "any" tool beside the request tools, keeping real tool calls as tool calls', async () => {
    const server = await startFakeServer([
      json(
        200,
        message(
          [{ type: 'tool_use', id: 'toolu_01Add', name: 'add', input: { a: 2, b: 3 } }],
          'tool_use',
        ),
      ),
    ]);
    const driver = new AnthropicDriver({ streaming: false, promptCaching: false });
    const response = await driver.generate(
      llmRequest(
        server.baseUrl,
        {
          responseFormat: { ...FORMAT, description: 'The city and its population' },
          parallelToolCalls: false,
        },
        { tools: [ADD_TOOL, MULTIPLY_TOOL] },
      ),
    );
    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(body.tools).toEqual([
      { name: 'add', description: ADD_TOOL.description, input_schema: ADD_TOOL.inputSchema },
      {
        name: 'multiply',
        description: MULTIPLY_TOOL.description,
        input_schema: MULTIPLY_TOOL.inputSchema,
      },
      { ...OUTPUT_TOOL_ON_THE_WIRE, description: 'The city and its population' },
    ]);
    expect(body.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(response.text).toBe('');
    expect(response.toolCalls).toEqual([
      { id: 'toolu_01Add', name: 'add', arguments: { a: 2, b: 3 } },
    ]);
    expect(response.stopReason).toBe('tool_calls');
  });

  it('streams the structured output tool arguments as text deltas and finishes with that text and end_turn', async () => {
    const pieces = ['{"city": "Pa', 'ris", "popul', 'ation": 2102650}'];
    const server = await startFakeServer([
      sse(
        stream(
          [
            [
              {
                type: 'tool_use',
                id: 'toolu_01Out',
                name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
                input: {},
              },
              pieces.map((partial_json) => ({ type: 'input_json_delta', partial_json })),
            ],
          ],
          'tool_use',
        ),
      ),
    ]);
    const driver = new AnthropicDriver();
    const events = await collect(
      driver.stream(llmRequest(server.baseUrl, { responseFormat: FORMAT })),
    );
    const deltas = events.filter((entry) => entry.type !== 'finish');
    expect(deltas).toEqual(pieces.map((text) => ({ type: 'text_delta', text })));
    const finish = events.at(-1) as Extract<LlmStreamEvent, { type: 'finish' }>;
    expect(finish.response.text).toBe(pieces.join(''));
    expect(JSON.parse(finish.response.text)).toEqual(ANSWER);
    expect(finish.response.toolCalls).toEqual([]);
    expect(finish.response.stopReason).toBe('end_turn');
    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(body.stream).toBe(true);
    expect(body.tool_choice).toEqual({ type: 'tool', name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL });
  });

  it('streams a real tool call beside the structured output as a tool call, numbered from 0', async () => {
    const server = await startFakeServer([
      sse(
        stream(
          [
            [
              {
                type: 'tool_use',
                id: 'toolu_01Out',
                name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
                input: {},
              },
              [{ type: 'input_json_delta', partial_json: '{"city":"Lyon","population":1}' }],
            ],
            [
              { type: 'tool_use', id: 'toolu_01Add', name: 'add', input: {} },
              [{ type: 'input_json_delta', partial_json: '{"a":1,"b":2}' }],
            ],
          ],
          'tool_use',
        ),
      ),
    ]);
    const driver = new AnthropicDriver();
    const events = await collect(
      driver.stream(llmRequest(server.baseUrl, { responseFormat: FORMAT }, { tools: [ADD_TOOL] })),
    );
    expect(events.filter((entry) => entry.type !== 'finish')).toEqual([
      { type: 'text_delta', text: '{"city":"Lyon","population":1}' },
      { type: 'tool_call_delta', index: 0, id: 'toolu_01Add', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":1,"b":2}' },
    ]);
    const finish = events.at(-1) as Extract<LlmStreamEvent, { type: 'finish' }>;
    expect(finish.response.toolCalls).toEqual([
      { id: 'toolu_01Add', name: 'add', arguments: { a: 1, b: 2 } },
    ]);
    expect(finish.response.stopReason).toBe('tool_calls');
  });

  it('a structured output tool whose input comes whole at block start (no deltas) still becomes the text', async () => {
    const server = await startFakeServer([
      sse(
        stream(
          [
            [
              {
                type: 'tool_use',
                id: 'toolu_01Out',
                name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
                input: ANSWER,
              },
              [],
            ],
          ],
          'tool_use',
        ),
      ),
    ]);
    const events = await collect(
      new AnthropicDriver().stream(llmRequest(server.baseUrl, { responseFormat: FORMAT })),
    );
    expect(events[0]).toEqual({ type: 'text_delta', text: JSON.stringify(ANSWER) });
    const finish = events.at(-1) as Extract<LlmStreamEvent, { type: 'finish' }>;
    expect(finish.response.text).toBe(JSON.stringify(ANSWER));
  });

  it('without responseFormat a tool of the reserved name is an ordinary tool call', async () => {
    const server = await startFakeServer([
      json(
        200,
        message(
          [
            {
              type: 'tool_use',
              id: 'toolu_01X',
              name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
              input: {},
            },
          ],
          'tool_use',
        ),
      ),
    ]);
    const response = await new AnthropicDriver({ streaming: false }).generate(
      llmRequest(server.baseUrl, undefined, {
        tools: [{ ...ADD_TOOL, name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL }],
      }),
    );
    expect(response.toolCalls).toHaveLength(1);
    expect(response.stopReason).toBe('tool_calls');
  });

  it('with a thinking budget and toolChoice auto the output tool is offered, not forced', async () => {
    const server = await startFakeServer([
      json(200, message([{ type: 'text', text: '{"city":"Paris","population":3}' }], 'end_turn')),
    ]);
    const driver = new AnthropicDriver({ streaming: false, promptCaching: false });
    const response = await driver.generate(
      llmRequest(server.baseUrl, {
        responseFormat: FORMAT,
        toolChoice: 'auto',
        thinkingBudgetTokens: 2048,
      }),
    );
    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(body.tool_choice).toEqual({ type: 'auto' });
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
    expect(body.tools).toEqual([OUTPUT_TOOL_ON_THE_WIRE]);
    expect(response.text).toBe('{"city":"Paris","population":3}');
    expect(response.stopReason).toBe('end_turn');
  });

  it('refuses contradicting structured output options with INVALID_INPUT before any request, in generate and checkOptions', async () => {
    const server = await startFakeServer([]);
    const model = { model: MODEL, providerType: 'anthropic' };
    const cases: Array<[LlmRequestOptions, RegExp, LlmRequest['tools']]> = [
      [{ responseFormat: FORMAT, thinkingBudgetTokens: 2048 }, /thinking budget/, []],
      [
        { responseFormat: FORMAT, thinkingBudgetTokens: 2048, toolChoice: 'required' },
        /thinking budget/,
        [],
      ],
      [{ responseFormat: FORMAT, toolChoice: 'none' }, /contradicts responseFormat/, []],
      [
        { responseFormat: FORMAT, toolChoice: { type: 'tool', name: 'add' } },
        /contradicts responseFormat/,
        [ADD_TOOL],
      ],
      [
        { responseFormat: { ...FORMAT, schema: { type: 'array', items: { type: 'string' } } } },
        /type "object"/,
        [],
      ],
      [
        { responseFormat: FORMAT },
        /reserves for structured output/,
        [{ ...ADD_TOOL, name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL }],
      ],
    ];
    for (const [options, message, tools] of cases) {
      for (const streaming of [false, true]) {
        const error = await rejection(
          new AnthropicDriver({ streaming }).generate(
            llmRequest(server.baseUrl, options, { tools }),
          ),
        );
        expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), JSON.stringify(options)).toBe(true);
        expect(error.message).toMatch(message);
      }
      expect(() => new AnthropicDriver().checkOptions(options, model, tools)).toThrow(message);
    }
    expect(server.requests).toHaveLength(0);
    // Without the tools checkOptions cannot see the reserved name; with `required` and no tools,
    // the structured output tool is the tool the model must call.
    expect(() =>
      new AnthropicDriver().checkOptions({ responseFormat: FORMAT }, model),
    ).not.toThrow();
    expect(() =>
      new AnthropicDriver().checkOptions(
        { responseFormat: FORMAT, toolChoice: 'required' },
        model,
        [],
      ),
    ).not.toThrow();
  });

  it('checkOptions refuses a named toolChoice the given tools do not offer', () => {
    const model = { model: MODEL, providerType: 'anthropic' };
    const driver = new AnthropicDriver();
    expect(() =>
      driver.checkOptions({ toolChoice: { type: 'tool', name: 'divide' } }, model, [ADD_TOOL]),
    ).toThrow(/divide/);
    expect(() =>
      driver.checkOptions({ toolChoice: { type: 'tool', name: 'add' } }, model, [ADD_TOOL]),
    ).not.toThrow();
  });
});
