import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  INTERRUPTED_TOOL_RESULT_TEXT,
  InputMessage,
  type LlmRequest,
  type Message,
  MISSING_TOOL_RESULT_TEXT,
  newId,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimResult } from '@everruns-ts/driver-llmsim';
import { InMemoryHarnessStore } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  executeTurnStep,
  initialTurnState,
  initialTurnStep,
  parseRuntimeTurnStep,
  planNextHostTurn,
  planResumeAfterToolResults,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
  SessionStorageToolCallJournal,
  settleTurn,
  TOOL_CALL_JOURNAL_KEY_PREFIX,
  turnStepKey,
} from './host-entry.js';
import { InProcessRuntimeBuilder, type TurnResult } from './index.js';

// ---------------------------------------------------------------------------------------------
// The planner on its own: every branch, determinism, STATE_INVALID.
// ---------------------------------------------------------------------------------------------

function state(overrides: Partial<RuntimeTurnState> = {}): RuntimeTurnState {
  return {
    ...initialTurnState({ sessionId: 'session_a', turnId: 'turn_a', maxIterations: 5 }),
    inputMessageId: 'msg_input',
    iteration: 1,
    ...overrides,
  };
}

const inputOutput = { turnId: 'turn_a', messageId: 'msg_input', seq: 1 };

function reasonOutput(overrides: Record<string, unknown> = {}) {
  return {
    success: true,
    messageId: 'msg_agent',
    text: 'hello',
    toolCalls: [],
    usage: { inputTokens: 10, outputTokens: 3 },
    replayed: false,
    ...overrides,
  };
}

function actOutput(overrides: Record<string, unknown> = {}) {
  return {
    results: [
      { toolCallId: 'c1', toolName: 'add', isError: false, messageId: 'm', replayed: false },
    ],
    waitingForToolResults: false,
    blocked: false,
    callSignature: 'add:{"a":1,"b":2}',
    ...overrides,
  };
}

const toolCall = { id: 'c1', name: 'add', arguments: { a: 1, b: 2 } };

describe('planNextHostTurn after input', () => {
  it('schedules the first reason step with the input message and the overlay limit', () => {
    const plan = planNextHostTurn('input', state({ iteration: 0, maxIterations: 50 }), {
      ...inputOutput,
      maxIterations: 7,
    });
    expect(plan).toEqual({
      kind: 'scheduleReason',
      state: state({ iteration: 1, maxIterations: 7 }),
    });
  });

  it('keeps the persisted limit when the input step is replayed mid-turn', () => {
    const plan = planNextHostTurn('input', state({ iteration: 3, maxIterations: 5 }), {
      ...inputOutput,
      maxIterations: 50,
    });
    expect(plan.state.maxIterations).toBe(5);
  });

  it('refuses an input output of another turn', () => {
    expect(() =>
      planNextHostTurn('input', state(), { ...inputOutput, turnId: 'turn_other' }),
    ).toThrow(expect.objectContaining({ code: 'STATE_INVALID' }));
  });
});

describe('planNextHostTurn after reason', () => {
  it('schedules an act for the tool calls of the same iteration and counts them', () => {
    const plan = planNextHostTurn(
      'reason',
      state({ iteration: 2, toolCallsCount: 1 }),
      reasonOutput({ toolCalls: [toolCall, { ...toolCall, id: 'c2' }], text: 'let me add' }),
    );
    expect(plan).toEqual({
      kind: 'scheduleAct',
      state: state({
        iteration: 2,
        toolCallsCount: 3,
        lastResponseText: 'let me add',
        usage: { inputTokens: 10, outputTokens: 3 },
      }),
      act: {
        sessionId: 'session_a',
        turnId: 'turn_a',
        iteration: 2,
        toolCalls: [toolCall, { ...toolCall, id: 'c2' }],
      },
    });
  });

  it('runs tool calls before steering messages that arrived meanwhile', () => {
    const plan = planNextHostTurn('reason', state(), reasonOutput({ toolCalls: [toolCall] }), 2);
    expect(plan.kind).toBe('scheduleAct');
  });

  it('reasons again for user messages that arrived meanwhile, below the limit', () => {
    const plan = planNextHostTurn('reason', state({ iteration: 2 }), reasonOutput(), 1);
    expect(plan).toMatchObject({ kind: 'scheduleReason', state: { iteration: 3 } });
  });

  it('completes instead of reasoning past the limit for steering messages', () => {
    const plan = planNextHostTurn('reason', state({ iteration: 5 }), reasonOutput(), 1);
    expect(plan).toMatchObject({ kind: 'complete', outcome: { stopReason: 'end_turn' } });
  });

  it('completes successfully with the answer when there is nothing more to do', () => {
    const plan = planNextHostTurn(
      'reason',
      state({ usage: { inputTokens: 1, outputTokens: 1 } }),
      reasonOutput(),
    );
    expect(plan).toEqual({
      kind: 'complete',
      state: state({ lastResponseText: 'hello', usage: { inputTokens: 11, outputTokens: 4 } }),
      outcome: { success: true, response: 'hello', stopReason: 'end_turn' },
    });
  });

  it('fails the turn with llm_error when the model call failed', () => {
    const error = { code: 'llm_error', message: 'provider down' };
    const plan = planNextHostTurn(
      'reason',
      state(),
      reasonOutput({ success: false, text: '', error, toolCalls: [toolCall] }),
    );
    expect(plan).toMatchObject({
      kind: 'complete',
      outcome: { success: false, stopReason: 'llm_error', error },
    });
  });

  it('gives a failed model call without details a generic llm_error', () => {
    const plan = planNextHostTurn('reason', state(), reasonOutput({ success: false, text: '' }));
    expect(plan).toMatchObject({
      kind: 'complete',
      outcome: { success: false, stopReason: 'llm_error', error: { code: 'llm_error' } },
    });
  });

  it('fails the turn as dependency_blocked when the session is blocked', () => {
    const blocker = { code: 'agent_disabled', message: 'blocked', dependencyId: 'agent_x' };
    const plan = planNextHostTurn(
      'reason',
      state(),
      reasonOutput({
        success: false,
        text: 'blocked',
        error: { code: 'DEPENDENCY_BLOCKED', message: 'blocked', details: { blocker } },
      }),
    );
    expect(plan).toMatchObject({
      kind: 'complete',
      outcome: { success: false, response: 'blocked', stopReason: 'dependency_blocked' },
    });
  });
});

describe('planNextHostTurn after act', () => {
  it('reasons again with the next iteration and remembers the call signature', () => {
    const plan = planNextHostTurn('act', state({ iteration: 2 }), actOutput());
    expect(plan).toEqual({
      kind: 'scheduleReason',
      state: state({ iteration: 3, lastCallSignature: 'add:{"a":1,"b":2}', repeatedCallCount: 1 }),
    });
  });

  it('completes with success and max_iterations at the persisted limit', () => {
    const plan = planNextHostTurn(
      'act',
      state({ iteration: 5, maxIterations: 5, lastResponseText: 'working' }),
      actOutput(),
    );
    expect(plan).toMatchObject({
      kind: 'complete',
      state: { iteration: 5 },
      outcome: { success: true, response: 'working', stopReason: 'max_iterations' },
    });
  });

  it('stops the same calls repeated maxRepeatedToolCalls times in a row', () => {
    const repeated = state({
      iteration: 3,
      maxRepeatedToolCalls: 3,
      lastCallSignature: 'add:{"a":1,"b":2}',
      repeatedCallCount: 2,
    });
    expect(planNextHostTurn('act', repeated, actOutput())).toMatchObject({
      kind: 'complete',
      outcome: {
        success: false,
        stopReason: 'repeated_tool_calls',
        error: { code: 'LIMIT_EXCEEDED' },
      },
    });
    expect(
      planNextHostTurn('act', repeated, actOutput({ callSignature: 'add:{"a":2,"b":2}' })),
    ).toMatchObject({ kind: 'scheduleReason', state: { repeatedCallCount: 1 } });
  });

  it('waits for client-side tool results and resumes at the next iteration', () => {
    const current = state({ iteration: 2 });
    const plan = planNextHostTurn('act', current, actOutput({ waitingForToolResults: true }));
    expect(plan).toEqual({
      kind: 'waitForToolResults',
      state: current,
      resume: { ...current, iteration: 3 },
    });
  });

  it('plans the continuation after tool results within the persisted limit', () => {
    expect(planResumeAfterToolResults(state({ iteration: 3 }))).toEqual({
      kind: 'scheduleReason',
      state: state({ iteration: 3 }),
    });
    expect(planResumeAfterToolResults(state({ iteration: 6, maxIterations: 5 }))).toMatchObject({
      kind: 'complete',
      state: { iteration: 5 },
      outcome: { success: true, stopReason: 'max_iterations' },
    });
    expect(() => planResumeAfterToolResults({ iteration: 'x' } as never)).toThrow(
      expect.objectContaining({ code: 'STATE_INVALID' }),
    );
  });

  it('fails the turn with the blocker of a session blocked before its act', () => {
    const blocker = { code: 'harness_disabled', message: 'harness off', dependencyId: 'h' };
    expect(
      planNextHostTurn('act', state(), actOutput({ blocked: true, results: [], blocker })),
    ).toMatchObject({
      kind: 'complete',
      outcome: {
        success: false,
        response: 'harness off',
        stopReason: 'dependency_blocked',
        error: { code: 'DEPENDENCY_BLOCKED', details: { blocker } },
      },
    });
    expect(
      planNextHostTurn('act', state(), actOutput({ blocked: true, results: [] })),
    ).toMatchObject({
      kind: 'complete',
      outcome: { success: false, stopReason: 'dependency_blocked' },
    });
  });
});

describe('planNextHostTurn as a pure function', () => {
  const cases: Array<[Parameters<typeof planNextHostTurn>[0], RuntimeTurnState, unknown, number]> =
    [
      ['input', state({ iteration: 0 }), inputOutput, 0],
      ['reason', state(), reasonOutput({ toolCalls: [toolCall] }), 0],
      ['reason', state(), reasonOutput(), 1],
      ['reason', state(), reasonOutput(), 0],
      ['act', state(), actOutput(), 0],
      ['act', state({ iteration: 5 }), actOutput(), 0],
      ['act', state(), actOutput({ waitingForToolResults: true }), 0],
    ];

  it('gives the same plan for the same stored state, every time and in any order', () => {
    const first = cases.map(([activity, s, output, pending]) =>
      JSON.stringify(planNextHostTurn(activity, s, output, pending)),
    );
    for (let round = 0; round < 20; round++) {
      const order = [...cases.keys()].sort(() => Math.random() - 0.5);
      for (const index of order) {
        const [activity, s, output, pending] = cases[index] as (typeof cases)[number];
        // Through JSON, as a host reading them back from a queue would see them.
        const plan = planNextHostTurn(
          activity,
          JSON.parse(JSON.stringify(s)),
          JSON.parse(JSON.stringify(output)),
          pending,
        );
        expect(JSON.stringify(plan)).toBe(first[index]);
      }
    }
  });

  it('never changes its arguments and returns plain JSON', () => {
    for (const [activity, s, output, pending] of cases) {
      const frozenState = deepFreeze(structuredClone(s));
      const frozenOutput = deepFreeze(structuredClone(output));
      const plan = planNextHostTurn(activity, frozenState, frozenOutput, pending);
      expect(frozenState).toEqual(s);
      expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    }
  });

  it('refuses a stored state or output that does not parse with STATE_INVALID', () => {
    const bad: Array<[string, unknown, unknown]> = [
      ['input', 'not a state', inputOutput],
      ['input', { ...state(), iteration: -1 }, inputOutput],
      ['input', { ...state(), maxIterations: 0 }, inputOutput],
      ['reason', { ...state(), sessionId: undefined }, reasonOutput()],
      ['reason', state(), { success: 'yes', text: '', toolCalls: [] }],
      ['reason', state(), reasonOutput({ toolCalls: [{ name: 'add' }] })],
      ['reason', state(), null],
      ['act', state(), { results: 'none' }],
      ['act', state(), actOutput({ callSignature: 42 })],
      ['act', null, actOutput()],
      ['compact', state(), {}],
    ];
    for (const [activity, s, output] of bad) {
      let thrown: unknown;
      try {
        planNextHostTurn(activity as 'act', s as RuntimeTurnState, output);
      } catch (error) {
        thrown = error;
      }
      expect(
        EverrunsError.hasCode(thrown, 'STATE_INVALID'),
        `${activity} ${JSON.stringify(s)}`,
      ).toBe(true);
    }
  });

  it('refuses a negative count of pending user messages as a programming error', () => {
    expect(() => planNextHostTurn('reason', state(), reasonOutput(), -1)).toThrow(TypeError);
  });
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Host activities driven by a hand-written mini host that persists JSON between steps.
// ---------------------------------------------------------------------------------------------

class SimulatedCrash extends Error {}

interface Checkpoint {
  /** The JSON of the next step, as a host would keep it in a queue or a table. */
  json: string;
}

interface MiniHostOptions {
  signal?: AbortSignal;
  /** Throws {@link SimulatedCrash} after this activity's writes are stored, before planning. */
  crashAfter?: (activity: string, iteration: number) => boolean;
  /** Records the plans made. */
  plans?: RuntimeTurnPlan[];
}

/**
 * A host in a few lines: read the step from JSON, run its activity, pass the output through JSON,
 * plan, persist the next step as JSON. A crash leaves `checkpoint` at the step that was running.
 */
async function runMiniHost(
  adapter: RuntimeHostAdapter,
  checkpoint: Checkpoint,
  options: MiniHostOptions = {},
): Promise<TurnResult> {
  const signal = options.signal ? { signal: options.signal } : {};
  for (;;) {
    const step = JSON.parse(checkpoint.json);
    let output: unknown;
    if (step.activity === 'input') {
      output = await executeInputActivity(adapter, {
        sessionId: step.state.sessionId,
        turnId: step.state.turnId,
        input: step.input,
      });
    } else if (step.activity === 'reason') {
      output = await executeReasonActivity(adapter, step.state, signal);
    } else {
      output = await executeActActivity(adapter, step.act, signal);
    }
    output = JSON.parse(JSON.stringify(output));
    if (options.crashAfter?.(step.activity, step.state.iteration)) throw new SimulatedCrash();
    const plan = planNextHostTurn(step.activity, step.state, output);
    options.plans?.push(plan);
    if (plan.kind === 'scheduleReason') {
      checkpoint.json = JSON.stringify({ activity: 'reason', state: plan.state });
    } else if (plan.kind === 'scheduleAct') {
      checkpoint.json = JSON.stringify({ activity: 'act', state: plan.state, act: plan.act });
    } else if (plan.kind === 'waitForToolResults') {
      await new RuntimeSessionLifecycle(adapter, plan.state.sessionId).waitingForToolResults();
      return {
        turnId: plan.state.turnId,
        response: plan.state.lastResponseText,
        iterations: plan.state.iteration,
        toolCallsCount: plan.state.toolCallsCount,
        success: true,
        stopReason: 'waiting_for_tool_results',
        usage: plan.state.usage,
      };
    } else {
      await new RuntimeSessionLifecycle(adapter, plan.state.sessionId).turnEnded(
        plan.state,
        plan.outcome,
      );
      return {
        turnId: plan.state.turnId,
        response: plan.outcome.response,
        iterations: plan.state.iteration,
        toolCallsCount: plan.state.toolCallsCount,
        success: plan.outcome.success,
        stopReason: plan.outcome.stopReason,
        ...(plan.outcome.error ? { error: plan.outcome.error } : {}),
        usage: plan.state.usage,
      };
    }
  }
}

function firstCheckpoint(sessionId: string, text: string, maxIterations = 50): Checkpoint {
  const turnId = newId('turn');
  return {
    json: JSON.stringify({
      activity: 'input',
      input: InputMessage.user(text),
      state: initialTurnState({ sessionId, turnId, maxIterations }),
    }),
  };
}

/** A second host on the same stores: what a restarted process or another worker has. */
function anotherHost(adapter: RuntimeHostAdapter): RuntimeHostAdapter {
  return { ...adapter, setupCache: new Map() };
}

/** A model that answers each iteration from a script and counts its calls per iteration. */
function scriptedModel(script: (request: LlmRequest) => LlmSimResult) {
  const calls: Array<{ turnId: string; iteration: number }> = [];
  const config = LlmSimConfig.fromFunction((request) => {
    calls.push({ turnId: request.turnId, iteration: request.iteration });
    return script(request);
  });
  const callsOf = (iteration: number) =>
    calls.filter((call) => call.iteration === iteration).length;
  return { config, calls, callsOf };
}

/** Tools with observable side effects: how often each call ran. */
function effectsCapability() {
  const runs = new Map<string, number>();
  const gates = new Map<string, () => void>();
  const count = (id: string) => runs.set(id, (runs.get(id) ?? 0) + 1);
  const capability = defineCapability({
    id: 'effects',
    name: 'Effects',
    description: 'tools with side effects',
    tools: [
      defineTool({
        name: 'append_line',
        description: 'appends a line (not idempotent)',
        inputSchema: z.object({ line: z.string() }),
        execute: ({ line }, context) => {
          count(context.toolCallId);
          return `appended ${line}`;
        },
      }),
      defineTool({
        name: 'set_flag',
        description: 'sets a flag (idempotent)',
        idempotent: true,
        inputSchema: z.object({ flag: z.string() }),
        execute: ({ flag }, context) => {
          count(context.toolCallId);
          return `set ${flag}`;
        },
      }),
      defineTool({
        name: 'slow_append',
        description: 'appends, then waits until released (not idempotent)',
        inputSchema: z.object({ line: z.string() }),
        execute: ({ line }, context) => {
          count(context.toolCallId);
          return new Promise((resolve) => gates.set(context.toolCallId, () => resolve(line)));
        },
      }),
      defineTool({
        name: 'slow_flag',
        description: 'sets a flag, then waits until released (idempotent)',
        idempotent: true,
        inputSchema: z.object({ flag: z.string() }),
        execute: ({ flag }, context) => {
          count(context.toolCallId);
          if ((runs.get(context.toolCallId) ?? 0) > 1) return `set ${flag}`;
          return new Promise((resolve) => gates.set(context.toolCallId, () => resolve(flag)));
        },
      }),
      defineTool({
        name: 'ask_client',
        description: 'answered by the client',
        clientSide: true,
        inputSchema: z.object({}),
        execute: () => 'never runs here',
      }),
    ],
  });
  return { capability, runs };
}

async function hostRuntime(
  model: ReturnType<typeof scriptedModel>,
  options: { maxIterations?: number } = {},
) {
  const effects = effectsCapability();
  const builder = new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .capability(effects.capability)
    .llmSim(model.config)
    .singleSession((s) =>
      s
        .harness('host', 'You run tools.')
        .withCapability('test_math')
        .withCapability('effects')
        .agent('worker', 'Use the tools.'),
    );
  if (options.maxIterations) builder.limits({ maxIterations: options.maxIterations });
  const runtime = await builder.build();
  return {
    runtime,
    sessionId: runtime.defaultSessionId() as string,
    adapter: runtime.hostAdapter,
    runs: effects.runs,
  };
}

/** The invariants every recovered turn keeps. */
function expectConsistentHistory(messages: Message[]) {
  expect(messages.map((message) => message.seq)).toEqual(messages.map((_, index) => index + 1));
  const keys = messages.flatMap((message) =>
    message.idempotencyKey ? [message.idempotencyKey] : [],
  );
  expect(new Set(keys).size).toBe(keys.length);
  const calls = messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_call' ? [part.id] : [])),
  );
  const results = messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part.toolCallId] : [])),
  );
  expect([...results].sort()).toEqual([...calls].sort());
}

function toolResultOf(messages: Message[], toolCallId: string) {
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_result' && part.toolCallId === toolCallId) return part;
    }
  }
  return undefined;
}

const addThenAnswer = (request: LlmRequest): LlmSimResult =>
  request.iteration === 1
    ? { text: 'adding', toolCalls: [{ id: 'add_1', name: 'add', arguments: { a: 2, b: 2 } }] }
    : '4';

describe('host activities in a mini host loop', () => {
  it('ends a turn as runTurn does, with JSON state between every step', async () => {
    const model = scriptedModel(addThenAnswer);
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const other = await runtime.createSession({
      harnessId: (await runtime.getSession(sessionId))?.harnessId as string,
      agentId: (await runtime.getSession(sessionId))?.agentId as string,
    });

    const hosted = await runMiniHost(adapter, firstCheckpoint(sessionId, 'What is 2 + 2?'));
    const direct = await runtime.runTextTurn(other.id, 'What is 2 + 2?');

    const { turnId: _hostedTurn, ...hostedRest } = hosted;
    const { turnId: _directTurn, ...directRest } = direct;
    expect(hostedRest).toEqual(directRest);
    expect(hostedRest).toMatchObject({
      success: true,
      response: '4',
      iterations: 2,
      stopReason: 'end_turn',
    });
    const shape = (messages: Message[]) => messages.map((m) => [m.seq, m.role, m.content]);
    expect(shape(await runtime.messages(sessionId))).toEqual(
      shape(await runtime.messages(other.id)),
    );
    const types = (events: RuntimeEvent[]) => events.map((event) => event.type);
    expect(types(runtime.events(sessionId))).toEqual(types(runtime.events(other.id)));
    expect(types(runtime.events(sessionId))).toEqual([
      'input.message',
      'session.activated',
      'turn.started',
      'reason.started',
      'output.message.completed',
      'reason.completed',
      'tool.started',
      'tool.completed',
      'reason.started',
      'output.message.completed',
      'reason.completed',
      'turn.completed',
      'session.idled',
    ]);
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it('runs the same turn through executeTurnStep and settleTurn', async () => {
    const model = scriptedModel(addThenAnswer);
    const { sessionId, adapter, runtime } = await hostRuntime(model);
    let step: unknown = JSON.parse(
      JSON.stringify(
        initialTurnStep({ sessionId, turnId: newId('turn'), input: InputMessage.user('2+2?') }),
      ),
    );
    const keys: string[] = [];
    let result: TurnResult | undefined;
    while (!result) {
      keys.push(turnStepKey(parseRuntimeTurnStep(step)));
      const outcome = await executeTurnStep(anotherHost(adapter), step);
      if (outcome.next) step = JSON.parse(JSON.stringify(outcome.next));
      else result = await settleTurn(adapter, outcome.plan);
    }
    expect(result).toMatchObject({
      success: true,
      response: '4',
      iterations: 2,
      toolCallsCount: 1,
    });
    expect(keys.map((key) => key.split('/').slice(1).join('/'))).toEqual([
      'input/0',
      'reason/1',
      'act/1',
      'reason/2',
    ]);
    expectConsistentHistory(await runtime.messages(sessionId));
  });

  it('refuses a persisted step that does not parse with STATE_INVALID', async () => {
    const model = scriptedModel(addThenAnswer);
    const { sessionId, adapter } = await hostRuntime(model);
    const good = initialTurnStep({ sessionId, turnId: 'turn_x', input: InputMessage.user('hi') });
    const bad: unknown[] = [
      null,
      { ...good, activity: 'compact' },
      { ...good, input: { content: [] } },
      { activity: 'reason', state: { ...good.state, iteration: 'one' } },
      { activity: 'act', state: good.state, act: { sessionId, turnId: 'turn_x' } },
    ];
    for (const value of bad) {
      await expect(executeTurnStep(adapter, value)).rejects.toMatchObject({
        code: 'STATE_INVALID',
      });
    }
    expect(model.calls).toHaveLength(0);
    expect(await adapter.backends.messages.count(sessionId)).toBe(0);
  });

  it('does not call the model again for an answer stored before a crash', async () => {
    const model = scriptedModel(addThenAnswer);
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const checkpoint = firstCheckpoint(sessionId, '2+2?');
    await expect(
      runMiniHost(adapter, checkpoint, { crashAfter: (activity) => activity === 'reason' }),
    ).rejects.toBeInstanceOf(SimulatedCrash);
    expect(JSON.parse(checkpoint.json).activity).toBe('reason');

    const result = await runMiniHost(anotherHost(adapter), checkpoint);
    expect(result).toMatchObject({ success: true, response: '4', iterations: 2 });
    expect([model.callsOf(1), model.callsOf(2)]).toEqual([1, 1]);
    const messages = await runtime.messages(sessionId);
    expect(messages.map((m) => m.role)).toEqual(['user', 'agent', 'tool_result', 'agent']);
    expectConsistentHistory(messages);
  });

  it('calls the model again only for the step whose answer was not stored', async () => {
    const controller = new AbortController();
    const model = scriptedModel((request) => {
      if (request.iteration === 2 && model.callsOf(2) === 1) {
        controller.abort(new SimulatedCrash());
        throw new EverrunsError({ code: 'ABORTED', message: 'killed' });
      }
      return addThenAnswer(request);
    });
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const checkpoint = firstCheckpoint(sessionId, '2+2?');
    await expect(
      runMiniHost(adapter, checkpoint, { signal: controller.signal }),
    ).rejects.toMatchObject({ code: 'ABORTED' });

    const result = await runMiniHost(anotherHost(adapter), checkpoint);
    expect(result).toMatchObject({ success: true, response: '4' });
    expect([model.callsOf(1), model.callsOf(2)]).toEqual([1, 2]);
    expectConsistentHistory(await runtime.messages(sessionId));
  });

  it('gives a non-idempotent call interrupted by a crash a synthetic error result, without running it again', async () => {
    const model = scriptedModel((request) =>
      request.iteration === 1
        ? {
            toolCalls: [
              { id: 'first', name: 'append_line', arguments: { line: 'a' } },
              { id: 'second', name: 'slow_append', arguments: { line: 'b' } },
            ],
          }
        : 'done',
    );
    const { runtime, sessionId, adapter, runs } = await hostRuntime(model);
    const controller = new AbortController();
    const checkpoint = firstCheckpoint(sessionId, 'append twice');
    const crashed = runMiniHost(adapter, checkpoint, { signal: controller.signal });
    await waitUntil(() => runs.get('second') === 1);
    controller.abort(new SimulatedCrash());
    await expect(crashed).rejects.toMatchObject({ code: 'ABORTED' });
    // The first result was stored, the second call started and has no result.
    const before = await runtime.messages(sessionId);
    expect(toolResultOf(before, 'first')).toBeDefined();
    expect(toolResultOf(before, 'second')).toBeUndefined();
    expect(
      await adapter.backends.storage.listKeys(sessionId, TOOL_CALL_JOURNAL_KEY_PREFIX),
    ).toHaveLength(2);

    const result = await runMiniHost(anotherHost(adapter), checkpoint);
    expect(result).toMatchObject({ success: true, response: 'done', iterations: 2 });
    expect([runs.get('first'), runs.get('second')]).toEqual([1, 1]);
    const messages = await runtime.messages(sessionId);
    expect(toolResultOf(messages, 'second')).toEqual({
      type: 'tool_result',
      toolCallId: 'second',
      content: INTERRUPTED_TOOL_RESULT_TEXT,
      isError: true,
    });
    expectConsistentHistory(messages);
    // The model saw the synthetic result.
    expect(model.calls).toHaveLength(2);
    // Journal entries of a finished turn are dropped.
    expect(
      await adapter.backends.storage.listKeys(sessionId, TOOL_CALL_JOURNAL_KEY_PREFIX),
    ).toEqual([]);
  });

  it('runs an idempotent call interrupted by a crash again', async () => {
    const model = scriptedModel((request) =>
      request.iteration === 1
        ? { toolCalls: [{ id: 'flag', name: 'slow_flag', arguments: { flag: 'x' } }] }
        : 'done',
    );
    const { runtime, sessionId, adapter, runs } = await hostRuntime(model);
    const controller = new AbortController();
    const checkpoint = firstCheckpoint(sessionId, 'set a flag');
    const crashed = runMiniHost(adapter, checkpoint, { signal: controller.signal });
    await waitUntil(() => runs.get('flag') === 1);
    controller.abort(new SimulatedCrash());
    await expect(crashed).rejects.toMatchObject({ code: 'ABORTED' });

    await runMiniHost(anotherHost(adapter), checkpoint);
    expect(runs.get('flag')).toBe(2);
    const messages = await runtime.messages(sessionId);
    expect(toolResultOf(messages, 'flag')).toMatchObject({ content: 'set x', isError: false });
    expectConsistentHistory(messages);
  });

  it('never sends a model a tool call without its result, even when the crashed turn is abandoned', async () => {
    const model = scriptedModel((request) =>
      request.iteration === 1 && request.messages.length === 1
        ? { toolCalls: [{ id: 'stuck', name: 'slow_append', arguments: { line: 'b' } }] }
        : 'fine',
    );
    const { runtime, sessionId, adapter, runs } = await hostRuntime(model);
    const controller = new AbortController();
    const crashed = runMiniHost(adapter, firstCheckpoint(sessionId, 'one'), {
      signal: controller.signal,
    });
    await waitUntil(() => runs.get('stuck') === 1);
    controller.abort(new SimulatedCrash());
    await expect(crashed).rejects.toMatchObject({ code: 'ABORTED' });

    const context = await runtime.loadContext(sessionId);
    expect(toolResultOf([...context.messages], 'stuck')).toMatchObject({
      content: MISSING_TOOL_RESULT_TEXT,
      isError: true,
    });
    await runMiniHost(anotherHost(adapter), firstCheckpoint(sessionId, 'two'));
    expect(runs.get('stuck')).toBe(1);
  });

  it('keeps maxIterations = 5 across a crash after iteration 3: two more iterations, not five', async () => {
    let n = 0;
    const model = scriptedModel(() => ({
      text: 'more',
      toolCalls: [{ name: 'add', arguments: { a: 1, b: ++n } }],
    }));
    const { runtime, sessionId, adapter } = await hostRuntime(model, { maxIterations: 5 });
    const checkpoint = firstCheckpoint(sessionId, 'loop', 5);
    await expect(
      runMiniHost(adapter, checkpoint, {
        crashAfter: (activity, iteration) => activity === 'act' && iteration === 3,
      }),
    ).rejects.toBeInstanceOf(SimulatedCrash);
    expect(model.calls).toHaveLength(3);

    // The resuming host runs with a default limit of 50; the persisted state still says 5.
    const resumed = { ...anotherHost(adapter), limits: { ...adapter.limits, maxIterations: 50 } };
    const result = await runMiniHost(resumed, checkpoint);
    expect(result).toMatchObject({ success: true, stopReason: 'max_iterations', iterations: 5 });
    expect(model.calls.map((call) => call.iteration)).toEqual([1, 2, 3, 4, 5]);
    expectConsistentHistory(await runtime.messages(sessionId));
  });

  it('lets two hosts resume one step at once: every write once, one outcome', async () => {
    const model = scriptedModel((request) =>
      request.iteration === 1
        ? {
            text: 'working',
            toolCalls: [
              { id: 'line', name: 'append_line', arguments: { line: 'x' } },
              { id: 'flag', name: 'set_flag', arguments: { flag: 'y' } },
            ],
          }
        : 'finished',
    );
    const { runtime, adapter, runs } = await hostRuntime(model);
    const harnessId = (await runtime.getSession(runtime.defaultSessionId() as string))
      ?.harnessId as string;
    for (let trial = 0; trial < 25; trial++) {
      const session = await runtime.createSession({ harnessId });
      const checkpoint = firstCheckpoint(session.id, `trial ${trial}`);
      // Resume from the input step, the reason step or the act step.
      const stopAt = ['input', 'reason', 'act'][trial % 3] as string;
      if (stopAt !== 'input') {
        await runMiniHost(adapter, checkpoint, {
          crashAfter: (activity) =>
            (stopAt === 'reason' && activity === 'input') ||
            (stopAt === 'act' && activity === 'reason'),
        }).catch((error) => {
          if (!(error instanceof SimulatedCrash)) throw error;
        });
      }
      runs.clear();
      const [first, second] = await Promise.all([
        runMiniHost(anotherHost(adapter), { ...checkpoint }),
        runMiniHost(anotherHost(adapter), { ...checkpoint }),
      ]);
      expect(first).toEqual(second);
      expect(first).toMatchObject({ success: true, response: 'finished', iterations: 2 });
      const messages = await runtime.messages(session.id);
      expect(messages.map((m) => m.role)).toEqual([
        'user',
        'agent',
        'tool_result',
        'tool_result',
        'agent',
      ]);
      expectConsistentHistory(messages);
      // The non-idempotent call ran once; its result is the real one or the interrupted marker.
      expect(runs.get('line')).toBe(1);
      expect(toolResultOf(messages, 'line')?.content).toMatch(/^appended x$|interrupted/);
    }
  });

  it('claims a call once per key even when claims race in one process', async () => {
    const model = scriptedModel(() => 'x');
    const { adapter, sessionId } = await hostRuntime(model);
    const journal = new SessionStorageToolCallJournal(adapter.backends.storage);
    const claims = await Promise.all(
      Array.from({ length: 10 }, () => journal.claim(sessionId, 'turn_r', 'call_r')),
    );
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await journal.claim(sessionId, 'turn_r', 'call_other')).toBe(true);
  });

  it('sets the session idle before announcing a failed turn, as upstream', async () => {
    const model = scriptedModel(() => {
      throw new Error('provider down');
    });
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const seen: string[] = [];
    const statuses = adapter.backends.sessions;
    const unsubscribe = adapter.backends.events.subscribe?.((event) => {
      if (event.sessionId === sessionId) seen.push(event.type);
    });
    const recordingSessions = new Proxy(statuses, {
      get(target, property) {
        if (property === 'updateSessionStatus') {
          return async (id: string, status: Parameters<typeof target.updateSessionStatus>[1]) => {
            if (id === sessionId) seen.push(`status:${status}`);
            return target.updateSessionStatus(id, status);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const recordingAdapter: RuntimeHostAdapter = {
      ...adapter,
      backends: { ...adapter.backends, sessions: recordingSessions },
    };
    const result = await runMiniHost(recordingAdapter, firstCheckpoint(sessionId, 'hi'));
    unsubscribe?.();
    expect(result).toMatchObject({ success: false, stopReason: 'llm_error' });
    expect(seen).toEqual([
      'input.message',
      'status:active',
      'session.activated',
      'turn.started',
      'reason.started',
      'reason.completed',
      'status:idle',
      'turn.failed',
      'session.idled',
    ]);
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it('ends the turn with the blocker when the harness is disabled between reason and act', async () => {
    const model = scriptedModel(addThenAnswer);
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const checkpoint = firstCheckpoint(sessionId, '2+2?');
    await expect(
      runMiniHost(adapter, checkpoint, { crashAfter: (activity) => activity === 'reason' }),
    ).rejects.toBeInstanceOf(SimulatedCrash);
    // The answer with its tool call is stored; the resumed reason step replays it, then acts.
    expect(JSON.parse(checkpoint.json).activity).toBe('reason');

    // Another host sees the harness disabled in the meantime.
    const session = await runtime.getSession(sessionId);
    const [harness] = await adapter.backends.harnesses.getHarnessChain(
      session?.harnessId as string,
    );
    const disabled = new InMemoryHarnessStore();
    await disabled.addHarness({ ...(harness as NonNullable<typeof harness>), status: 'disabled' });
    const blockedHost = anotherHost({
      ...adapter,
      backends: { ...adapter.backends, harnesses: disabled },
    });
    const result = await runMiniHost(blockedHost, checkpoint);
    expect(result).toMatchObject({
      success: false,
      stopReason: 'dependency_blocked',
      error: { code: 'DEPENDENCY_BLOCKED', details: { blocker: { code: 'harness_disabled' } } },
    });
    const events = runtime.events(sessionId).filter((event) => event.turnId === result.turnId);
    expect(events.slice(-3).map((event) => event.type)).toEqual([
      'output.message.completed',
      'turn.failed',
      'session.idled',
    ]);
    expect(events.at(-2)?.data).toMatchObject({ errorCode: 'harness_disabled' });
    // Nothing ran: the tool call of the stored answer gets an error result saying why.
    expect(toolResultOf(await runtime.messages(sessionId), 'add_1')).toMatchObject({
      isError: true,
      content: expect.stringContaining('not run'),
    });
  });

  it('waits for client-side tool results and marks the session', async () => {
    const model = scriptedModel(() => ({
      toolCalls: [{ id: 'client', name: 'ask_client', arguments: {} }],
    }));
    const { runtime, sessionId, adapter } = await hostRuntime(model);
    const plans: RuntimeTurnPlan[] = [];
    const result = await runMiniHost(adapter, firstCheckpoint(sessionId, 'ask'), { plans });
    expect(result).toMatchObject({
      success: true,
      stopReason: 'waiting_for_tool_results',
      iterations: 1,
    });
    expect(plans.at(-1)).toMatchObject({ kind: 'waitForToolResults', resume: { iteration: 2 } });
    expect((await runtime.getSession(sessionId))?.status).toBe('waiting_for_tool_results');
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
