import {
  type Capability,
  defineCapability,
  defineTool,
  type MemoryEntry,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link memoryCapability}: `memory`, as upstream's (the canonical id). */
export const MEMORY_CAPABILITY_ID = 'memory';

/**
 * The id this package used before it took upstream's: `persistent_memory`, kept as an alias
 * ({@link persistentMemoryCapability}) so stored harnesses, agents and sessions naming it keep
 * working. New configurations should name {@link MEMORY_CAPABILITY_ID}.
 */
export const PERSISTENT_MEMORY_CAPABILITY_ID = 'persistent_memory';

/** The kinds a memory can have, as upstream's: `fact` unless `remember` says otherwise. */
export const MEMORY_KINDS = ['fact', 'preference', 'correction', 'procedure', 'context'] as const;

/** One of {@link MEMORY_KINDS}. */
export type MemoryKind = (typeof MEMORY_KINDS)[number];

/** The importance of a memory when `remember` gives none (upstream's default): 5 of 1–10. */
export const DEFAULT_MEMORY_IMPORTANCE = 5;

/**
 * Tags starting with this prefix are the package's own: they carry a memory's kind and importance
 * in the memory store (`everruns:kind=<kind>`, `everruns:importance=<n>`), are hidden from the
 * tools' answers and refused as model-given tags.
 */
export const RESERVED_MEMORY_TAG_PREFIX = 'everruns:';
const KIND_TAG = `${RESERVED_MEMORY_TAG_PREFIX}kind=`;
const IMPORTANCE_TAG = `${RESERVED_MEMORY_TAG_PREFIX}importance=`;

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

/**
 * A memory as `recall` returns it: our fields (`key`, `content`, `tags`, timestamps) and
 * upstream's (`id`, the same as `key`; `kind`; `importance`; `content_parts`, one text part).
 */
export interface MemoryView {
  key: string;
  id: string;
  content: string;
  content_parts: { type: 'text'; text: string }[];
  kind: MemoryKind;
  importance: number;
  tags: string[];
  created_at: string;
  updated_at: string;
}

/** The kind a stored entry carries; `fact` for entries without one (saved before kinds existed). */
function kindOf(entry: MemoryEntry): MemoryKind {
  const tag = entry.tags.find((candidate) => candidate.startsWith(KIND_TAG));
  const kind = tag?.slice(KIND_TAG.length);
  return (MEMORY_KINDS as readonly string[]).includes(kind ?? '') ? (kind as MemoryKind) : 'fact';
}

/** The importance a stored entry carries; the default for entries without one. */
function importanceOf(entry: MemoryEntry): number {
  const tag = entry.tags.find((candidate) => candidate.startsWith(IMPORTANCE_TAG));
  const importance = Number(tag?.slice(IMPORTANCE_TAG.length));
  return Number.isInteger(importance) && importance >= 1 && importance <= 10
    ? importance
    : DEFAULT_MEMORY_IMPORTANCE;
}

/** Whether `query` (lower-cased) is in the key, the content or a tag the model sees. */
function visibleMatch(entry: MemoryEntry, query: string): boolean {
  return (
    entry.key.toLowerCase().includes(query) ||
    entry.content.toLowerCase().includes(query) ||
    entry.tags.some(
      (tag) => !tag.startsWith(RESERVED_MEMORY_TAG_PREFIX) && tag.toLowerCase().includes(query),
    )
  );
}

function view(entry: MemoryEntry): MemoryView {
  return {
    key: entry.key,
    id: entry.key,
    content: entry.content,
    content_parts: [{ type: 'text', text: entry.content }],
    kind: kindOf(entry),
    importance: importanceOf(entry),
    tags: entry.tags.filter((tag) => !tag.startsWith(RESERVED_MEMORY_TAG_PREFIX)),
    created_at: entry.createdAt,
    updated_at: entry.updatedAt,
  };
}

/**
 * The scope a call works in: the configured one, else the session's agent, else its harness, else
 * (no session store in the context) the session itself; inside `org:<id>/` when the host runs
 * the turn for an organisation (`ToolContext.organizationId`), so tenants never share memories.
 */
export async function memoryScope(context: ToolContext<unknown>): Promise<string> {
  const scope = await unscopedMemoryScope(context);
  return context.organizationId === undefined ? scope : `org:${context.organizationId}/${scope}`;
}

async function unscopedMemoryScope(context: ToolContext<unknown>): Promise<string> {
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

const kindField = z.enum(MEMORY_KINDS);

const tagField = z
  .string()
  .trim()
  .min(1)
  .max(50)
  .refine((tag) => !tag.startsWith(RESERVED_MEMORY_TAG_PREFIX), {
    message: `tags starting with "${RESERVED_MEMORY_TAG_PREFIX}" are reserved`,
  });

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
    kind: kindField.optional().describe('What this memory is. Default fact.'),
    importance: z
      .number()
      .int()
      .min(1)
      .max(10)
      .optional()
      .describe('1 (low) to 10 (critical). Default 5.'),
    tags: z.array(tagField).max(10).optional().describe('Up to 10 tags.'),
  }),
  idempotent: true,
  execute: async (input, context) => {
    const scope = await memoryScope(context);
    // Without a key, the call's idempotency key names it, so a re-run replaces rather than adds.
    const key = input.key ?? `mem_${fnv1a64(context.idempotencyKey)}`;
    const before = await context.memory.recall(scope, key);
    const existed = before.some((entry) => entry.key === key);
    const entry = await context.memory.remember(scope, {
      key,
      content: input.content,
      tags: [
        ...(input.tags ?? []),
        `${KIND_TAG}${input.kind ?? 'fact'}`,
        `${IMPORTANCE_TAG}${input.importance ?? DEFAULT_MEMORY_IMPORTANCE}`,
      ],
    });
    return { key: entry.key, saved: true, memory_id: entry.key, created: !existed };
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
    kind: kindField.optional().describe('Only memories of this kind.'),
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
    const query = input.query?.toLowerCase();
    // The store also matches the reserved kind and importance tags; a query is checked again here
    // against what the model sees, so every filtered search reads all matches before the limit.
    const filtered = wanted.length > 0 || input.kind !== undefined || Boolean(query);
    const found = await context.memory.recall(scope, input.query, filtered ? undefined : limit);
    const memories = found
      .filter((entry) => !query || visibleMatch(entry, query))
      .filter((entry) => wanted.every((tag) => entry.tags.includes(tag)))
      .filter((entry) => input.kind === undefined || kindOf(entry) === input.kind)
      .slice(0, limit)
      .map(view);
    return { memories, count: memories.length, total: memories.length };
  },
});

const forgetTool = defineTool({
  name: 'forget',
  description: 'Delete one memory by its key, for example when it is outdated or wrong.',
  inputSchema: z
    .strictObject({
      key: keyField.optional().describe('The key recall returned.'),
      memory_id: keyField.optional().describe('The same as key (upstream spelling).'),
    })
    .refine((input) => input.key !== undefined || input.memory_id !== undefined, {
      message: 'give key (or memory_id)',
      path: ['key'],
    })
    .refine(
      (input) =>
        input.key === undefined || input.memory_id === undefined || input.key === input.memory_id,
      { message: 'key and memory_id name different memories', path: ['memory_id'] },
    ),
  idempotent: true,
  execute: async (input, context) => {
    const scope = await memoryScope(context);
    const key = (input.key ?? input.memory_id) as string;
    const deleted = await context.memory.forget(scope, key);
    if (!deleted) {
      return toolError(
        `forget failed: memory not found or already forgotten: no memory has the key "${key}".`,
      );
    }
    return { key, deleted: true, memory_id: key, forgotten: true };
  },
});

const SYSTEM_PROMPT = [
  'You have a persistent memory that outlives this session: remember, recall and forget.',
  'Remember durable facts, preferences, corrections and procedures worth knowing next time; recall before answering when earlier context may help; forget what turned out wrong or outdated.',
].join('\n');

/**
 * The `memory` capability (upstream's id): `remember`, `recall` and `forget` on the memory store
 * of the runtime's backends (`context.memory`). Memories are kept per scope: the session's agent
 * by default, so every session of that agent shares them. Its former id `persistent_memory` is
 * the alias {@link persistentMemoryCapability}.
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

/**
 * The same capability under its former id `persistent_memory` (an alias of {@link memoryCapability}:
 * the same tools, configuration and memories), so configurations naming the old id keep working.
 * Name one of the two ids: a session naming both gets the tools once and the instructions twice.
 */
export const persistentMemoryCapability: Capability<MemoryCapabilityConfig> =
  defineCapability<MemoryCapabilityConfig>({
    id: PERSISTENT_MEMORY_CAPABILITY_ID,
    name: 'Persistent Memory (alias of memory)',
    description: `The ${MEMORY_CAPABILITY_ID} capability under its former id ${PERSISTENT_MEMORY_CAPABILITY_ID}.`,
    configSchema: memoryCapabilityConfigSchema,
    systemPrompt: SYSTEM_PROMPT,
    tools: [rememberTool, recallTool, forgetTool],
  });
