import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  type Message,
  messageText,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { WAITING_TURN_KEY_PREFIX } from './host-entry.js';
import { type InProcessRuntime, InProcessRuntimeBuilder } from './index.js';

let serverRuns = 0;
const browser = defineCapability({
  id: 'browser',
  name: 'Browser',
  description: 'tools the client runs',
  tools: [
    defineTool({
      name: 'ask_user',
      description: 'asks the user a question in the client',
      inputSchema: z.object({ question: z.string() }),
      clientSide: true,
      execute: () => {
        serverRuns++;
        throw new Error('a client-side tool must not run on the server');
      },
    }),
  ],
});

async function clientRuntime(config: LlmSimConfig, maxIterations?: number) {
  const builder = new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .capability(browser)
    .llmSim(config)
    .singleSession((s) =>
      s
        .harness('h', 'You help.')
        .withCapability('test_math')
        .withCapability('browser')
        .agent('a', 'Use tools.'),
    );
  if (maxIterations !== undefined) builder.limits({ maxIterations });
  const runtime = await builder.build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

const ask = (id: string, question = 'colour?') => ({
  id,
  name: 'ask_user',
  arguments: { question },
});
const add = (id: string) => ({ id, name: 'add', arguments: { a: 2, b: 3 } });

function toolResultParts(messages: Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

async function expectCode(promise: Promise<unknown>, code: string) {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(EverrunsError.hasCode(error, code as never)).toBe(true);
}

describe('InProcessRuntime.submitToolResults', () => {
  it('pauses on a client-side call, takes its result and finishes the turn', async () => {
    const runsBefore = serverRuns;
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.sequence(['asking', 'blue it is']).withToolCallSequence([
        [ask('q1'), add('m1')],
        [],
      ]),
    );
    const paused = await runtime.runTextTurn(sessionId, 'pick a colour');
    expect(paused).toMatchObject({
      success: true,
      stopReason: 'waiting_for_tool_results',
      iterations: 1,
      toolCallsCount: 2,
    });
    expect((await runtime.getSession(sessionId))?.status).toBe('waiting_for_tool_results');
    // The server-side call ran; the client-side one waits.
    expect(toolResultParts(await runtime.messages(sessionId)).map((p) => p.toolCallId)).toEqual([
      'm1',
    ]);

    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'q1', content: 'blue' },
    ]);
    expect(done).toMatchObject({
      turnId: paused.turnId,
      success: true,
      response: 'blue it is',
      stopReason: 'end_turn',
      iterations: 2,
      toolCallsCount: 2,
    });
    expect(serverRuns).toBe(runsBefore);
    const messages = await runtime.messages(sessionId);
    expect(messages.map((m) => m.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
      'agent',
    ]);
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(messages[3]).toMatchObject({ idempotencyKey: `${paused.turnId}/tool/q1` });
    expect(toolResultParts(messages)[1]).toMatchObject({
      toolCallId: 'q1',
      content: 'blue',
      isError: false,
    });
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
    // The resumed reason step saw the client's result.
    const context = runtime.turnContext(paused.turnId);
    expect(
      context?.messages.some((m) =>
        m.content.some((p) => p.type === 'tool_result' && p.content === 'blue'),
      ),
    ).toBe(true);
    // The waiting state is gone: a second submission is refused.
    expect(
      await runtime.backends.storage.listKeys(sessionId, WAITING_TURN_KEY_PREFIX),
    ).toHaveLength(0);
    await expectCode(
      runtime.submitToolResults(sessionId, paused.turnId, [{ toolCallId: 'q1', content: 'x' }]),
      'INVALID_INPUT',
    );
    const types = runtime.events(sessionId).map((e) => e.type);
    expect(types.filter((t) => t === 'turn.completed')).toHaveLength(1);
    expect(types.at(-1)).toBe('session.idled');
  });

  it('keeps waiting until every pending call has a result, and stores error results', async () => {
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.sequence(['', 'thanks']).withToolCallSequence([[ask('a'), ask('b')], []]),
    );
    const paused = await runtime.runTextTurn(sessionId, 'ask twice');
    const first = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'b', content: 'declined', isError: true },
    ]);
    expect(first).toMatchObject({ stopReason: 'waiting_for_tool_results', iterations: 1 });
    expect((await runtime.getSession(sessionId))?.status).toBe('waiting_for_tool_results');
    await expectCode(
      runtime.submitToolResults(sessionId, paused.turnId, [{ toolCallId: 'b', content: 'again' }]),
      'INVALID_INPUT',
    );
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'a', content: 'green' },
    ]);
    expect(done).toMatchObject({ stopReason: 'end_turn', response: 'thanks', iterations: 2 });
    const parts = toolResultParts(await runtime.messages(sessionId));
    expect(parts.map((p) => [p.toolCallId, p.isError])).toEqual([
      ['b', true],
      ['a', false],
    ]);
  });

  it('can pause again in the resumed part of the turn', async () => {
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.sequence(['', '', 'done']).withToolCallSequence([[ask('x1')], [ask('x2')], []]),
    );
    const paused = await runtime.runTextTurn(sessionId, 'go');
    const again = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'x1', content: 'one' },
    ]);
    expect(again).toMatchObject({ stopReason: 'waiting_for_tool_results', iterations: 2 });
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'x2', content: 'two' },
    ]);
    expect(done).toMatchObject({ stopReason: 'end_turn', iterations: 3, toolCallsCount: 2 });
  });

  it('completes with max_iterations when the pause used the last iteration', async () => {
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.fixed('').withToolCalls([ask('only')]),
      1,
    );
    const paused = await runtime.runTextTurn(sessionId, 'go');
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'only', content: 'ok' },
    ]);
    expect(done).toMatchObject({ success: true, stopReason: 'max_iterations', iterations: 1 });
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it('refuses bad submissions without writing anything', async () => {
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.sequence(['', 'done']).withToolCallSequence([[ask('p1'), add('s1')], []]),
    );
    const paused = await runtime.runTextTurn(sessionId, 'go');
    const before = await runtime.messages(sessionId);
    const attempts: Array<[() => Promise<unknown>, string]> = [
      [
        () =>
          runtime.submitToolResults('session_missing', paused.turnId, [
            { toolCallId: 'p1', content: '' },
          ]),
        'SESSION_NOT_FOUND',
      ],
      [
        () =>
          runtime.submitToolResults(sessionId, 'turn_unknown', [{ toolCallId: 'p1', content: '' }]),
        'INVALID_INPUT',
      ],
      [() => runtime.submitToolResults(sessionId, paused.turnId, []), 'INVALID_INPUT'],
      [
        () =>
          runtime.submitToolResults(sessionId, paused.turnId, [
            { toolCallId: 'p1', content: 1 as unknown as string },
          ]),
        'INVALID_INPUT',
      ],
      [
        () =>
          runtime.submitToolResults(sessionId, paused.turnId, [
            { toolCallId: 'p1', content: 'a' },
            { toolCallId: 'p1', content: 'b' },
          ]),
        'INVALID_INPUT',
      ],
      // A server-side call that has its result, and an id the model never used.
      [
        () =>
          runtime.submitToolResults(sessionId, paused.turnId, [
            { toolCallId: 'p1', content: 'a' },
            { toolCallId: 's1', content: 'b' },
          ]),
        'INVALID_INPUT',
      ],
      [
        () =>
          runtime.submitToolResults(sessionId, paused.turnId, [{ toolCallId: 'zz', content: 'a' }]),
        'INVALID_INPUT',
      ],
    ];
    // One at a time: concurrent submissions on one session are TURN_IN_PROGRESS.
    for (const [attempt, code] of attempts) await expectCode(attempt(), code);
    expect(await runtime.messages(sessionId)).toEqual(before);
    expect((await runtime.getSession(sessionId))?.status).toBe('waiting_for_tool_results');
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'p1', content: 'fine' },
    ]);
    expect(done.stopReason).toBe('end_turn');
  });

  it('refuses a submission while a turn runs on the session', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let call = 0;
    const { runtime, sessionId } = await clientRuntime(
      LlmSimConfig.fromFunction(async () => {
        call++;
        if (call === 1) return { text: '', toolCalls: [ask('w1')] };
        await gate;
        return 'late';
      }),
    );
    const paused = await runtime.runTextTurn(sessionId, 'go');
    // The submission continues the turn, which runs until the model answers.
    const second = runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'w1', content: 'x' },
    ]);
    await expectCode(
      runtime.submitToolResults(sessionId, paused.turnId, [{ toolCallId: 'w1', content: 'x' }]),
      'TURN_IN_PROGRESS',
    );
    release();
    expect((await second).response).toBe('late');
  });
});

describe('InProcessRuntime.steer', () => {
  function steeringRuntime(onCall: (runtime: InProcessRuntime, index: number) => unknown) {
    let runtimeRef: InProcessRuntime | undefined;
    const seen: string[][] = [];
    const config = LlmSimConfig.fromFunction((request, info) => {
      seen.push(
        request.messages.filter((m) => m.role === 'user').map((m) => messageText(m as Message)),
      );
      return onCall(runtimeRef as InProcessRuntime, info.index) as string;
    });
    return clientRuntime(config).then(({ runtime, sessionId }) => {
      runtimeRef = runtime;
      return { runtime, sessionId, seen };
    });
  }

  it('makes the turn reason again with a message that arrived during the model call', async () => {
    let receipt: Promise<unknown> | undefined;
    let sid = '';
    const { runtime, sessionId, seen } = await steeringRuntime((runtime, index) => {
      if (index === 0) {
        receipt = runtime.steerText(sid, 'actually, in French');
        return 'hello';
      }
      return 'bonjour';
    });
    sid = sessionId;
    const result = await runtime.runTextTurn(sessionId, 'greet me');
    expect(result).toMatchObject({
      success: true,
      response: 'bonjour',
      iterations: 2,
      stopReason: 'end_turn',
    });
    expect(await receipt).toMatchObject({ turnId: result.turnId, seq: 3 });
    expect(seen).toEqual([['greet me'], ['greet me', 'actually, in French']]);
    const messages = await runtime.messages(sessionId);
    expect(messages.map((m) => m.role)).toEqual(['user', 'agent', 'user', 'agent']);
    expect(messages[2]).toMatchObject({
      turnId: result.turnId,
      idempotencyKey: `${result.turnId}/steer/1`,
      metadata: { steering: true },
    });
  });

  it('holds a message sent during tool calls until their results are stored', async () => {
    let sid = '';
    const { runtime, sessionId, seen } = await steeringRuntime((runtime, index) => {
      if (index === 0) {
        void runtime.steerText(sid, 'and double it');
        return { text: '', toolCalls: [add('t1')] } as never;
      }
      return 'ten';
    });
    sid = sessionId;
    const result = await runtime.runTextTurn(sessionId, 'add');
    expect(result).toMatchObject({ response: 'ten', iterations: 2 });
    expect((await runtime.messages(sessionId)).map((m) => m.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'user',
      'agent',
    ]);
    expect(seen[1]).toEqual(['add', 'and double it']);
  });

  it('is refused when no turn runs, and for a bad message', async () => {
    const { runtime, sessionId } = await clientRuntime(LlmSimConfig.fixed('ok'));
    await expectCode(runtime.steerText(sessionId, 'hello?'), 'INVALID_INPUT');
    await expectCode(runtime.steerText('session_none', 'hello?'), 'INVALID_INPUT');
    await expectCode(
      runtime.steer(sessionId, { role: 'user', content: 'nope' } as never),
      'INVALID_INPUT',
    );
    expect(await runtime.messages(sessionId)).toEqual([]);
  });

  it('rejects a message the turn could not take before pausing for client tools', async () => {
    let sid = '';
    let steering: Promise<unknown> | undefined;
    const { runtime, sessionId } = await steeringRuntime((runtime, index) => {
      if (index === 0) {
        steering = runtime.steerText(sid, 'too late');
        return { text: '', toolCalls: [ask('c1')] } as never;
      }
      return 'done';
    });
    sid = sessionId;
    const paused = await runtime.runTextTurn(sessionId, 'go');
    expect(paused.stopReason).toBe('waiting_for_tool_results');
    await expectCode(steering as Promise<unknown>, 'INVALID_INPUT');
    expect((await runtime.messages(sessionId)).map((m) => m.role)).toEqual(['user', 'agent']);
  });
});
