import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRealDiskAgentInstructionsExample } from './example.js';

const workspace = mkdtempSync(join(tmpdir(), 'everruns-agent-instructions-'));
console.log(`workspace root: ${workspace}`);
try {
  const { initialPrompt, editedPrompt } = await runRealDiskAgentInstructionsExample(workspace);
  console.log('\n--- system prompt (initial) ---');
  console.log(initialPrompt);
  console.log('\n--- system prompt (after editing AGENTS.md on disk) ---');
  console.log(editedPrompt);
  if (!initialPrompt.includes('snake_case') || !editedPrompt.includes('camelCase')) {
    throw new Error('AGENTS.md did not reach the system prompt');
  }
  console.log('\nok: AGENTS.md flows from the real disk through agent_instructions');
} finally {
  rmSync(workspace, { recursive: true, force: true });
}
