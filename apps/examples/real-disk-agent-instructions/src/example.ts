import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_CAPABILITIES } from '@everruns-ts/builtins';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';

/** Stable ids so the example's output is the same on every run. */
export const HARNESS_ID = 'harness_00000000000000000000000000000091';
export const AGENT_ID = 'agent_00000000000000000000000000000091';
export const SESSION_ID = 'session_00000000000000000000000000000091';

/** The system prompt before and after `AGENTS.md` was edited on disk. */
export interface AgentInstructionsOutput {
  initialPrompt: string;
  editedPrompt: string;
}

/**
 * Runs the example in `workspace`, an existing directory: writes `AGENTS.md` there with plain
 * `node:fs`, shows it in the assembled system prompt, edits it on disk, and shows the edit.
 */
export async function runRealDiskAgentInstructionsExample(
  workspace: string,
): Promise<AgentInstructionsOutput> {
  // 1. The rules file lands on disk without going through any store.
  writeFileSync(join(workspace, 'AGENTS.md'), '## Project rules\nPrefer snake_case identifiers.\n');

  // 2. Session workspaces live on that directory; the built-in agent_instructions reads
  //    /AGENTS.md from it.
  const runtime = await new InProcessRuntimeBuilder()
    .builtins(BUILTIN_CAPABILITIES)
    .fileSystemFactory(new RealDiskSessionFileSystemFactory({ root: workspace }))
    .llmSim(LlmSimConfig.fixed('ack'))
    .harness({
      id: HARNESS_ID,
      name: 'coding',
      displayName: 'Coding',
      description: 'Harness that respects AGENTS.md',
      systemPrompt: 'You are a coding assistant.',
      capabilities: [{ id: 'agent_instructions' }],
    })
    .agent({
      id: AGENT_ID,
      name: 'coding-agent',
      systemPrompt: 'Use tools when needed.',
      maxIterations: 8,
    })
    .session({ id: SESSION_ID, harnessId: HARNESS_ID, agentId: AGENT_ID, title: 'Coding Session' })
    .build();

  const initialPrompt = (await runtime.loadContext(SESSION_ID)).systemPrompt;

  // 3. Edit the file on disk: the next context (the next turn) sees the change, no rebuild.
  writeFileSync(join(workspace, 'AGENTS.md'), '## Project rules\nPrefer camelCase identifiers.\n');
  const editedPrompt = (await runtime.loadContext(SESSION_ID)).systemPrompt;

  return { initialPrompt, editedPrompt };
}
