// The act step after a reason step that just stored its answer in this process does not look for
// stored results of its calls (none can exist), while a step run again from its plan (a host's
// retry) still finds them and runs nothing twice; an idempotent tool is never claimed in the
// tool-call journal (it runs again after a crash either way).
import { InputMessage, newId } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import {
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  initialTurnState,
  planNextHostTurn,
  type RuntimeActPlan,
} from './host-entry.js';
import { computeRuntime, firstAnswer } from './test-support.js';

describe('the act step after a fresh answer', () => {
  it('runs each call once without looking for stored results in an in-process turn', async () => {
    const { runtime, sessionId, runs, lookups } = await computeRuntime();
    const result = await runtime.runTextTurn(sessionId, 'compute');
    expect(result.success).toBe(true);
    expect(runs).toEqual(['add', 'multiply']);
    expect(lookups.filter((key) => key.includes('/tool/'))).toEqual([]);
    const messages = await runtime.backends.messages.load(sessionId);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
      'agent',
    ]);
    await runtime.close();
  });

  it('a step run again from its plan finds the stored results and runs nothing twice', async () => {
    const { runtime, sessionId, runs } = await computeRuntime();
    const adapter = runtime.hostAdapter;
    const { plan } = await firstAnswer(runtime, sessionId);
    expect(plan.kind).toBe('scheduleAct');
    const act = (plan as { act: RuntimeActPlan }).act;
    const first = await executeActActivity(adapter, act, { freshCalls: true });
    expect(first.results.map((entry) => entry.replayed)).toEqual([false, false]);
    // The host's queue delivers the step again (its ack was lost): a retry never says fresh.
    const again = await executeActActivity(adapter, act);
    expect(again.results.map((entry) => entry.replayed)).toEqual([true, true]);
    expect(again.results.map((entry) => entry.messageId)).toEqual(
      first.results.map((entry) => entry.messageId),
    );
    expect(runs).toEqual(['add', 'multiply']);
    await runtime.close();
  });

  it('claims only the non-idempotent calls in the journal', async () => {
    const { runtime, sessionId, runs } = await computeRuntime();
    const adapter = runtime.hostAdapter;
    const turnId = newId('turn');
    const state = initialTurnState({ sessionId, turnId, maxIterations: 5 });
    await executeInputActivity(adapter, { sessionId, turnId, input: InputMessage.user('go') });
    const reason = await executeReasonActivity(adapter, state);
    const plan = planNextHostTurn('reason', state, reason);
    const act = (plan as { act: RuntimeActPlan }).act;
    const asked: string[] = [];
    // As after a crash: every call is reported as started.
    const result = await executeActActivity(adapter, act, {
      wasStarted: (toolCallId) => {
        asked.push(act.toolCalls.find((call) => call.id === toolCallId)!.name);
        return true;
      },
      onToolStarted: () => {},
    });
    expect(asked).toEqual(['multiply']);
    // The idempotent call ran again; the other got the "interrupted" error result.
    expect(runs).toEqual(['add']);
    expect(result.results.map((entry) => [entry.toolName, entry.isError])).toEqual([
      ['add', false],
      ['multiply', true],
    ]);
    await runtime.close();
  });
});
