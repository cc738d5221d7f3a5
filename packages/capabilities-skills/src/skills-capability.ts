import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  type SessionFileSystem,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import { parseSkillFile, type SkillFile } from './skill-file.js';

/** Id of the {@link skillsCapability}, as upstream (`skills`). */
export const SKILLS_CAPABILITY_ID = 'skills';

/** The workspace directory whose sub-directories are skills: `/.agents/skills/<name>/SKILL.md`. */
export const SKILLS_PATH = '/.agents/skills';

/** Most skills named in the system prompt; `list_skills` shows them all. */
export const MAX_SKILLS_IN_PROMPT = 20;

/** Longest description shown in the system prompt (cut with "…"). */
export const MAX_PROMPT_DESCRIPTION_CHARS = 200;

/** A skill found in the workspace, or a `SKILL.md` that could not be parsed (`error`). */
export interface DiscoveredSkill {
  /** The directory name, which `activate_skill` takes. */
  name: string;
  path: string;
  skill?: SkillFile;
  error?: string;
}

const SKILL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Finds the skills of a workspace: every directory under {@link SKILLS_PATH} holding a
 * `SKILL.md`, sorted by name. An unparsable file is returned with its `error`; a missing skills
 * directory means no skills. Other file-system errors propagate.
 */
export async function discoverSkills(
  fileSystem: SessionFileSystem,
  signal?: AbortSignal,
): Promise<DiscoveredSkill[]> {
  let entries: Awaited<ReturnType<SessionFileSystem['listDirectory']>>;
  try {
    entries = await fileSystem.listDirectory(SKILLS_PATH);
  } catch (error) {
    if (
      EverrunsError.hasCode(error, 'FILE_NOT_FOUND') ||
      EverrunsError.hasCode(error, 'NOT_A_DIRECTORY')
    )
      return [];
    throw error;
  }
  const skills: DiscoveredSkill[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory || !SKILL_NAME.test(entry.name)) continue;
    const path = `${entry.path}/SKILL.md`;
    let content: string;
    try {
      content = (
        await fileSystem.readFile(path, { encoding: 'text', ...(signal ? { signal } : {}) })
      ).content;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'FILE_NOT_FOUND')) continue;
      if (EverrunsError.isInstance(error) && error.code !== 'ABORTED') {
        skills.push({ name: entry.name, path, error: `${error.code}: ${error.message}` });
        continue;
      }
      throw error;
    }
    try {
      skills.push({ name: entry.name, path, skill: parseSkillFile(content) });
    } catch (error) {
      skills.push({
        name: entry.name,
        path,
        error: `Invalid SKILL.md: ${(error as Error).message}`,
      });
    }
  }
  return skills;
}

function shorten(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1).trimEnd()}…`;
}

const listSkillsTool = defineTool({
  name: 'list_skills',
  description: `List the skills of the workspace (${SKILLS_PATH}/<name>/SKILL.md) with their descriptions.`,
  inputSchema: z.strictObject({}),
  idempotent: true,
  execute: async (_input, context) => {
    const skills = await discoverSkills(context.fileSystem, context.signal);
    return {
      skills: skills.map((found) =>
        found.skill
          ? { name: found.name, description: found.skill.description, path: found.path }
          : { name: found.name, path: found.path, error: found.error },
      ),
      count: skills.length,
    };
  },
});

const activateSkillTool = defineTool({
  name: 'activate_skill',
  description:
    'Load the full instructions of one skill by its name (the directory under /.agents/skills). Follow them for the current task.',
  inputSchema: z.strictObject({
    name: z
      .string()
      .regex(SKILL_NAME, 'must be a skill directory name: letters, digits, ".", "_" or "-"')
      .describe('The skill name, as listed.'),
    arguments: z
      .string()
      .optional()
      .describe('Text that replaces $ARGUMENTS in the instructions, if they use it.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const path = `${SKILLS_PATH}/${input.name}/SKILL.md`;
    let content: string;
    try {
      content = (
        await context.fileSystem.readFile(path, { encoding: 'text', signal: context.signal })
      ).content;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'FILE_NOT_FOUND')) {
        const known = (await discoverSkills(context.fileSystem, context.signal))
          .filter((found) => found.skill)
          .map((found) => found.name);
        return toolError(
          `activate_skill failed: there is no skill "${input.name}". Available: ${known.join(', ') || '(none)'}.`,
        );
      }
      if (EverrunsError.isInstance(error) && error.code !== 'ABORTED')
        return toolError(`activate_skill failed (${error.code}): ${error.message}`);
      throw error;
    }
    let skill: SkillFile;
    try {
      skill = parseSkillFile(content);
    } catch (error) {
      return toolError(`activate_skill failed: ${path} is invalid: ${(error as Error).message}`);
    }
    const instructions =
      input.arguments === undefined
        ? skill.body
        : skill.body.replaceAll('$ARGUMENTS', input.arguments);
    return { name: input.name, description: skill.description, path, instructions };
  },
});

async function skillsPrompt({
  fileSystem,
  signal,
}: {
  fileSystem: SessionFileSystem;
  signal?: AbortSignal;
}): Promise<string | null> {
  const usable = (await discoverSkills(fileSystem, signal)).filter((found) => found.skill);
  if (usable.length === 0) return null;
  const lines = [
    `Skills are instruction packages in the workspace (${SKILLS_PATH}/<name>/SKILL.md). When one fits the task, load it with activate_skill and follow it; ignore the others.`,
    '',
    'Available skills:',
  ];
  for (const found of usable.slice(0, MAX_SKILLS_IN_PROMPT)) {
    lines.push(
      `- ${found.name}: ${shorten(found.skill?.description ?? '', MAX_PROMPT_DESCRIPTION_CHARS)}`,
    );
  }
  if (usable.length > MAX_SKILLS_IN_PROMPT) {
    lines.push(`(${usable.length - MAX_SKILLS_IN_PROMPT} more: call list_skills to see them all)`);
  }
  return lines.join('\n');
}

/**
 * The `skills` capability: finds skills in the workspace under `/.agents/skills/<name>/SKILL.md`
 * (YAML front matter with `name` and `description`, then Markdown instructions), names them in the
 * system prompt on every turn, and offers `list_skills` and `activate_skill` (which returns one
 * skill's instructions). It depends on `session_file_system`, which is switched on with it.
 */
export const skillsCapability: Capability = defineCapability({
  id: SKILLS_CAPABILITY_ID,
  name: 'Agent Skills',
  description:
    'Discovers skills (SKILL.md instruction packages) in the session workspace and loads them on demand.',
  dependencies: ['session_file_system'],
  systemPrompt: skillsPrompt,
  tools: [listSkillsTool, activateSkillTool],
});
