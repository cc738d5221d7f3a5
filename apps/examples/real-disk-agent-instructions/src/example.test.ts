import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRealDiskAgentInstructionsExample } from './example.js';

describe('real-disk-agent-instructions example', () => {
  let workspace: string;
  beforeEach(() => {
    workspace = mkdtempSync(join(tmpdir(), 'everruns-agent-instructions-'));
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  it('puts AGENTS.md from disk into the system prompt and sees an edit on the next context', async () => {
    const { initialPrompt, editedPrompt } = await runRealDiskAgentInstructionsExample(workspace);
    expect(initialPrompt).toContain('You are a coding assistant.');
    expect(initialPrompt).toContain('Prefer snake_case identifiers.');
    expect(initialPrompt).toContain('<agent-instructions source="AGENTS.md">');
    expect(editedPrompt).toContain('Prefer camelCase identifiers.');
    expect(editedPrompt).not.toContain('snake_case');
  });
});
