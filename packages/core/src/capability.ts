import type { z } from 'zod';
import type { CapabilityHooks, UsageSnapshot } from './capability-hooks.js';
import type { CapabilityConfig, NetworkAccessList, Session } from './domain.js';
import type { SessionFileSystem } from './file-system.js';
import type { Message } from './message.js';
import type { SessionSchedules } from './session-schedules.js';
import type {
  MemoryStore,
  MessagePage,
  MessagePageRequest,
  MessageSearchPage,
  MessageSearchRequest,
  RuntimeSessionStore,
  SessionStorageStore,
} from './stores.js';
import type { SessionSubagents } from './subagents.js';

/** What a tool sees when it runs. */
export interface ToolContext<TConfig = unknown> {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  /** Deterministic key of this call, `sessionId/turnId/toolCallId`: the same on a replay. */
  idempotencyKey: string;
  /** 1-based reason/act iteration of the turn. */
  iteration: number;
  /**
   * The tenant the turn runs for, set by a multi-tenant host (`AtomDependencies.organizationId`);
   * absent in a single-tenant runtime. Tools that keep data beyond the session (memory) scope it
   * by this.
   */
  organizationId?: string;
  /**
   * The session's network access list, folded over harness, agent and session (see
   * `foldNetworkAccess`); absent when no layer sets one. Tools that reach the network check a URL
   * with `isUrlAllowed` before fetching it.
   */
  networkAccess?: NetworkAccessList;
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
  /**
   * Switches capabilities of this session on and off (persisted; seen from the next reason
   * step). Set by the runtime's act step; a tool offering it to the model must check what the
   * embedder allows (see `capabilities-session`'s `capability_requests`).
   */
  capabilityChanges?: SessionCapabilityChanges;
  /**
   * Child sessions of this session (`capabilities-subagents`): run a turn in a child and get its
   * answer. Set by a host that can run children (the in-process runtime); optional.
   */
  subagents?: SessionSubagents;
  /**
   * Messages this session schedules to itself (`capabilities-schedule`). Set by a host that
   * delivers them (the in-process runtime's timers); optional.
   */
  schedules?: SessionSchedules;
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
  /**
   * Slash commands (`/todos`, …) the embedder lists and runs for a session without a model call
   * (`runtime.listCommands` / `runtime.executeCommand`). Names are unique within a capability;
   * across a session's capabilities the first in capability order wins.
   */
  commands?: readonly CapabilityCommand<TConfig>[];
}

/** What a {@link CapabilityCommand} sees when it runs. */
export interface CommandContext<TConfig = unknown> {
  sessionId: string;
  /** The command's name as declared (without the `/`). */
  command: string;
  /** This capability's validated configuration for the session. */
  config: TConfig;
  /** The session's workspace. */
  fileSystem: SessionFileSystem;
  /** The session's key/value storage. */
  storage: SessionStorageStore;
  /** Long-lived memory. */
  memory: MemoryStore;
  /** The session store. */
  sessions: RuntimeSessionStore;
  /** The session's history, oldest first (read when called). */
  messages(): Promise<Message[]>;
  /** Fires when the caller cancels the command. */
  signal?: AbortSignal;
}

/** What a command returns: text for the user, and optional structured data. */
export interface CommandResult {
  /** What to show the user. */
  text: string;
  /** Structured data for an embedder's own display (JSON-serialisable). */
  data?: unknown;
}

/**
 * A slash command of a capability: run by the embedder for a session, outside any turn and
 * without a model call (upstream's `execute_command`). Nothing is written to the history.
 */
export interface CapabilityCommand<TConfig = unknown> {
  /** The name typed after `/`: 1-64 letters, digits, `_` or `-` (`todos` for `/todos`). */
  name: string;
  /** What the command does, for a command palette. */
  description: string;
  /**
   * Runs the command with the text after its name (trimmed, `''` when none). Return a string or
   * a {@link CommandResult}; throwing makes `executeCommand` reject with `CAPABILITY_FAILED`.
   */
  execute(
    args: string,
    context: CommandContext<TConfig>,
  ): Promise<CommandResult | string> | CommandResult | string;
}

/** The session's history as a tool reads it: a text search with paging. */
export interface SessionHistoryAccess {
  /**
   * Messages of the session whose text contains the query (case-insensitive), oldest first,
   * paged. The store's `searchMessages` when it has one (an indexed query on PostgreSQL), else a
   * scan page by page.
   */
  search(request: MessageSearchRequest): Promise<MessageSearchPage>;
  /**
   * A page of the history in `seq` order (the store's `loadPage`: `afterSeq` or `offset`, `limit`
   * 1..1000), for reading messages by position. Optional: set by the runtime's act step.
   */
  page?(request: MessagePageRequest): Promise<MessagePage>;
  /** The number of messages in the session. Optional, as `page`. */
  count?(): Promise<number>;
}

/** What a live capability change of a session changed (`runtime.activateCapability` / `deactivateCapability`). */
export interface CapabilityChange {
  sessionId: string;
  capabilityId: string;
  action: 'activated' | 'deactivated';
  /** False when the session's capability list was already so (nothing written, no event). */
  changed: boolean;
  /** Tool names the model is offered from now on, and no longer. */
  toolsAdded: string[];
  toolsRemoved: string[];
  /** Ids of the capabilities whose `<capability id="…">` system-prompt section appears, or goes. */
  promptSectionsAdded: string[];
  promptSectionsRemoved: string[];
  /** The session's own capability list now (as stored). */
  capabilities: CapabilityConfig[];
}

/**
 * Live capability changes of one session, for a tool (see {@link ToolContext.capabilityChanges}):
 * the act step binds it to the running turn, so the events carry its turn id. A change is
 * persisted on the session and seen from the turn's next reason step.
 */
export interface SessionCapabilityChanges {
  activate(capabilityId: string, config?: unknown): Promise<CapabilityChange>;
  deactivate(capabilityId: string): Promise<CapabilityChange>;
}
