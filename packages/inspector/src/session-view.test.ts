import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { buildTimeline, buildTurns, replayHostPlan } from './session-view.js';

async function runtimeWith(
  config: LlmSimConfig,
  options: { maxIterations?: number; maxRepeatedToolCalls?: number } = {},
) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(config)
    .limits(
      options.maxRepeatedToolCalls ? { maxRepeatedToolCalls: options.maxRepeatedToolCalls } : {},
    )
    .singleSession((session) => {
      session.harness(`math-${crypto.randomUUID()}`, 'You add.').withCapability('test_math');
      if (options.maxIterations) session.maxIterations(options.maxIterations);
    })
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

async function replay(
  runtime: Awaited<ReturnType<typeof runtimeWith>>['runtime'],
  sessionId: string,
) {
  const context = await runtime.loadContext(sessionId);
  const session = await runtime.getSession(sessionId);
  return replayHostPlan(sessionId, await runtime.messages(sessionId), runtime.events(sessionId), {
    maxIterations: context.maxIterations,
    ...(session ? { sessionStatus: session.status } : {}),
  });
}

describe('replayHostPlan', () => {
  it('is undefined for a session without a turn', async () => {
    const { runtime, sessionId } = await runtimeWith(LlmSimConfig.fixed('hi'));
    expect(await replay(runtime, sessionId)).toBeUndefined();
  });

  it('replays a tool-using turn to the same end the runtime recorded', async () => {
    const { runtime, sessionId } = await runtimeWith(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([
        [{ name: 'add', arguments: { a: 2, b: 2 } }],
        [],
      ]),
    );
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const view = await replay(runtime, sessionId);
    expect(view?.turnId).toBe(result.turnId);
    expect(view?.steps.map((step) => `${step.completedActivity}>${step.decision}`)).toEqual([
      'input>scheduleReason',
      'reason>scheduleAct',
      'act>scheduleReason',
      'reason>complete',
    ]);
    expect(view?.plan).toMatchObject({
      kind: 'complete',
      outcome: { success: true, response: '4', stopReason: 'end_turn' },
      state: { iteration: result.iterations, toolCallsCount: result.toolCallsCount },
    });
    expect(view?.recordedEnd).toEqual({ type: 'turn.completed', stopReason: 'end_turn' });
    expect(view?.inProgress).toBeUndefined();
  });

  it('replays a failing model call to llm_error', async () => {
    const { runtime, sessionId } = await runtimeWith(
      LlmSimConfig.fromFunction(() => {
        throw new Error('provider down');
      }),
    );
    const result = await runtime.runTextTurn(sessionId, 'Hello?');
    expect(result.stopReason).toBe('llm_error');
    const view = await replay(runtime, sessionId);
    expect(view?.plan).toMatchObject({
      kind: 'complete',
      outcome: { success: false, stopReason: 'llm_error' },
    });
    expect(view?.recordedEnd).toEqual({ type: 'turn.failed', stopReason: 'llm_error' });
  });

  it('replays the iteration limit from the session overlay', async () => {
    const { runtime, sessionId } = await runtimeWith(
      LlmSimConfig.fromFunction((_request, { index }) => ({
        toolCalls: [{ name: 'add', arguments: { a: index, b: 1 } }],
      })),
      { maxIterations: 2 },
    );
    const result = await runtime.runTextTurn(sessionId, 'Count.');
    expect(result.stopReason).toBe('max_iterations');
    const view = await replay(runtime, sessionId);
    expect(view?.state.maxIterations).toBe(2);
    expect(view?.plan).toMatchObject({
      kind: 'complete',
      outcome: { success: true, stopReason: 'max_iterations' },
    });
  });

  it('replays the repeated-call limit from the call signatures', async () => {
    const { runtime, sessionId } = await runtimeWith(
      LlmSimConfig.fixed('again').withToolCalls([{ name: 'add', arguments: { b: 1, a: 1 } }]),
      { maxRepeatedToolCalls: 2 },
    );
    const result = await runtime.runTextTurn(sessionId, 'Loop.');
    expect(result.stopReason).toBe('repeated_tool_calls');
    const view = await runtime.loadContext(sessionId).then(async (context) =>
      replayHostPlan(sessionId, await runtime.messages(sessionId), runtime.events(sessionId), {
        maxIterations: context.maxIterations,
        maxRepeatedToolCalls: 2,
      }),
    );
    expect(view?.plan).toMatchObject({
      kind: 'complete',
      outcome: { success: false, stopReason: 'repeated_tool_calls' },
      state: { repeatedCallCount: 2, lastCallSignature: 'add:{"a":1,"b":1}' },
    });
  });

  it('plans the act step of a turn whose reason step is stored but whose tools have not run', async () => {
    const { runtime, sessionId } = await runtimeWith(LlmSimConfig.fixed('done'));
    await runtime.runTextTurn(sessionId, 'First.');
    const messages = await runtime.messages(sessionId);
    const events = runtime.events(sessionId);
    const turnId = messages[0]?.turnId as string;
    const agent = messages.find((message) => message.role === 'agent');
    // The same history, cut right after a reason step that asked for a tool.
    const cut = [
      messages[0],
      {
        ...agent,
        content: [{ type: 'tool_call' as const, id: 'call_x', name: 'add', arguments: { a: 1 } }],
      },
    ] as typeof messages;
    const cutEvents = events.filter(
      (event) => event.type !== 'turn.completed' && event.type !== 'session.idled',
    );
    const view = replayHostPlan(sessionId, cut, cutEvents);
    expect(view?.turnId).toBe(turnId);
    expect(view?.plan.kind).toBe('scheduleAct');
    expect(view?.inProgress).toBe('act step scheduled: 1 tool call(s) without a result');
  });
});

describe('buildTimeline and buildTurns', () => {
  it('interleaves messages and events with every event after the message it points at', async () => {
    const { runtime, sessionId } = await runtimeWith(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([
        [{ name: 'add', arguments: { a: 2, b: 2 } }],
        [],
      ]),
    );
    await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const messages = await runtime.messages(sessionId);
    const events = runtime.events(sessionId);
    const timeline = buildTimeline(messages, events);
    expect(timeline).toHaveLength(messages.length + events.length);
    const position = new Map<string, number>();
    timeline.forEach((entry, index) => {
      if (entry.kind === 'message') position.set(entry.message.id, index);
    });
    timeline.forEach((entry, index) => {
      if (entry.kind !== 'event') return;
      const messageId = entry.event.data.messageId;
      if (typeof messageId === 'string') expect(position.get(messageId)).toBeLessThan(index);
    });
    const [turn] = buildTurns(messages, events);
    expect(turn).toMatchObject({
      status: 'completed',
      input: 'What is 2 + 2?',
      response: '4',
      iterations: 2,
      stopReason: 'end_turn',
      models: ['llmsim-model'],
    });
    expect(turn?.toolCalls).toEqual([
      expect.objectContaining({
        name: 'add',
        arguments: { a: 2, b: 2 },
        status: 'completed',
        isError: false,
        result: JSON.stringify({ result: 4, operation: 'add', a: 2, b: 2 }),
        durationMs: expect.any(Number),
      }),
    ]);
  });
});
