import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { messageText } from '@everruns-ts/core';
import {
  closeFakeServers,
  collect,
  json,
  newMessage,
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
import { AnthropicDriver } from './index.js';

// Extended thinking with tool use: the assistant turn that called a tool must be sent back with
// its thinking blocks (signature included) and redacted thinking blocks exactly as they came.

afterEach(closeFakeServers);

const event = (type: string, data: Record<string, unknown> = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const messageStart = (id: string) =>
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
        input_tokens: 400,
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

const THINKING = 'The user asks 2 + 2. I will call add — "a": 2, "b": 2.\nThen report.';
const SIGNATURE =
  'EqQBCkgIBhABGAIiQL6dQ6n3Q9v0iJ7Kx2Yp0o9ZQ+Vb3mF1hJ4s8cPq2wR5tUy7ZxA0bC1dE2fG3hI4jK5lM6nO7pQ8r/S9tU=';
const REDACTED =
  'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB8==';

const FIRST =
  messageStart('msg_think_1') +
  blockStart(0, { type: 'thinking', thinking: '', signature: '' }) +
  delta(0, { type: 'thinking_delta', thinking: THINKING.slice(0, 20) }) +
  delta(0, { type: 'thinking_delta', thinking: THINKING.slice(20) }) +
  delta(0, { type: 'signature_delta', signature: SIGNATURE }) +
  blockStop(0) +
  blockStart(1, { type: 'redacted_thinking', data: REDACTED }) +
  blockStop(1) +
  blockStart(2, { type: 'text', text: '' }) +
  delta(2, { type: 'text_delta', text: 'Let me add.' }) +
  blockStop(2) +
  blockStart(3, { type: 'tool_use', id: 'toolu_think', name: 'add', input: {} }) +
  delta(3, { type: 'input_json_delta', partial_json: '{"a": 2, "b": 2}' }) +
  blockStop(3) +
  messageEnd('tool_use', 120);

const SECOND =
  messageStart('msg_think_2') +
  blockStart(0, { type: 'text', text: '' }) +
  delta(0, { type: 'text_delta', text: '2 + 2 = 4.' }) +
  blockStop(0) +
  messageEnd('end_turn', 9);

type WireMessage = { role: string; content: Array<Record<string, unknown>> };

async function mathRuntime(baseUrl: string) {
  const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools.').maxIterations(4);
  const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId());
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(new AnthropicDriver())
    .defaultModel({
      model: 'claude-sonnet-4-5',
      providerType: 'anthropic',
      apiKey: 'test-key',
      baseUrl,
    })
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();
  return { runtime, sessionId: session.sessionId() };
}

describe('anthropic driver: thinking round trips', () => {
  it('sends thinking (with its signature) and redacted thinking back before tool_use, byte-identical, in the 2nd request of a tool loop', async () => {
    const server = await startFakeServer([sse([FIRST]), sse([SECOND])]);
    const { runtime, sessionId } = await mathRuntime(server.baseUrl);

    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');

    expect(result).toMatchObject({ success: true, response: '2 + 2 = 4.', iterations: 2 });
    const second = server.requests[1]?.body as { messages: WireMessage[] };
    const assistant = second.messages[1];
    expect(assistant?.role).toBe('assistant');
    expect(assistant?.content).toEqual([
      { type: 'thinking', thinking: THINKING, signature: SIGNATURE },
      { type: 'redacted_thinking', data: REDACTED },
      { type: 'text', text: 'Let me add.' },
      { type: 'tool_use', id: 'toolu_think', name: 'add', input: { a: 2, b: 2 } },
    ]);
    // The blocks go back as the API wrote them: same members, same order, same bytes.
    expect(JSON.stringify(assistant?.content[0])).toBe(
      JSON.stringify({ type: 'thinking', thinking: THINKING, signature: SIGNATURE }),
    );
    expect(JSON.stringify(assistant?.content[1])).toBe(
      JSON.stringify({ type: 'redacted_thinking', data: REDACTED }),
    );
    const agentMessages = (await runtime.messages(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages[0]?.content).toEqual([
      { type: 'reasoning', text: THINKING, signature: SIGNATURE },
      { type: 'reasoning', text: '', redactedData: REDACTED },
      { type: 'text', text: 'Let me add.' },
      { type: 'tool_call', id: 'toolu_think', name: 'add', arguments: { a: 2, b: 2 } },
    ]);
    expect(agentMessages.map(messageText)).toEqual(['Let me add.', '2 + 2 = 4.']);
    await runtime.close();
  });

  it('streams thinking as reasoning_delta, never as text', async () => {
    const server = await startFakeServer([sse([FIRST])]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const events = await collect(
      new AnthropicDriver().stream({
        model: {
          model: 'claude-sonnet-4-5',
          providerType: 'anthropic',
          apiKey: 'k',
          baseUrl: server.baseUrl,
        },
        systemPrompt: '',
        messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: '2 + 2?' }])],
        tools: [],
        sessionId,
        turnId: 'turn_t',
        iteration: 1,
      }),
    );

    const reasoning = events.filter((entry) => entry.type === 'reasoning_delta');
    expect(
      reasoning.map((entry) => (entry.type === 'reasoning_delta' ? entry.text : '')).join(''),
    ).toBe(THINKING);
    const finish = events.at(-1);
    expect(finish?.type === 'finish' && finish.response.text).toBe('Let me add.');
  });

  it('reads thinking and redacted thinking of a non-streamed answer and leaves unsigned reasoning out of requests', async () => {
    const server = await startFakeServer([
      json(200, {
        id: 'msg_whole',
        type: 'message',
        role: 'assistant',
        model: 'claude-sonnet-4-5-20250929',
        content: [
          { type: 'thinking', thinking: THINKING, signature: SIGNATURE },
          { type: 'redacted_thinking', data: REDACTED },
          { type: 'text', text: '4' },
        ],
        stop_reason: 'end_turn',
        usage: { input_tokens: 10, output_tokens: 30 },
      }),
    ]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;

    const response = await new AnthropicDriver({ streaming: false }).generate({
      model: {
        model: 'claude-sonnet-4-5',
        providerType: 'anthropic',
        apiKey: 'k',
        baseUrl: server.baseUrl,
      },
      systemPrompt: '',
      messages: [
        newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }]),
        // Reasoning from another provider has no signature: the Messages API would refuse it.
        newMessage(sessionId, 2, 'agent', [
          { type: 'reasoning', text: 'DeepSeek thought this.' },
          { type: 'text', text: 'Hello.' },
        ]),
        newMessage(sessionId, 3, 'user', [{ type: 'text', text: '2 + 2?' }]),
      ],
      tools: [],
      sessionId,
      turnId: 'turn_w',
      iteration: 1,
    });

    expect(response.text).toBe('4');
    expect(response.reasoning).toEqual([
      { type: 'reasoning', text: THINKING, signature: SIGNATURE },
      { type: 'reasoning', text: '', redactedData: REDACTED },
    ]);
    const sent = server.requests[0]?.body as { messages: WireMessage[] };
    expect(sent.messages[1]).toEqual({
      role: 'assistant',
      content: [{ type: 'text', text: 'Hello.' }],
    });
  });
});
