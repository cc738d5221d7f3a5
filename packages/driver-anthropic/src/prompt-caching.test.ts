import { randomUUID } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { EverrunsError, type LlmRequest } from '@everruns-ts/core';
import {
  ADD_TOOL,
  closeFakeServers,
  json,
  MULTIPLY_TOOL,
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
import { AnthropicDriver, type AnthropicPromptCaching } from './index.js';

afterEach(closeFakeServers);

const API_KEY = `sk-ant-api03-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'claude-sonnet-4-5';
const EPHEMERAL = { type: 'ephemeral' };

const MESSAGE = {
  id: 'msg_01Caching',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [{ type: 'text', text: 'Twelve.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 20, output_tokens: 3 },
};

function event(type: string, data: Record<string, unknown> = {}): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** A streamed answer whose usage reports cache reads and writes as the API does. */
function streamedAnswer(
  blocks: string,
  stopReason: string,
  usage: { input: number; cacheWrite: number; cacheRead: number; output: number },
): string {
  return (
    event('message_start', {
      message: {
        ...MESSAGE,
        content: [],
        stop_reason: null,
        usage: {
          input_tokens: usage.input,
          cache_creation_input_tokens: usage.cacheWrite,
          cache_read_input_tokens: usage.cacheRead,
          output_tokens: 1,
        },
      },
    }) +
    blocks +
    event('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: usage.output },
    }) +
    event('message_stop')
  );
}

function toolUse(index: number, id: string, name: string, input: string): string {
  return (
    event('content_block_start', {
      index,
      content_block: { type: 'tool_use', id, name, input: {} },
    }) +
    event('content_block_delta', {
      index,
      delta: { type: 'input_json_delta', partial_json: input },
    }) +
    event('content_block_stop', { index })
  );
}

function text(index: number, value: string): string {
  return (
    event('content_block_start', { index, content_block: { type: 'text', text: '' } }) +
    event('content_block_delta', { index, delta: { type: 'text_delta', text: value } }) +
    event('content_block_stop', { index })
  );
}

function llmRequest(baseUrl: string, overrides: Partial<LlmRequest> = {}): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'anthropic', apiKey: API_KEY, baseUrl },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 3 * 4?' }])],
    tools: [ADD_TOOL, MULTIPLY_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...overrides,
  };
}

/** Every `cache_control` in a body, with the JSON path that holds it, sorted by path. */
function breakpoints(value: unknown): Array<[string, unknown]> {
  return breakpointsUnder(value, '').sort(([left], [right]) => left.localeCompare(right));
}

function breakpointsUnder(value: unknown, path: string): Array<[string, unknown]> {
  if (Array.isArray(value)) {
    return value.flatMap((entry, index) => breakpointsUnder(entry, `${path}[${index}]`));
  }
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(
    ([key, entry]): Array<[string, unknown]> =>
      key === 'cache_control'
        ? [[path, entry]]
        : breakpointsUnder(entry, path === '' ? key : `${path}.${key}`),
  );
}

/** The body with every `cache_control` taken out: what the cache compares. */
function withoutBreakpoints(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (key, entry) =>
    key === 'cache_control' ? undefined : entry,
  );
}

describe('anthropic driver: prompt caching', () => {
  it('places breakpoints on the system prompt, the last tool and the last block of the last message by default', async () => {
    const server = await startFakeServer([json(200, MESSAGE)]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const request = llmRequest(server.baseUrl, {
      sessionId,
      messages: [
        newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 3 * 4?' }]),
        newMessage(sessionId, 2, 'agent', [
          { type: 'tool_call', id: 'toolu_1', name: 'multiply', arguments: { a: 3, b: 4 } },
        ]),
        newMessage(sessionId, 3, 'tool_result', [
          { type: 'tool_result', toolCallId: 'toolu_1', content: '12', isError: false },
        ]),
      ],
    });

    await new AnthropicDriver({ streaming: false }).generate(request);

    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      system: [{ type: 'text', text: 'You are a calculator.', cache_control: EPHEMERAL }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'What is 3 * 4?' }] },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'multiply', input: { a: 3, b: 4 } }],
        },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'toolu_1',
              content: '12',
              cache_control: EPHEMERAL,
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
          cache_control: EPHEMERAL,
        },
      ],
    });
  });

  it('skips empty parts: no system prompt, no tools, and thinking blocks never carry a breakpoint', async () => {
    const server = await startFakeServer([json(200, MESSAGE)]);
    const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
    const request = llmRequest(server.baseUrl, {
      sessionId,
      systemPrompt: '   ',
      tools: [],
      messages: [
        newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'Think, then start.' }]),
        // An assistant message whose last blocks are thinking: the breakpoint goes on its text.
        newMessage(sessionId, 2, 'agent', [
          { type: 'text', text: 'Let me see.' },
          { type: 'reasoning', text: 'Three fours.', signature: 'sig_1' },
          { type: 'reasoning', text: '', redactedData: 'opaque' },
          { type: 'text', text: '' },
        ]),
      ],
    });

    await new AnthropicDriver({ streaming: false }).generate(request);

    const body = server.requests[0]?.body as Record<string, unknown>;
    expect(body).not.toHaveProperty('system');
    expect(body).not.toHaveProperty('tools');
    expect(breakpoints(body)).toEqual([['messages[1].content[0]', EPHEMERAL]]);
    expect((body.messages as Array<{ content: unknown[] }>)[1]?.content[0]).toEqual({
      type: 'text',
      text: 'Let me see.',
      cache_control: EPHEMERAL,
    });
  });

  it('moves the message breakpoint to the latest message over a 3-iteration tool loop while system and tools keep theirs', async () => {
    const server = await startFakeServer([
      sse([
        streamedAnswer(toolUse(0, 'toolu_01Multiply', 'multiply', '{"a": 3, "b": 4}'), 'tool_use', {
          input: 900,
          cacheWrite: 1500,
          cacheRead: 0,
          output: 30,
        }),
      ]),
      sse([
        streamedAnswer(toolUse(0, 'toolu_02Add', 'add', '{"a": 12, "b": 1}'), 'tool_use', {
          input: 40,
          cacheWrite: 60,
          cacheRead: 1500,
          output: 25,
        }),
      ]),
      sse([
        streamedAnswer(text(0, '13'), 'end_turn', {
          input: 30,
          cacheWrite: 50,
          cacheRead: 1560,
          output: 5,
        }),
      ]),
    ]);
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

    const result = await runtime.runTextTurn(session.sessionId(), 'What is 3 * 4 + 1?');

    expect(result).toMatchObject({ success: true, response: '13', iterations: 3 });
    const bodies = server.requests.map(
      (request) =>
        request.body as {
          system: unknown;
          tools: unknown[];
          messages: Array<{ content: Array<Record<string, unknown>> }>;
        },
    );
    expect(bodies).toHaveLength(3);
    const lastTool = `tools[${bodies[0]!.tools.length - 1}]`;
    expect(bodies.map((body) => breakpoints(body))).toEqual([
      [
        ['messages[0].content[0]', EPHEMERAL],
        ['system[0]', EPHEMERAL],
        [lastTool, EPHEMERAL],
      ],
      [
        ['messages[2].content[0]', EPHEMERAL],
        ['system[0]', EPHEMERAL],
        [lastTool, EPHEMERAL],
      ],
      [
        ['messages[4].content[0]', EPHEMERAL],
        ['system[0]', EPHEMERAL],
        [lastTool, EPHEMERAL],
      ],
    ]);
    expect(bodies.map((body) => body.messages.length)).toEqual([1, 3, 5]);
    for (const [index, body] of bodies.entries()) {
      // The breakpoint sits on the last block of the last message sent.
      const last = body.messages.at(-1)?.content.at(-1);
      expect(last?.cache_control).toEqual(EPHEMERAL);
      const next = bodies[index + 1];
      if (!next) continue;
      // Request N+1 starts with exactly what request N sent up to its breakpoint, so it reads
      // the entry N wrote; system and tools are the same, breakpoints and all.
      expect(next.system).toEqual(body.system);
      expect(next.tools).toEqual(body.tools);
      expect(withoutBreakpoints(next.messages.slice(0, body.messages.length))).toEqual(
        withoutBreakpoints(body.messages),
      );
    }
    // Cache reads and writes are reported apart in the turn's usage, summed over the loop.
    const completed = runtime
      .events(session.sessionId())
      .find((entry) => entry.type === 'turn.completed');
    expect(completed?.data.usage).toEqual({
      inputTokens: 900 + 1500 + (40 + 60 + 1500) + (30 + 50 + 1560),
      outputTokens: 60,
      cachedInputTokens: 3060,
      cacheWriteInputTokens: 1610,
    });
    await runtime.close();
  });

  it('sends no breakpoint with promptCaching false, and only the chosen ones with an object', async () => {
    const replies = Array.from({ length: 4 }, () => json(200, MESSAGE));
    const server = await startFakeServer(replies);
    const cases: Array<[AnthropicPromptCaching, string[]]> = [
      [false, []],
      [{ system: false }, ['messages[0].content[0]', 'tools[1]']],
      [{ tools: false, messages: false }, ['system[0]']],
      [{ system: false, tools: false, messages: false }, []],
    ];
    for (const [promptCaching] of cases) {
      await new AnthropicDriver({ streaming: false, promptCaching }).generate(
        llmRequest(server.baseUrl),
      );
    }

    expect(
      server.requests.map((request) => breakpoints(request.body).map(([path]) => path)),
    ).toEqual(cases.map(([, paths]) => paths));
    // Without a system breakpoint the system prompt goes as a plain string, as before.
    expect(server.requests[0]?.body).toMatchObject({ system: 'You are a calculator.' });
    expect(server.requests[1]?.body).toMatchObject({ system: 'You are a calculator.' });
  });

  it('sends the ttl on every breakpoint when one is set', async () => {
    const server = await startFakeServer([json(200, MESSAGE), json(200, MESSAGE)]);
    await new AnthropicDriver({ streaming: false, promptCaching: { ttl: '1h' } }).generate(
      llmRequest(server.baseUrl),
    );
    await new AnthropicDriver({ streaming: false, promptCaching: { ttl: '5m' } }).generate(
      llmRequest(server.baseUrl),
    );

    expect(breakpoints(server.requests[0]?.body)).toEqual([
      ['messages[0].content[0]', { type: 'ephemeral', ttl: '1h' }],
      ['system[0]', { type: 'ephemeral', ttl: '1h' }],
      ['tools[1]', { type: 'ephemeral', ttl: '1h' }],
    ]);
    expect(breakpoints(server.requests[1]?.body).map(([, value]) => value)).toEqual([
      { type: 'ephemeral', ttl: '5m' },
      { type: 'ephemeral', ttl: '5m' },
      { type: 'ephemeral', ttl: '5m' },
    ]);
  });

  it('refuses a bad promptCaching option with INVALID_INPUT when the driver is built', () => {
    const bad: Array<[unknown, string]> = [
      [{ ttl: '2h' }, 'ttl'],
      [{ system: 'yes' }, 'system'],
      [{ everything: true }, 'everything'],
      ['on', 'promptCaching'],
    ];
    for (const [promptCaching, named] of bad) {
      let caught: unknown;
      try {
        new AnthropicDriver({ promptCaching: promptCaching as AnthropicPromptCaching });
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({
        code: 'INVALID_INPUT',
        details: { option: 'promptCaching' },
      });
      expect((caught as Error).message).toContain(named);
    }
  });

  it('reports cache reads and writes apart without streaming too', async () => {
    const server = await startFakeServer([
      json(200, {
        ...MESSAGE,
        usage: {
          input_tokens: 5,
          cache_creation_input_tokens: 70,
          cache_read_input_tokens: 1200,
          output_tokens: 3,
        },
      }),
    ]);

    const response = await new AnthropicDriver({ streaming: false }).generate(
      llmRequest(server.baseUrl),
    );

    expect(response.usage).toEqual({
      inputTokens: 1275,
      outputTokens: 3,
      cachedInputTokens: 1200,
      cacheWriteInputTokens: 70,
    });
  });
});
