import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  InputMessage,
  type LlmDriver,
  type LlmRequest,
  type LlmResponse,
  newId,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import {
  executeTurnStep,
  initialTurnState,
  initialTurnStep,
  planNextHostTurn,
  type RuntimeTurnStep,
  settleTurn,
} from './host-entry.js';
import { InProcessRuntimeBuilder } from './index.js';

// The planner carries the last model answer's responseId to the next model call of the same
// turn as `LlmRequest.previousResponseId` (upstream's previous_response_id): through the act
// step, through persisted JSON steps, and never into a new turn.

interface Recorded {
  turnId: string;
  iteration: number;
  previousResponseId: string | undefined;
}

/**
 * A driver answering each turn with one call to `add`, then a text; every answer has a fresh
 * `resp_<n>` id (or none, when `withIds` says so), and every request is recorded.
 */
function recordingDriver(withIds: (call: number) => boolean = () => true) {
  const recorded: Recorded[] = [];
  const driver: LlmDriver = {
    providerType: 'recording',
    async generate(request: LlmRequest): Promise<LlmResponse> {
      recorded.push({
        turnId: request.turnId,
        iteration: request.iteration,
        previousResponseId: request.previousResponseId,
      });
      const call = recorded.length;
      const base = {
        usage: { inputTokens: 1, outputTokens: 1 },
        ...(withIds(call) ? { responseId: `resp_${call}` } : {}),
      };
      return request.iteration === 1
        ? {
            ...base,
            text: '',
            toolCalls: [{ id: `call_${call}`, name: 'add', arguments: { a: 2, b: call } }],
            stopReason: 'tool_calls',
          }
        : { ...base, text: `done ${call}`, toolCalls: [], stopReason: 'end_turn' };
    },
  };
  return { driver, recorded };
}

async function runtimeWith(driver: LlmDriver) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({ model: 'recorder', providerType: 'recording' })
    .singleSession((session) => session.harness('math', 'You add.').withCapability('test_math'))
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

describe('previousResponseId from the planner to the driver', () => {
  it('carries the answer id through the act step of a tool loop and clears it at the next turn', async () => {
    const { driver, recorded } = recordingDriver();
    const { runtime, sessionId } = await runtimeWith(driver);
    const first = await runtime.runTextTurn(sessionId, 'Add.');
    const second = await runtime.runTextTurn(sessionId, 'Add again.');
    expect(first).toMatchObject({ success: true, response: 'done 2', toolCallsCount: 1 });
    expect(second).toMatchObject({ success: true, response: 'done 4' });
    expect(
      recorded.map(({ iteration, previousResponseId }) => ({ iteration, previousResponseId })),
    ).toEqual([
      { iteration: 1, previousResponseId: undefined },
      { iteration: 2, previousResponseId: 'resp_1' },
      { iteration: 1, previousResponseId: undefined },
      { iteration: 2, previousResponseId: 'resp_3' },
    ]);
    expect(recorded[2]?.turnId).not.toBe(recorded[0]?.turnId);
    // The id the driver continues from is on the stored agent message it belongs to.
    const agents = (await runtime.backends.messages.load(sessionId)).filter(
      (message) => message.role === 'agent',
    );
    expect(agents.map((message) => message.metadata?.responseId)).toEqual([
      'resp_1',
      'resp_2',
      'resp_3',
      'resp_4',
    ]);
    await runtime.close();
  });

  it('sends no previousResponseId after an answer that had no id', async () => {
    const { driver, recorded } = recordingDriver((call) => call !== 1);
    const { runtime, sessionId } = await runtimeWith(driver);
    await runtime.runTextTurn(sessionId, 'Add.');
    expect(recorded.map((entry) => entry.previousResponseId)).toEqual([undefined, undefined]);
    await runtime.close();
  });

  it('carries it through executeTurnStep with every step persisted as JSON, and not into the next turn', async () => {
    const { driver, recorded } = recordingDriver();
    const { runtime, sessionId } = await runtimeWith(driver);
    const steps: RuntimeTurnStep[] = [];
    for (const text of ['one', 'two']) {
      let step: RuntimeTurnStep | null = initialTurnStep({
        sessionId,
        turnId: newId('turn'),
        input: InputMessage.user(text),
      });
      for (;;) {
        const persisted: unknown = JSON.parse(JSON.stringify(step));
        steps.push(persisted as RuntimeTurnStep);
        const outcome = await executeTurnStep(runtime.hostAdapter, persisted);
        if (!outcome.next) {
          await settleTurn(runtime.hostAdapter, outcome.plan);
          break;
        }
        step = outcome.next;
      }
    }
    expect(recorded.map((entry) => entry.previousResponseId)).toEqual([
      undefined,
      'resp_1',
      undefined,
      'resp_3',
    ]);
    // The act step of each turn carries the id of the answer whose calls it runs.
    const acts = steps.filter((step) => step.activity === 'act');
    expect(acts.map((step) => step.act.previousResponseId)).toEqual(['resp_1', 'resp_3']);
    expect(acts.map((step) => step.state.previousResponseId)).toEqual(['resp_1', 'resp_3']);
    await runtime.close();
  });
});

describe('planNextHostTurn and previousResponseId', () => {
  const state = {
    ...initialTurnState({ sessionId: 'session_1', turnId: 'turn_1' }),
    iteration: 1,
  };
  const reasonOutput = (responseId?: string, toolCalls: unknown[] = []) => ({
    success: true,
    text: 'hi',
    toolCalls,
    replayed: false,
    ...(responseId ? { responseId } : {}),
  });

  it('keeps it for a reason step scheduled by user messages that came meanwhile (steering)', () => {
    const plan = planNextHostTurn('reason', state, reasonOutput('resp_a'), 1);
    expect(plan.kind).toBe('scheduleReason');
    expect(plan.state.previousResponseId).toBe('resp_a');
  });

  it('keeps it in the resume state of a turn waiting for client tool results', () => {
    const acting = { ...state, previousResponseId: 'resp_a' };
    const plan = planNextHostTurn('act', acting, {
      results: [],
      waitingForToolResults: true,
      blocked: false,
      callSignature: 'sig',
    });
    expect(plan.kind).toBe('waitForToolResults');
    expect(plan.kind === 'waitForToolResults' ? plan.resume.previousResponseId : '').toBe('resp_a');
  });

  it('replaces it with the newest answer’s id, drops it after an answer without one, clears it at input', () => {
    const carried = { ...state, previousResponseId: 'resp_old' };
    expect(planNextHostTurn('reason', carried, reasonOutput('resp_new'), 1).state).toMatchObject({
      previousResponseId: 'resp_new',
    });
    expect(
      planNextHostTurn('reason', carried, reasonOutput(undefined), 1).state,
    ).not.toHaveProperty('previousResponseId');
    const input = planNextHostTurn('input', carried, {
      turnId: 'turn_1',
      messageId: 'message_1',
      seq: 3,
    });
    expect(input.kind).toBe('scheduleReason');
    expect(input.state).not.toHaveProperty('previousResponseId');
  });
});
