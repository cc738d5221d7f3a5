import type { ToolSpec } from './capability.js';
import type { CompactionRecord } from './compaction.js';
import type { LlmResponse } from './driver.js';
import type { SessionFileSystem } from './file-system.js';
import type { ModelPrices, ModelUsageTotal } from './llm-usage.js';
import type { Message } from './message.js';
import type { ModelWithProvider } from './model.js';
import type { SessionStorageStore } from './stores.js';

// Hooks a capability may declare around the two things a turn does: calling the model and running
// a tool. The engine runs them in the order the session's capabilities resolve (harness, agent,
// session; dependencies first), in both the in-process runtime and a durable host, because they
// are part of the reason and act steps themselves.

/** The model as a hook sees it: everything but the credential. */
export type HookModel = Omit<ModelWithProvider, 'apiKey'>;

/** What every hook receives. */
export interface CapabilityHookContext<TConfig = unknown> {
  sessionId: string;
  turnId: string;
  /** 1-based iteration of the turn. */
  iteration: number;
  /** This capability's configuration for the session (parsed by its `configSchema`). */
  config: TConfig;
  /** The session's workspace (not decorated for a tool call). */
  fileSystem: SessionFileSystem;
  /** The session's key/value storage. */
  storage: SessionStorageStore;
  /** Fires when the turn is aborted. */
  signal?: AbortSignal;
}

/** Per-model usage of the session and of the current turn, summed from the store. */
export interface UsageSnapshot {
  /** Every model call of the session (this turn's included), per model. */
  session: ModelUsageTotal[];
  /** This turn's model calls so far, per model. */
  turn: ModelUsageTotal[];
  /** The runtime's prices (see `InProcessRuntimeBuilder.prices`), when it has any. */
  prices?: ModelPrices;
}

/** A model call a hook makes for itself (a summary, a classification): nothing is stored. */
export interface HookModelCallRequest {
  systemPrompt: string;
  messages: readonly Message[];
  /**
   * A model registered in the provider store; the session's model when left out.
   */
  modelId?: string;
  /** Output limit of this call. */
  maxOutputTokens?: number;
  signal?: AbortSignal;
}

/** What {@link Capability.beforeModelCall} receives. */
export interface BeforeModelCallContext<TConfig = unknown> extends CapabilityHookContext<TConfig> {
  /** The model about to be called. */
  model: HookModel;
  /** The system prompt about to be sent (capability sections included). */
  systemPrompt: string;
  /** The history about to be sent, after earlier hooks' changes. */
  messages: readonly Message[];
  /** The tools offered. */
  tools: readonly ToolSpec[];
  /**
   * The session's compaction record in force (its summary is a `<compacted_history>` section of
   * `systemPrompt`, and `messages` start after its `throughSeq`); absent when the whole history
   * is sent.
   */
  compaction?: CompactionRecord;
  /** Usage so far, read from the store when first called (one query per step at most). */
  usage(): Promise<UsageSnapshot>;
  /** Calls a model without storing anything (used by compaction for its summary). */
  callModel(request: HookModelCallRequest): Promise<LlmResponse>;
}

/** Ends the turn before the model call: the turn fails with this code and message. */
export interface ModelCallStop {
  /** An error code, for example `BUDGET_EXHAUSTED`. */
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** What {@link Capability.beforeModelCall} may change; `undefined` changes nothing. */
export interface BeforeModelCallResult {
  /** The history to send instead (compaction); the stored history is never changed. */
  messages?: Message[];
  /** Appended to the system prompt of this call (as this capability's section). */
  systemPromptAddition?: string;
  /** Do not call the model; the turn ends failed with this error (stop reason from its code). */
  stop?: ModelCallStop;
  /**
   * A compaction record this hook has just stored under `COMPACTION_STORAGE_KEY` (give `messages`
   * too: those after its `throughSeq`). The engine puts its summary section in place of the one
   * in force, sets the context's `compaction` and emits `context.compacted`. Its `throughSeq`
   * must lie before every message of the current turn (`CAPABILITY_FAILED` otherwise).
   */
  compaction?: CompactionRecord;
  /** Facts the engine records on `reason.started` under `hooks.<capabilityId>`. */
  annotations?: Record<string, unknown>;
}

/** What {@link Capability.beforeToolCall} receives. */
export interface BeforeToolCallContext<TConfig = unknown> extends CapabilityHookContext<TConfig> {
  toolCallId: string;
  toolName: string;
  /** The capability that owns the tool (`mcp` for a tool of an MCP server). */
  toolCapabilityId: string;
  /** The arguments, validated by the tool's schema (after earlier hooks' rewrites). */
  arguments: Record<string, unknown>;
}

/** What {@link Capability.beforeToolCall} may change; `undefined` changes nothing. */
export interface BeforeToolCallResult {
  /** Do not run the tool: the model gets this text as the tool's error. */
  veto?: string;
  /** Run the tool with these arguments instead (validated again by the tool's schema). */
  arguments?: Record<string, unknown>;
}

/** What {@link Capability.afterToolCall} receives. */
export interface AfterToolCallContext<TConfig = unknown> extends CapabilityHookContext<TConfig> {
  toolCallId: string;
  toolName: string;
  toolCapabilityId: string;
  arguments: Record<string, unknown>;
  /**
   * The result text in full (secrets the tool read already redacted), before it is cut to the
   * runtime's `maxToolResultChars` for the model; after earlier hooks' changes.
   */
  content: string;
  isError: boolean;
}

/** What {@link Capability.afterToolCall} may change; `undefined` changes nothing. */
export interface AfterToolCallResult {
  /** The result text to use instead. */
  content?: string;
  isError?: boolean;
}

/**
 * The hooks of a capability. Each is optional; a hook that throws fails what it wraps (the model
 * call: the turn fails with `CAPABILITY_FAILED`; the tool call: the model gets a tool error), never
 * the runtime.
 */
export interface CapabilityHooks<TConfig = unknown> {
  /**
   * Runs after the context is assembled and before the model is called, every reason step. May
   * replace the history sent, add to the system prompt, or stop the turn.
   */
  beforeModelCall?(
    context: BeforeModelCallContext<TConfig>,
  ): Promise<BeforeModelCallResult | undefined> | BeforeModelCallResult | undefined;
  /** Runs before a tool runs (after its arguments are validated). May veto or rewrite them. */
  beforeToolCall?(
    context: BeforeToolCallContext<TConfig>,
  ): Promise<BeforeToolCallResult | undefined> | BeforeToolCallResult | undefined;
  /** Runs after a tool ran (also after a tool error). May replace the result. */
  afterToolCall?(
    context: AfterToolCallContext<TConfig>,
  ): Promise<AfterToolCallResult | undefined> | AfterToolCallResult | undefined;
}
