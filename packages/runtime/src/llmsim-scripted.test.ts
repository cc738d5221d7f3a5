import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder, LlmSimConfig, LlmSimTurn } from './index.js';

async function runtimeWith(config: LlmSimConfig) {
  return new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(config)
    .singleSession((session) =>
      session.harness('calculator', 'Use the tools.').withCapability('test_math'),
    )
    .build();
}

describe('upstream llmsim configurations through a runtime turn', () => {
  it('drives tool calls then an answer from scripted turns, then fails once exhausted', async () => {
    const runtime = await runtimeWith(
      LlmSimConfig.scripted([
        LlmSimTurn.toolCalls([{ name: 'add', arguments: { a: 2, b: 3 } }]),
        LlmSimTurn.assistant('The sum is 5.'),
      ]).withOnExhausted('error'),
    );
    const sessionId = runtime.defaultSessionId() as string;
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    expect(result).toMatchObject({ success: true, response: 'The sum is 5.', toolCallsCount: 1 });
    const toolResult = (await runtime.messages(sessionId))
      .flatMap((message) => message.content)
      .find((part) => part.type === 'tool_result');
    expect(toolResult).toMatchObject({ toolCallId: 'call_llmsim_0_0', isError: false });

    const exhausted = await runtime.runTextTurn(sessionId, 'Again?');
    expect(exhausted.success).toBe(false);
    expect(exhausted.error?.message).toContain('llmsim scripted config exhausted');
  });

  it('fails a turn with the error configuration and a scripted rate limit', async () => {
    const failing = await runtimeWith(LlmSimConfig.error('provider down'));
    const failed = await failing.runTextTurn(failing.defaultSessionId() as string, 'hi');
    expect(failed.success).toBe(false);
    expect(failed.error?.message).toContain('LLM error: provider down');

    const limited = await runtimeWith(
      LlmSimConfig.scripted([LlmSimTurn.error('rate_limit'), LlmSimTurn.assistant('back')]),
    );
    const sessionId = limited.defaultSessionId() as string;
    const first = await limited.runTextTurn(sessionId, 'hi');
    expect(first.success).toBe(false);
    expect(first.error?.message).toContain('Rate limit exceeded');
    expect(await limited.runTextTurn(sessionId, 'hi again')).toMatchObject({
      success: true,
      response: 'back',
    });
  });
});
