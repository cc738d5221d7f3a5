// A TurnStepChain passes what one step of a turn leaves to the step run right after it by the same
// caller (as a host job that runs its turn's next steps itself): an act step right after a reason
// step that stored a new answer does not look for stored results of its calls. A step read back
// (a new chain) or a replayed reason step leaves nothing, so the act step looks them up and still
// runs nothing twice.
import { InputMessage, newId } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import {
  executeTurnStep,
  initialTurnStep,
  type RuntimeTurnStep,
  settleTurn,
  TurnStepChain,
  turnStepKey,
} from './host-entry.js';
import { computeRuntime } from './test-support.js';

async function setup() {
  const { runtime, sessionId, runs, lookups } = await computeRuntime();
  const firstStep = initialTurnStep({
    sessionId,
    turnId: newId('turn'),
    input: InputMessage.user('compute'),
  });
  /** The step as a host keeps it: plain JSON. */
  const stored = (step: RuntimeTurnStep): unknown => JSON.parse(JSON.stringify(step));
  return { runtime, adapter: runtime.hostAdapter, sessionId, firstStep, stored, runs, lookups };
}

const toolLookups = (lookups: string[]) => lookups.filter((key) => key.includes('/tool/'));

describe('TurnStepChain', () => {
  it('spares the act step right after a fresh answer the lookup of stored results', async () => {
    const { runtime, adapter, sessionId, firstStep, stored, runs, lookups } = await setup();
    const chain = new TurnStepChain();
    const keys: string[] = [];
    let step: RuntimeTurnStep | null = firstStep;
    let outcome = await executeTurnStep(adapter, stored(step), { chain });
    keys.push(turnStepKey(step));
    while (outcome.next) {
      step = outcome.next;
      keys.push(turnStepKey(step));
      outcome = await executeTurnStep(adapter, stored(step), { chain });
    }
    const result = await settleTurn(adapter, outcome.plan);
    expect(result).toMatchObject({ success: true, response: 'done', toolCallsCount: 2 });
    expect(keys.map((key) => key.split('/').slice(1).join('/'))).toEqual([
      'input/0',
      'reason/1',
      'act/1',
      'reason/2',
    ]);
    expect(runs).toEqual(['add', 'multiply']);
    expect(toolLookups(lookups)).toEqual([]);
    const roles = (await runtime.messages(sessionId)).map((message) => message.role);
    expect(roles).toEqual(['user', 'agent', 'tool_result', 'tool_result', 'agent']);
  });

  it('carries nothing into a new chain or past a replayed reason step: the act step looks, runs nothing twice', async () => {
    for (const variant of ['new chain', 'replayed reason'] as const) {
      const { adapter, firstStep, stored, runs, lookups } = await setup();
      const chain = new TurnStepChain();
      const input = await executeTurnStep(adapter, stored(firstStep), { chain });
      const reason = input.next as RuntimeTurnStep;
      let answer = await executeTurnStep(adapter, stored(reason), { chain });
      if (variant === 'replayed reason') {
        // The same reason step run again (a retry after a crash): its answer is already stored.
        answer = await executeTurnStep(adapter, stored(reason), { chain });
      }
      const act = answer.next as RuntimeTurnStep;
      expect(act.activity).toBe('act');
      await executeTurnStep(adapter, stored(act), {
        chain: variant === 'new chain' ? new TurnStepChain() : chain,
      });
      expect(runs).toEqual(['add', 'multiply']);
      expect(toolLookups(lookups)).toHaveLength(2);
      // Run again from its stored plan, the act step finds both results and runs nothing.
      await executeTurnStep(adapter, stored(act), { chain: new TurnStepChain() });
      expect(runs).toEqual(['add', 'multiply']);
    }
  });

  it('refuses a chain that is not an object', async () => {
    const { adapter, firstStep, stored } = await setup();
    await expect(
      executeTurnStep(adapter, stored(firstStep), { chain: 'x' as unknown as TurnStepChain }),
    ).rejects.toThrow(TypeError);
  });
});
