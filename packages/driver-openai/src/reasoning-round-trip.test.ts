import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { type LlmRequest, messageText } from '@everruns-ts/core';
import {
  ADD_TOOL,
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
import { OpenAiDriver, type OpenAiDriverOptions } from './index.js';

// DeepSeek's thinking mode (deepseek-reasoner): reasoning streams as `reasoning_content`; within
// a tool loop the assistant message that called tools must carry it back.

afterEach(closeFakeServers);

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;

function chunk(delta: Record<string, unknown>, finish: string | null = null, usage?: unknown) {
  return data({
    id: 'b8e1c5a0-4f1e-4c1e-9d2a-deepseek',
    object: 'chat.completion.chunk',
    created: 1750000000,
    model: 'deepseek-reasoner',
    system_fingerprint: 'fp_deepseek',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(usage ? { usage } : {}),
  });
}

const REASONING_1 = 'The user wants 2 + 2. I should call the add tool with a=2, b=2.';

const TOOL_LOOP_FIRST =
  chunk({ role: 'assistant', content: null, reasoning_content: '' }) +
  chunk({ content: null, reasoning_content: 'The user wants 2 + 2. ' }) +
  chunk({ content: null, reasoning_content: 'I should call the add tool with a=2, b=2.' }) +
  chunk({
    tool_calls: [
      {
        index: 0,
        id: 'call_00_ds1',
        type: 'function',
        function: { name: 'add', arguments: '' },
      },
    ],
  }) +
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":2,"b":2}' } }] }) +
  chunk({ content: '' }, 'tool_calls', {
    prompt_tokens: 300,
    completion_tokens: 60,
    total_tokens: 360,
    prompt_tokens_details: { cached_tokens: 256 },
    prompt_cache_hit_tokens: 256,
    prompt_cache_miss_tokens: 44,
    completion_tokens_details: { reasoning_tokens: 40 },
  }) +
  'data: [DONE]\n\n';

const TOOL_LOOP_SECOND =
  chunk({ role: 'assistant', content: null, reasoning_content: 'The tool said 4.' }) +
  chunk({ content: '2 + 2 = 4.', reasoning_content: null }) +
  chunk({ content: '' }, 'stop', {
    prompt_tokens: 380,
    completion_tokens: 20,
    total_tokens: 400,
    prompt_cache_hit_tokens: 320,
    prompt_cache_miss_tokens: 60,
    completion_tokens_details: { reasoning_tokens: 8 },
  }) +
  'data: [DONE]\n\n';

async function mathRuntime(baseUrl: string, options: OpenAiDriverOptions = {}) {
  const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools.').maxIterations(4);
  const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId());
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(new OpenAiDriver(options))
    .defaultModel({ model: 'deepseek-reasoner', providerType: 'openai', apiKey: 'k', baseUrl })
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();
  return { runtime, sessionId: session.sessionId() };
}

type WireMessage = Record<string, unknown>;

describe('openai driver: reasoning round trips', () => {
  it('sends reasoning_content back on the tool-calling assistant message in the 2nd request of a DeepSeek reasoner tool loop', async () => {
    const server = await startFakeServer([sse([TOOL_LOOP_FIRST]), sse([TOOL_LOOP_SECOND])]);
    const { runtime, sessionId } = await mathRuntime(server.baseUrl);

    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');

    expect(result).toMatchObject({ success: true, response: '2 + 2 = 4.', iterations: 2 });
    const second = server.requests[1]?.body as { messages: WireMessage[] };
    expect(second.messages.slice(1, 3)).toEqual([
      { role: 'user', content: 'What is 2 + 2?' },
      {
        role: 'assistant',
        content: null,
        reasoning_content: REASONING_1,
        tool_calls: [
          {
            id: 'call_00_ds1',
            type: 'function',
            function: { name: 'add', arguments: '{"a":2,"b":2}' },
          },
        ],
      },
    ]);
    const agentMessages = (await runtime.messages(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages[0]?.content).toEqual([
      { type: 'reasoning', text: REASONING_1 },
      { type: 'tool_call', id: 'call_00_ds1', name: 'add', arguments: { a: 2, b: 2 } },
    ]);
    expect(agentMessages[1]?.content).toEqual([
      { type: 'reasoning', text: 'The tool said 4.' },
      { type: 'text', text: '2 + 2 = 4.' },
    ]);
    expect(agentMessages.map(messageText)).toEqual(['', '2 + 2 = 4.']);
    const completed = runtime.events(sessionId).find((event) => event.type === 'turn.completed');
    expect(completed?.data.usage).toEqual({
      inputTokens: 680,
      outputTokens: 80,
      cachedInputTokens: 576,
      reasoningTokens: 48,
    });
    await runtime.close();
  });

  it('leaves reasoning_content out when sendReasoningContent is false, and off answers without tool calls', async () => {
    const server = await startFakeServer([sse([TOOL_LOOP_FIRST]), sse([TOOL_LOOP_SECOND])]);
    const { runtime, sessionId } = await mathRuntime(server.baseUrl, {
      sendReasoningContent: false,
    });

    await runtime.runTextTurn(sessionId, 'What is 2 + 2?');

    const second = server.requests[1]?.body as { messages: WireMessage[] };
    expect(second.messages[2]).not.toHaveProperty('reasoning_content');
    await runtime.close();

    const next = await startFakeServer([sse([TOOL_LOOP_SECOND])]);
    const sessionId2 = `session_${randomUUID().replaceAll('-', '')}`;
    const request: LlmRequest = {
      model: {
        model: 'deepseek-reasoner',
        providerType: 'openai',
        apiKey: 'k',
        baseUrl: next.baseUrl,
      },
      systemPrompt: '',
      messages: [
        newMessage(sessionId2, 1, 'user', [{ type: 'text', text: 'Hi' }]),
        newMessage(sessionId2, 2, 'agent', [
          { type: 'reasoning', text: 'Greeting.' },
          { type: 'text', text: 'Hello!' },
        ]),
        newMessage(sessionId2, 3, 'user', [{ type: 'text', text: 'Again' }]),
      ],
      tools: [],
      sessionId: sessionId2,
      turnId: `turn_${randomUUID().replaceAll('-', '')}`,
      iteration: 1,
    };
    await new OpenAiDriver().generate(request);
    const sent = next.requests[0]?.body as { messages: WireMessage[] };
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: 'Hello!' });
  });

  it('streams reasoning as reasoning_delta and returns it as reasoning parts, never in the text', async () => {
    const server = await startFakeServer([sse([TOOL_LOOP_SECOND])]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const events = await collect(
      new OpenAiDriver().stream({
        model: {
          model: 'deepseek-reasoner',
          providerType: 'openai',
          apiKey: 'k',
          baseUrl: server.baseUrl,
        },
        systemPrompt: '',
        messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
        tools: [ADD_TOOL],
        sessionId,
        turnId: 'turn_x',
        iteration: 1,
      }),
    );

    expect(events.slice(0, 2)).toEqual([
      { type: 'reasoning_delta', text: 'The tool said 4.' },
      { type: 'text_delta', text: '2 + 2 = 4.' },
    ]);
    const finish = events.at(-1);
    expect(finish).toMatchObject({
      type: 'finish',
      response: {
        text: '2 + 2 = 4.',
        reasoning: [{ type: 'reasoning', text: 'The tool said 4.' }],
      },
    });
  });

  it('returns the reasoning of a non-streamed answer as a reasoning part', async () => {
    const server = await startFakeServer([
      json(200, {
        id: 'ds-2',
        object: 'chat.completion',
        model: 'deepseek-reasoner',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: '4', reasoning_content: 'Simple sum.' },
            finish_reason: 'stop',
          },
        ],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      }),
    ]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;

    const response = await new OpenAiDriver({ streaming: false }).generate({
      model: {
        model: 'deepseek-reasoner',
        providerType: 'openai',
        apiKey: 'k',
        baseUrl: server.baseUrl,
      },
      systemPrompt: '',
      messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: '2+2?' }])],
      tools: [],
      sessionId,
      turnId: 'turn_y',
      iteration: 1,
    });

    expect(response.text).toBe('4');
    expect(response.reasoning).toEqual([{ type: 'reasoning', text: 'Simple sum.' }]);
  });
});
