import {
  type BeforeToolCallContext,
  type BeforeToolCallResult,
  type Capability,
  type CapabilityPromptContext,
  defineCapability,
  defineTool,
  EverrunsError,
  type SessionFileSystem,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** The capability's id: what harnesses, agents and sessions name to switch it on. */
export const CHANGELOG_CAPABILITY_ID = 'changelog';

/** Per-session settings, validated by the runtime with this schema (`INVALID_INPUT` otherwise). */
export const changelogConfigSchema = z.strictObject({
  /** The workspace file the changelog lives in. */
  path: z.string().startsWith('/').default('/CHANGELOG.md'),
});

/** The validated settings a tool and the prompt function receive as `config`. */
export type ChangelogConfig = z.output<typeof changelogConfigSchema>;

const TITLE = '# Changelog\n';
const VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

/** The changelog's text, or `null` when the file does not exist yet. */
async function readChangelog(fileSystem: SessionFileSystem, path: string): Promise<string | null> {
  try {
    return (await fileSystem.readFile(path, { encoding: 'text' })).content;
  } catch (error) {
    if (EverrunsError.hasCode(error, 'FILE_NOT_FOUND')) return null;
    throw error; // anything else is a real problem: let the runtime report it
  }
}

/** The version headings (`## 1.2.0`) of a changelog, newest first as written. */
export function changelogVersions(text: string): string[] {
  return [...text.matchAll(/^## (\S+)/gm)].map((match) => match[1] as string);
}

/** Adds `- change` under `## version`, creating the section (at the top) or the file as needed. */
export function addEntry(text: string | null, version: string, change: string): string {
  const current = text ?? TITLE;
  const lines = current.split('\n');
  const heading = lines.findIndex((line) => line.trim() === `## ${version}`);
  if (heading === -1) {
    const firstSection = lines.findIndex((line) => line.startsWith('## '));
    const at = firstSection === -1 ? lines.length : firstSection;
    const section = [`## ${version}`, '', `- ${change}`, ''];
    const before = lines.slice(0, at);
    if (before.length > 0 && before[before.length - 1] !== '') before.push('');
    return [...before, ...section, ...lines.slice(at)].join('\n').replace(/\n*$/, '\n');
  }
  let end = heading + 1;
  while (end < lines.length && !(lines[end] as string).startsWith('## ')) end++;
  let insertAt = end;
  while (insertAt > heading + 1 && (lines[insertAt - 1] as string).trim() === '') insertAt--;
  lines.splice(insertAt, 0, `- ${change}`);
  return lines.join('\n');
}

const addChangelogEntry = defineTool({
  name: 'add_changelog_entry',
  description:
    'Record one user-visible change under a version in the changelog. The version section is created when new.',
  // A strict object: a missing field, a wrong type or an unknown field becomes a tool error the
  // model sees (naming the field) before `execute` runs.
  inputSchema: z.strictObject({
    version: z
      .string()
      .regex(VERSION, 'must be a semantic version such as 1.4.0')
      .describe('The release, for example 1.4.0.'),
    change: z.string().trim().min(1).max(500).describe('One line, in the past tense.'),
  }),
  execute: async ({ version, change }, context) => {
    const { path } = context.config as ChangelogConfig;
    const before = await readChangelog(context.fileSystem, path);
    if (before?.includes(`- ${change}\n`)) {
      // Expected failures are returned, not thrown: the model reads the message and goes on.
      return toolError(`The changelog already has the entry "${change}".`);
    }
    const after = addEntry(before, version, change);
    // Compare-and-set: if another writer changed the file since we read it, nothing is lost; the
    // CONTENT_MISMATCH error reaches the model as a tool error and it can try again.
    await context.fileSystem.writeFileIfContentMatches(path, before, after, 'text');
    return { path, version, versions: changelogVersions(after) };
  },
});

/** The prompt function runs before every model call, so it always describes the current file. */
async function changelogPrompt(context: CapabilityPromptContext<ChangelogConfig>): Promise<string> {
  const { path } = context.config;
  const text = await readChangelog(context.fileSystem, path);
  if (text === null) {
    return `There is no changelog yet. Record user-visible changes with add_changelog_entry; it creates ${path}.`;
  }
  const versions = changelogVersions(text);
  return `The changelog is ${path}; its versions, newest first: ${versions.join(', ') || '(none yet)'}. Record each user-visible change with add_changelog_entry.`;
}

/** The file tools that change a file; the changelog goes through `add_changelog_entry` only. */
const WRITING_FILE_TOOLS = new Set(['write_file', 'edit_file', 'delete_file']);

/**
 * A `beforeToolCall` hook: the file tools may not change the changelog behind the capability's
 * back (the model gets the veto as the tool's error and the tool does not run). Hooks of every
 * capability run in capability order around every tool call, whoever owns the tool.
 */
function guardChangelog(
  context: BeforeToolCallContext<ChangelogConfig>,
): BeforeToolCallResult | undefined {
  if (!WRITING_FILE_TOOLS.has(context.toolName)) return undefined;
  const target = String(context.arguments.path ?? '').replace(/^\/*/, '/');
  if (target !== context.config.path) return undefined;
  return { veto: `${context.config.path} is kept by add_changelog_entry; use that tool instead.` };
}

/**
 * A third-party capability, written against `@everruns-ts/core` only: one tool that records
 * changes in a changelog file of the session workspace, and a system-prompt contribution that
 * tells the model what the changelog holds. It depends on the built-in `session_file_system`
 * capability, so switching `changelog` on also gives the model the file tools; its
 * `beforeToolCall` hook keeps those tools from writing the changelog itself.
 */
export const changelogCapability: Capability<ChangelogConfig> = defineCapability<ChangelogConfig>({
  id: CHANGELOG_CAPABILITY_ID,
  name: 'Changelog',
  description: 'Keeps a CHANGELOG.md in the workspace.',
  dependencies: ['session_file_system'],
  configSchema: changelogConfigSchema,
  systemPrompt: changelogPrompt,
  tools: [addChangelogEntry],
  beforeToolCall: guardChangelog,
});
