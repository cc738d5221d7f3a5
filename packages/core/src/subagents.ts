import type { CapabilityConfig, Session } from './domain.js';

// The contract between a capability that starts child sessions (`capabilities-subagents`) and the
// host that runs them (the in-process runtime, a durable host). A third party's capability uses
// the same contract through `ToolContext.subagents`.

/** What a tool asks of the host: one child session and one turn in it. */
export interface SubagentRunRequest {
  /** The child's name, kept as its session title (for listings and the inspector). */
  name: string;
  /** The task, sent as the child's first user message. */
  instructions: string;
  /** An agent of the agent store whose settings the child takes (its `agentId`). */
  agentId?: string;
  /** The child session's own system prompt (an inline agent). */
  systemPrompt?: string;
  /** Capabilities switched on for the child session (after its harness and agent layers). */
  capabilities?: CapabilityConfig[];
  /** The child's model id; else the parent's model when {@link inheritModel}, else the overlay's. */
  modelId?: string;
  /** True: the child uses the model the parent's turn uses (when `modelId` is absent). */
  inheritModel?: boolean;
  /** True: the child works in the parent's workspace (same files); false: a fresh one. */
  inheritWorkspace?: boolean;
  /** Reason/act iterations of the child's turn. */
  maxIterations?: number;
  /** Anything the capability wants kept with the link (JSON), for example the agent's name. */
  metadata?: Record<string, unknown>;
}

/** What the host answers: the child and the outcome of its turn. */
export interface SubagentRunResult {
  /** The child session's id (its `parentSessionId` is the caller's session). */
  sessionId: string;
  /** The child turn that produced {@link response}. */
  turnId: string;
  /** The child's final answer (empty when its turn failed before answering). */
  response: string;
  success: boolean;
  /** The child turn's stop reason (`completed`, `max_iterations`, `error`, …). */
  stopReason: string;
  iterations: number;
  /** Why the child's turn failed, when it did. */
  error?: { code: string; message: string };
  /**
   * True when this call found its child already created by an earlier attempt of the same tool
   * call (a crash and a re-run): the child was resumed, not created again.
   */
  resumed: boolean;
}

/**
 * Child sessions of the session whose tool is running ({@link ToolContext.subagents}), bound by
 * the host to the running call: the child is created idempotently by the call's id, linked to the
 * parent (`Session.parentSessionId`, events `subagent.started` / `subagent.completed` on the
 * parent), and its turn is aborted with the call's signal.
 */
export interface SessionSubagents {
  /**
   * Creates the child (or finds the one an earlier attempt of this call created) and runs one
   * turn in it. Rejects with `AGENT_NOT_FOUND` for an unknown agent, `ABORTED` when the call is
   * cancelled; a child turn that fails resolves with `success: false`.
   */
  run(request: SubagentRunRequest): Promise<SubagentRunResult>;
  /** The direct children of the session, oldest first. */
  children(): Promise<Session[]>;
}

/** Where a {@link SubagentHost} call comes from: the parent's running tool call. */
export interface SubagentCallScope {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  /** The tool call's signal: the child's turn stops with it. */
  signal: AbortSignal;
}

/**
 * The host side of {@link SessionSubagents}, given once to the atoms' dependencies
 * (`AtomDependencies.subagents`); the act step binds it to each tool call.
 */
export interface SubagentHost {
  run(scope: SubagentCallScope, request: SubagentRunRequest): Promise<SubagentRunResult>;
  children(sessionId: string): Promise<Session[]>;
}

/** The parent's session storage prefix under which its children are linked (see {@link subagentLinkKey}). */
export const SUBAGENT_LINK_PREFIX = 'subagents/';

/**
 * The parent's session storage key under which a tool call's child session id is kept: a re-run of
 * the call (after a crash) finds the child an earlier attempt created. Every host links children
 * this way, so usage accounting (`readUsageSnapshot`) finds a session's children in any host.
 */
export function subagentLinkKey(turnId: string, toolCallId: string): string {
  return `${SUBAGENT_LINK_PREFIX}${turnId}/${toolCallId}`;
}

/** {@link SessionSubagents} of one tool call. */
export function bindSubagents(host: SubagentHost, scope: SubagentCallScope): SessionSubagents {
  return {
    run: (request) => host.run(scope, request),
    children: () => host.children(scope.sessionId),
  };
}
