import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { EverrunsError, foldOverlay, type ToolSpec } from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  SessionBuilder,
  SingleSessionBuilder,
} from './index.js';

const askUser = {
  type: 'client_side' as const,
  name: 'ask_user',
  description: 'Asks the person at the keyboard',
  parameters: {
    type: 'object',
    properties: { question: { type: 'string' } },
    required: ['question'],
  },
};

function expectCode(action: () => unknown, code: string): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(EverrunsError.hasCode(caught, code as never)).toBe(true);
}

describe('HarnessBuilder, AgentBuilder and SessionBuilder', () => {
  it('set every field upstream sets, in camelCase', () => {
    const created = new Date('2026-01-02T03:04:05.000Z');
    const harness = new HarnessBuilder('first', 'old prompt')
      .id('harness_fixed')
      .name('support')
      .systemPrompt('You support.')
      .displayName('Support')
      .description('answers tickets')
      .tag('a')
      .tags(['b', 'c'])
      .withCapability({ id: 'test_math' })
      .capability('web_fetch', { maxBytes: 10 })
      .capabilities(['current_time'])
      .networkAccess({ allowed: ['*.example.com'] })
      .defaultModelId('m1')
      .parentHarnessId('harness_root')
      .status('disabled')
      .createdAt(created)
      .build();
    expect(harness).toMatchObject({
      id: 'harness_fixed',
      name: 'support',
      systemPrompt: 'You support.',
      displayName: 'Support',
      description: 'answers tickets',
      tags: ['a', 'b', 'c'],
      capabilities: [
        { id: 'test_math' },
        { id: 'web_fetch', config: { maxBytes: 10 } },
        { id: 'current_time' },
      ],
      networkAccess: { allowed: ['*.example.com'], blocked: [] },
      defaultModelId: 'm1',
      parentHarnessId: 'harness_root',
      status: 'disabled',
      createdAt: created.toISOString(),
      updatedAt: created.toISOString(),
    });

    const agent = new AgentBuilder('a', '')
      .tool(askUser)
      .tools([{ type: 'builtin', name: 'add' }, 'subtract'])
      .status('archived')
      .createdAt('2026-01-01T00:00:00.000Z')
      .updatedAt('2026-01-05T00:00:00.000Z')
      .build();
    expect(agent.tools).toEqual([
      { ...askUser },
      {
        type: 'builtin',
        name: 'add',
        description: '',
        parameters: { type: 'object', properties: {} },
      },
      'subtract',
    ]);
    expect(agent).toMatchObject({ status: 'archived', updatedAt: '2026-01-05T00:00:00.000Z' });

    const session = new SessionBuilder('harness_x')
      .harness('harness_y')
      .modelId('m2')
      .tag('t')
      .tool(askUser)
      .status('idle')
      .networkAccess({ blocked: ['evil.test'] })
      .mcpServers({ docs: { transport: 'http', url: 'https://mcp.example.com/' } })
      .build();
    expect(session).toMatchObject({
      harnessId: 'harness_y',
      modelId: 'm2',
      tags: ['t'],
      tools: [askUser],
      status: 'idle',
      networkAccess: { allowed: [], blocked: ['evil.test'] },
      mcpServers: { docs: { url: 'https://mcp.example.com/' } },
    });
  });

  it('refuse a malformed tool definition or network access list at once', () => {
    expectCode(
      () => new AgentBuilder('a', '').tool({ type: 'remote', name: 'x' } as never),
      'INVALID_INPUT',
    );
    expectCode(
      () => new SessionBuilder('h').tool({ type: 'client_side', name: '' }),
      'INVALID_INPUT',
    );
    expectCode(() => new HarnessBuilder('h', '').networkAccess({ allowed: [''] }), 'INVALID_INPUT');
  });

  it('take binary initial files as base64 and text files as text', () => {
    const bytes = new Uint8Array([0, 255, 10, 128]);
    const harness = new HarnessBuilder('h', '')
      .initialFile('/logo.bin', bytes, { isReadonly: true })
      .initialFile({ path: '/notes.md', content: 'hello' })
      .initialFile('/raw.b64', Buffer.from('hi').toString('base64'), { encoding: 'base64' })
      .build();
    expect(harness.initialFiles).toEqual([
      { path: '/logo.bin', content: 'AP8KgA==', encoding: 'base64', isReadonly: true },
      { path: '/notes.md', content: 'hello', encoding: 'text', isReadonly: false },
      { path: '/raw.b64', content: 'aGk=', encoding: 'base64', isReadonly: false },
    ]);
  });
});

describe('SingleSessionBuilder', () => {
  it('reads ids with harnessId()/agentId()/sessionId() and still sets them with an argument', () => {
    const builder = new SingleSessionBuilder();
    const harnessId = builder.harnessId();
    const agentId = builder.agentId();
    const sessionId = builder.sessionId();
    expect(harnessId).toMatch(/^harness_/);
    expect(agentId).toMatch(/^agent_/);
    expect(sessionId).toMatch(/^session_/);
    builder.agent('helper', 'You help.');
    expect(builder.agentId()).toBe(agentId);
    const built = builder.build();
    expect(built.harness.id).toBe(harnessId);
    expect(built.agent?.id).toBe(agentId);
    expect(built.session).toMatchObject({ id: sessionId, harnessId, agentId });

    const pinned = new SingleSessionBuilder()
      .harnessId('harness_pinned')
      .agentId('agent_pinned')
      .sessionId('session_pinned');
    expect([pinned.harnessId(), pinned.agentId(), pinned.sessionId()]).toEqual([
      'harness_pinned',
      'agent_pinned',
      'session_pinned',
    ]);
    expect(pinned.build().session).toMatchObject({
      harnessId: 'harness_pinned',
      agentId: 'agent_pinned',
    });
  });

  it('sets each layer: capabilities, descriptions, tags, models, tools, files, network access', () => {
    const built = new SingleSessionBuilder()
      .harnessNetworkAccess({ allowed: ['*.example.com'] })
      .harness('h', 'Harness prompt.')
      .harnessCapability('test_math')
      .harnessDefaultModelId('hm')
      .harnessInitialFile('/h.bin', new Uint8Array([1, 2]))
      .tag('shared')
      .agentDescription('the agent')
      .agent('a', 'Agent prompt.')
      .agentCapability({ id: 'current_time' })
      .agentDefaultModelId('am')
      .agentTool(askUser)
      .agentInitialFile({ path: '/a.md', content: 'agent' })
      .agentNetworkAccess({ allowed: ['api.example.com'] })
      .sessionCapability('web_fetch', { maxBytes: 5 })
      .sessionModelId('sm')
      .sessionTool({ ...askUser, description: 'Asks, per session' })
      .sessionInitialFile('/s.md', 'session')
      .sessionNetworkAccess({ blocked: ['evil.example.com'] })
      .sessionMaxIterations(3)
      .locale('fr-FR')
      .build();
    expect(built.harness).toMatchObject({
      name: 'h',
      systemPrompt: 'Harness prompt.',
      capabilities: [{ id: 'test_math' }],
      defaultModelId: 'hm',
      tags: ['shared'],
      networkAccess: { allowed: ['*.example.com'] },
      initialFiles: [{ path: '/h.bin', content: 'AQI=', encoding: 'base64' }],
    });
    // The agent keeps what was set before agent(...) named it.
    expect(built.agent).toMatchObject({
      name: 'a',
      description: 'the agent',
      capabilities: [{ id: 'current_time' }],
      defaultModelId: 'am',
      tags: ['shared'],
      tools: [askUser],
      initialFiles: [{ path: '/a.md', content: 'agent' }],
    });
    expect(built.session).toMatchObject({
      capabilities: [{ id: 'web_fetch', config: { maxBytes: 5 } }],
      modelId: 'sm',
      tags: ['shared'],
      maxIterations: 3,
      locale: 'fr-FR',
    });
    if (!built.agent) throw new Error('agent expected');
    const overlay = foldOverlay([built.harness], built.agent, built.session);
    expect(overlay.declaredTools).toEqual([{ ...askUser, description: 'Asks, per session' }]);
    expect(overlay.networkAccess).toEqual({
      allowed: ['api.example.com'],
      blocked: ['evil.example.com'],
    });
    expect(overlay.modelId).toBe('sm');
  });
});

describe('declared tools in a running session', () => {
  it('offers a client-side tool with its parameters and waits for the host to submit its result', async () => {
    const seen: ToolSpec[][] = [];
    let call = 0;
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(
        LlmSimConfig.fromFunction((request) => {
          seen.push([...request.tools]);
          call++;
          return call === 1
            ? { toolCalls: [{ id: 'c1', name: 'ask_user', arguments: { question: 'colour?' } }] }
            : 'green it is';
        }),
      )
      .singleSession((s) => s.harness('h', 'You help.').sessionTool(askUser))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const paused = await runtime.runTextTurn(sessionId, 'pick');
    expect(paused.stopReason).toBe('waiting_for_tool_results');
    expect(seen[0]).toEqual([
      { name: 'ask_user', description: askUser.description, inputSchema: askUser.parameters },
    ]);
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'c1', content: 'green' },
    ]);
    expect(done).toMatchObject({ success: true, response: 'green it is' });
    await runtime.close();
  });

  it('runs a built-in tool of a registered capability that the session does not switch on', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.sequence(['adding', 'done']).withToolCallSequence([
          [{ id: 'c1', name: 'add', arguments: { a: 2, b: 40 } }],
          [],
        ]),
      )
      .singleSession((s) => s.harness('h', '').agentTool({ type: 'builtin', name: 'add' }))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const result = await runtime.runTextTurn(sessionId, 'add');
    expect(result).toMatchObject({ success: true, toolCallsCount: 1, response: 'done' });
    const results = (await runtime.messages(sessionId)).flatMap((m) =>
      m.content.flatMap((p) => (p.type === 'tool_result' ? [p] : [])),
    );
    expect(results).toHaveLength(1);
    expect(results[0]?.isError).toBe(false);
    expect(JSON.stringify(results[0]?.content)).toContain('42');
    await runtime.close();
  });
});
