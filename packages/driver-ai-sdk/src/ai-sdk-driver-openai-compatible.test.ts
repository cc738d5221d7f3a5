import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  ADD_TOOL,
  closeFakeServers,
  collect,
  json,
  newMessage,
  rejection,
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
import { AiSdkDriver } from './index.js';

// `@ai-sdk/openai-compatible` pointed at a local fake Chat Completions server: the AI SDK's own
// HTTP code talks to the server, our driver talks to the AI SDK model.

afterEach(closeFakeServers);

const CALL_ID = 'call_7hQ2kLmN4pRsT8vW';

function completion(
  message: Record<string, unknown>,
  finishReason: string,
  usage: [number, number],
) {
  return {
    id: `chatcmpl-${crypto.randomUUID()}`,
    object: 'chat.completion',
    created: 1764547200,
    model: 'local-model-2025',
    choices: [{ index: 0, message, finish_reason: finishReason }],
    usage: {
      prompt_tokens: usage[0],
      completion_tokens: usage[1],
      total_tokens: usage[0] + usage[1],
      prompt_tokens_details: { cached_tokens: 0 },
    },
  };
}

const TOOL_CALL_REPLY = completion(
  {
    role: 'assistant',
    content: null,
    tool_calls: [
      { id: CALL_ID, type: 'function', function: { name: 'add', arguments: '{"a":2,"b":2}' } },
    ],
  },
  'tool_calls',
  [82, 18],
);
const ANSWER_REPLY = completion({ role: 'assistant', content: '4' }, 'stop', [19, 1]);

function chunk(delta: Record<string, unknown>, finishReason: string | null = null, usage?: object) {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-stream',
    object: 'chat.completion.chunk',
    created: 1764547200,
    model: 'local-model-2025',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...(usage ? { usage } : {}),
  })}\n\n`;
}

function provider(baseURL: string, apiKey = 'local-key') {
  return createOpenAICompatible({ name: 'local', baseURL, apiKey, includeUsage: true });
}

async function mathRuntime(driver: AiSdkDriver) {
  const harness = new HarnessBuilder('math', 'You are a math assistant.').capability('test_math');
  const agent = new AgentBuilder('math-agent', 'Use tools when they help.').maxIterations(8);
  const session = new SessionBuilder(harness.harnessId()).agent(agent.agentId());
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({ model: 'local-math', providerType: 'local' })
    .harness(harness.build())
    .agent(agent.build())
    .session(session.build())
    .build();
  return { runtime, sessionId: session.sessionId() };
}

describe('driver-ai-sdk: @ai-sdk/openai-compatible against a local server', () => {
  it('runs the math session end to end: a tool call to add, then the answer 4', async () => {
    const server = await startFakeServer([json(200, TOOL_CALL_REPLY), json(200, ANSWER_REPLY)], {
      basePath: '/v1',
    });
    const driver = new AiSdkDriver({
      providerType: 'local',
      models: { 'local-math': provider(server.baseUrl)('local-model') },
    });
    const { runtime, sessionId } = await mathRuntime(driver);

    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');

    expect(result).toMatchObject({
      success: true,
      response: '4',
      toolCallsCount: 1,
      iterations: 2,
    });
    expect(server.requests.map((request) => request.path)).toEqual([
      '/v1/chat/completions',
      '/v1/chat/completions',
    ]);
    expect(server.requests[0]?.headers.authorization).toBe('Bearer local-key');
    const first = server.requests[0]?.body as {
      model: string;
      messages: Array<Record<string, unknown>>;
      tools: unknown[];
    };
    expect(first.model).toBe('local-model');
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
          { id: CALL_ID, type: 'function', function: { name: 'add', arguments: '{"a":2,"b":2}' } },
        ],
      },
      { role: 'tool', tool_call_id: CALL_ID, content: expect.stringContaining('"result":4') },
    ]);
    const agentMessages = (await runtime.messages(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages.map((message) => message.metadata?.usage)).toEqual([
      { inputTokens: 82, outputTokens: 18 },
      { inputTokens: 19, outputTokens: 1 },
    ]);
    await runtime.close();
  });

  it('runs the math session end to end over doStream with the streaming option', async () => {
    const usage = (prompt: number, completionTokens: number) => ({
      prompt_tokens: prompt,
      completion_tokens: completionTokens,
      total_tokens: prompt + completionTokens,
    });
    const server = await startFakeServer(
      [
        sse([
          chunk({
            role: 'assistant',
            tool_calls: [
              {
                index: 0,
                id: CALL_ID,
                type: 'function',
                function: { name: 'add', arguments: '{"a":' },
              },
            ],
          }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: '2,"b":2}' } }] }),
          chunk({}, 'tool_calls', usage(82, 18)),
          'data: [DONE]\n\n',
        ]),
        sse([
          chunk({ role: 'assistant', content: '' }),
          chunk({ content: '4' }),
          chunk({}, 'stop', usage(19, 1)),
          'data: [DONE]\n\n',
        ]),
      ],
      { basePath: '/v1' },
    );
    const driver = new AiSdkDriver({
      providerType: 'local',
      streaming: true,
      models: { 'local-math': provider(server.baseUrl)('local-model') },
    });
    const { runtime, sessionId } = await mathRuntime(driver);

    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');

    expect(result).toMatchObject({
      success: true,
      response: '4',
      toolCallsCount: 1,
      iterations: 2,
    });
    expect(server.requests[0]?.body).toMatchObject({ stream: true });
    const agentMessages = (await runtime.messages(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(agentMessages.map((message) => message.metadata?.usage)).toEqual([
      { inputTokens: 82, outputTokens: 18 },
      { inputTokens: 19, outputTokens: 1 },
    ]);
    await runtime.close();
  });

  it('retries a 429 from the server, then answers', async () => {
    const server = await startFakeServer(
      [
        json(
          429,
          { error: { message: 'Rate limit reached', type: 'rate_limit' } },
          { 'retry-after-ms': '1' },
        ),
        json(200, ANSWER_REPLY),
      ],
      { basePath: '/v1' },
    );
    const driver = new AiSdkDriver({
      models: { m: provider(server.baseUrl)('local-model') },
      retryBaseDelayMs: 1,
    });
    const sessionId = `session_${crypto.randomUUID()}`;

    const response = await driver.generate({
      model: { model: 'm', providerType: 'ai-sdk' },
      systemPrompt: '',
      messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
      tools: [ADD_TOOL],
      sessionId,
      turnId: 'turn_1',
      iteration: 1,
    });

    expect(response).toMatchObject({ text: '4', stopReason: 'end_turn' });
    expect(server.requests).toHaveLength(2);
  });

  it('fails a 401 with a non-retryable LLM_ERROR carrying the status, without the key', async () => {
    const apiKey = `sk-${crypto.randomUUID()}`;
    const server = await startFakeServer(
      [
        json(401, {
          error: { message: 'Incorrect API key provided', type: 'invalid_request_error' },
        }),
      ],
      { basePath: '/v1' },
    );
    const driver = new AiSdkDriver({
      models: { m: provider(server.baseUrl, apiKey)('local-model') },
    });
    const sessionId = `session_${crypto.randomUUID()}`;

    const error = await rejection(
      driver.generate({
        model: { model: 'm', providerType: 'ai-sdk', apiKey },
        systemPrompt: '',
        messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
        tools: [],
        sessionId,
        turnId: 'turn_1',
        iteration: 1,
      }),
    );

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: false });
    expect(error.details).toMatchObject({ status: 401, provider: 'local.chat' });
    expect(JSON.stringify(error.toJSON()) + error.message).not.toContain(apiKey);
    expect(server.requests).toHaveLength(1);
  });

  it('aborts a stream the server holds open: ABORTED, and the connection is closed', async () => {
    const server = await startFakeServer(
      [sse([chunk({ role: 'assistant', content: 'Thinking' })], 'hold')],
      { basePath: '/v1' },
    );
    const driver = new AiSdkDriver({ models: { m: provider(server.baseUrl)('local-model') } });
    const controller = new AbortController();
    const sessionId = `session_${crypto.randomUUID()}`;
    const events: unknown[] = [];

    const error = await rejection(
      (async () => {
        for await (const event of driver.stream(
          {
            model: { model: 'm', providerType: 'ai-sdk' },
            systemPrompt: '',
            messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
            tools: [],
            sessionId,
            turnId: 'turn_1',
            iteration: 1,
          },
          { signal: controller.signal },
        )) {
          events.push(event);
          controller.abort();
        }
      })(),
    );

    expect(events).toEqual([{ type: 'text_delta', text: 'Thinking' }]);
    expect(error.code).toBe('ABORTED');
    await server.closedConnections[0];
  });

  it('fails a stream cut before its finish with a retryable LLM_ERROR after the retries', async () => {
    const cut = () => sse([chunk({ role: 'assistant', content: '' })], 'cut');
    const server = await startFakeServer([cut(), cut()], { basePath: '/v1' });
    const driver = new AiSdkDriver({
      models: { m: provider(server.baseUrl)('local-model') },
      maxRetries: 1,
      retryBaseDelayMs: 1,
    });
    const sessionId = `session_${crypto.randomUUID()}`;

    const error = await rejection(
      collect(
        driver.stream({
          model: { model: 'm', providerType: 'ai-sdk' },
          systemPrompt: '',
          messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Hi' }])],
          tools: [],
          sessionId,
          turnId: 'turn_1',
          iteration: 1,
        }),
      ),
    );

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: true });
    expect(server.requests).toHaveLength(2);
  });
});
