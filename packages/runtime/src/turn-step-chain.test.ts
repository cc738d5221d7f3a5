// A TurnStepChain passes what one step of a turn leaves to the step run right after it by the same
// caller (as a host job that runs its turn's next steps itself): an act step right after a reason
// step that stored a new answer does not look for stored results of its calls. A step read back
// (a new chain) or a replayed reason step leaves nothing, so the act step looks them up and still
// runs nothing twice.
import { defineCapability, defineTool, InputMessage, newId } from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  executeTurnStep,
  initialTurnStep,
  type RuntimeTurnStep,
  settleTurn,
  TurnStepChain,
  turnStepKey,
} from './host-entry.js';
import { InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

async function setup() {
  const runs: string[] = [];
  const tool = (name: string) =>
    defineTool({
      name,
      description: `${name} two numbers`,
      inputSchema: z.object({ a: z.number(), b: z.number() }),
      execute: ({ a, b }) => {
        runs.push(name);
        return name === 'add' ? a + b : a * b;
      },
    });
  const backends = inMemoryBackends();
  const lookups: string[] = [];
  const getByIdempotencyKey = backends.messages.getByIdempotencyKey.bind(backends.messages);
  backends.messages.getByIdempotencyKey = (sessionId: string, key: string) => {
    lookups.push(key);
    return getByIdempotencyKey(sessionId, key);
  };
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(
      defineCapability({
        id: 'calc',
        name: 'Calc',
        description: 'Numbers',
        tools: [tool('add'), tool('multiply')],
      }),
    )
    .llmSim(
      LlmSimConfig.fromFunction((request) =>
        request.messages.at(-1)?.role === 'user'
          ? {
              toolCalls: [
                { name: 'add', arguments: { a: 2, b: 2 } },
                { name: 'multiply', arguments: { a: 3, b: 3 } },
              ],
            }
          : 'done',
      ),
    )
    .singleSession((s) => s.harness('h', 'You compute.').withCapability('calc'))
    .build();
  const sessionId = runtime.defaultSessionId() as string;
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
