import { InputMessage, newId } from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import {
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  forOrganization,
  initialTurnState,
  planNextHostTurn,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
} from '@everruns-ts/runtime/host';
import { describe, expect, it } from 'vitest';
import { memoryCapability } from './index.js';

/** Runs one turn through the host activities, as a durable host would. */
async function hostTurn(adapter: RuntimeHostAdapter, sessionId: string): Promise<void> {
  const turnId = newId('turn');
  let state = initialTurnState({ sessionId, turnId, maxIterations: 5 });
  let activity: 'input' | 'reason' | 'act' = 'input';
  let output: unknown = await executeInputActivity(adapter, {
    sessionId,
    turnId,
    input: InputMessage.user('go'),
  });
  for (;;) {
    const plan = planNextHostTurn(activity, state, output);
    state = plan.state;
    if (plan.kind === 'scheduleReason') {
      activity = 'reason';
      output = await executeReasonActivity(adapter, state);
    } else if (plan.kind === 'scheduleAct') {
      activity = 'act';
      output = await executeActActivity(adapter, plan.act);
    } else if (plan.kind === 'complete') {
      await new RuntimeSessionLifecycle(adapter, sessionId).turnEnded(plan.state, plan.outcome);
      return;
    } else {
      throw new Error(`unexpected plan ${plan.kind}`);
    }
  }
}

describe('memory of a multi-tenant host', () => {
  it("keeps each organisation's memories apart for the same agent", async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(memoryCapability)
      .llmSim(
        LlmSimConfig.sequence([
          'saving',
          'saved',
          'looking',
          'found',
          'looking',
          'found',
        ]).withToolCallSequence([
          [{ id: 'r1', name: 'remember', arguments: { key: 'plan', content: 'acme plan' } }],
          [],
          [{ id: 'q1', name: 'recall', arguments: { query: 'plan' } }],
          [],
          [{ id: 'q2', name: 'recall', arguments: { query: 'plan' } }],
          [],
        ]),
      )
      .singleSession((s) => s.harness('h', '').agent('shared', '').agentCapability('memory'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const acme = forOrganization(runtime.hostAdapter, 'org_acme');
    const globex = forOrganization(runtime.hostAdapter, 'org_globex');
    await hostTurn(acme, sessionId);
    await hostTurn(globex, sessionId);
    await hostTurn(acme, sessionId);
    const results = new Map(
      (await runtime.messages(sessionId)).flatMap((m) =>
        m.content.flatMap((p) => (p.type === 'tool_result' ? [[p.toolCallId, p.content]] : [])),
      ) as Array<[string, string]>,
    );
    // Globex's recall ran and found nothing of Acme's.
    expect(JSON.parse(results.get('q1') ?? 'null')).toMatchObject({ count: 0 });
    expect(results.get('q1')).not.toContain('acme plan');
    expect(results.get('q2')).toContain('acme plan');
    await runtime.close();
  });
});
