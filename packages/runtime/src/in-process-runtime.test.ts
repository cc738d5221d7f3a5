import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  InputMessage,
  type Message,
  messageText,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

const add = (a: number, b: number, id?: string) => ({
  ...(id ? { id } : {}),
  name: 'add',
  arguments: { a, b },
});

async function mathRuntime(
  config: LlmSimConfig,
  configure?: (builder: InProcessRuntimeBuilder) => void,
) {
  const builder = new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(config)
    .singleSession((s) =>
      s
        .harness('math', 'You are a math assistant.')
        .withCapability('test_math')
        .agent('math-agent', 'Use tools.'),
    );
  configure?.(builder);
  const runtime = await builder.build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

function toolResults(messages: Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

describe('InProcessRuntime turns', () => {
  it('runs the seed math session: tool call then the answer', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([[add(2, 2)], []]),
    );
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    expect(result).toMatchObject({
      success: true,
      response: '4',
      iterations: 2,
      toolCallsCount: 1,
      stopReason: 'end_turn',
    });
    const messages = await runtime.messages(sessionId);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'agent',
    ]);
    expect(messages.map((message) => message.seq)).toEqual([1, 2, 3, 4]);
    expect(toolResults(messages)[0]).toMatchObject({
      content: expect.stringContaining('4'),
      isError: false,
    });
  });

  it('stops at maxIterations with success and a persisted max_iterations reason', async () => {
    let n = 0;
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fromFunction(() => ({ text: 'again', toolCalls: [add(n, ++n)] })),
      (builder) => builder.limits({ maxIterations: 3 }),
    );
    const result = await runtime.runTextTurn(sessionId, 'loop');
    expect(result).toMatchObject({
      success: true,
      stopReason: 'max_iterations',
      iterations: 3,
      toolCallsCount: 3,
    });
    const completed = runtime.events(sessionId).filter((event) => event.type === 'turn.completed');
    expect(completed.at(-1)?.data).toMatchObject({ stopReason: 'max_iterations' });
  });

  it('honours the agent maxIterations of the overlay', async () => {
    let n = 0;
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fromFunction(() => ({ toolCalls: [add(1, ++n)] })))
      .singleSession((s) =>
        s.harness('h', '').withCapability('test_math').agent('a', '').agentMaxIterations(2),
      )
      .build();
    const result = await runtime.runTextTurn(runtime.defaultSessionId() as string, 'go');
    expect(result).toMatchObject({ stopReason: 'max_iterations', iterations: 2 });
  });

  it('feeds model misbehaviour back as tool errors and goes on', async () => {
    const slow = defineCapability({
      id: 'slow',
      name: 'Slow',
      description: 'tools that misbehave',
      tools: [
        defineTool({
          name: 'hang',
          description: 'never finishes unless aborted',
          inputSchema: z.object({}),
          timeoutMs: 50,
          execute: (_input, context) =>
            new Promise((_resolve, reject) =>
              context.signal.addEventListener('abort', () => reject(new Error('aborted'))),
            ),
        }),
        defineTool({
          name: 'explode',
          description: 'throws',
          inputSchema: z.object({}),
          execute: () => {
            throw new Error('kaboom');
          },
        }),
        defineTool({
          name: 'huge',
          description: 'returns a lot',
          inputSchema: z.object({}),
          execute: () => 'x'.repeat(5000),
        }),
      ],
    });
    const calls = [
      { id: 'c1', name: 'nope', arguments: {} },
      { id: 'c2', name: 'add', arguments: '{not json' },
      { id: 'c3', name: 'add', arguments: '[1,2]' },
      { id: 'c4', name: 'add', arguments: { a: 'two', b: 2 } },
      { id: 'c5', name: 'explode', arguments: {} },
      { id: 'c6', name: 'hang', arguments: {} },
      { id: 'c7', name: 'add', arguments: { a: 1, b: 1 } },
      { id: 'c7', name: 'add', arguments: { a: 1, b: 1 } },
      { id: 'c8', name: 'huge', arguments: {} },
    ];
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
      (builder) => builder.capability(slow).limits({ maxToolResultChars: 1000 }),
    );
    await runtime.backends.sessions.updateSessionCapabilities(sessionId, [{ id: 'slow' }]);
    const result = await runtime.runTextTurn(sessionId, 'misbehave');
    expect(result).toMatchObject({ success: true, response: 'done', iterations: 2 });
    const results = toolResults(await runtime.messages(sessionId));
    expect(results).toHaveLength(calls.length);
    const byId = (id: string) => results.find((part) => part.toolCallId === id);
    expect(byId('c1')).toMatchObject({
      isError: true,
      content: expect.stringContaining('Unknown tool "nope"'),
    });
    expect(byId('c2')).toMatchObject({
      isError: true,
      content: expect.stringContaining('not valid JSON'),
    });
    expect(byId('c3')).toMatchObject({
      isError: true,
      content: expect.stringContaining('must be a JSON object'),
    });
    expect(byId('c4')).toMatchObject({
      isError: true,
      content: expect.stringMatching(/Invalid arguments for add: a:/),
    });
    expect(byId('c5')).toMatchObject({ isError: true, content: expect.stringContaining('kaboom') });
    expect(byId('c6')).toMatchObject({
      isError: true,
      content: expect.stringContaining('did not finish within 50 ms'),
    });
    expect(byId('c7')).toMatchObject({ isError: false });
    // The repeat of c7 in the same response runs as a new call under a fresh id.
    const repeat = results.find((part) => /^call_[0-9a-f]{32}$/.test(part.toolCallId));
    expect(repeat).toMatchObject({ isError: false });
    const huge = byId('c8');
    expect(huge?.isError).toBe(false);
    expect(huge?.content.length).toBeLessThan(1200);
    expect(huge?.content).toContain(
      '[truncated: the result was 5000 characters; the limit is 1000]',
    );
  });

  it('stops a turn whose model repeats the same call 5 times in a row', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fixed('').withToolCalls([add(1, 1)]),
    );
    const result = await runtime.runTextTurn(sessionId, 'repeat');
    expect(result).toMatchObject({
      success: false,
      stopReason: 'repeated_tool_calls',
      iterations: 5,
    });
    expect(result.error?.code).toBe('LIMIT_EXCEEDED');
    const failed = runtime.events(sessionId).filter((event) => event.type === 'turn.failed');
    expect(failed).toHaveLength(1);
  });

  it('reports a failing model as llm_error without throwing', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fromFunction(() => {
        throw new Error('provider down');
      }),
    );
    const result = await runtime.runTextTurn(sessionId, 'hi');
    expect(result).toMatchObject({ success: false, stopReason: 'llm_error' });
    expect(result.error).toMatchObject({
      code: 'llm_error',
      message: expect.stringContaining('provider down'),
    });
    expect(runtime.events(sessionId).map((event) => event.type)).toContain('turn.failed');
  });

  it('refuses an unknown session, invalid input and a concurrent turn without changing anything', async () => {
    const { runtime, sessionId } = await mathRuntime(LlmSimConfig.fixed('ok').withLatency(50));
    await expect(runtime.runTextTurn('session_missing', 'hi')).rejects.toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
    await expect(
      runtime.runTurn(sessionId, { role: 'user', content: [] } as unknown as InputMessage),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(runtime.runTurn('', InputMessage.user('x'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    const first = runtime.runTextTurn(sessionId, 'first');
    const second = runtime.runTextTurn(sessionId, 'second');
    await expect(second).rejects.toSatisfy((error) =>
      EverrunsError.hasCode(error, 'TURN_IN_PROGRESS'),
    );
    await expect(first).resolves.toMatchObject({ success: true });
    const messages = await runtime.messages(sessionId);
    expect(messages.map(messageText)).toEqual(['first', 'ok']);
    expect(await runtime.messages('session_missing')).toEqual([]);
  });

  it('aborts a turn through its signal with a typed error and a turn.failed event', async () => {
    const { runtime, sessionId } = await mathRuntime(LlmSimConfig.fixed('slow').withLatency(5_000));
    const controller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'wait', { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    const failed = runtime.events(sessionId).filter((event) => event.type === 'turn.failed');
    expect(failed[0]?.data).toMatchObject({ stopReason: 'aborted' });
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it('keeps 100 concurrent sessions apart', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.echo());
    const runtime = await new InProcessRuntimeBuilder()
      .driver(driver)
      .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
      .harness({ id: 'harness_iso', name: 'iso' })
      .build();
    const sessions = await Promise.all(
      Array.from({ length: 100 }, () => runtime.createSession({ harnessId: 'harness_iso' })),
    );
    const markers = sessions.map(() => crypto.randomUUID());
    const results = await Promise.all(
      sessions.map((session, index) => runtime.runTextTurn(session.id, `marker ${markers[index]}`)),
    );
    for (const [index, result] of results.entries())
      expect(result.response).toContain(markers[index]);
    for (const [index, session] of sessions.entries()) {
      const text = (await runtime.messages(session.id)).map(messageText).join('\n');
      for (const [other, marker] of markers.entries()) {
        if (other === index) expect(text).toContain(marker);
        else expect(text).not.toContain(marker);
      }
    }
    for (const request of driver.requests) {
      const marker = request.messages.map(messageText).join('');
      expect(markers.filter((m) => marker.includes(m))).toHaveLength(1);
    }
  });

  it('delivers every event of a turn in order with session id, turn id and sequence', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([[add(2, 2)], []]),
    );
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const events = runtime.events(sessionId);
    expect(events.map((event) => event.type)).toEqual([
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
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
    for (const event of events) expect(event).toMatchObject({ sessionId, turnId: result.turnId });
  });
});

describe('InProcessRuntimeBuilder', () => {
  it('refuses to build without a default model', async () => {
    await expect(new InProcessRuntimeBuilder().build()).rejects.toMatchObject({
      code: 'CONFIGURATION',
    });
  });

  it('folds harness chains root first, then agent, then session, for prompts, capabilities, files and limits', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('ok'))
      .harness({
        id: 'harness_root',
        name: 'root',
        systemPrompt: 'ROOT',
        maxIterations: 9,
        initialFiles: [{ path: '/a.txt', content: 'root' }],
      })
      .harness({
        id: 'harness_child',
        name: 'child',
        systemPrompt: 'CHILD',
        parentHarnessId: 'harness_root',
        capabilities: [{ id: 'test_math' }],
        initialFiles: [{ path: '/b.txt', content: 'child' }],
      })
      .agent({
        id: 'agent_x',
        name: 'x',
        systemPrompt: 'AGENT',
        maxIterations: 4,
        initialFiles: [{ path: '/a.txt', content: 'agent' }],
      })
      .session({
        id: 'session_x',
        harnessId: 'harness_child',
        agentId: 'agent_x',
        systemPrompt: 'SESSION',
      })
      .build();
    const context = await runtime.loadContext('session_x');
    expect(context.systemPrompt.indexOf('ROOT')).toBeLessThan(
      context.systemPrompt.indexOf('CHILD'),
    );
    expect(context.systemPrompt.indexOf('CHILD')).toBeLessThan(
      context.systemPrompt.indexOf('AGENT'),
    );
    expect(context.systemPrompt.indexOf('AGENT')).toBeLessThan(
      context.systemPrompt.indexOf('SESSION'),
    );
    expect(context.maxIterations).toBe(4);
    expect(context.tools.map((tool) => tool.name).sort()).toEqual([
      'add',
      'divide',
      'multiply',
      'subtract',
    ]);
    expect((await runtime.readFile('session_x', '/a.txt')).content).toBe('agent');
    expect((await runtime.readFile('session_x', '/b.txt')).content).toBe('child');
  });

  it('exposes the context before a turn and the one each finished turn sent', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([[add(2, 2)], []]),
    );
    const before = await runtime.loadContext(sessionId);
    expect(before.messages).toHaveLength(0);
    expect(before.model).toMatchObject({ model: 'llmsim-model', providerType: 'llmsim' });
    expect(before.systemPrompt).toContain('You are a math assistant.');
    const addSpec = before.tools.find((tool) => tool.name === 'add');
    expect(addSpec?.inputSchema).toMatchObject({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
    });
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const sent = runtime.turnContext(result.turnId);
    expect(sent?.iteration).toBe(2);
    expect(sent?.messages.map((message) => message.role)).toEqual(['user', 'agent', 'tool_result']);
  });

  it('wraps each capability prompt in a capability tag', async () => {
    const noted = defineCapability({
      id: 'noted',
      name: 'Noted',
      description: 'adds a prompt',
      systemPrompt: 'Remember the notes.',
      tools: [],
    });
    const { runtime, sessionId } = await mathRuntime(LlmSimConfig.fixed('ok'), (builder) =>
      builder.capability(noted),
    );
    await runtime.backends.sessions.updateSessionCapabilities(sessionId, [{ id: 'noted' }]);
    const context = await runtime.loadContext(sessionId);
    expect(context.systemPrompt).toContain(
      '<capability id="noted">\nRemember the notes.\n</capability>',
    );
    expect(context.capabilityPrompts).toEqual([
      { capabilityId: 'noted', text: 'Remember the notes.' },
    ]);
  });
});

describe('batched context loading', () => {
  it('uses the backend snapshot for the reason step instead of one read per store', async () => {
    const backends = inMemoryBackends();
    let snapshots = 0;
    let loads = 0;
    const load = backends.messages.load.bind(backends.messages);
    backends.messages.load = async (sessionId) => {
      loads++;
      return load(sessionId);
    };
    const withSnapshot = {
      ...backends,
      async loadTurnSnapshot(sessionId: string) {
        snapshots++;
        const session = await backends.sessions.getSession(sessionId);
        if (!session) return null;
        return {
          session,
          harnessChain: await backends.harnesses.getHarnessChain(session.harnessId),
          agent: session.agentId ? await backends.agents.getAgent(session.agentId) : null,
          messages: await load(sessionId),
        };
      },
    };
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', '4']).withToolCallSequence([[add(2, 2)], []]),
      (builder) => builder.backends(withSnapshot),
    );
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    expect(result.response).toBe('4');
    expect(snapshots).toBe(2);
    expect(loads).toBe(0);
  });
});
