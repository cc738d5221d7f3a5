import type {
  CapabilityRegistry,
  ResolvedCapability,
  ToolDefinition,
  ToolSpec,
} from './capability.js';
import { toolSpec } from './capability.js';
import { type DependencyBlocker, detectDependencyBlocker } from './dependency-blocker.js';
import type { Agent, Harness } from './domain.js';
import type { DriverRegistry } from './driver.js';
import { EverrunsError, errorMessage } from './errors.js';
import type { SessionFileSystem, SessionFileSystemFactory } from './file-system.js';
import type { Message } from './message.js';
import type { ModelWithProvider } from './model.js';
import { foldOverlay, type SessionOverlay } from './overlay.js';
import type { RuntimeBackends, SessionSetupSnapshot, TurnSnapshot } from './stores.js';

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
}

/** The defaults of {@link TurnLimits}. */
export const DEFAULT_TURN_LIMITS: Readonly<TurnLimits> = Object.freeze({
  maxIterations: 50,
  toolTimeoutMs: 60_000,
  maxToolResultChars: 50_000,
  maxRepeatedToolCalls: 5,
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
  /** Resolved setups by `sessionId/turnId`; a host that runs a whole turn in one process passes one and clears it after the turn. */
  setupCache?: Map<string, TurnSetup>;
}

/** A tool available in a turn, with the capability that provides it. */
export interface TurnTool {
  tool: ToolDefinition;
  capabilityId: string;
  config: unknown;
}

/** The resolved, model-independent setup of a session for a turn. */
export interface TurnSetup {
  overlay: SessionOverlay;
  capabilities: ResolvedCapability[];
  tools: Map<string, TurnTool>;
  toolSpecs: ToolSpec[];
  fileSystem: SessionFileSystem;
  maxIterations: number;
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
  /** Tool definitions with JSON Schemas. */
  tools: readonly ToolSpec[];
  /** The history sent, oldest first. */
  messages: readonly Message[];
  model: ModelWithProvider;
  maxIterations: number;
}

/**
 * Loads the session, its harness chain and agent, folds the overlay and resolves the
 * capabilities and tools. Throws `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED` (details carry the
 * {@link DependencyBlocker}), `CAPABILITY_NOT_FOUND`, `INVALID_INPUT`.
 */
export async function resolveTurnSetup(
  dependencies: AtomDependencies,
  sessionId: string,
  turnId?: string,
  snapshot?: TurnSnapshot,
): Promise<TurnSetup> {
  const cacheKey = turnId === undefined ? undefined : `${sessionId}/${turnId}`;
  const cached = cacheKey ? dependencies.setupCache?.get(cacheKey) : undefined;
  if (cached) return cached;
  const { backends } = dependencies;
  let loaded: SessionSetupSnapshot | undefined = snapshot;
  if (!loaded && backends.loadSessionSetup) {
    loaded = (await backends.loadSessionSetup(sessionId)) ?? undefined;
    if (!loaded) throw sessionNotFound(sessionId);
  }
  const session = loaded ? loaded.session : await backends.sessions.getSession(sessionId);
  if (!session) throw sessionNotFound(sessionId);
  let chain: Harness[] | null = null;
  let agent: Agent | null = null;
  if (loaded) {
    chain = loaded.harnessChain;
    agent = loaded.agent;
  } else {
    try {
      chain = await backends.harnesses.getHarnessChain(session.harnessId);
    } catch (error) {
      if (!EverrunsError.hasCode(error, 'HARNESS_NOT_FOUND')) throw error;
    }
    agent = session.agentId ? await backends.agents.getAgent(session.agentId) : null;
  }
  const blocker = detectDependencyBlocker(session, chain, agent);
  if (blocker) throw dependencyBlockedError(blocker);
  const overlay = foldOverlay(chain ?? [], agent, session);
  const capabilities = dependencies.capabilities.resolve(overlay.capabilities);
  const allow = overlay.toolAllowList.length > 0 ? new Set(overlay.toolAllowList) : null;
  const tools = new Map<string, TurnTool>();
  const toolSpecs: ToolSpec[] = [];
  for (const { capability, config } of capabilities) {
    for (const tool of capability.tools) {
      if (tools.has(tool.name) || (allow && !allow.has(tool.name))) continue;
      tools.set(tool.name, { tool: tool as ToolDefinition, capabilityId: capability.id, config });
      toolSpecs.push(toolSpec(tool));
    }
  }
  const setup: TurnSetup = {
    overlay,
    capabilities,
    tools,
    toolSpecs,
    fileSystem: await dependencies.fileSystems.forSession(sessionId),
    maxIterations: overlay.maxIterations ?? dependencies.limits.maxIterations,
  };
  if (cacheKey) dependencies.setupCache?.set(cacheKey, setup);
  return setup;
}

function sessionNotFound(sessionId: string): EverrunsError {
  return new EverrunsError({
    code: 'SESSION_NOT_FOUND',
    message: `Session ${sessionId} does not exist`,
    details: { sessionId },
  });
}

/** The `DEPENDENCY_BLOCKED` error for a blocker. */
export function dependencyBlockedError(blocker: DependencyBlocker): EverrunsError {
  return new EverrunsError({
    code: 'DEPENDENCY_BLOCKED',
    message: blocker.message,
    details: { blocker },
  });
}

/**
 * Assembles the context a reason step sends: overlay, system prompt with each capability's
 * contribution as `<capability id="…">…</capability>`, tools, history (repaired so no tool call
 * lacks its result and no result lacks its call) and the model.
 */
export async function assembleTurnContext(
  dependencies: AtomDependencies,
  sessionId: string,
  options: {
    turnId?: string;
    iteration?: number;
    signal?: AbortSignal;
    /** A snapshot the caller just loaded with `backends.loadTurnSnapshot`, used instead of loading another. */
    snapshot?: TurnSnapshot;
  } = {},
): Promise<AssembledTurnContext> {
  const { backends } = dependencies;
  let snapshot: TurnSnapshot | undefined = options.snapshot;
  if (!snapshot && backends.loadTurnSnapshot) {
    snapshot = (await backends.loadTurnSnapshot(sessionId)) ?? undefined;
    if (!snapshot) throw sessionNotFound(sessionId);
  }
  const setup = await resolveTurnSetup(dependencies, sessionId, options.turnId, snapshot);
  const capabilityPrompts: CapabilityPromptContribution[] = [];
  for (const { capability, config } of setup.capabilities) {
    let text: string | null | undefined;
    if (typeof capability.systemPrompt === 'function') {
      try {
        text = await capability.systemPrompt({
          session: setup.overlay.session,
          fileSystem: setup.fileSystem,
          config,
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (error) {
        throw new EverrunsError({
          code: 'CAPABILITY_FAILED',
          message: `Capability ${capability.id} failed to build its system prompt: ${errorMessage(error)}`,
          details: { capabilityId: capability.id },
          cause: error,
        });
      }
    } else text = capability.systemPrompt;
    if (text?.trim()) capabilityPrompts.push({ capabilityId: capability.id, text });
  }
  const parts = [...setup.overlay.systemPrompts];
  for (const contribution of capabilityPrompts) {
    parts.push(
      `<capability id="${contribution.capabilityId}">\n${contribution.text}\n</capability>`,
    );
  }
  const model = await resolveModel(dependencies, setup.overlay.modelId, snapshot?.defaultModel);
  const messages = repairHistory(
    snapshot ? snapshot.messages : await backends.messages.load(sessionId),
  );
  const context: AssembledTurnContext = {
    sessionId,
    overlay: setup.overlay,
    systemPrompt: parts.join('\n\n'),
    capabilityPrompts,
    tools: setup.toolSpecs,
    messages,
    model,
    maxIterations: setup.maxIterations,
  };
  if (options.turnId !== undefined) context.turnId = options.turnId;
  if (options.iteration !== undefined) context.iteration = options.iteration;
  return context;
}

async function resolveModel(
  dependencies: AtomDependencies,
  modelId: string | undefined,
  loadedDefault: ModelWithProvider | null | undefined,
): Promise<ModelWithProvider> {
  const { providers } = dependencies.backends;
  if (modelId !== undefined) {
    const model = await providers.getModelWithProvider(modelId);
    if (!model) {
      throw new EverrunsError({
        code: 'MODEL_NOT_FOUND',
        message: `Model ${modelId} is not registered in the provider store`,
        details: { modelId },
      });
    }
    return model;
  }
  const fallback = loadedDefault !== undefined ? loadedDefault : await providers.getDefaultModel();
  if (!fallback) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: 'No model is set for the session and the provider store has no default model',
    });
  }
  return fallback;
}

/** Text of the synthetic result given to a tool call that has none. */
export const MISSING_TOOL_RESULT_TEXT =
  'The tool call was interrupted before it recorded a result; it may have partially applied.';

/**
 * Returns the history with every tool call paired with a result and no orphan result. Only the
 * tail since the last settled user message is examined, so the cost does not grow with the
 * history. Returns the same array when nothing needed repair.
 */
export function repairHistory(messages: Message[]): Message[] {
  const results = new Set<string>();
  const calls = new Set<string>();
  let start = messages.length;
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index] as Message;
    for (const part of message.content) {
      if (part.type === 'tool_result') results.add(part.toolCallId);
      else if (part.type === 'tool_call') calls.add(part.id);
    }
    start = index;
    if (message.role === 'user' && [...results].every((id) => calls.has(id))) break;
  }
  let broken = false;
  for (const id of calls) if (!results.has(id)) broken = true;
  for (const id of results) if (!calls.has(id)) broken = true;
  if (!broken) return messages;
  const repaired = messages.slice(0, start);
  for (let index = start; index < messages.length; index++) {
    const message = messages[index] as Message;
    if (message.role === 'tool_result') {
      const content = message.content.filter(
        (part) => part.type !== 'tool_result' || calls.has(part.toolCallId),
      );
      if (content.length > 0)
        repaired.push(
          content.length === message.content.length ? message : { ...message, content },
        );
      continue;
    }
    repaired.push(message);
    const missing = message.content.filter(
      (part) => part.type === 'tool_call' && !results.has(part.id),
    );
    for (const part of missing) {
      if (part.type !== 'tool_call') continue;
      repaired.push({
        ...message,
        id: `${message.id}_repair_${part.id}`,
        role: 'tool_result',
        content: [
          {
            type: 'tool_result',
            toolCallId: part.id,
            content: MISSING_TOOL_RESULT_TEXT,
            isError: true,
          },
        ],
      });
    }
  }
  return repaired;
}
