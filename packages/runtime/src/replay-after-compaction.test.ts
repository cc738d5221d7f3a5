// A reason step replayed after later steps of its turn ran (a host job retried from an older
// checkpoint) reads a turn snapshot whose history may have been compacted past the turn's input
// and past the step's own answer. It finds that answer by its idempotency key instead of calling
// the model for an iteration already answered.
import { describe, expect, it } from 'vitest';
import { executeActActivity, executeReasonActivity, type RuntimeActPlan } from './host-entry.js';
import { computeRuntime, firstAnswer } from './test-support.js';

describe('a reason step replayed on a compacted history', () => {
  it('finds its answer by key when the snapshot was cut past it, and calls no model', async () => {
    const { runtime, sessionId } = await computeRuntime();
    const adapter = runtime.hostAdapter;
    const { reasonState, answer, plan } = await firstAnswer(runtime, sessionId);
    await executeActActivity(adapter, (plan as { act: RuntimeActPlan }).act, { freshCalls: true });
    const messages = await runtime.backends.messages.load(sessionId);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
    ]);
    const session = await runtime.backends.sessions.getSession(sessionId);
    const modelCalls = () =>
      runtime.events(sessionId).filter((event) => event.type === 'reason.started').length;
    const before = modelCalls();
    // The history as a compaction through the answer would leave it: the two tool results.
    const replayed = await executeReasonActivity(adapter, reasonState, {
      turnSnapshot: {
        session: session!,
        harnessChain: null,
        agent: null,
        messages: messages.slice(2),
      },
    });
    expect(replayed).toMatchObject({ replayed: true, messageId: answer.messageId });
    expect(replayed.toolCalls).toEqual(answer.toolCalls);
    expect(modelCalls()).toBe(before);
    await runtime.close();
  });
});
