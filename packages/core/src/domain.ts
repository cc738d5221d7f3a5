import { z } from 'zod';
import { idSchema } from './ids.js';
import { lazyField, lazySchema } from './lazy-schema.js';
import { mcpServersSchema } from './mcp.js';
import { isoNow } from './time.js';

/** Schema of {@link CapabilityConfig}. */
export const capabilityConfigSchema = z.object({
  /** The capability id, for example `test_math`. */
  id: z.string().min(1),
  /** Capability-specific settings, validated by the capability's own schema. */
  config: z.unknown().optional(),
  /**
   * `true` switches off a capability an earlier layer (harness, agent) switched on: the entry a
   * session gets from `deactivateCapability` for an inherited capability. Absent means on.
   */
  disabled: z.boolean().optional(),
});
/**
 * A capability switched on for a harness, agent or session, with its settings; or, with
 * `disabled: true`, switched off for this layer and the ones after it.
 */
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

/**
 * Schema of {@link NetworkAccessList}: which hosts a session's tools may reach. Patterns are
 * `example.com` (that host), `*.example.com` (the host and its subdomains) or a URL prefix
 * (`https://example.com/api/`).
 */
export const networkAccessListSchema = z.object({
  /** When non-empty, only matching URLs are allowed; empty adds no restriction. */
  allowed: z.array(z.string().min(1)).default([]),
  /** Always denied, even when `allowed` matches. */
  blocked: z.array(z.string().min(1)).default([]),
});
/**
 * A layer's network access list. Layers fold as upstream's: `allowed` lists intersect (a later
 * layer can only narrow), `blocked` lists add up. Carried on the overlay for the tools that
 * fetch (see `SessionOverlay.networkAccess`).
 */
export type NetworkAccessList = z.infer<typeof networkAccessListSchema>;

const declaredToolFields = {
  /** The name the model calls. */
  name: z.string().min(1).max(128),
  /** What the tool does, for the model. */
  description: z.string().default(''),
  /** JSON Schema of the arguments, passed to the model as written. */
  parameters: z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} }),
  /** A human-readable name. */
  displayName: z.string().optional(),
};

/**
 * Schema of {@link DeclaredTool}: a tool an agent or session declares itself (upstream's
 * `ToolDefinition`), as data:
 * - `client_side`: the runtime does not run it; the turn waits for the host to submit the result
 *   (`waiting_for_tool_results`, then `submitToolResults`), as for a capability's client-side tool;
 * - `builtin`: names a tool of a registered capability, offered even when that capability is not
 *   switched on (its default configuration), run by the runtime.
 */
export const declaredToolSchema = lazySchema(() =>
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('client_side'), ...declaredToolFields }),
    z.object({ type: z.literal('builtin'), ...declaredToolFields }),
  ]),
);
/** See {@link declaredToolSchema}. */
export type DeclaredTool = z.infer<typeof declaredToolSchema>;
/** What a caller gives for a {@link DeclaredTool} (defaults filled in by the schema). */
export type DeclaredToolInput = z.input<typeof declaredToolSchema>;

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
  mcpServers: z.optional(lazyField(mcpServersSchema)),
  /** Hosts the session's tools may reach (see {@link NetworkAccessList}). Absent means no restriction. */
  networkAccess: networkAccessListSchema.optional(),
  maxIterations: z.number().int().positive().optional(),
  status: definitionStatusSchema.default('active'),
  ...timestamps,
});
/** The outermost layer of a session's settings; harnesses may chain through `parentHarnessId`. */
export type Harness = z.infer<typeof harnessSchema>;
/** What a caller gives to create a harness (defaults filled in by the schema). */
export type HarnessInput = z.input<typeof harnessSchema>;

/** Schema of {@link Agent}. */
export const agentSchema = lazySchema(() =>
  z.object({
    id: idSchema,
    name: z.string().min(1),
    displayName: z.string().optional(),
    description: z.string().optional(),
    systemPrompt: z.string().default(''),
    defaultModelId: z.string().optional(),
    tags: z.array(z.string()).default([]),
    capabilities: z.array(capabilityConfigSchema).default([]),
    /**
     * The agent's own tools ({@link DeclaredTool}s, as upstream's `tools`). A plain string is
     * this package's allow-list form, kept: when any strings are given, only the capability and
     * MCP tools they name are offered (the declared tools always are).
     */
    tools: z.array(z.union([z.string(), lazyField(declaredToolSchema)])).default([]),
    initialFiles: z.array(initialFileSchema).default([]),
    /**
     * MCP servers whose tools the session's turns get, by name (see `McpServers`); a later
     * layer's entry of the same name replaces this one. Absent means none.
     */
    mcpServers: z.optional(lazyField(mcpServersSchema)),
    /** Hosts the session's tools may reach (see {@link NetworkAccessList}). Absent means no restriction. */
    networkAccess: networkAccessListSchema.optional(),
    maxIterations: z.number().int().positive().optional(),
    status: definitionStatusSchema.default('active'),
    ...timestamps,
  }),
);
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
  /** The session that started this one as a subagent (`capabilities-subagents`); absent for a top-level session. */
  parentSessionId: idSchema.optional(),
  /**
   * The session whose workspace this one works in (a subagent sharing its parent's files);
   * absent means its own.
   */
  workspaceSessionId: idSchema.optional(),
  title: z.string().optional(),
  locale: z.string().optional(),
  tags: z.array(z.string()).default([]),
  modelId: z.string().optional(),
  systemPrompt: z.string().optional(),
  capabilities: z.array(capabilityConfigSchema).default([]),
  /**
   * The session's own tools; one replaces an agent's declared tool of the same name. Absent
   * means none.
   */
  tools: z.array(lazyField(declaredToolSchema)).optional(),
  initialFiles: z.array(initialFileSchema).default([]),
  /**
   * MCP servers whose tools the session's turns get, by name (see `McpServers`); a later
   * layer's entry of the same name replaces this one. Absent means none.
   */
  mcpServers: z.optional(lazyField(mcpServersSchema)),
  /** Hosts the session's tools may reach (see {@link NetworkAccessList}). Absent means no restriction. */
  networkAccess: networkAccessListSchema.optional(),
  maxIterations: z.number().int().positive().optional(),
  status: sessionStatusSchema.default('started'),
  ...timestamps,
});
/** One conversation; its effective settings are the overlay harness chain → agent → session. */
export type Session = z.infer<typeof sessionSchema>;
/** What a caller gives to create a session. */
export type SessionInput = z.input<typeof sessionSchema>;
