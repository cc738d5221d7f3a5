import { z } from 'zod';
import type { ToolDefinition } from './capability.js';
import { lazySchema } from './lazy-schema.js';

// Model Context Protocol servers as definitions name them, and the seam through which a platform
// turns them into tools. The protocol itself lives in `@everruns-ts/mcp` (on the official SDK);
// core only knows the configuration and the interface.

/** The fields both transports take (a function: the schemas using it are built on first use). */
const mcpServerCommonShape = () => ({
  /** Longest a tool call may take, in milliseconds (default 60,000: the tool timeout). */
  timeoutMs: z.number().int().positive().max(3_600_000).optional(),
  /** Longest connecting and listing tools may take, in milliseconds (default 10,000). */
  connectTimeoutMs: z.number().int().positive().max(600_000).optional(),
  /** Only these tools of the server (by the server's own names); all when absent. */
  tools: z.array(z.string().min(1)).optional(),
  /** A later layer (agent, session) switches the server off for the session with `true`. */
  disabled: z.boolean().optional(),
});

/** Schema of an MCP server run as a child process speaking over stdio. */
export const mcpStdioServerSchema = lazySchema(() =>
  z.strictObject({
    transport: z.literal('stdio'),
    /** The program to run; written by the embedder, never taken from model output. */
    command: z.string().min(1),
    args: z.array(z.string()).optional(),
    /**
     * The child's whole environment besides what the SDK needs to start a process: the host's own
     * variables are not inherited. Values may be secrets (stored encrypted on PostgreSQL, never
     * shown in contexts, events or the inspector).
     */
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().min(1).optional(),
    ...mcpServerCommonShape(),
  }),
);

/** Schema of an MCP server reached over Streamable HTTP (SSE as the SDK's fallback). */
export const mcpHttpServerSchema = lazySchema(() =>
  z.strictObject({
    transport: z.literal('http'),
    /** `http:` or `https:` URL; redirects to other hosts are not followed. */
    url: z.url({ protocol: /^https?$/ }),
    /** Request headers (an `Authorization` header is a secret: stored encrypted, never shown). */
    headers: z.record(z.string(), z.string()).optional(),
    ...mcpServerCommonShape(),
  }),
);

/** Schema of {@link McpServerConfig}. */
export const mcpServerConfigSchema = lazySchema(() =>
  z.discriminatedUnion('transport', [mcpStdioServerSchema, mcpHttpServerSchema]),
);
/** How to reach one MCP server. */
export type McpServerConfig = z.infer<typeof mcpServerConfigSchema>;

/**
 * Server names: letters, digits, `_` and `-`, at most 32 characters, so that a namespaced tool
 * name (`<server>__<tool>`) stays within every provider's tool-name rules.
 */
export const mcpServerNameSchema = lazySchema(() =>
  z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'an MCP server name is 1-32 letters, digits, _ or -'),
);

/** Schema of {@link McpServers}. */
export const mcpServersSchema = lazySchema(() =>
  z.record(mcpServerNameSchema, mcpServerConfigSchema),
);
/**
 * MCP servers by name, on a harness, an agent or a session. Folded like capabilities (harness
 * chain, then agent, then session): a later layer's entry replaces an earlier one of the same
 * name, and `disabled: true` switches it off.
 */
export type McpServers = z.infer<typeof mcpServersSchema>;

/** What an {@link McpToolSource} is asked for at the start of a reason or act step. */
export interface McpToolRequest {
  sessionId: string;
  /** The session's folded, enabled servers. */
  servers: Readonly<Record<string, McpServerConfig>>;
  signal?: AbortSignal;
}

/** One MCP tool as the turn uses it. */
export interface McpTool {
  /** The server's name in the definitions. */
  server: string;
  /** The tool's name on the server. */
  serverToolName: string;
  /**
   * The tool as the model sees and calls it: its `name` is namespaced by server, its
   * `inputJsonSchema` is the server's schema passed through, `idempotent` follows the server's
   * `idempotentHint`, and `execute` calls the server with the call's signal and timeout.
   */
  tool: ToolDefinition;
}

/**
 * The platform's bridge to MCP servers (implemented by `@everruns-ts/mcp`). The runtime asks it
 * for the tools of a session's servers when a turn step resolves its tools, and closes it with
 * the runtime. A server that cannot be reached is left out of the tools (reported in the tool
 * list's `errors`), so one broken server does not stop a turn.
 */
export interface McpToolSource {
  /** The tools of `request.servers`, connecting as needed. */
  listTools(
    request: McpToolRequest,
  ): Promise<{ tools: McpTool[]; errors: { server: string; message: string }[] }>;
  /** Closes every connection and child process; later calls reject. */
  close(): Promise<void>;
}
