import {
  type Capability,
  defineCapability,
  defineTool,
  type MemoryEntry,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link memoryCapability}: `persistent_memory`. */
export const MEMORY_CAPABILITY_ID = 'persistent_memory';

/** Longest content of one memory, in characters. */
export const MAX_MEMORY_CONTENT_CHARS = 2_000;

/** Schema of {@link MemoryCapabilityConfig}. */
export const memoryCapabilityConfigSchema = z.strictObject({
  /**
   * The memory scope to read and write. By default the session's agent (`agent:<id>`), or its
   * harness (`harness:<id>`) when it has no agent, so memories outlive one session.
   */
  scope: z.string().min(1).optional(),
});

/** Per-session configuration of {@link memoryCapability}. */
export type MemoryCapabilityConfig = z.output<typeof memoryCapabilityConfigSchema>;

/** A memory as the tools return it. */
export interface MemoryView {
  key: string;
  content: string;
  tags: string[];
  created_at: string;
  updated_at: string;
}

function view(entry: MemoryEntry): MemoryView {
  return {
    key: entry.key,
    content: entry.content,
    tags: entry.tags,
    created_at: entry.createdAt,
    updated_at: entry.updatedAt,
  };
}

/**
 * The scope a call works in: the configured one, else the session's agent, else its harness, else
 * (no session store in the context) the session itself.
 */
export async function memoryScope(context: ToolContext<unknown>): Promise<string> {
  const config = context.config as MemoryCapabilityConfig | undefined;
  if (config?.scope) return config.scope;
  const session = await context.sessions?.getSession(context.sessionId);
  if (session?.agentId) return `agent:${session.agentId}`;
  if (session) return `harness:${session.harnessId}`;
  return `session:${context.sessionId}`;
}

/** FNV-1a (64-bit) of a string as 16 hex digits: a stable key for a call's memory. */
function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const char of new TextEncoder().encode(text)) {
    hash ^= BigInt(char);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, '0');
}

const keyField = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[\w.:/-]+$/, 'use letters, digits, "_", "-", ".", ":" or "/"');

const rememberTool = defineTool({
  name: 'remember',
  description:
    'Save a fact, preference, correction or procedure to persistent memory, which outlives this session. Giving an existing key replaces that memory.',
  inputSchema: z.strictObject({
    content: z
      .string()
      .trim()
      .min(1)
      .max(MAX_MEMORY_CONTENT_CHARS)
      .describe('One to three sentences to keep.'),
    key: keyField.optional().describe('A short stable name; generated when absent.'),
    tags: z.array(z.string().trim().min(1).max(50)).max(10).optional().describe('Up to 10 tags.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const scope = await memoryScope(context);
    // Without a key, the call's idempotency key names it, so a re-run replaces rather than adds.
    const key = input.key ?? `mem_${fnv1a64(context.idempotencyKey)}`;
    const entry = await context.memory.remember(scope, {
      key,
      content: input.content,
      tags: input.tags ?? [],
    });
    return { key: entry.key, saved: true };
  },
});

const recallTool = defineTool({
  name: 'recall',
  description:
    'Search persistent memory. Matches the query against keys, contents and tags (case-insensitive); newest first.',
  inputSchema: z.strictObject({
    query: z
      .string()
      .max(MAX_MEMORY_CONTENT_CHARS)
      .optional()
      .describe('Text to look for; omit it to list the newest memories.'),
    tags: z
      .array(z.string().min(1).max(50))
      .max(10)
      .optional()
      .describe('Only memories carrying every one of these tags.'),
    limit: z
      .number()
      .int()
      .min(1)
      .max(50)
      .optional()
      .describe('Most memories to return. Default 10.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const scope = await memoryScope(context);
    const limit = input.limit ?? 10;
    const wanted = input.tags ?? [];
    const found = await context.memory.recall(
      scope,
      input.query,
      wanted.length > 0 ? undefined : limit,
    );
    const memories = found
      .filter((entry) => wanted.every((tag) => entry.tags.includes(tag)))
      .slice(0, limit)
      .map(view);
    return { memories, count: memories.length };
  },
});

const forgetTool = defineTool({
  name: 'forget',
  description: 'Delete one memory by its key, for example when it is outdated or wrong.',
  inputSchema: z.strictObject({ key: keyField.describe('The key recall returned.') }),
  idempotent: true,
  execute: async (input, context) => {
    const scope = await memoryScope(context);
    const deleted = await context.memory.forget(scope, input.key);
    if (!deleted) return toolError(`forget failed: no memory has the key "${input.key}".`);
    return { key: input.key, deleted: true };
  },
});

const SYSTEM_PROMPT = [
  'You have a persistent memory that outlives this session: remember, recall and forget.',
  'Remember durable facts, preferences, corrections and procedures worth knowing next time; recall before answering when earlier context may help; forget what turned out wrong or outdated.',
].join('\n');

/**
 * The `persistent_memory` capability: `remember`, `recall` and `forget` on the memory store of the
 * runtime's backends (`context.memory`). Memories are kept per scope: the session's agent by
 * default, so every session of that agent shares them.
 */
export const memoryCapability: Capability<MemoryCapabilityConfig> =
  defineCapability<MemoryCapabilityConfig>({
    id: MEMORY_CAPABILITY_ID,
    name: 'Persistent Memory',
    description:
      'Memory across sessions: the agent saves and recalls facts, preferences, corrections and procedures.',
    configSchema: memoryCapabilityConfigSchema,
    systemPrompt: SYSTEM_PROMPT,
    tools: [rememberTool, recallTool, forgetTool],
  });
