import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  EverrunsError,
  isProviderNotConfigured,
  modelFailureText,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder } from './index.js';

/** A runtime whose model answers with `answers` in turn, each a text, tool calls or an error. */
async function runtimeAnswering(answers: Array<string | { toolCall: true } | { error: unknown }>) {
  let call = 0;
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(
      LlmSimConfig.fromFunction(() => {
        const answer = answers[call++] ?? 'done';
        if (typeof answer === 'string') return answer;
        if ('error' in answer) throw answer.error;
        return {
          text: 'adding first',
          toolCalls: [{ id: `c${call}`, name: 'add', arguments: { a: 1, b: 2 } }],
        };
      }),
    )
    .singleSession((s) => s.harness('h', 'You add.').withCapability('test_math'))
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

function failedEvent(events: RuntimeEvent[]) {
  const failed = events.filter((event) => event.type === 'turn.failed');
  expect(failed).toHaveLength(1);
  return failed[0]?.data ?? {};
}

describe('a failed turn', () => {
  it('keeps its tool-call count and answers with the user-facing failure text, also on turn.failed', async () => {
    const { runtime, sessionId } = await runtimeAnswering([
      { toolCall: true },
      { error: new Error('upstream 503: overloaded') },
    ]);
    const result = await runtime.runTextTurn(sessionId, 'add 1 and 2');
    expect(result).toMatchObject({
      success: false,
      stopReason: 'llm_error',
      iterations: 2,
      toolCallsCount: 1,
      response: modelFailureText('llm_error'),
      error: { code: 'llm_error', message: expect.stringContaining('overloaded') },
    });
    // The user-facing text does not leak the provider's message.
    expect(result.response).not.toContain('overloaded');
    expect(failedEvent(runtime.events(sessionId))).toMatchObject({
      toolCallsCount: 1,
      iterations: 2,
      stopReason: 'llm_error',
      response: modelFailureText('llm_error'),
      error: { code: 'llm_error' },
    });
    // Nothing is stored for the failed step: the history ends with the tool result.
    const roles = (await runtime.messages(sessionId)).map((message) => message.role);
    expect(roles).toEqual(['user', 'agent', 'tool_result']);
    await runtime.close();
  });

  it('classifies a missing provider setup as provider_not_configured, not llm_error', async () => {
    for (const error of [
      new EverrunsError({
        code: 'CONFIGURATION',
        message: 'No OpenAI API key: set apiKey on the model',
      }),
      new EverrunsError({ code: 'DRIVER_NOT_FOUND', message: 'No driver for provider x' }),
      new EverrunsError({ code: 'PROVIDER_NOT_CONFIGURED', message: 'no key' }),
    ]) {
      expect(isProviderNotConfigured(error)).toBe(true);
      const { runtime, sessionId } = await runtimeAnswering([{ error }]);
      const result = await runtime.runTextTurn(sessionId, 'hi');
      expect(result).toMatchObject({
        success: false,
        stopReason: 'provider_not_configured',
        toolCallsCount: 0,
        response: modelFailureText('provider_not_configured'),
        error: {
          code: 'provider_not_configured',
          message: error.message,
          details: { errorCode: error.code },
        },
      });
      expect(failedEvent(runtime.events(sessionId))).toMatchObject({
        stopReason: 'provider_not_configured',
        errorCode: 'provider_not_configured',
        response: modelFailureText('provider_not_configured'),
      });
      // The session is usable again: the next turn runs.
      expect((await runtime.getSession(sessionId))?.status).toBe('idle');
      await runtime.close();
    }
    expect(isProviderNotConfigured(new EverrunsError({ code: 'LLM_ERROR', message: 'x' }))).toBe(
      false,
    );
    expect(isProviderNotConfigured(new Error('CONFIGURATION'))).toBe(false);
  });

  it('streams the same failure: the turn-finish part carries the failure text', async () => {
    const { runtime, sessionId } = await runtimeAnswering([{ error: new Error('boom') }]);
    const parts = [];
    for await (const part of runtime.streamTextTurn(sessionId, 'hi')) parts.push(part);
    const finish = parts.find((part) => part.type === 'turn-finish');
    expect(finish).toMatchObject({
      result: { success: false, stopReason: 'llm_error', response: modelFailureText('llm_error') },
    });
    await runtime.close();
  });
});
