// Cases the Rust crate `everruns-runtime` pins in its own tests (the in-process runtime, its
// builders, its in-memory stores, llmsim scripts, capability registration), each restated against
// our API. Where we differ on purpose the test pins our behaviour and
// docs/differences-from-upstream.md says why.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  readFileIfExists,
} from '@everruns-ts/core';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { InMemorySessionFileStore } from '@everruns-ts/stores-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
  SessionBuilder,
} from './index.js';

const HARNESS_ID = 'harness_00000000000000000000000000000021';
const AGENT_ID = 'agent_00000000000000000000000000000021';
const SESSION_ID = 'session_00000000000000000000000000000021';

function mathHarness(id = HARNESS_ID) {
  return new HarnessBuilder('math', 'You are a math assistant.')
    .id(id)
    .displayName('Math')
    .capability('test_math');
}

function mathAgent(id = AGENT_ID) {
  return new AgentBuilder('math-agent', 'Use tools when needed.')
    .id(id)
    .displayName('Math Agent')
    .maxIterations(8);
}

function mathSession(agentId: string | undefined, id = SESSION_ID, harnessId = HARNESS_ID) {
  const builder = new SessionBuilder(harnessId).id(id).title('Embedded Session');
  return agentId === undefined ? builder : builder.agent(agentId);
}

async function rejectionCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return error instanceof EverrunsError ? error.code : String(error);
  }
  return undefined;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('upstream parity: builders', () => {
  it('accept explicit creation and update times on harness, agent and session', () => {
    const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const harness = new HarnessBuilder('math', 'prompt').createdAt(at).updatedAt(at).build();
    const agent = new AgentBuilder('math-agent', 'prompt').createdAt(at).updatedAt(at).build();
    const session = new SessionBuilder(harness.id)
      .agent(agent.id)
      .createdAt(at)
      .updatedAt(at)
      .build();
    for (const built of [harness, agent, session]) {
      expect(new Date(built.createdAt).getTime()).toBe(at.getTime());
      expect(new Date(built.updatedAt).getTime()).toBe(at.getTime());
    }
  });

  it('read the id a builder will give before build()', () => {
    const harness = new HarnessBuilder('h', '').id(HARNESS_ID);
    const agent = new AgentBuilder('a', '').id(AGENT_ID);
    const session = new SessionBuilder(HARNESS_ID).id(SESSION_ID);
    expect([harness.harnessId(), agent.agentId(), session.sessionId()]).toEqual([
      HARNESS_ID,
      AGENT_ID,
      SESSION_ID,
    ]);
    expect(harness.build().id).toBe(HARNESS_ID);
    expect(agent.build().id).toBe(AGENT_ID);
    expect(session.build().id).toBe(SESSION_ID);
  });
});

describe('upstream parity: the in-process runtime', () => {
  it('runs the tool loop and stores user, tool call, tool result and answer', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.fixed('Let me calculate that.').withToolCallSequence([
          [{ id: 'call_mul_1', name: 'multiply', arguments: { a: 6, b: 7 } }],
          [],
        ]),
      )
      .harness(mathHarness().build())
      .agent(mathAgent().build())
      .session(mathSession(AGENT_ID).build())
      .build();
    const result = await runtime.runTextTurn(SESSION_ID, 'What is 6 * 7?');
    expect(result.success).toBe(true);
    const messages = await runtime.messages(SESSION_ID);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'agent',
    ]);
    expect(messages[1]?.content.some((part) => part.type === 'tool_call')).toBe(true);
    expect(messages[2]?.content[0]).toMatchObject({
      type: 'tool_result',
      toolCallId: 'call_mul_1',
    });
    const types = runtime.events().map((event) => event.type);
    expect(types).toContain('input.message');
    expect(types).toContain('tool.completed');
  });

  it('seeds a runnable runtime from the single-session builder', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('single session works'))
      .singleSession((s) =>
        s
          .harness('math', 'You are a math assistant.')
          .withCapability('test_math')
          .agent('math-agent', 'Use tools when needed.')
          .agentMaxIterations(8)
          .sessionTitle('Embedded Session'),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const context = await runtime.loadContext(sessionId);
    expect(context.overlay.harnessChain.at(-1)?.name).toBe('math');
    expect(context.overlay.agent?.systemPrompt).toBe('Use tools when needed.');
    expect((await runtime.runTextTurn(sessionId, 'Say this is working.')).success).toBe(true);
  });

  it('keeps a session id pinned on the single-session builder', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('pinned id works'))
      .singleSession((s) =>
        s.harness('h', 'h').agent('a', 'a').sessionId(SESSION_ID).sessionTitle('Pinned'),
      )
      .build();
    expect(runtime.defaultSessionId()).toBe(SESSION_ID);
    expect((await runtime.loadContext(SESSION_ID)).overlay.session.id).toBe(SESSION_ID);
  });

  it('keeps harness and agent network access set before harness() and agent()', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((s) =>
        s
          .harnessNetworkAccess({ allowed: ['example.com'] })
          .harness('math', 'You are a math assistant.')
          .agentNetworkAccess({ allowed: ['example.org'] })
          .agent('math-agent', 'Use tools when needed.'),
      )
      .build();
    const { overlay } = await runtime.loadContext(runtime.defaultSessionId()!);
    expect(overlay.harnessChain.at(-1)?.networkAccess?.allowed).toEqual(['example.com']);
    expect(overlay.agent?.networkAccess?.allowed).toEqual(['example.org']);
  });

  it("seeds the harness chain's initial files, read-only kept", async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('No-op'))
      .harness(
        mathHarness()
          .initialFile('/workspace/notes.txt', 'hello embedded runtime', { isReadonly: true })
          .build(),
      )
      .agent(mathAgent().build())
      .session(mathSession(AGENT_ID).build())
      .build();
    const file = await runtime.readFile(SESSION_ID, '/workspace/notes.txt');
    expect(file.content).toBe('hello embedded runtime');
    expect(file.isReadonly).toBe(true);
  });

  it('runs a session that has no agent', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('Harness-only runtime works'))
      .harness(mathHarness().build())
      .session(mathSession(undefined).build())
      .build();
    const result = await runtime.runTextTurn(SESSION_ID, 'Say hello from the harness');
    expect(result).toMatchObject({ success: true, response: 'Harness-only runtime works' });
    expect((await runtime.messages(SESSION_ID)).map((message) => message.role)).toEqual([
      'user',
      'agent',
    ]);
  });

  it('accepts an explicit backend bundle', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .backends(inMemoryBackends())
      .llmSim(LlmSimConfig.fixed('Custom backend bundle works'))
      .harness(mathHarness().build())
      .agent(mathAgent().build())
      .session(mathSession(AGENT_ID).build())
      .build();
    const result = await runtime.runTextTurn(SESSION_ID, 'Use the explicit backend bundle');
    expect(result).toMatchObject({ success: true, response: 'Custom backend bundle works' });
  });

  it('seeds initial files through the workspace factory it is given (real disk)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'upstream-parity-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const runtime = await new InProcessRuntimeBuilder()
      .fileSystemFactory(new RealDiskSessionFileSystemFactory({ root }))
      .llmSim(LlmSimConfig.fixed('ok'))
      .harness(mathHarness().initialFile('/seed.txt', 'from platform factory').build())
      .session(mathSession(undefined).build())
      .build();
    expect((await runtime.readFile(SESSION_ID, '/seed.txt')).content).toBe('from platform factory');
    expect(await readFile(join(root, 'seed.txt'), 'utf8')).toBe('from platform factory');
  });

  it('exposes the assembled context before and after a turn', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('Context inspection'))
      .harness(mathHarness().build())
      .agent(mathAgent().build())
      .session(mathSession(AGENT_ID).build())
      .build();
    const before = await runtime.loadContext(SESSION_ID);
    expect(before.messages).toEqual([]);
    expect(before.overlay.session.id).toBe(SESSION_ID);
    expect(before.overlay.agent?.id).toBe(AGENT_ID);
    await runtime.runTextTurn(SESSION_ID, 'What tools do I have?');
    const after = await runtime.loadContext(SESSION_ID);
    expect(after.overlay.harnessChain).toHaveLength(1);
    expect(after.messages).toHaveLength(2);
    expect(after.model.model).toBe(LLMSIM_DEFAULT_MODEL.model);
    expect(after.tools.map((tool) => tool.name)).toContain('multiply');
  });
});

describe('upstream parity: capability commands and registration', () => {
  it('refuses a capability id nothing registers (upstream resolves without it; see the differences page)', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((s) =>
        s.harness('platform', '').withCapability('platform_management').agent('a', ''),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    expect(await rejectionCode(runtime.loadContext(sessionId))).toBe('CAPABILITY_NOT_FOUND');
    expect(await rejectionCode(runtime.runTextTurn(sessionId, 'hi'))).toBe('CAPABILITY_NOT_FOUND');
    expect(await runtime.messages(sessionId)).toEqual([]);
  });

  function echoCapability(seen: string[]): Capability {
    return defineCapability({
      id: 'echo',
      name: 'Echo',
      description: 'Echoes its argument.',
      tools: [],
      commands: [
        {
          name: 'echo',
          description: 'echo',
          execute: (args, context) => {
            seen.push(args);
            return `echo[${context.sessionId}]: ${args}`;
          },
        },
      ],
    });
  }

  it('lists and runs a capability command; an unknown command is an error', async () => {
    const seen: string[] = [];
    const runtime = await new InProcessRuntimeBuilder()
      .capability(echoCapability(seen))
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((s) => s.harness('h', 'prompt').withCapability('echo'))
      .build();
    const sessionId = runtime.defaultSessionId()!;
    expect((await runtime.listCommands(sessionId)).map((command) => command.name)).toContain(
      'echo',
    );
    const result = await runtime.executeCommand(sessionId, '/echo hello');
    expect(result.text).toContain('hello');
    expect(seen).toEqual(['hello']);
    expect(await rejectionCode(runtime.executeCommand(sessionId, '/nope'))).toBe(
      'COMMAND_NOT_FOUND',
    );
  });

  it('a capability registered again with the same id replaces the first', async () => {
    const tool = (name: string) =>
      defineTool({
        name,
        description: name,
        inputSchema: z.strictObject({}),
        execute: () => name,
      });
    const first = defineCapability({
      id: 'swap',
      name: 'First',
      description: '',
      tools: [tool('first_tool')],
    });
    const second = defineCapability({
      id: 'swap',
      name: 'Second',
      description: '',
      tools: [tool('second_tool')],
    });
    const runtime = await new InProcessRuntimeBuilder()
      .capability(first)
      .capability(second)
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((s) => s.harness('h', '').withCapability('swap'))
      .build();
    const context = await runtime.loadContext(runtime.defaultSessionId()!);
    expect(context.tools.map((spec) => spec.name)).toEqual(['second_tool']);
  });
});

describe('upstream parity: the in-memory session file store', () => {
  it('matches grep path patterns as globs, and a plain word as a substring', async () => {
    const files = new InMemorySessionFileStore();
    for (const path of ['/src/lib.rs', '/src/nested/mod.rs', '/docs/readme.md', '/notes.txt']) {
      await files.writeFile(path, 'needle');
    }
    const paths = async (pattern: string) =>
      (await files.grepFiles('needle', pattern)).map((hit) => hit.path).sort();
    expect(await paths('src/**/*.rs')).toEqual(['/src/lib.rs', '/src/nested/mod.rs']);
    expect(await paths('/workspace/src/**/*.rs')).toEqual(['/src/lib.rs', '/src/nested/mod.rs']);
    expect(await paths('docs')).toEqual(['/docs/readme.md']);
  });

  it('deletes nothing and answers false for a non-empty directory without recursive', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/dir/a.txt', 'a');
    expect(await files.deleteFile('/dir')).toBe(false);
    expect((await files.readFile('/dir/a.txt')).content).toBe('a');
    expect(await files.deleteFile('/dir', true)).toBe(true);
    expect(await files.statFile('/dir')).toBeNull();
  });

  it('accepts /workspace-prefixed paths as the same file', async () => {
    const files = new InMemorySessionFileStore();
    await files.writeFile('/workspace/notes.txt', 'hi');
    expect((await files.readFile('/notes.txt')).content).toBe('hi');
    expect((await files.listDirectory('/workspace')).map((entry) => entry.path)).toEqual([
      '/notes.txt',
    ]);
  });
});

describe('upstream parity: the runtime stores', () => {
  it('upsert replaces a harness, agent or session with the same id; get of a missing one is null', async () => {
    const backends = inMemoryBackends();
    await backends.harnesses.upsertHarness(mathHarness().build());
    await backends.harnesses.upsertHarness(mathHarness().systemPrompt('Replaced.').build());
    expect((await backends.harnesses.getHarness(HARNESS_ID))?.systemPrompt).toBe('Replaced.');
    await backends.agents.upsertAgent(mathAgent().build());
    await backends.agents.upsertAgent(mathAgent().description('second').build());
    expect((await backends.agents.getAgent(AGENT_ID))?.description).toBe('second');
    await backends.sessions.upsertSession(mathSession(AGENT_ID).build());
    await backends.sessions.upsertSession(mathSession(AGENT_ID).title('Renamed').build());
    expect((await backends.sessions.getSession(SESSION_ID))?.title).toBe('Renamed');
    expect(
      await backends.harnesses.getHarness('harness_00000000000000000000000000000099'),
    ).toBeNull();
    expect(await backends.agents.getAgent('agent_00000000000000000000000000000099')).toBeNull();
    expect(
      await backends.sessions.getSession('session_00000000000000000000000000000099'),
    ).toBeNull();
  });

  it('pages messages by offset as well as by cursor', async () => {
    const backends = inMemoryBackends();
    for (const text of ['one', 'two', 'three']) {
      await backends.messages.addInputMessage(SESSION_ID, {
        role: 'user',
        content: [{ type: 'text', text }],
      });
    }
    const byOffset = await backends.messages.loadPage(SESSION_ID, { offset: 1, limit: 1 });
    const byCursor = await backends.messages.loadPage(SESSION_ID, { afterSeq: 1, limit: 1 });
    expect(byOffset.messages.map((message) => message.seq)).toEqual([2]);
    expect(byCursor).toEqual(byOffset);
  });

  it('reads a missing file as nothing rather than an error (readFileIfExists)', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((s) => s.harness('h', ''))
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const files = await runtime.fileSystem(sessionId);
    expect(await readFileIfExists(files, '/missing.txt')).toBeNull();
    expect(await rejectionCode(runtime.readFile(sessionId, '/missing.txt'))).toBe('FILE_NOT_FOUND');
  });
});
