import { z } from 'zod';
import { idSchema } from './ids.js';
import { mcpServersSchema } from './mcp.js';
import { isoNow } from './time.js';

/** Schema of {@link CapabilityConfig}. */
export const capabilityConfigSchema = z.object({
  /** The capability id, for example `test_math`. */
  id: z.string().min(1),
  /** Capability-specific settings, validated by the capability's own schema. */
  config: z.unknown().optional(),
});
/** A capability switched on for a harness, agent or session, with its settings. */
export type CapabilityConfig = z.infer<typeof capabilityConfigSchema>;

/** Encodings of file content. `base64` carries bytes; `text` carries UTF-8 text. */
export const fileEncodingSchema = z.enum(['text', 'base64']);
/** See {@link fileEncodingSchema}. */
export type FileEncoding = z.infer<typeof fileEncodingSchema>;

/** Schema of {@link InitialFile}. */
export const initialFileSchema = z.object({
  /** Workspace path, for example `/AGENTS.md`. */
  path: z.string().min(1),
  content: z.string(),
  encoding: fileEncodingSchema.default('text'),
  /** A read-only file refuses writes and deletes. */
  isReadonly: z.boolean().default(false),
});
/** A file placed in the session's workspace when the session is created. */
export type InitialFile = z.infer<typeof initialFileSchema>;

const timestamps = {
  createdAt: z.string().default(isoNow),
  updatedAt: z.string().default(isoNow),
};

/** Status of a harness or agent. A disabled one blocks the sessions that depend on it. */
export const definitionStatusSchema = z.enum(['active', 'disabled', 'archived']);

/** Schema of {@link Harness}. */
export const harnessSchema = z.object({
  id: idSchema,
  name: z.string().min(1),
  displayName: z.string().optional(),
  description: z.string().optional(),
  systemPrompt: z.string().default(''),
  parentHarnessId: idSchema.optional(),
  defaultModelId: z.string().optional(),
  tags: z.array(z.string()).default([]),
  capabilities: z.array(capabilityConfigSchema).default([]),
  initialFiles: z.array(initialFileSchema).default([]),
  /**
   * MCP servers whose tools the session's turns get, by name (see `McpServers`); a later
   * layer's entry of the same name replaces this one. Absent means none.
   */
  mcpServers: mcpServersSchema.optional(),
  maxIterations: z.number().int().positive().optional(),
  status: definitionStatusSchema.default('active'),
  ...timestamps,
});
/** The outermost layer of a session's settings; harnesses may chain through `parentHarnessId`. */
export type Harness = z.infer<typeof harnessSchema>;
/** What a caller gives to create a harness (defaults filled in by the schema). */
export type HarnessInput = z.input<typeof harnessSchema>;

/** Schema of {@link Agent}. */
export const agentSchema = z.object({
  id: idSchema,
  name: z.string().min(1),
  displayName: z.string().optional(),
  description: z.string().optional(),
  systemPrompt: z.string().default(''),
  defaultModelId: z.string().optional(),
  tags: z.array(z.string()).default([]),
  capabilities: z.array(capabilityConfigSchema).default([]),
  /** Names of extra tools the agent is allowed; empty means all tools of its capabilities. */
  tools: z.array(z.string()).default([]),
  initialFiles: z.array(initialFileSchema).default([]),
  /**
   * MCP servers whose tools the session's turns get, by name (see `McpServers`); a later
   * layer's entry of the same name replaces this one. Absent means none.
   */
  mcpServers: mcpServersSchema.optional(),
  maxIterations: z.number().int().positive().optional(),
  status: definitionStatusSchema.default('active'),
  ...timestamps,
});
/** The middle layer of a session's settings. */
export type Agent = z.infer<typeof agentSchema>;
/** What a caller gives to create an agent. */
export type AgentInput = z.input<typeof agentSchema>;

/** Lifecycle status of a session. */
export const sessionStatusSchema = z.enum([
  'started',
  'active',
  'idle',
  'waiting_for_tool_results',
]);
/** See {@link sessionStatusSchema}. */
export type SessionStatus = z.infer<typeof sessionStatusSchema>;

/** Schema of {@link Session}. */
export const sessionSchema = z.object({
  id: idSchema,
  harnessId: idSchema,
  agentId: idSchema.optional(),
  title: z.string().optional(),
  locale: z.string().optional(),
  tags: z.array(z.string()).default([]),
  modelId: z.string().optional(),
  systemPrompt: z.string().optional(),
  capabilities: z.array(capabilityConfigSchema).default([]),
  initialFiles: z.array(initialFileSchema).default([]),
  /**
   * MCP servers whose tools the session's turns get, by name (see `McpServers`); a later
   * layer's entry of the same name replaces this one. Absent means none.
   */
  mcpServers: mcpServersSchema.optional(),
  maxIterations: z.number().int().positive().optional(),
  status: sessionStatusSchema.default('started'),
  ...timestamps,
});
/** One conversation; its effective settings are the overlay harness chain → agent → session. */
export type Session = z.infer<typeof sessionSchema>;
/** What a caller gives to create a session. */
export type SessionInput = z.input<typeof sessionSchema>;
