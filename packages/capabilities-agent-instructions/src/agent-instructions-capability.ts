import {
  type Capability,
  type CapabilityPromptContext,
  defineCapability,
  EverrunsError,
} from '@everruns-ts/core';

/** Id of the {@link agentInstructionsCapability}, as upstream (`agent_instructions`). */
export const AGENT_INSTRUCTIONS_CAPABILITY_ID = 'agent_instructions';

/** Where the instructions are read from: `AGENTS.md` at the workspace root. */
export const AGENTS_MD_PATH = '/AGENTS.md';

/** Most characters of `AGENTS.md` put into the prompt (32 KiB, as upstream); the rest is cut with a notice. */
export const MAX_AGENTS_MD_CHARS = 32_768;

/**
 * Formats the content of `AGENTS.md` for the system prompt: trimmed, cut at
 * {@link MAX_AGENTS_MD_CHARS} with a notice, and wrapped in `<agent-instructions>` so the model
 * can tell the workspace's instructions from the platform's. Returns `null` for blank content.
 */
export function formatAgentInstructions(content: string): string | null {
  const trimmed = content.trim();
  if (trimmed === '') return null;
  const cut = trimmed.length > MAX_AGENTS_MD_CHARS;
  const body = cut ? trimmed.slice(0, MAX_AGENTS_MD_CHARS) : trimmed;
  const notice = cut
    ? `\n\n[AGENTS.md was cut: it is longer than ${MAX_AGENTS_MD_CHARS} characters]`
    : '';
  return `<agent-instructions source="AGENTS.md">\n${body}${notice}\n</agent-instructions>`;
}

async function readInstructions(context: CapabilityPromptContext): Promise<string | null> {
  try {
    const file = await context.fileSystem.readFile(AGENTS_MD_PATH, {
      encoding: 'text',
      ...(context.signal ? { signal: context.signal } : {}),
    });
    return formatAgentInstructions(file.content);
  } catch (error) {
    // No file (or a directory of that name) means no instructions; anything else fails the turn.
    if (
      EverrunsError.hasCode(error, 'FILE_NOT_FOUND') ||
      EverrunsError.hasCode(error, 'IS_A_DIRECTORY')
    ) {
      return null;
    }
    throw error;
  }
}

/**
 * The `agent_instructions` capability: puts the workspace's `/AGENTS.md` into the system prompt,
 * read through the session file system on every turn (edits are seen at once). An absent or blank
 * file adds nothing. A read failure other than "not found" fails the turn with
 * `CAPABILITY_FAILED` naming this capability. No tools.
 */
export const agentInstructionsCapability: Capability = defineCapability({
  id: AGENT_INSTRUCTIONS_CAPABILITY_ID,
  name: 'Agent Instructions',
  description:
    'Includes the AGENTS.md file of the session workspace in the system prompt, re-read on every turn.',
  systemPrompt: readInstructions,
  tools: [],
});
