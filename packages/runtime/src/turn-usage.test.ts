import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { initialTurnState, runtimeTurnStateSchema } from './host-entry.js';
import { InProcessRuntimeBuilder } from './index.js';

describe('turn usage details', () => {
  it('sums cached, cache-write and reasoning tokens over a multi-iteration turn into turn.completed and session.idled', async () => {
    let call = 0;
    const usages = [
      { inputTokens: 100, outputTokens: 40, cachedInputTokens: 10, reasoningTokens: 30 },
      { inputTokens: 150, outputTokens: 20, cacheWriteInputTokens: 50 },
      { inputTokens: 200, outputTokens: 5, cachedInputTokens: 140, reasoningTokens: 2 },
    ];
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.fromFunction(() => {
          const index = call++;
          return index < 2
            ? {
                toolCalls: [{ name: 'add', arguments: { a: index, b: 1 } }],
                usage: usages[index],
              }
            : { text: 'done', usage: usages[index] };
        }),
      )
      .singleSession((s) =>
        s.harness('math', 'Math.').withCapability('test_math').agent('math-agent', 'Use tools.'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;

    const result = await runtime.runTextTurn(sessionId, 'add twice');

    expect(result).toMatchObject({ success: true, iterations: 3, toolCallsCount: 2 });
    const expected = {
      inputTokens: 450,
      outputTokens: 65,
      cachedInputTokens: 150,
      cacheWriteInputTokens: 50,
      reasoningTokens: 32,
    };
    const events = runtime.events(sessionId);
    expect(events.find((event) => event.type === 'turn.completed')?.data.usage).toEqual(expected);
    expect(events.find((event) => event.type === 'session.idled')?.data.usage).toEqual(expected);
    const stored = (await runtime.messages(sessionId))
      .filter((message) => message.role === 'agent')
      .map((message) => message.metadata?.usage);
    expect(stored).toEqual(usages);
    await runtime.close();
  });

  it('still reads a persisted turn state whose usage has only the two totals', () => {
    const old = {
      ...initialTurnState({ sessionId: 'session_a', turnId: 'turn_a' }),
      usage: { inputTokens: 7, outputTokens: 3 },
    };
    expect(runtimeTurnStateSchema.parse(JSON.parse(JSON.stringify(old))).usage).toEqual({
      inputTokens: 7,
      outputTokens: 3,
    });
  });
});
