import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { closeFakeServers, json, startFakeServer } from '@everruns-ts/driver-test-support';
import { HarnessBuilder, InProcessRuntimeBuilder, SessionBuilder } from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver } from './index.js';

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
