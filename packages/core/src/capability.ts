import type { z } from 'zod';
import type { CapabilityHooks, UsageSnapshot } from './capability-hooks.js';
import type { Session } from './domain.js';
import type { SessionFileSystem } from './file-system.js';
import type {
  MemoryStore,
  MessageSearchPage,
  MessageSearchRequest,
  RuntimeSessionStore,
  SessionStorageStore,
} from './stores.js';

/** What a tool sees when it runs. */
export interface ToolContext<TConfig = unknown> {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  /** Deterministic key of this call, `sessionId/turnId/toolCallId`: the same on a replay. */
  idempotencyKey: string;
  /** 1-based reason/act iteration of the turn. */
  iteration: number;
  /** The session's workspace; capabilities never touch `node:fs` directly. */
  fileSystem: SessionFileSystem;
  /** Key/value and secret storage (secrets reach tools only through here). */
  storage: SessionStorageStore;
  /** Long-lived memory. */
  memory: MemoryStore;
  /**
   * The session store, for tools that read or update the session itself (title, info). Set by
   * the runtime's act step; optional so contexts built elsewhere (tests, other hosts) stay valid.
   */
  sessions?: RuntimeSessionStore;
  /**
   * The session's history, searchable (the `query_history` tool of `infinity_context`). Set by
   * the runtime's act step; optional as `sessions`.
   */
  history?: SessionHistoryAccess;
  /**
   * Usage of the session and of this turn so far, summed from the store, with the runtime's
   * prices (the `check_budget` tool of `budgeting`). Set by the runtime's act step; optional.
   */
  usage?(): Promise<UsageSnapshot>;
  /** This capability's validated configuration for the session. */
  config: TConfig;
  /** Fires when the turn is cancelled or the tool's timeout passes. */
  signal: AbortSignal;
}

/** A JSON Schema object as sent to a model. */
export type JsonSchema = Record<string, unknown>;

/**
 * One tool. The model's arguments are validated against `inputSchema` before `execute` runs; a
 * failure is reported to the model as a tool error naming the field.
 */
export interface ToolDefinition<TInput = unknown, TConfig = unknown> {
  /** Name the model calls, unique within a session's tool set. */
  name: string;
  /** What the tool does, for the model. */
  description: string;
  /** zod schema of the arguments. */
  inputSchema: z.ZodType<TInput>;
  /**
   * The JSON Schema the model sees, when it must be passed through as written (an MCP server's
   * schema) instead of derived from `inputSchema`; the arguments are still checked by
   * `inputSchema` (a permissive one lets the tool's owner validate).
   */
  inputJsonSchema?: JsonSchema;
  /**
   * Runs the tool. Return a string or any JSON value (sent to the model as JSON). Throwing, or
   * returning `toolError(message)`, reports a tool error to the model; the turn goes on.
   */
  execute(input: TInput, context: ToolContext<TConfig>): Promise<unknown> | unknown;
  /** True when running the call twice has the same effect as once (re-run on crash recovery). */
  idempotent?: boolean;
  /** Per-call timeout in milliseconds; the context signal fires when it passes. */
  timeoutMs?: number;
  /**
   * A client-side tool is not run by the runtime: the turn waits for the host to submit its
   * result (`waiting_for_tool_results`).
   */
  clientSide?: boolean;
}

/** A tool as the model sees it. */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments. */
  inputSchema: JsonSchema;
}

/** What a capability's prompt function sees. */
export interface CapabilityPromptContext<TConfig = unknown> {
  session: Session;
  fileSystem: SessionFileSystem;
  config: TConfig;
  signal?: AbortSignal;
}

/**
 * A capability: tools plus a system-prompt contribution, switched on per harness, agent or
 * session by id. Third-party capabilities are built with `defineCapability` exactly like the built-ins.
 */
export interface Capability<TConfig = unknown> extends CapabilityHooks<TConfig> {
  /** Stable id, for example `test_math`. */
  id: string;
  /** Display name. */
  name: string;
  description: string;
  /** Ids of capabilities this one needs; they are switched on with it. */
  dependencies?: readonly string[];
  /** Schema of the per-session configuration; absent means "no configuration". */
  configSchema?: z.ZodType<TConfig>;
  /**
   * Text added to the system prompt inside `<capability id="…">…</capability>`, or a function
   * computing it per turn (for example from a workspace file). Empty or `null` adds nothing.
   */
  systemPrompt?:
    | string
    | ((
        context: CapabilityPromptContext<TConfig>,
      ) => Promise<string | null | undefined> | string | null | undefined);
  /** Tools the capability provides. */
  tools: readonly ToolDefinition<never, TConfig>[];
}

/** The session's history as a tool reads it: a text search with paging. */
export interface SessionHistoryAccess {
  /**
   * Messages of the session whose text contains the query (case-insensitive), oldest first,
   * paged. The store's `searchMessages` when it has one (an indexed query on PostgreSQL), else a
   * scan page by page.
   */
  search(request: MessageSearchRequest): Promise<MessageSearchPage>;
}
