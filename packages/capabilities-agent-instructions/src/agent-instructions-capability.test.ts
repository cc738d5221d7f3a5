import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineCapability } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AGENT_INSTRUCTIONS_CAPABILITY_ID,
  agentInstructionsCapability,
  formatAgentInstructions,
  MAX_AGENTS_MD_CHARS,
} from './index.js';

async function instructionsRuntime(agentsMd?: string) {
  const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
  const runtime = await new InProcessRuntimeBuilder()
    .capability(agentInstructionsCapability)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
    .singleSession((session) => {
      session.harness('coder', 'You write code.').withCapability(AGENT_INSTRUCTIONS_CAPABILITY_ID);
      if (agentsMd !== undefined) session.seedTextFile('/AGENTS.md', agentsMd);
    })
    .build();
  return { runtime, driver, sessionId: runtime.defaultSessionId() as string };
}

describe('agentInstructionsCapability', () => {
  it('puts AGENTS.md into the system prompt the model receives', async () => {
    const marker = crypto.randomUUID();
    const { runtime, driver, sessionId } = await instructionsRuntime(
      `# Conventions\nUse tabs. ${marker}\n`,
    );
    const result = await runtime.runTextTurn(sessionId, 'hello');
    expect(result.success).toBe(true);
    const sent = driver.requests.at(-1)?.systemPrompt ?? '';
    expect(sent).toContain('You write code.');
    expect(sent).toContain(
      `<capability id="agent_instructions">\n<agent-instructions source="AGENTS.md">\n# Conventions\nUse tabs. ${marker}\n</agent-instructions>\n</capability>`,
    );
    expect(runtime.turnContext(result.turnId)?.capabilityPrompts).toEqual([
      { capabilityId: 'agent_instructions', text: expect.stringContaining(marker) },
    ]);
  });

  it('re-reads the file every turn, so an edit is seen by the next turn', async () => {
    const { runtime, driver, sessionId } = await instructionsRuntime('first version');
    await runtime.runTextTurn(sessionId, 'one');
    await runtime.seedTextFile(sessionId, '/AGENTS.md', 'second version');
    await runtime.runTextTurn(sessionId, 'two');
    expect(driver.requests[0]?.systemPrompt).toContain('first version');
    expect(driver.requests[1]?.systemPrompt).toContain('second version');
    expect(driver.requests[1]?.systemPrompt).not.toContain('first version');
  });

  it('adds nothing when AGENTS.md is absent or blank', async () => {
    for (const content of [undefined, '  \n\n ']) {
      const { runtime, sessionId } = await instructionsRuntime(content);
      const context = await runtime.loadContext(sessionId);
      expect(context.capabilityPrompts).toEqual([]);
      expect(context.systemPrompt).toBe('You write code.');
      expect((await runtime.runTextTurn(sessionId, 'hi')).success).toBe(true);
    }
  });

  it('cuts a file longer than 32 KiB with a notice', () => {
    const formatted = formatAgentInstructions('x'.repeat(MAX_AGENTS_MD_CHARS + 100)) ?? '';
    expect(formatted.match(/x/g)).toHaveLength(MAX_AGENTS_MD_CHARS);
    expect(formatted).toContain('[AGENTS.md was cut');
    expect(formatted.endsWith('</agent-instructions>')).toBe(true);
  });

  it('has no tools and no static prompt', () => {
    expect(agentInstructionsCapability.tools).toEqual([]);
    expect(typeof agentInstructionsCapability.systemPrompt).toBe('function');
  });

  it('fails the turn with CAPABILITY_FAILED naming a capability whose prompt throws, and the session stays usable', async () => {
    const broken = defineCapability({
      id: 'broken_prompt',
      name: 'Broken',
      description: 'its prompt function throws',
      systemPrompt: ({ fileSystem }) =>
        fileSystem.readFile('/config.json').then(({ content }) => JSON.parse(content)),
      tools: [],
    });
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const runtime = await new InProcessRuntimeBuilder()
      .capability(agentInstructionsCapability)
      .capability(broken)
      .driver(driver)
      .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
      .singleSession((session) =>
        session
          .harness('h', '')
          .withCapability(AGENT_INSTRUCTIONS_CAPABILITY_ID)
          .withCapability('broken_prompt')
          .seedTextFile('/config.json', '{ not json'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await expect(runtime.loadContext(sessionId)).rejects.toMatchObject({
      code: 'CAPABILITY_FAILED',
      details: { capabilityId: 'broken_prompt' },
    });
    const result = await runtime.runTextTurn(sessionId, 'hello');
    expect(result).toMatchObject({ success: false, stopReason: 'error' });
    expect(result.error).toMatchObject({
      code: 'CAPABILITY_FAILED',
      message: expect.stringContaining(
        'Capability broken_prompt failed to build its system prompt',
      ),
      details: { capabilityId: 'broken_prompt' },
    });
    expect(driver.requests).toHaveLength(0);
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
    const types = runtime.events(sessionId).map((event) => event.type);
    expect(types.slice(-2)).toEqual(['turn.failed', 'session.idled']);
    expect(
      runtime.events(sessionId).find((event) => event.type === 'turn.failed')?.data,
    ).toMatchObject({
      errorCode: 'CAPABILITY_FAILED',
    });
    // Once the workspace is fixed, the next turn runs.
    await runtime.seedTextFile(sessionId, '/config.json', '"fixed"');
    expect(await runtime.runTextTurn(sessionId, 'again')).toMatchObject({
      success: true,
      response: 'ok',
    });
  });
});

describe('agentInstructionsCapability on a real directory', () => {
  const directories: string[] = [];
  afterAll(async () => {
    for (const directory of directories) await rm(directory, { recursive: true, force: true });
  });

  async function realDiskRuntime(prepare: (root: string) => Promise<void>) {
    const root = await mkdtemp(join(tmpdir(), 'everruns-agents-md-'));
    directories.push(root);
    await prepare(root);
    const runtime = await new InProcessRuntimeBuilder()
      .capability(agentInstructionsCapability)
      .fileSystemFactory(new RealDiskSessionFileSystemFactory({ root }))
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) =>
        session.harness('h', 'Base.').withCapability(AGENT_INSTRUCTIONS_CAPABILITY_ID),
      )
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string };
  }

  it('reads AGENTS.md from the workspace directory on disk', async () => {
    const { runtime, sessionId } = await realDiskRuntime((root) =>
      writeFile(join(root, 'AGENTS.md'), 'Run pnpm test before committing.'),
    );
    const context = await runtime.loadContext(sessionId);
    expect(context.systemPrompt).toContain('Run pnpm test before committing.');
  });

  it('fails the turn with CAPABILITY_FAILED naming agent_instructions when AGENTS.md is a FIFO', async () => {
    const { runtime, sessionId } = await realDiskRuntime(async (root) => {
      execFileSync('mkfifo', [join(root, 'AGENTS.md')]);
    });
    const result = await runtime.runTextTurn(sessionId, 'hi');
    expect(result.success).toBe(false);
    expect(result.error).toMatchObject({
      code: 'CAPABILITY_FAILED',
      details: { capabilityId: 'agent_instructions' },
    });
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });
});
