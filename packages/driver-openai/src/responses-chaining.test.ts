import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { LlmRequest, Message } from '@everruns-ts/core';
import {
  ADD_TOOL,
  closeFakeServers,
  json,
  newMessage,
  type Reply,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { HarnessBuilder, InProcessRuntimeBuilder, SessionBuilder } from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiResponsesDriver } from './index.js';

// previous_response_id chaining and reasoning round trips of the Responses driver: within a turn
// the driver continues the model's last answer and sends only what came after it; at a new turn
// (or with chaining off) it sends the whole history, reasoning items paired with their items.

afterEach(closeFakeServers);

const startServer = (replies: Reply[]) => startFakeServer(replies, { basePath: '/v1' });

const event = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

const USAGE = { input_tokens: 50, output_tokens: 10, total_tokens: 60 };

function reasoningItem(id: string, summary: string, encrypted?: string) {
  return {
    id,
    type: 'reasoning',
    summary: [{ type: 'summary_text', text: summary }],
    ...(encrypted !== undefined ? { encrypted_content: encrypted } : {}),
  };
}
function callItem(id: string, callId: string, a: number, b: number) {
  return {
    id,
    type: 'function_call',
    status: 'completed',
    call_id: callId,
    name: 'add',
    arguments: JSON.stringify({ a, b }),
  };
}
function messageItem(id: string, text: string) {
  return {
    id,
    type: 'message',
    status: 'completed',
    role: 'assistant',
    content: [{ type: 'output_text', text, annotations: [] }],
  };
}

/** A streamed answer made of whole output items (added, then done), completed. */
function streamOf(id: string, items: Array<Record<string, unknown>>): Reply {
  const pieces = [
    event('response.created', {
      response: { id, object: 'response', status: 'in_progress', model: 'gpt-5-mini', output: [] },
    }),
  ];
  items.forEach((item, index) => {
    const added =
      item.type === 'function_call'
        ? { ...item, arguments: '' }
        : item.type === 'message'
          ? { ...item, content: [] }
          : { ...item, summary: [] };
    pieces.push(event('response.output_item.added', { output_index: index, item: added }));
    if (item.type === 'function_call') {
      pieces.push(
        event('response.function_call_arguments.delta', {
          item_id: item.id,
          output_index: index,
          delta: item.arguments,
        }),
      );
    } else if (item.type === 'message') {
      const [part] = item.content as Array<{ text: string }>;
      pieces.push(
        event('response.output_text.delta', {
          item_id: item.id,
          output_index: index,
          content_index: 0,
          delta: part?.text,
        }),
      );
    }
    pieces.push(event('response.output_item.done', { output_index: index, item }));
  });
  pieces.push(
    event('response.completed', {
      response: {
        id,
        object: 'response',
        status: 'completed',
        model: 'gpt-5-mini',
        output: items,
        usage: USAGE,
      },
    }),
  );
  return sse(pieces);
}

interface Body {
  previous_response_id?: string;
  input: Array<Record<string, unknown>>;
  instructions?: string;
}
const bodyOf = (server: { requests: Array<{ body: unknown }> }, index: number) =>
  server.requests[index]?.body as Body;

async function mathRuntime(driver: OpenAiResponsesDriver, baseUrl: string) {
  const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
  const session = new SessionBuilder(harness.harnessId());
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({
      model: 'gpt-5-mini',
      providerType: 'openai-responses',
      apiKey: 'sk-test-chaining-1234',
      baseUrl,
    })
    .harness(harness.build())
    .session(session.build())
    .build();
  return { runtime, sessionId: session.sessionId() };
}

const ADD_RESULT_5 = JSON.stringify({ result: 5, operation: 'add', a: 2, b: 3 });

describe('OpenAiResponsesDriver chaining through the runtime', () => {
  it('continues a tool loop by previous_response_id with only the tool results, and sends the whole history at the next turn', async () => {
    const server = await startServer([
      // Turn 1: reasoning, then a call to add; then the answer.
      streamOf('resp_1', [reasoningItem('rs_1', 'Need to add.'), callItem('fc_1', 'call_1', 2, 3)]),
      streamOf('resp_2', [messageItem('msg_2', 'It is 5.')]),
      // Turn 2: a plain answer.
      streamOf('resp_3', [messageItem('msg_3', 'Still 5.')]),
    ]);
    const { runtime, sessionId } = await mathRuntime(new OpenAiResponsesDriver(), server.baseUrl);

    const first = await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    expect(first).toMatchObject({ success: true, response: 'It is 5.', toolCallsCount: 1 });
    // The first call of the turn: the whole history, no previous_response_id.
    expect(bodyOf(server, 0).previous_response_id).toBeUndefined();
    expect(bodyOf(server, 0).instructions).toContain('You are a math assistant.');
    expect(bodyOf(server, 0).input).toEqual([{ role: 'user', content: 'What is 2 + 3?' }]);
    // The second continues resp_1 with the tool result alone; the instructions are sent again.
    expect(bodyOf(server, 1).previous_response_id).toBe('resp_1');
    expect(bodyOf(server, 1).instructions).toBe(bodyOf(server, 0).instructions);
    expect(bodyOf(server, 1).input).toEqual([
      { type: 'function_call_output', call_id: 'call_1', output: ADD_RESULT_5 },
    ]);

    // The agent messages keep the response ids and the reasoning item.
    const messages = await runtime.backends.messages.load(sessionId);
    const agents = messages.filter((message) => message.role === 'agent');
    expect(agents.map((message) => message.metadata?.responseId)).toEqual(['resp_1', 'resp_2']);
    expect(agents[0]?.content[0]).toMatchObject({ type: 'reasoning', text: 'Need to add.' });

    // A new turn starts a new chain: the whole history, reasoning paired with its call.
    const second = await runtime.runTextTurn(sessionId, 'Say it again.');
    expect(second).toMatchObject({ success: true, response: 'Still 5.' });
    expect(bodyOf(server, 2).previous_response_id).toBeUndefined();
    expect(bodyOf(server, 2).input).toEqual([
      { role: 'user', content: 'What is 2 + 3?' },
      { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'Need to add.' }] },
      {
        type: 'function_call',
        id: 'fc_1',
        call_id: 'call_1',
        name: 'add',
        arguments: '{"a":2,"b":3}',
      },
      { type: 'function_call_output', call_id: 'call_1', output: ADD_RESULT_5 },
      { role: 'assistant', content: 'It is 5.' },
      { role: 'user', content: 'Say it again.' },
    ]);
    await runtime.close();
  });

  it('streams a turn (streamTextTurn) with tool call and text deltas, chaining its second call', async () => {
    const server = await startServer([
      streamOf('resp_1', [reasoningItem('rs_1', 'Need to add.'), callItem('fc_1', 'call_1', 2, 3)]),
      streamOf('resp_2', [messageItem('msg_2', 'It is 5.')]),
    ]);
    const { runtime, sessionId } = await mathRuntime(new OpenAiResponsesDriver(), server.baseUrl);
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 3?');
    const parts: Array<{ type: string; text?: string }> = [];
    for await (const part of stream) parts.push(part as { type: string; text?: string });
    expect(await stream.result).toMatchObject({ success: true, response: 'It is 5.' });
    const types = parts.map((part) => part.type);
    expect(types.indexOf('tool-call-delta')).toBeGreaterThan(-1);
    expect(types.indexOf('text-delta')).toBeGreaterThan(types.indexOf('tool-call-delta'));
    expect(parts.filter((part) => part.type === 'text-delta').map((part) => part.text)).toEqual([
      'It is 5.',
    ]);
    expect(bodyOf(server, 0).input).toEqual([{ role: 'user', content: 'What is 2 + 3?' }]);
    expect(bodyOf(server, 1).previous_response_id).toBe('resp_1');
    expect(bodyOf(server, 1).input).toEqual([
      { type: 'function_call_output', call_id: 'call_1', output: ADD_RESULT_5 },
    ]);
    await runtime.close();
  });

  it('sends the whole history on every call when chaining is off', async () => {
    const server = await startServer([
      streamOf('resp_1', [reasoningItem('rs_1', 'Add.'), callItem('fc_1', 'call_1', 2, 3)]),
      streamOf('resp_2', [messageItem('msg_2', 'It is 5.')]),
    ]);
    const { runtime, sessionId } = await mathRuntime(
      new OpenAiResponsesDriver({ chaining: false }),
      server.baseUrl,
    );
    await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    expect(bodyOf(server, 1).previous_response_id).toBeUndefined();
    expect(bodyOf(server, 1).input).toEqual([
      { role: 'user', content: 'What is 2 + 3?' },
      { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'Add.' }] },
      {
        type: 'function_call',
        id: 'fc_1',
        call_id: 'call_1',
        name: 'add',
        arguments: '{"a":2,"b":3}',
      },
      { type: 'function_call_output', call_id: 'call_1', output: ADD_RESULT_5 },
    ]);
    await runtime.close();
  });

  it('with store: false, does not chain and sends reasoning back with its encrypted content', async () => {
    const server = await startServer([
      streamOf('resp_1', [
        reasoningItem('rs_1', 'Add.', 'gAAAA_secret_reasoning'),
        callItem('fc_1', 'call_1', 2, 3),
      ]),
      streamOf('resp_2', [messageItem('msg_2', 'It is 5.')]),
    ]);
    const { runtime, sessionId } = await mathRuntime(
      new OpenAiResponsesDriver({ store: false }),
      server.baseUrl,
    );
    await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    const [firstBody, secondBody] = [bodyOf(server, 0), bodyOf(server, 1)];
    expect(firstBody).toMatchObject({ store: false, include: ['reasoning.encrypted_content'] });
    expect(secondBody).toMatchObject({ store: false, include: ['reasoning.encrypted_content'] });
    expect(secondBody.previous_response_id).toBeUndefined();
    expect(secondBody.input[1]).toEqual({
      type: 'reasoning',
      id: 'rs_1',
      summary: [{ type: 'summary_text', text: 'Add.' }],
      encrypted_content: 'gAAAA_secret_reasoning',
    });
    const stored = (await runtime.backends.messages.load(sessionId)).find(
      (message) => message.role === 'agent',
    );
    expect(stored?.content[0]).toMatchObject({
      type: 'reasoning',
      redactedData: 'gAAAA_secret_reasoning',
    });
    await runtime.close();
  });
});

function request(messages: Message[], previousResponseId?: string): LlmRequest {
  return {
    model: {
      model: 'gpt-5-mini',
      providerType: 'openai-responses',
      apiKey: 'sk-x-1234',
      baseUrl: '',
    },
    systemPrompt: 'Be brief.',
    messages,
    tools: [ADD_TOOL],
    sessionId: messages[0]?.sessionId ?? 'session_x',
    turnId: 'turn_x',
    iteration: 2,
    ...(previousResponseId !== undefined ? { previousResponseId } : {}),
  };
}

const whole = (id: string) =>
  json(200, {
    id,
    object: 'response',
    status: 'completed',
    output: [messageItem(`msg_${id}`, 'ok')],
    usage: USAGE,
  });

describe('OpenAiResponsesDriver chaining, call by call', () => {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  const toolLoop = (metadata: Record<string, unknown>, callId = 'call_1'): Message[] => [
    newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Add 2 and 3.' }]),
    {
      ...newMessage(sessionId, 2, 'agent', [
        { type: 'tool_call', id: callId, name: 'add', arguments: { a: 2, b: 3 } },
      ]),
      metadata,
    },
    newMessage(sessionId, 3, 'tool_result', [
      { type: 'tool_result', toolCallId: callId, content: '5', isError: false },
    ]),
  ];

  it('sends the tool results and a steering user message after the continued answer', async () => {
    const server = await startServer([whole('resp_b')]);
    const messages = [
      ...toolLoop({ responseId: 'resp_a' }),
      newMessage(sessionId, 4, 'user', [{ type: 'text', text: 'Also, be quick.' }]),
    ];
    await new OpenAiResponsesDriver({ streaming: false }).generate({
      ...request(messages, 'resp_a'),
      model: { ...request(messages).model, baseUrl: server.baseUrl },
    });
    expect(bodyOf(server, 0).previous_response_id).toBe('resp_a');
    expect(bodyOf(server, 0).input).toEqual([
      { type: 'function_call_output', call_id: 'call_1', output: '5' },
      { role: 'user', content: 'Also, be quick.' },
    ]);
  });

  it('answers a continued call under the id the provider gave it when the reason step rekeyed it', async () => {
    const server = await startServer([whole('resp_b')]);
    const messages = toolLoop(
      { responseId: 'resp_a', rekeyedToolCallIds: { call_new: 'call_1' } },
      'call_new',
    );
    await new OpenAiResponsesDriver({ streaming: false }).generate({
      ...request(messages, 'resp_a'),
      model: { ...request(messages).model, baseUrl: server.baseUrl },
    });
    expect(bodyOf(server, 0).input).toEqual([
      { type: 'function_call_output', call_id: 'call_1', output: '5' },
    ]);
  });

  it('sends the whole history without previous_response_id when the continued answer is not in it', async () => {
    const server = await startServer([whole('resp_b')]);
    const messages = toolLoop({ responseId: 'resp_other' });
    await new OpenAiResponsesDriver({ streaming: false }).generate({
      ...request(messages, 'resp_a'),
      model: { ...request(messages).model, baseUrl: server.baseUrl },
    });
    expect(bodyOf(server, 0).previous_response_id).toBeUndefined();
    expect(bodyOf(server, 0).input).toEqual([
      { role: 'user', content: 'Add 2 and 3.' },
      { type: 'function_call', call_id: 'call_1', name: 'add', arguments: '{"a":2,"b":3}' },
      { type: 'function_call_output', call_id: 'call_1', output: '5' },
    ]);
  });
});

describe('OpenAiResponsesDriver reasoning round trip', () => {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;

  it('replays reasoning items in answer order, paired with the message and calls that followed them', async () => {
    // The answer of resp_a: rs_1, msg_1, fc_1, rs_2, fc_2, read by the driver as it stores it.
    const first = await startServer([
      json(200, {
        id: 'resp_a',
        object: 'response',
        status: 'completed',
        output: [
          reasoningItem('rs_1', 'First thought.'),
          messageItem('msg_1', 'Adding twice.'),
          callItem('fc_1', 'call_1', 1, 2),
          { id: 'rs_2', type: 'reasoning', summary: [] },
          callItem('fc_2', 'call_2', 3, 4),
        ],
        usage: USAGE,
      }),
    ]);
    const driver = new OpenAiResponsesDriver({ streaming: false });
    const base = request([newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Go.' }])]);
    const answer = await driver.generate({
      ...base,
      model: { ...base.model, baseUrl: first.baseUrl },
    });
    expect(answer.reasoning?.map((part) => part.text)).toEqual(['First thought.', '']);
    // Stored as the reason step stores it: reasoning, then text, then calls.
    const agent: Message = {
      ...newMessage(sessionId, 2, 'agent', [
        ...(answer.reasoning ?? []),
        { type: 'text', text: answer.text },
        ...answer.toolCalls.map((call) => ({ type: 'tool_call' as const, ...call })),
      ]),
      metadata: { responseId: answer.responseId },
    };
    const history = [
      base.messages[0] as Message,
      agent,
      newMessage(sessionId, 3, 'tool_result', [
        { type: 'tool_result', toolCallId: 'call_1', content: '3', isError: false },
        { type: 'tool_result', toolCallId: 'call_2', content: '7', isError: false },
      ]),
    ];
    const second = await startServer([whole('resp_b'), whole('resp_c')]);
    const off = new OpenAiResponsesDriver({ streaming: false, chaining: false });
    await off.generate({ ...request(history), model: { ...base.model, baseUrl: second.baseUrl } });
    expect(bodyOf(second, 0).input).toEqual([
      { role: 'user', content: 'Go.' },
      {
        type: 'reasoning',
        id: 'rs_1',
        summary: [{ type: 'summary_text', text: 'First thought.' }],
      },
      {
        type: 'message',
        id: 'msg_1',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: 'Adding twice.', annotations: [] }],
      },
      {
        type: 'function_call',
        id: 'fc_1',
        call_id: 'call_1',
        name: 'add',
        arguments: '{"a":1,"b":2}',
      },
      { type: 'reasoning', id: 'rs_2', summary: [] },
      {
        type: 'function_call',
        id: 'fc_2',
        call_id: 'call_2',
        name: 'add',
        arguments: '{"a":3,"b":4}',
      },
      { type: 'function_call_output', call_id: 'call_1', output: '3' },
      { type: 'function_call_output', call_id: 'call_2', output: '7' },
    ]);
    // sendReasoning: false sends text and calls only, without item ids.
    await new OpenAiResponsesDriver({
      streaming: false,
      chaining: false,
      sendReasoning: false,
    }).generate({ ...request(history), model: { ...base.model, baseUrl: second.baseUrl } });
    expect(bodyOf(second, 1).input.slice(1, 4)).toEqual([
      { role: 'assistant', content: 'Adding twice.' },
      { type: 'function_call', call_id: 'call_1', name: 'add', arguments: '{"a":1,"b":2}' },
      { type: 'function_call', call_id: 'call_2', name: 'add', arguments: '{"a":3,"b":4}' },
    ]);
  });

  it('leaves out reasoning that is not a Responses item, and a reasoning item whose following item is gone', async () => {
    const server = await startServer([whole('resp_b')]);
    const agent = newMessage(sessionId, 2, 'agent', [
      { type: 'reasoning', text: 'plain chat reasoning' },
      { type: 'reasoning', text: 'anthropic thinking', signature: 'EqQBCkgIARABGAIiQL' },
      {
        type: 'reasoning',
        text: 'orphan',
        signature: JSON.stringify({
          responsesReasoningId: 'rs_9',
          following: [{ type: 'function_call', id: 'fc_9', call_id: 'call_gone' }],
        }),
      },
      { type: 'text', text: 'Done.' },
    ]);
    const history = [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }]), agent];
    await new OpenAiResponsesDriver({ streaming: false }).generate({
      ...request(history),
      model: { ...request(history).model, baseUrl: server.baseUrl },
    });
    expect(bodyOf(server, 0).input).toEqual([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Done.' },
    ]);
  });
});
