import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  type SessionFileSystem,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import {
  MAX_FRONT_MATTER_BYTES,
  MAX_FRONT_MATTER_KEYS,
  parseSkillFile,
  type SkillFile,
} from './skill-file.js';

/** Id of the {@link skillsCapability}, as upstream (`skills`). */
export const SKILLS_CAPABILITY_ID = 'skills';

/** The workspace directory whose sub-directories are skills: `/.agents/skills/<name>/SKILL.md`. */
export const SKILLS_PATH = '/.agents/skills';

/** Most skills named in the system prompt; `list_skills` shows them all. */
export const MAX_SKILLS_IN_PROMPT = 20;

/** Longest description shown in the system prompt (cut with "…"). */
export const MAX_PROMPT_DESCRIPTION_CHARS = 200;

/** Default most skills read from the workspace; further directories are left out (and counted). */
export const MAX_SKILLS = 200;

/** Default largest `SKILL.md` read, in bytes (256 KiB); a larger one is listed with an error, unread. */
export const MAX_SKILL_FILE_BYTES = 262_144;

/** Longest `arguments` text `activate_skill` accepts. */
export const MAX_SKILL_ARGUMENTS_CHARS = 16_384;

/** Longest instructions `activate_skill` returns once `$ARGUMENTS` is replaced (1 MiB of characters). */
export const MAX_INSTRUCTIONS_CHARS = 1_048_576;

/**
 * Schema of {@link SkillsConfig}. Skills are workspace files, so untrusted: every limit is
 * checked before a file is read or its front matter parsed.
 */
export const skillsConfigSchema = z.strictObject({
  /** Most skill directories read per discovery. Default {@link MAX_SKILLS}. */
  maxSkills: z.number().int().positive().max(10_000).default(MAX_SKILLS),
  /** Largest `SKILL.md` read, in bytes. Default {@link MAX_SKILL_FILE_BYTES}. */
  maxSkillFileBytes: z.number().int().positive().default(MAX_SKILL_FILE_BYTES),
  /** Most bytes of YAML front matter parsed. Default {@link MAX_FRONT_MATTER_BYTES}. */
  maxFrontMatterBytes: z.number().int().positive().max(1_048_576).default(MAX_FRONT_MATTER_BYTES),
  /** Most keys in a front matter. Default {@link MAX_FRONT_MATTER_KEYS}. */
  maxFrontMatterKeys: z.number().int().positive().max(10_000).default(MAX_FRONT_MATTER_KEYS),
});

/** Per-session configuration of {@link skillsCapability}; every field has a default. */
export type SkillsConfig = z.output<typeof skillsConfigSchema>;

function configOf(config: unknown): SkillsConfig {
  return (config as SkillsConfig | undefined) ?? skillsConfigSchema.parse({});
}

/** Gives the event loop a turn (between two skills), so many skills never hold it for long. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Options of {@link discoverSkills}. */
export interface DiscoverSkillsOptions {
  signal?: AbortSignal;
  /** Limits; absent fields take their defaults. */
  limits?: Partial<SkillsConfig>;
}

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
 * `SKILL.md`, sorted by name, at most `maxSkills` of them (the result's `omitted` counts the
 * rest). A file larger than `maxSkillFileBytes` is returned with an `error` without being read;
 * an unparsable file is returned with its `error`; a missing skills directory means no skills.
 * Other file-system errors propagate. Between two skills the event loop gets a turn.
 */
export async function discoverSkills(
  fileSystem: SessionFileSystem,
  signalOrOptions?: AbortSignal | DiscoverSkillsOptions,
): Promise<DiscoveredSkill[] & { omitted?: number }> {
  const options: DiscoverSkillsOptions =
    signalOrOptions instanceof AbortSignal ? { signal: signalOrOptions } : (signalOrOptions ?? {});
  const { signal } = options;
  const limits = { ...skillsConfigSchema.parse({}), ...options.limits };
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
  const candidates = entries
    .filter((entry) => entry.isDirectory && SKILL_NAME.test(entry.name))
    .sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0));
  const skills: DiscoveredSkill[] & { omitted?: number } = [];
  let read = 0;
  for (const entry of candidates) {
    if (read >= limits.maxSkills) {
      skills.omitted = candidates.length - read;
      break;
    }
    if (read > 0) await yieldToEventLoop();
    signal?.throwIfAborted();
    read++;
    const path = `${entry.path}/SKILL.md`;
    let content: string;
    try {
      const stat = await fileSystem.statFile(path);
      if (stat === null) continue;
      if (stat.size > limits.maxSkillFileBytes) {
        skills.push({
          name: entry.name,
          path,
          error: `Invalid SKILL.md: the file is ${stat.size} bytes, more than the ${limits.maxSkillFileBytes} allowed`,
        });
        continue;
      }
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
      skills.push({ name: entry.name, path, skill: parseSkillFile(content, limits) });
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
    const skills = await discoverSkills(context.fileSystem, {
      signal: context.signal,
      limits: configOf(context.config),
    });
    return {
      skills: skills.map((found) =>
        found.skill
          ? { name: found.name, description: found.skill.description, path: found.path }
          : { name: found.name, path: found.path, error: found.error },
      ),
      count: skills.length,
      ...(skills.omitted ? { omitted: skills.omitted } : {}),
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
      .max(MAX_SKILL_ARGUMENTS_CHARS)
      .optional()
      .describe('Text that replaces $ARGUMENTS in the instructions, if they use it.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const limits = configOf(context.config);
    const path = `${SKILLS_PATH}/${input.name}/SKILL.md`;
    let content: string;
    try {
      const stat = await context.fileSystem.statFile(path);
      if (stat && !stat.isDirectory && stat.size > limits.maxSkillFileBytes) {
        return toolError(
          `activate_skill failed: ${path} is ${stat.size} bytes, more than the ${limits.maxSkillFileBytes} allowed`,
        );
      }
      content = (
        await context.fileSystem.readFile(path, { encoding: 'text', signal: context.signal })
      ).content;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'FILE_NOT_FOUND')) {
        const known = (await discoverSkills(context.fileSystem, { signal: context.signal, limits }))
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
      skill = parseSkillFile(content, limits);
    } catch (error) {
      return toolError(`activate_skill failed: ${path} is invalid: ${(error as Error).message}`);
    }
    if (input.arguments !== undefined) {
      // Work out the size before replacing: many $ARGUMENTS times a long text could be huge.
      const uses = skill.body.split('$ARGUMENTS').length - 1;
      const size = skill.body.length + uses * (input.arguments.length - '$ARGUMENTS'.length);
      if (size > MAX_INSTRUCTIONS_CHARS) {
        return toolError(
          `activate_skill failed: with these arguments the instructions would be ${size} characters, more than the ${MAX_INSTRUCTIONS_CHARS} allowed`,
        );
      }
    }
    const instructions =
      input.arguments === undefined
        ? skill.body
        : skill.body.replaceAll('$ARGUMENTS', () => input.arguments as string);
    return { name: input.name, description: skill.description, path, instructions };
  },
});

async function skillsPrompt({
  fileSystem,
  signal,
  config,
}: {
  fileSystem: SessionFileSystem;
  signal?: AbortSignal;
  config?: unknown;
}): Promise<string | null> {
  const usable = (
    await discoverSkills(fileSystem, {
      ...(signal ? { signal } : {}),
      limits: configOf(config),
    })
  ).filter((found) => found.skill);
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
export const skillsCapability: Capability<SkillsConfig> = defineCapability<SkillsConfig>({
  id: SKILLS_CAPABILITY_ID,
  name: 'Agent Skills',
  description:
    'Discovers skills (SKILL.md instruction packages) in the session workspace and loads them on demand.',
  dependencies: ['session_file_system'],
  configSchema: skillsConfigSchema,
  systemPrompt: skillsPrompt,
  tools: [listSkillsTool, activateSkillTool],
});
