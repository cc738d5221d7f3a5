import { randomUUID } from 'node:crypto';
import type { LlmRequest, LlmStreamEvent, Message } from '@everruns-ts/core';
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
  slowSse,
  splitAtRandomBytes,
  sse,
  stall,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiResponsesDriver, type RetryInfo } from './index.js';

// The Responses API driver against a local server answering in the documented shapes of
// `POST /v1/responses`: request bodies, streamed and whole answers, errors, timeouts.

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies, { basePath: '/v1' });
const MODEL = 'gpt-5-mini-2025-08-07';

function llmRequest(baseUrl: string, overrides: Partial<LlmRequest> = {}): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: {
      model: 'gpt-5-mini',
      providerType: 'openai-responses',
      apiKey: 'sk-test-responses-123456',
      baseUrl,
    },
    systemPrompt: 'You add numbers.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 3?' }])],
    tools: [],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...overrides,
  };
}

/** One server-sent event as the Responses API writes it: `event:` line and JSON `data:`. */
const event = (type: string, data: Record<string, unknown>, sequence = 0) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...data })}\n\n`;

const USAGE = {
  input_tokens: 120,
  input_tokens_details: { cached_tokens: 64 },
  output_tokens: 40,
  output_tokens_details: { reasoning_tokens: 24 },
  total_tokens: 160,
};

function responseObject(
  id: string,
  status: string,
  output: unknown[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: 1756315696,
    status,
    model: MODEL,
    output,
    usage: status === 'in_progress' ? null : USAGE,
    ...extra,
  };
}

const REASONING_ITEM = {
  id: 'rs_68af3',
  type: 'reasoning',
  summary: [
    { type: 'summary_text', text: 'Adding two numbers.' },
    { type: 'summary_text', text: 'Use the add tool.' },
  ],
  encrypted_content: 'gAAAAABor_encrypted==',
};
const CALL_ITEM = {
  id: 'fc_68af4',
  type: 'function_call',
  status: 'completed',
  arguments: '{"a":2,"b":3}',
  call_id: 'call_Xk2',
  name: 'add',
};
const MESSAGE_ITEM = {
  id: 'msg_68af5',
  type: 'message',
  status: 'completed',
  role: 'assistant',
  content: [{ type: 'output_text', text: 'It is 5.', annotations: [] }],
};

/** A streamed answer: reasoning in two summary parts, then a call to `add`. */
function toolCallStream(id = 'resp_tool_1'): string {
  const created = responseObject(id, 'in_progress', []);
  return [
    event('response.created', { response: created }),
    event('response.in_progress', { response: created }),
    event('response.output_item.added', {
      output_index: 0,
      item: { id: REASONING_ITEM.id, type: 'reasoning', summary: [] },
    }),
    event('response.reasoning_summary_part.added', {
      item_id: REASONING_ITEM.id,
      output_index: 0,
      summary_index: 0,
      part: { type: 'summary_text', text: '' },
    }),
    event('response.reasoning_summary_text.delta', {
      item_id: REASONING_ITEM.id,
      output_index: 0,
      summary_index: 0,
      delta: 'Adding two ',
    }),
    event('response.reasoning_summary_text.delta', {
      item_id: REASONING_ITEM.id,
      output_index: 0,
      summary_index: 0,
      delta: 'numbers.',
    }),
    event('response.reasoning_summary_text.delta', {
      item_id: REASONING_ITEM.id,
      output_index: 0,
      summary_index: 1,
      delta: 'Use the add tool.',
    }),
    event('response.output_item.done', { output_index: 0, item: REASONING_ITEM }),
    event('response.output_item.added', {
      output_index: 1,
      item: { ...CALL_ITEM, status: 'in_progress', arguments: '' },
    }),
    event('response.function_call_arguments.delta', {
      item_id: CALL_ITEM.id,
      output_index: 1,
      delta: '{"a":2,',
    }),
    event('response.function_call_arguments.delta', {
      item_id: CALL_ITEM.id,
      output_index: 1,
      delta: '"b":3}',
    }),
    event('response.function_call_arguments.done', {
      item_id: CALL_ITEM.id,
      output_index: 1,
      arguments: CALL_ITEM.arguments,
    }),
    event('response.output_item.done', { output_index: 1, item: CALL_ITEM }),
    event('response.completed', {
      response: responseObject(id, 'completed', [REASONING_ITEM, CALL_ITEM]),
    }),
  ].join('');
}

/** A streamed text answer, `It is 5.` in two deltas (“finished” says how it ends). */
function textStream(
  id = 'resp_text_1',
  finished: 'completed' | 'incomplete' | 'none' = 'completed',
): string {
  const created = responseObject(id, 'in_progress', []);
  const pieces = [
    event('response.created', { response: created }),
    event('response.output_item.added', {
      output_index: 0,
      item: {
        id: MESSAGE_ITEM.id,
        type: 'message',
        status: 'in_progress',
        role: 'assistant',
        content: [],
      },
    }),
    event('response.content_part.added', {
      item_id: MESSAGE_ITEM.id,
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '', annotations: [] },
    }),
    event('response.output_text.delta', {
      item_id: MESSAGE_ITEM.id,
      output_index: 0,
      content_index: 0,
      delta: 'It is ',
    }),
    event('response.output_text.delta', {
      item_id: MESSAGE_ITEM.id,
      output_index: 0,
      content_index: 0,
      delta: '5.',
    }),
    event('response.output_text.done', {
      item_id: MESSAGE_ITEM.id,
      output_index: 0,
      content_index: 0,
      text: 'It is 5.',
    }),
    event('response.output_item.done', { output_index: 0, item: MESSAGE_ITEM }),
  ];
  if (finished === 'completed') {
    pieces.push(
      event('response.completed', { response: responseObject(id, 'completed', [MESSAGE_ITEM]) }),
    );
  } else if (finished === 'incomplete') {
    pieces.push(
      event('response.incomplete', {
        response: responseObject(id, 'incomplete', [MESSAGE_ITEM], {
          incomplete_details: { reason: 'max_output_tokens' },
        }),
      }),
    );
  }
  return pieces.join('');
}

describe('OpenAiResponsesDriver request bodies', () => {
  it('posts instructions, input items, function tools and the mapped request options to /v1/responses', async () => {
    const server = await startServer([sse([textStream()])]);
    const sessionId = 'session_shapes';
    const messages: Message[] = [
      newMessage(sessionId, 1, 'user', [
        { type: 'text', text: 'Add these.' },
        { type: 'image', mediaType: 'image/png', data: 'iVBORw0KGgo=' },
      ]),
      newMessage(sessionId, 2, 'agent', [
        { type: 'text', text: 'Calling add.' },
        { type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 2, b: 3 } },
      ]),
      newMessage(sessionId, 3, 'tool_result', [
        { type: 'tool_result', toolCallId: 'call_1', content: '5', isError: false },
      ]),
      newMessage(sessionId, 4, 'user', [{ type: 'text', text: 'And now?' }]),
    ];
    await new OpenAiResponsesDriver().generate(
      llmRequest(server.baseUrl, {
        messages,
        tools: [ADD_TOOL, MULTIPLY_TOOL],
        options: {
          temperature: 0.3,
          topP: 0.9,
          maxOutputTokens: 500,
          toolChoice: { type: 'tool', name: 'add' },
          parallelToolCalls: false,
          reasoningEffort: 'low',
          responseFormat: {
            type: 'json_schema',
            name: 'sum',
            description: 'the sum',
            schema: { type: 'object', properties: { sum: { type: 'number' } } },
            strict: true,
          },
          extraBody: { user: 'tenant-7', service_tier: 'flex' },
        },
      }),
    );
    const [request] = server.requests;
    expect(request?.path).toBe('/v1/responses');
    expect(request?.headers.authorization).toBe('Bearer sk-test-responses-123456');
    expect(request?.headers.accept).toBe('text/event-stream');
    expect(request?.body).toEqual({
      model: 'gpt-5-mini',
      instructions: 'You add numbers.',
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'Add these.' },
            { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=' },
          ],
        },
        { role: 'assistant', content: 'Calling add.' },
        { type: 'function_call', call_id: 'call_1', name: 'add', arguments: '{"a":2,"b":3}' },
        { type: 'function_call_output', call_id: 'call_1', output: '5' },
        { role: 'user', content: 'And now?' },
      ],
      tools: [
        {
          type: 'function',
          name: 'add',
          description: ADD_TOOL.description,
          parameters: ADD_TOOL.inputSchema,
          strict: false,
        },
        {
          type: 'function',
          name: 'multiply',
          description: MULTIPLY_TOOL.description,
          parameters: MULTIPLY_TOOL.inputSchema,
          strict: false,
        },
      ],
      stream: true,
      temperature: 0.3,
      top_p: 0.9,
      max_output_tokens: 500,
      tool_choice: { type: 'function', name: 'add' },
      parallel_tool_calls: false,
      reasoning: { effort: 'low' },
      text: {
        format: {
          type: 'json_schema',
          name: 'sum',
          description: 'the sum',
          schema: { type: 'object', properties: { sum: { type: 'number' } } },
          strict: true,
        },
      },
      user: 'tenant-7',
      service_tier: 'flex',
    });
  });

  it('sends store, include, reasoning.summary and strict tools from the driver options', async () => {
    const server = await startServer([
      json(200, responseObject('resp_1', 'completed', [MESSAGE_ITEM])),
    ]);
    await new OpenAiResponsesDriver({
      streaming: false,
      store: false,
      reasoningSummary: 'auto',
      strictTools: true,
    }).generate(
      llmRequest(server.baseUrl, {
        systemPrompt: '  ',
        tools: [ADD_TOOL],
        maxOutputTokens: 64,
        options: { reasoningEffort: 'high', toolChoice: 'required' },
      }),
    );
    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(server.requests[0]?.headers.accept).toBe('application/json');
    expect(body).not.toHaveProperty('instructions');
    expect(body).not.toHaveProperty('stream');
    expect(body).toMatchObject({
      store: false,
      include: ['reasoning.encrypted_content'],
      reasoning: { summary: 'auto', effort: 'high' },
      max_output_tokens: 64,
      tool_choice: 'required',
      tools: [{ type: 'function', name: 'add', strict: true }],
    });
  });

  it('refuses options the Responses API cannot take before sending anything', async () => {
    const server = await startServer([]);
    const driver = new OpenAiResponsesDriver();
    for (const options of [
      { stop: ['END'] },
      { seed: 7 },
      { thinkingBudgetTokens: 1024 },
      { extraBody: { input: [] } },
      { extraBody: { previous_response_id: 'resp_x' } },
      { extraBody: { instructions: 'other' } },
    ]) {
      const error = await rejection(driver.generate(llmRequest(server.baseUrl, { options })));
      expect(error.code).toBe('INVALID_INPUT');
      expect(() => driver.checkOptions(options)).toThrow();
    }
    const unknownTool = await rejection(
      driver.generate(
        llmRequest(server.baseUrl, {
          tools: [ADD_TOOL],
          options: { toolChoice: { type: 'tool', name: 'divide' } },
        }),
      ),
    );
    expect(unknownTool.code).toBe('INVALID_INPUT');
    expect(server.requests).toHaveLength(0);
  });

  it('refuses driver options of the wrong type with INVALID_INPUT', () => {
    expect(() => new OpenAiResponsesDriver({ chaining: 'yes' as unknown as boolean })).toThrow(
      /chaining/,
    );
    expect(
      () =>
        new OpenAiResponsesDriver({
          reasoningSummary: 'long' as unknown as 'auto',
        }),
    ).toThrow(/reasoningSummary/);
    expect(new OpenAiResponsesDriver().providerType).toBe('openai-responses');
    expect(new OpenAiResponsesDriver({ providerType: 'azure-responses' }).providerType).toBe(
      'azure-responses',
    );
  });
});

describe('OpenAiResponsesDriver answers', () => {
  it('streams reasoning summary, tool call deltas and finishes with the whole answer', async () => {
    const server = await startServer([sse([toolCallStream()])]);
    const events = await collect(
      new OpenAiResponsesDriver().stream(llmRequest(server.baseUrl, { tools: [ADD_TOOL] })),
    );
    expect(events.slice(0, -1)).toEqual([
      { type: 'reasoning_delta', text: 'Adding two ' },
      { type: 'reasoning_delta', text: 'numbers.' },
      { type: 'reasoning_delta', text: '\n\n' },
      { type: 'reasoning_delta', text: 'Use the add tool.' },
      { type: 'tool_call_delta', index: 0, id: 'call_Xk2', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":2,' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '"b":3}' },
    ]);
    const finish = events.at(-1);
    expect(finish?.type).toBe('finish');
    const response = finish?.type === 'finish' ? finish.response : undefined;
    expect(response).toMatchObject({
      text: '',
      toolCalls: [{ id: 'call_Xk2', name: 'add', arguments: { a: 2, b: 3 } }],
      stopReason: 'tool_calls',
      responseId: 'resp_tool_1',
      model: MODEL,
      usage: { inputTokens: 120, outputTokens: 40, cachedInputTokens: 64, reasoningTokens: 24 },
    });
    // The reasoning item is kept whole: summary text, id and following call in the signature,
    // encrypted content as redactedData.
    expect(response?.reasoning).toHaveLength(1);
    const [reasoning] = response?.reasoning ?? [];
    expect(reasoning?.text).toBe('Adding two numbers.\n\nUse the add tool.');
    expect(reasoning?.redactedData).toBe('gAAAAABor_encrypted==');
    expect(JSON.parse(reasoning?.signature ?? '')).toEqual({
      responsesReasoningId: 'rs_68af3',
      following: [{ type: 'function_call', id: 'fc_68af4', call_id: 'call_Xk2' }],
    });
  });

  it('reads the same answer when the stream arrives byte by byte or in random byte pieces', async () => {
    const whole = toolCallStream();
    const expected = await new OpenAiResponsesDriver().generate(
      llmRequest((await startServer([sse([whole])])).baseUrl, { tools: [ADD_TOOL] }),
    );
    const byByte = await new OpenAiResponsesDriver({ fetch: byteByByteFetch }).generate(
      llmRequest((await startServer([sse([whole])])).baseUrl, { tools: [ADD_TOOL] }),
    );
    expect(byByte).toEqual(expected);
    for (const seed of [1, 7, 42]) {
      const server = await startServer([sse(splitAtRandomBytes(whole, 25, seed))]);
      const pieces = await new OpenAiResponsesDriver().generate(
        llmRequest(server.baseUrl, { tools: [ADD_TOOL] }),
      );
      expect(pieces).toEqual(expected);
    }
    expect(expected.toolCalls).toEqual([
      { id: 'call_Xk2', name: 'add', arguments: { a: 2, b: 3 } },
    ]);
  });

  it('streams text deltas and maps a completed text answer to end_turn', async () => {
    const server = await startServer([sse([textStream()])]);
    const events = await collect(new OpenAiResponsesDriver().stream(llmRequest(server.baseUrl)));
    expect(events.filter((entry) => entry.type === 'text_delta')).toEqual([
      { type: 'text_delta', text: 'It is ' },
      { type: 'text_delta', text: '5.' },
    ]);
    const finish = events.at(-1) as Extract<LlmStreamEvent, { type: 'finish' }>;
    expect(finish.response).toMatchObject({
      text: 'It is 5.',
      toolCalls: [],
      stopReason: 'end_turn',
      responseId: 'resp_text_1',
    });
    expect(finish.response.reasoning).toBeUndefined();
  });

  it('maps response.incomplete with max_output_tokens to max_tokens', async () => {
    const server = await startServer([sse([textStream('resp_cut', 'incomplete')])]);
    const response = await new OpenAiResponsesDriver().generate(llmRequest(server.baseUrl));
    expect(response).toMatchObject({ text: 'It is 5.', stopReason: 'max_tokens' });
  });

  it('reads a whole (non-streamed) response: text, calls, reasoning, usage, content filter', async () => {
    const server = await startServer([
      json(
        200,
        responseObject('resp_whole', 'completed', [REASONING_ITEM, MESSAGE_ITEM, CALL_ITEM]),
      ),
      json(
        200,
        responseObject(
          'resp_filtered',
          'incomplete',
          [
            {
              ...MESSAGE_ITEM,
              content: [{ type: 'output_text', text: 'Partial', annotations: [] }],
            },
          ],
          { incomplete_details: { reason: 'content_filter' } },
        ),
      ),
      json(
        200,
        responseObject('resp_refused', 'completed', [
          { ...MESSAGE_ITEM, content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] },
        ]),
      ),
    ]);
    const driver = new OpenAiResponsesDriver({ streaming: false });
    const whole = await driver.generate(llmRequest(server.baseUrl, { tools: [ADD_TOOL] }));
    expect(whole).toMatchObject({
      text: 'It is 5.',
      toolCalls: [{ id: 'call_Xk2', name: 'add', arguments: { a: 2, b: 3 } }],
      stopReason: 'tool_calls',
      responseId: 'resp_whole',
      usage: { inputTokens: 120, outputTokens: 40, cachedInputTokens: 64, reasoningTokens: 24 },
    });
    expect(JSON.parse(whole.reasoning?.[0]?.signature ?? '')).toEqual({
      responsesReasoningId: 'rs_68af3',
      following: [
        { type: 'message', id: 'msg_68af5' },
        { type: 'function_call', id: 'fc_68af4', call_id: 'call_Xk2' },
      ],
    });
    const filtered = await driver.generate(llmRequest(server.baseUrl));
    expect(filtered).toMatchObject({ text: 'Partial', stopReason: 'content_filter' });
    const refused = await driver.generate(llmRequest(server.baseUrl));
    expect(refused).toMatchObject({
      text: 'I cannot help with that.',
      stopReason: 'content_filter',
    });
  });

  it('streams a refusal as the visible answer with stopReason content_filter', async () => {
    const refusal = { ...MESSAGE_ITEM, content: [{ type: 'refusal', refusal: 'No.' }] };
    const server = await startServer([
      sse([
        event('response.created', { response: responseObject('resp_r', 'in_progress', []) }),
        event('response.output_item.added', {
          output_index: 0,
          item: { id: MESSAGE_ITEM.id, type: 'message', role: 'assistant', content: [] },
        }),
        event('response.refusal.delta', {
          item_id: MESSAGE_ITEM.id,
          output_index: 0,
          delta: 'No.',
        }),
        event('response.output_item.done', { output_index: 0, item: refusal }),
        event('response.completed', { response: responseObject('resp_r', 'completed', [refusal]) }),
      ]),
    ]);
    const events = await collect(new OpenAiResponsesDriver().stream(llmRequest(server.baseUrl)));
    expect(events[0]).toEqual({ type: 'text_delta', text: 'No.' });
    expect(events.at(-1)).toMatchObject({
      type: 'finish',
      response: { text: 'No.', stopReason: 'content_filter' },
    });
  });
});

describe('OpenAiResponsesDriver with compatible servers', () => {
  it('streams reasoning_text deltas of a reasoning item without a summary (open-weight models)', async () => {
    const reasoning = {
      id: 'rs_oss',
      type: 'reasoning',
      summary: [],
      content: [{ type: 'reasoning_text', text: 'The user greets me.' }],
    };
    const message = { ...MESSAGE_ITEM, content: [{ type: 'output_text', text: 'Hi!' }] };
    const server = await startServer([
      sse([
        event('response.created', { response: responseObject('resp_oss', 'in_progress', []) }),
        event('response.output_item.added', {
          output_index: 0,
          item: { id: 'rs_oss', type: 'reasoning', summary: [], content: [] },
        }),
        event('response.reasoning_text.delta', {
          item_id: 'rs_oss',
          output_index: 0,
          content_index: 0,
          delta: 'The user greets me.',
        }),
        event('response.output_item.done', { output_index: 0, item: reasoning }),
        event('response.output_item.added', {
          output_index: 1,
          item: { ...message, content: [] },
        }),
        event('response.output_text.delta', {
          item_id: MESSAGE_ITEM.id,
          output_index: 1,
          delta: 'Hi!',
        }),
        event('response.output_item.done', { output_index: 1, item: message }),
        event('response.completed', {
          response: responseObject('resp_oss', 'completed', [reasoning, message]),
        }),
      ]),
    ]);
    const events = await collect(new OpenAiResponsesDriver().stream(llmRequest(server.baseUrl)));
    expect(events.slice(0, 2)).toEqual([
      { type: 'reasoning_delta', text: 'The user greets me.' },
      { type: 'text_delta', text: 'Hi!' },
    ]);
    const finish = events.at(-1) as Extract<LlmStreamEvent, { type: 'finish' }>;
    expect(finish.response.reasoning?.map((part) => part.text)).toEqual(['The user greets me.']);
    expect(finish.response.reasoning?.[0]?.redactedData).toBeUndefined();
  });

  it('reads text deltas of an item never announced, arguments given only in the finished item, and an output given only in response.completed', async () => {
    const call = { ...CALL_ITEM };
    const server = await startServer([
      sse([
        event('response.output_text.delta', { output_index: 0, delta: 'Let me add. ' }),
        event('response.output_item.added', {
          output_index: 1,
          item: { ...call, arguments: '' },
        }),
        event('response.output_item.done', { output_index: 1, item: call }),
        event('response.completed', {
          response: responseObject('resp_compat', 'completed', [
            { ...MESSAGE_ITEM, content: [{ type: 'output_text', text: 'Let me add. ' }] },
            call,
          ]),
        }),
      ]),
      sse([
        event('response.completed', {
          response: responseObject('resp_final_only', 'completed', [MESSAGE_ITEM]),
        }),
      ]),
    ]);
    const driver = new OpenAiResponsesDriver();
    const events = await collect(driver.stream(llmRequest(server.baseUrl, { tools: [ADD_TOOL] })));
    expect(events.slice(0, -1)).toEqual([
      { type: 'text_delta', text: 'Let me add. ' },
      { type: 'tool_call_delta', index: 0, id: 'call_Xk2', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":2,"b":3}' },
    ]);
    expect(events.at(-1)).toMatchObject({
      type: 'finish',
      response: {
        text: 'Let me add. ',
        toolCalls: [{ id: 'call_Xk2', name: 'add', arguments: { a: 2, b: 3 } }],
        stopReason: 'tool_calls',
      },
    });
    const finalOnly = await driver.generate(llmRequest(server.baseUrl));
    expect(finalOnly).toMatchObject({ text: 'It is 5.', responseId: 'resp_final_only' });
  });

  it('joins text deltas that name no item into one message, and adopts an item announced after its first delta', async () => {
    const message = { ...MESSAGE_ITEM, content: [{ type: 'output_text', text: 'It is 5.' }] };
    const server = await startServer([
      sse([
        event('response.output_text.delta', { delta: 'It ' }),
        event('response.output_text.delta', { delta: 'is 5.' }),
        event('response.output_item.done', { item: message }),
        event('response.completed', { response: responseObject('resp_a', 'completed', []) }),
      ]),
      sse([
        event('response.output_text.delta', { output_index: 0, delta: 'It ' }),
        event('response.output_item.added', {
          output_index: 0,
          item: { id: MESSAGE_ITEM.id, type: 'message', role: 'assistant', content: [] },
        }),
        event('response.output_text.delta', { item_id: MESSAGE_ITEM.id, delta: 'is 5.' }),
        event('response.completed', { response: responseObject('resp_b', 'completed', []) }),
      ]),
    ]);
    const driver = new OpenAiResponsesDriver();
    for (const responseId of ['resp_a', 'resp_b']) {
      const events = await collect(driver.stream(llmRequest(server.baseUrl)));
      expect(events.filter((entry) => entry.type === 'text_delta')).toEqual([
        { type: 'text_delta', text: 'It ' },
        { type: 'text_delta', text: 'is 5.' },
      ]);
      expect(events.at(-1)).toMatchObject({
        type: 'finish',
        response: { text: 'It is 5.', responseId, stopReason: 'end_turn' },
      });
    }
  });

  it('sends the whole history when the continued answer is the last message', async () => {
    const server = await startServer([sse([textStream()])]);
    const base = llmRequest(server.baseUrl);
    const sessionId = base.sessionId;
    const messages: Message[] = [
      ...base.messages,
      {
        ...newMessage(sessionId, 2, 'agent', [{ type: 'text', text: 'It is 5.' }]),
        metadata: { responseId: 'resp_last' },
      },
    ];
    await new OpenAiResponsesDriver().generate({
      ...base,
      messages,
      previousResponseId: 'resp_last',
    });
    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(body).not.toHaveProperty('previous_response_id');
    expect(body.input).toEqual([
      { role: 'user', content: 'What is 2 + 3?' },
      { role: 'assistant', content: 'It is 5.' },
    ]);
  });
});

describe('OpenAiResponsesDriver failures', () => {
  it('treats a stream that ends without response.completed as a retryable incomplete_stream, retried before output', async () => {
    const cut = textStream('resp_cut', 'none');
    const server = await startServer([
      sse([event('response.created', { response: responseObject('r', 'in_progress', []) })]),
      sse([cut]),
    ]);
    const retries: RetryInfo[] = [];
    // The first attempt ends before any output: retried. The second delivers text, then ends.
    const events: LlmStreamEvent[] = [];
    const error = await rejection(
      (async () => {
        const driver = new OpenAiResponsesDriver({
          retryBaseDelayMs: 1,
          onRetry: (info) => retries.push(info),
        });
        for await (const entry of driver.stream(llmRequest(server.baseUrl))) events.push(entry);
      })(),
    );
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.details.kind).toBe('incomplete_stream');
    expect(retries).toHaveLength(1);
    expect(server.requests).toHaveLength(2);
    expect(events.map((entry) => entry.type)).toEqual(['text_delta', 'text_delta']);
  });

  it('treats a connection cut mid-stream as a retryable error and returns nothing partial', async () => {
    const server = await startServer([sse([textStream('resp_cut', 'none')], 'cut')]);
    const error = await rejection(
      new OpenAiResponsesDriver({ maxRetries: 0 }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
  });

  it('retries an error event before any output (rate limit) and reports a response.failed', async () => {
    const server = await startServer([
      sse([
        event('error', {
          code: 'rate_limit_exceeded',
          message: 'Rate limit reached for gpt-5-mini',
          param: null,
        }),
      ]),
      sse([textStream()]),
      sse([
        event('response.created', { response: responseObject('resp_f', 'in_progress', []) }),
        event('response.failed', {
          response: responseObject('resp_f', 'failed', [], {
            error: { code: 'invalid_prompt', message: 'Your prompt was flagged.' },
          }),
        }),
      ]),
    ]);
    const retries: RetryInfo[] = [];
    const driver = new OpenAiResponsesDriver({
      retryBaseDelayMs: 1,
      onRetry: (info) => retries.push(info),
    });
    const recovered = await driver.generate(llmRequest(server.baseUrl));
    expect(recovered.text).toBe('It is 5.');
    expect(retries).toHaveLength(1);
    expect(retries[0]?.message).toContain('rate_limit_exceeded');
    const failed = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(failed.code).toBe('LLM_ERROR');
    expect(failed.retryable).toBe(false);
    expect(failed.details).toMatchObject({
      kind: 'stream_error',
      providerErrorCode: 'invalid_prompt',
      providerErrorMessage: 'Your prompt was flagged.',
    });
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry an out-of-quota error event, nor a 429 insufficient_quota', async () => {
    const server = await startServer([
      sse([event('error', { code: 'insufficient_quota', message: 'You exceeded your quota.' })]),
      json(429, {
        error: {
          message: 'You exceeded your current quota.',
          type: 'insufficient_quota',
          code: 'insufficient_quota',
        },
      }),
    ]);
    const driver = new OpenAiResponsesDriver({ retryBaseDelayMs: 1 });
    const streamed = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(streamed.retryable).toBe(false);
    expect(streamed.details.kind).toBe('insufficient_quota');
    const http = await rejection(driver.generate(llmRequest(server.baseUrl)));
    expect(http.retryable).toBe(false);
    expect(http.details).toMatchObject({ status: 429, kind: 'insufficient_quota' });
    expect(server.requests).toHaveLength(2);
  });

  it('reports a 400 with the provider message, the key redacted, not retried', async () => {
    const server = await startServer([
      json(400, {
        error: {
          message:
            "Previous response with id 'resp_gone' not found. (key sk-test-responses-123456)",
          type: 'invalid_request_error',
          param: 'previous_response_id',
          code: 'previous_response_not_found',
        },
      }),
    ]);
    const error = await rejection(new OpenAiResponsesDriver().generate(llmRequest(server.baseUrl)));
    expect(error.retryable).toBe(false);
    expect(error.details).toMatchObject({
      status: 400,
      providerErrorType: 'invalid_request_error',
      providerErrorCode: 'previous_response_not_found',
    });
    expect(JSON.stringify(error.details) + error.message).not.toContain('sk-test-responses-123456');
  });

  it('reports a failed non-streamed response as a typed error', async () => {
    const server = await startServer([
      json(
        200,
        responseObject('resp_f', 'failed', [], {
          error: { code: 'server_error', message: 'The server had an error.' },
        }),
      ),
    ]);
    const error = await rejection(
      new OpenAiResponsesDriver({ streaming: false }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(true);
    expect(error.details).toMatchObject({
      kind: 'response_failed',
      providerErrorCode: 'server_error',
    });
  });

  it('rejects broken protocol as a non-retryable protocol_violation', async () => {
    const created = event('response.created', { response: responseObject('r', 'in_progress', []) });
    const server = await startServer([
      sse([created, created]),
      sse([
        created,
        event('response.function_call_arguments.delta', {
          item_id: 'fc_unknown',
          output_index: 3,
          delta: '{}',
        }),
      ]),
      sse([
        created,
        event('response.output_item.added', {
          output_index: 0,
          item: { id: 'fc_1', type: 'function_call', call_id: 'call_1', arguments: '' },
        }),
      ]),
    ]);
    const added = event('response.output_item.added', {
      output_index: 0,
      item: { id: 'msg_1', type: 'message', role: 'assistant', content: [] },
    });
    const twice = await startServer([sse([created, added, added])]);
    const driver = new OpenAiResponsesDriver({ retryBaseDelayMs: 1 });
    const addedTwice = await rejection(driver.generate(llmRequest(twice.baseUrl)));
    expect(addedTwice.details.kind).toBe('protocol_violation');
    expect(addedTwice.message).toMatch(/added twice/);
    for (const expected of [/second response.created/, /never added/, /has no name/]) {
      const error = await rejection(driver.generate(llmRequest(server.baseUrl)));
      expect(error.retryable).toBe(false);
      expect(error.details.kind).toBe('protocol_violation');
      expect(error.message).toMatch(expected);
    }
    expect(server.requests).toHaveLength(3);
  });

  it('times out a stream whose body never starts (first byte) and one that goes silent after output (idle)', async () => {
    const server = await startServer([
      stall('first-byte'),
      stall('idle', [
        event('response.output_text.delta', { item_id: 'msg_1', output_index: 0, delta: 'Hel' }),
      ]),
    ]);
    const firstByte = await rejection(
      new OpenAiResponsesDriver({ maxRetries: 0, timeouts: { firstByteTimeoutMs: 100 } }).generate(
        llmRequest(server.baseUrl),
      ),
    );
    expect(firstByte.retryable).toBe(true);
    expect(firstByte.details).toMatchObject({ kind: 'timeout', timeout: 'firstByte' });
    const events: LlmStreamEvent[] = [];
    const idle = await rejection(
      (async () => {
        const driver = new OpenAiResponsesDriver({ timeouts: { idleTimeoutMs: 100 } });
        for await (const entry of driver.stream(llmRequest(server.baseUrl))) events.push(entry);
      })(),
    );
    expect(idle.details).toMatchObject({ kind: 'timeout', timeout: 'idle', timeoutMs: 100 });
    expect(events).toEqual([{ type: 'text_delta', text: 'Hel' }]);
    expect(server.requests).toHaveLength(2);
  });

  it('times out the whole call (total) although chunks keep coming', async () => {
    const pieces = textStream('resp_slow')
      .split('\n\n')
      .filter((piece) => piece !== '')
      .map((piece) => `${piece}\n\n`);
    const server = await startServer([slowSse(pieces, 60)]);
    const error = await rejection(
      new OpenAiResponsesDriver({
        maxRetries: 0,
        timeouts: { idleTimeoutMs: 1_000, totalTimeoutMs: 150 },
      }).generate(llmRequest(server.baseUrl)),
    );
    expect(error.details).toMatchObject({ kind: 'timeout', timeout: 'total', timeoutMs: 150 });
  });

  it('times out a server that never sends headers, per call, and aborts on the signal', async () => {
    const server = await startServer([stall('headers'), stall('headers')]);
    const driver = new OpenAiResponsesDriver({ maxRetries: 0 });
    const connect = await rejection(
      driver.generate(llmRequest(server.baseUrl), { timeouts: { connectTimeoutMs: 100 } }),
    );
    expect(connect.details).toMatchObject({ kind: 'timeout', timeout: 'connect', timeoutMs: 100 });
    const controller = new AbortController();
    const pending = driver.generate(llmRequest(server.baseUrl), { signal: controller.signal });
    while (server.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 2));
    controller.abort();
    expect((await rejection(pending)).code).toBe('ABORTED');
  });
});
