import type { ToolDefinition, ToolSpec } from '../capability.js';
import type { CapabilityHooks, UsageSnapshot } from '../capability-hooks.js';
import type { CapabilityRegistry, ResolvedCapability } from '../capability-registry.js';
import type { CompactionRecord } from '../compaction.js';
import type { Agent, Harness, Session } from '../domain.js';
import type { DriverRegistry } from '../driver.js';
import type { SessionFileSystem, SessionFileSystemFactory } from '../file-system.js';
import type { ModelPrices } from '../llm-usage.js';
import type { McpToolSource } from '../mcp.js';
import type { Message } from '../message.js';
import type { ModelWithProvider } from '../model.js';
import type { ScheduleHost } from '../session-schedules.js';
import type { RuntimeBackends } from '../stores.js';
import type { SubagentHost } from '../subagents.js';
import type { SessionOverlay } from './fold-overlay.js';

// The data the engine works with: its limits, its dependencies, a turn's resolved setup and the
// context a reason step sends to a model.

/** Limits of a turn. */
export interface TurnLimits {
  /** Reason/act iterations per turn when the overlay sets none. Default 50. */
  maxIterations: number;
  /** Per tool call, unless the tool sets its own. Default 60,000 ms. */
  toolTimeoutMs: number;
  /** Longest tool result (characters) the model sees; longer ones are truncated with a marker. Default 50,000. */
  maxToolResultChars: number;
  /** The same tool calls with the same arguments this many times in a row stop the turn. Default 5. */
  maxRepeatedToolCalls: number;
  /**
   * Largest user message a turn accepts, in UTF-8 bytes of its text, image data and metadata
   * (see `inputMessageSize`); a larger one is refused with `LIMIT_EXCEEDED` before anything is
   * stored. Default 1 MiB (1,048,576).
   */
  maxInputBytes?: number;
  /**
   * How long an aborted turn waits for a running tool to settle after the tool's signal fired,
   * before the turn rejects with `ABORTED` anyway (ms). A tool that honours its signal has then
   * stopped, its last writes done, when the caller sees the rejection; one that ignores its
   * signal holds the rejection back by at most this much. 0 does not wait. Default 2,000.
   */
  toolAbortGraceMs?: number;
}

/** The defaults of {@link TurnLimits}. */
export const DEFAULT_TURN_LIMITS: Readonly<TurnLimits> = Object.freeze({
  maxIterations: 50,
  toolTimeoutMs: 60_000,
  maxToolResultChars: 50_000,
  maxRepeatedToolCalls: 5,
  maxInputBytes: 1_048_576,
  toolAbortGraceMs: 2_000,
});

/** Everything the atoms need. A host builds it once and reuses it for every turn. */
export interface AtomDependencies {
  backends: RuntimeBackends;
  capabilities: CapabilityRegistry;
  drivers: DriverRegistry;
  fileSystems: SessionFileSystemFactory;
  limits: TurnLimits;
  /** Called with every context the reason step sends to a model. */
  onContextAssembled?(context: AssembledTurnContext): void;
  /**
   * Where the tools of a session's MCP servers come from (the platform's source). Without it, or
   * for a session without enabled servers, no MCP tool is listed and nothing is asked.
   */
  mcp?: McpToolSource;
  /** Resolved setups by `sessionId/turnId`; a host that runs a whole turn in one process passes one and clears it after the turn. */
  setupCache?: Map<string, TurnSetup>;
  /**
   * The embedder's prices per model (see `ModelPrices`), handed to capability hooks and tools
   * through their usage snapshot (budgets in cost). Optional; no prices are built in.
   */
  prices?: ModelPrices;
  /** Runs child sessions for tools (`ToolContext.subagents`); without it tools get none. */
  subagents?: SubagentHost;
  /** Keeps and delivers scheduled messages for tools (`ToolContext.schedules`); optional. */
  schedules?: ScheduleHost;
  /**
   * The tenant the turns run for, in a multi-tenant host (upstream's `org_id`): handed to tools
   * as `ToolContext.organizationId` (the memory tools keep each organisation's memories apart)
   * and to {@link buildToolRegistry} and {@link budgetChecker}. A host serving several
   * organisations uses one adapter per organisation (see `forOrganization` of the runtime).
   */
  organizationId?: string;
  /**
   * Builds the turn's tool registry (upstream's `build_tool_registry_for_agent` /
   * `_for_harness`): given the tools the session's capabilities and declared tools provide, return
   * the map of tools to offer instead (add, remove or replace tools), or `undefined` to keep them.
   * Called once per turn setup, before MCP tools are added. Throwing fails the step.
   */
  buildToolRegistry?(
    scope: ToolRegistryScope,
  ): Promise<Map<string, TurnTool> | undefined> | Map<string, TurnTool> | undefined;
  /**
   * Hooks of the host, run for every session after the capabilities' own hooks (upstream's
   * post-tool hooks of the host): the same shape and rules as `CapabilityHooks`, with
   * `config` undefined. Shown in hook contexts as the capability `host`.
   */
  hostHooks?: CapabilityHooks<undefined>;
  /**
   * Checked before every model call (upstream's `budget_checker`): a result with `exhausted`
   * stops the turn before the call with `BUDGET_EXHAUSTED` (stop reason `budget_exhausted`) and
   * the result's message. Runs after the capabilities' `beforeModelCall` hooks.
   */
  budgetChecker?(
    scope: BudgetCheckScope,
  ): Promise<BudgetCheckResult | undefined> | BudgetCheckResult | undefined;
}

/** What {@link AtomDependencies.buildToolRegistry} is told. */
export interface ToolRegistryScope {
  organizationId?: string;
  sessionId: string;
  /** The session's harness chain, root first. */
  harnessChain: readonly Harness[];
  /** The session's agent, or `null`. */
  agent: Agent | null;
  session: Session;
  /** The tools resolved so far (a copy: change it freely and return it). */
  tools: Map<string, TurnTool>;
  /** The capabilities switched on, with their configuration. */
  capabilities: readonly ResolvedCapability[];
}

/** What {@link AtomDependencies.budgetChecker} is told before a model call. */
export interface BudgetCheckScope {
  organizationId?: string;
  sessionId: string;
  turnId: string;
  iteration: number;
  /** The session's agent id, if it has one. */
  agentId?: string;
  /** Usage of the session and the turn so far (with the runtime's prices). */
  usage(): Promise<UsageSnapshot>;
}

/** What {@link AtomDependencies.budgetChecker} answers. */
export interface BudgetCheckResult {
  /** True stops the turn before the model call. */
  exhausted: boolean;
  /** Why, for the turn's error. */
  message?: string;
  details?: Record<string, unknown>;
}

/** A tool available in a turn, with the capability that provides it. */
export interface TurnTool {
  tool: ToolDefinition;
  /** The capability's id; `mcp:<server>` for a tool of an MCP server. */
  capabilityId: string;
  config: unknown;
  /** Set for a tool of an MCP server: the server's name and the tool's name there. */
  mcp?: { server: string; serverToolName: string };
}

/** A tool of an MCP server in a turn: the name the model calls, its server and its name there. */
export interface TurnMcpTool {
  name: string;
  server: string;
  serverToolName: string;
}

/**
 * Why an MCP server's tools, or one of them, are missing from a turn: the server could not be
 * reached or listed (`unreachable`), or a tool's name is taken by a capability tool or an earlier
 * tool (`name_clash`, with the tool's names). Secret values of the server's configuration are
 * redacted from the message.
 */
export interface TurnMcpIssue {
  server: string;
  kind: 'unreachable' | 'name_clash';
  message: string;
  toolName?: string;
  serverToolName?: string;
}

/** The resolved, model-independent setup of a session for a turn. */
export interface TurnSetup {
  overlay: SessionOverlay;
  capabilities: ResolvedCapability[];
  tools: Map<string, TurnTool>;
  toolSpecs: ToolSpec[];
  fileSystem: SessionFileSystem;
  maxIterations: number;
  /** The MCP tools among {@link TurnSetup.tools}, in the order the model sees them. */
  mcpTools: TurnMcpTool[];
  /** MCP servers or tools left out of the turn, and why. */
  mcpIssues: TurnMcpIssue[];
}

/** A capability's contribution to the system prompt. */
export interface CapabilityPromptContribution {
  capabilityId: string;
  text: string;
}

/** Exactly what the reason step sends to the model. */
export interface AssembledTurnContext {
  sessionId: string;
  /** The turn this context was assembled for; absent for `loadContext` before a turn. */
  turnId?: string;
  iteration?: number;
  overlay: SessionOverlay;
  /** The whole system prompt. */
  systemPrompt: string;
  /** Each capability's contribution, also wrapped into `systemPrompt`. */
  capabilityPrompts: CapabilityPromptContribution[];
  /** Tool definitions with JSON Schemas (capability tools, then MCP tools). */
  tools: readonly ToolSpec[];
  /**
   * Which of {@link AssembledTurnContext.tools} come from MCP servers, with their server; set
   * when the session has enabled MCP servers.
   */
  mcpTools?: readonly TurnMcpTool[];
  /** MCP servers or tools left out of this context, and why; set as {@link mcpTools} is. */
  mcpIssues?: readonly TurnMcpIssue[];
  /** The history sent, oldest first. */
  messages: readonly Message[];
  model: ModelWithProvider;
  maxIterations: number;
  /**
   * The session's compaction record in force: the messages up to its `throughSeq` are not in
   * `messages`; its summary is part of `systemPrompt`. Absent when the whole history is sent.
   */
  compaction?: CompactionRecord;
  /**
   * What capability hooks changed for this model call, by capability id (their annotations,
   * and `messagesReplaced` / `systemPromptAdded` flags). Absent when no hook changed anything.
   */
  hookChanges?: Record<string, Record<string, unknown>>;
}
