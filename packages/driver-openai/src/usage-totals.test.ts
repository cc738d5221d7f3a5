import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { closeFakeServers, json, sse, startFakeServer } from '@everruns-ts/driver-test-support';
import { HarnessBuilder, InProcessRuntimeBuilder, SessionBuilder } from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver, OpenAiResponsesDriver } from './index.js';

// Usage accounting end to end: what a local OpenAI-compatible server reports for each call is
// what the turn results, the stored messages and `sessionUsage` add up to, and prices turn it
// into cost per turn and per session.

afterEach(closeFakeServers);

interface ReportedUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cached?: number;
  reasoning?: number;
}

function completion(
  model: string,
  usage: ReportedUsage,
  message: { content: string | null; add?: [number, number]; callId?: string },
) {
  return json(200, {
    id: `chatcmpl-${Math.random().toString(36).slice(2)}`,
    object: 'chat.completion',
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content,
          ...(message.add
            ? {
                tool_calls: [
                  {
                    id: message.callId,
                    type: 'function',
                    function: {
                      name: 'add',
                      arguments: JSON.stringify({ a: message.add[0], b: message.add[1] }),
                    },
                  },
                ],
              }
            : {}),
        },
        finish_reason: message.add ? 'tool_calls' : 'stop',
      },
    ],
    usage: {
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      total_tokens: usage.prompt_tokens + usage.completion_tokens,
      prompt_tokens_details: { cached_tokens: usage.cached ?? 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: usage.reasoning ?? 0, audio_tokens: 0 },
    },
  });
}

describe('usage totals from an OpenAI-compatible server', () => {
  it('turn results, stored messages and sessionUsage equal the sum of the reported usage, priced per model', async () => {
    const reported: Array<{ model: string; usage: ReportedUsage }> = [
      {
        model: 'gpt-4.1-mini-2025-04-14',
        usage: { prompt_tokens: 1200, completion_tokens: 30, cached: 1024 },
      },
      { model: 'gpt-4.1-mini-2025-04-14', usage: { prompt_tokens: 1300, completion_tokens: 12 } },
      {
        model: 'gpt-4.1-mini-2025-04-14',
        usage: { prompt_tokens: 1400, completion_tokens: 40, cached: 1280 },
      },
      {
        model: 'o4-mini-2025-04-16',
        usage: { prompt_tokens: 2048, completion_tokens: 900, cached: 1920, reasoning: 832 },
      },
    ];
    const server = await startFakeServer(
      [
        // Turn 1: a tool call, then the answer.
        completion(reported[0]!.model, reported[0]!.usage, {
          content: null,
          add: [2, 3],
          callId: 'call_1',
        }),
        completion(reported[1]!.model, reported[1]!.usage, { content: 'It is 5.' }),
        // Turn 2: a plain answer.
        completion(reported[2]!.model, reported[2]!.usage, { content: 'Still here.' }),
        // Turn 3: the server reports another model (priced by its own entry).
        completion(reported[3]!.model, reported[3]!.usage, { content: '42' }),
      ],
      { basePath: '/v1' },
    );
    const harness = new HarnessBuilder('adder', 'You add.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiDriver({ streaming: false }))
      .defaultModel({
        model: 'gpt-4.1-mini',
        providerType: 'openai',
        apiKey: 'sk-test-usage',
        baseUrl: server.baseUrl,
      })
      .prices({
        'gpt-4.1-mini': { inputPerMillion: 0.4, outputPerMillion: 1.6, cachedInputPerMillion: 0.1 },
        'o4-mini': { inputPerMillion: 1.1, outputPerMillion: 4.4, cachedInputPerMillion: 0.275 },
      })
      .harness(harness.build())
      .session(session.build())
      .build();
    const sessionId = session.sessionId();

    const first = await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    const second = await runtime.runTextTurn(sessionId, 'Are you there?');
    const third = await runtime.runTextTurn(sessionId, 'Think hard.');
    expect([first.success, second.success, third.success]).toEqual([true, true, true]);
    expect(server.requests).toHaveLength(4);

    const ours = reported.map(({ usage }) => ({
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
      ...(usage.cached ? { cachedInputTokens: usage.cached } : {}),
      ...(usage.reasoning ? { reasoningTokens: usage.reasoning } : {}),
    }));
    // Each call's usage is stored with its agent message, as the server reported it.
    const stored = (await runtime.messages(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(stored.map((message) => message.metadata?.usage)).toEqual(ours);
    expect(stored.map((message) => message.metadata?.model)).toEqual(reported.map((r) => r.model));

    expect(first.usage).toEqual({ inputTokens: 2500, outputTokens: 42, cachedInputTokens: 1024 });
    expect(second.usage).toEqual({ inputTokens: 1400, outputTokens: 40, cachedInputTokens: 1280 });
    expect(third.usage).toEqual({
      inputTokens: 2048,
      outputTokens: 900,
      cachedInputTokens: 1920,
      reasoningTokens: 832,
    });

    const miniCost = (input: number, cached: number, output: number) =>
      ((input - cached) * 0.4 + cached * 0.1 + output * 1.6) / 1e6;
    expect(first.cost).toBeCloseTo(miniCost(1200, 1024, 30) + miniCost(1300, 0, 12), 12);
    expect(second.cost).toBeCloseTo(miniCost(1400, 1280, 40), 12);
    expect(third.cost).toBeCloseTo((128 * 1.1 + 1920 * 0.275 + 900 * 4.4) / 1e6, 12);

    const usage = await runtime.sessionUsage(sessionId);
    expect(usage.modelCalls).toBe(4);
    expect(usage.usage).toEqual({
      inputTokens: 1200 + 1300 + 1400 + 2048,
      outputTokens: 30 + 12 + 40 + 900,
      cachedInputTokens: 1024 + 1280 + 1920,
      reasoningTokens: 832,
    });
    expect(usage.byModel.map((entry) => [entry.model, entry.modelCalls])).toEqual([
      ['gpt-4.1-mini-2025-04-14', 3],
      ['o4-mini-2025-04-16', 1],
    ]);
    expect(usage.cost).toBeCloseTo(
      (first.cost ?? Number.NaN) + (second.cost ?? Number.NaN) + (third.cost ?? Number.NaN),
      12,
    );
    await runtime.close();
  });
});

/** What the server reports for one call, in our field names (the expected stored usage). */
function ourUsage(usage: ReportedUsage) {
  return {
    inputTokens: usage.prompt_tokens,
    outputTokens: usage.completion_tokens,
    ...(usage.cached ? { cachedInputTokens: usage.cached } : {}),
    ...(usage.reasoning ? { reasoningTokens: usage.reasoning } : {}),
  };
}

/** The per-field sum of several usages (a field present when any has it). */
function sumOf(usages: ReturnType<typeof ourUsage>[]) {
  const sum: Record<string, number> = { inputTokens: 0, outputTokens: 0 };
  for (const usage of usages) {
    for (const [key, value] of Object.entries(usage)) sum[key] = (sum[key] ?? 0) + value;
  }
  return sum;
}

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;

/** A streamed chat completion: deltas, then the usage chunk (`stream_options.include_usage`). */
function streamedCompletion(
  model: string,
  usage: ReportedUsage,
  message: { content?: string; add?: [number, number]; callId?: string },
) {
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    data({
      id: 'chatcmpl-stream',
      object: 'chat.completion.chunk',
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
      usage: null,
    });
  const pieces = [chunk({ role: 'assistant', content: '' })];
  if (message.content) pieces.push(chunk({ content: message.content }));
  if (message.add) {
    pieces.push(
      chunk({
        tool_calls: [
          {
            index: 0,
            id: message.callId,
            type: 'function',
            function: { name: 'add', arguments: '' },
          },
        ],
      }),
      chunk({
        tool_calls: [
          {
            index: 0,
            function: { arguments: JSON.stringify({ a: message.add[0], b: message.add[1] }) },
          },
        ],
      }),
    );
  }
  pieces.push(
    chunk({}, message.add ? 'tool_calls' : 'stop'),
    data({
      id: 'chatcmpl-stream',
      object: 'chat.completion.chunk',
      model,
      choices: [],
      usage: {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details: { cached_tokens: usage.cached ?? 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: usage.reasoning ?? 0, audio_tokens: 0 },
      },
    }),
    'data: [DONE]\n\n',
  );
  return sse(pieces);
}

/** One server-sent event of the Responses API. */
const responsesEvent = (type: string, payload: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: 0, ...payload })}\n\n`;

/** A streamed Responses API answer whose `response.completed` carries the usage. */
function streamedResponse(
  id: string,
  model: string,
  usage: ReportedUsage,
  item: { text?: string; add?: [number, number]; callId?: string },
) {
  const output = item.add
    ? {
        id: `fc_${id}`,
        type: 'function_call',
        status: 'completed',
        call_id: item.callId,
        name: 'add',
        arguments: JSON.stringify({ a: item.add[0], b: item.add[1] }),
      }
    : {
        id: `msg_${id}`,
        type: 'message',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: item.text ?? '', annotations: [] }],
      };
  const response = (status: string, items: unknown[]) => ({
    id,
    object: 'response',
    created_at: 1756315696,
    status,
    model,
    output: items,
    usage:
      status === 'completed'
        ? {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: { cached_tokens: usage.cached ?? 0 },
            output_tokens: usage.completion_tokens,
            output_tokens_details: { reasoning_tokens: usage.reasoning ?? 0 },
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
          }
        : null,
  });
  return sse([
    responsesEvent('response.created', { response: response('in_progress', []) }),
    responsesEvent('response.output_item.done', { output_index: 0, item: output }),
    responsesEvent('response.completed', { response: response('completed', [output]) }),
  ]);
}

describe('usage totals from an OpenAI-compatible server, streamed', () => {
  it('chat completions streamed (the driver default): every turn with tool calls adds up to what the usage chunks reported', async () => {
    const model = 'gpt-4.1-mini-2025-04-14';
    const reported: ReportedUsage[] = [
      { prompt_tokens: 900, completion_tokens: 25, cached: 768 },
      { prompt_tokens: 960, completion_tokens: 22, cached: 896 },
      { prompt_tokens: 1010, completion_tokens: 9 },
      { prompt_tokens: 1100, completion_tokens: 310, cached: 1024, reasoning: 288 },
    ];
    const server = await startFakeServer(
      [
        // Turn 1: two tool calls in a row, then the answer.
        streamedCompletion(model, reported[0]!, { add: [1, 2], callId: 'call_a' }),
        streamedCompletion(model, reported[1]!, { add: [3, 4], callId: 'call_b' }),
        streamedCompletion(model, reported[2]!, { content: '3 and 7.' }),
        // Turn 2: a reasoned answer.
        streamedCompletion(model, reported[3]!, { content: 'Done thinking.' }),
      ],
      { basePath: '/v1' },
    );
    const harness = new HarnessBuilder('adder', 'You add.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiDriver())
      .defaultModel({
        model: 'gpt-4.1-mini',
        providerType: 'openai',
        apiKey: 'sk-test-usage',
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .session(session.build())
      .build();
    const sessionId = session.sessionId();
    const first = await runtime.runTextTurn(sessionId, 'Add 1+2, then 3+4.');
    const second = await runtime.runTextTurn(sessionId, 'Think.');
    expect([first.success, second.success]).toEqual([true, true]);
    expect(server.requests).toHaveLength(4);
    // Every request asked for the usage chunk.
    for (const request of server.requests) {
      expect(request.body).toMatchObject({
        stream: true,
        stream_options: { include_usage: true },
      });
    }
    const ours = reported.map(ourUsage);
    const stored = (await runtime.messages(sessionId)).filter((m) => m.role === 'agent');
    expect(stored.map((message) => message.metadata?.usage)).toEqual(ours);
    expect(first.usage).toEqual(sumOf(ours.slice(0, 3)));
    expect(second.usage).toEqual(sumOf(ours.slice(3)));
    const usage = await runtime.sessionUsage(sessionId);
    expect(usage.modelCalls).toBe(4);
    expect(usage.usage).toEqual(sumOf(ours));
    expect(usage.byModel).toEqual([{ model, modelCalls: 4, usage: sumOf(ours) }]);
    await runtime.close();
  });

  it('the Responses API streamed: sessionUsage equals the sum of every response.completed usage', async () => {
    const model = 'gpt-5-mini-2025-08-07';
    const reported: ReportedUsage[] = [
      { prompt_tokens: 400, completion_tokens: 120, cached: 0, reasoning: 96 },
      { prompt_tokens: 560, completion_tokens: 40, cached: 384, reasoning: 16 },
      { prompt_tokens: 610, completion_tokens: 15, cached: 512 },
    ];
    const server = await startFakeServer(
      [
        streamedResponse('resp_1', model, reported[0]!, { add: [20, 22], callId: 'call_r1' }),
        streamedResponse('resp_2', model, reported[1]!, { text: 'It is 42.' }),
        streamedResponse('resp_3', model, reported[2]!, { text: 'Yes.' }),
      ],
      { basePath: '/v1' },
    );
    const harness = new HarnessBuilder('adder', 'You add.').capability('test_math');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(new OpenAiResponsesDriver())
      .defaultModel({
        model: 'gpt-5-mini',
        providerType: 'openai-responses',
        apiKey: 'sk-test-usage',
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .session(session.build())
      .build();
    const sessionId = session.sessionId();
    const first = await runtime.runTextTurn(sessionId, 'What is 20 + 22?');
    const second = await runtime.runTextTurn(sessionId, 'Sure?');
    expect([first.response, second.response]).toEqual(['It is 42.', 'Yes.']);
    expect(server.requests).toHaveLength(3);
    const ours = reported.map(ourUsage);
    const stored = (await runtime.messages(sessionId)).filter((m) => m.role === 'agent');
    expect(stored.map((message) => message.metadata?.usage)).toEqual(ours);
    expect(first.usage).toEqual(sumOf(ours.slice(0, 2)));
    expect(second.usage).toEqual(sumOf(ours.slice(2)));
    const usage = await runtime.sessionUsage(sessionId);
    expect(usage.modelCalls).toBe(3);
    expect(usage.usage).toEqual(sumOf(ours));
    await runtime.close();
  });
});
