import { z } from 'zod';
import type { Capability, ToolDefinition, ToolSpec } from '../capability.js';
import { toolSpec } from '../capability-kit.js';
import type { Agent, DeclaredTool, Harness } from '../domain.js';
import { EverrunsError } from '../errors.js';
import { abortSignalOf, type SignalSource } from '../lazy-signal.js';
import type { SessionSetupSnapshot } from '../stores.js';
import { type DependencyBlocker, detectDependencyBlocker } from './detect-dependency-blocker.js';
import { foldOverlay } from './fold-overlay.js';
import { addMcpTools } from './resolve-mcp-tools.js';
import type { AtomDependencies, TurnSetup, TurnTool } from './turn-types.js';

/**
 * Loads the session, its harness chain and agent (or takes them from `snapshot`: a turn
 * snapshot, or a `loadSessionSetup` result the caller read), folds the overlay and resolves the
 * capabilities and tools. When the session has enabled MCP servers and the dependencies an MCP
 * tool source, the servers' tools follow the capability tools (a name a capability tool has is
 * left out; an unreachable server is noted in `mcpIssues`, the turn goes on); `signal` cancels
 * the listing. Throws `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED` (details carry the
 * {@link DependencyBlocker}), `CAPABILITY_NOT_FOUND`, `INVALID_INPUT`.
 */
export function resolveTurnSetup(
  dependencies: AtomDependencies,
  sessionId: string,
  turnId?: string,
  snapshot?: SessionSetupSnapshot,
  signal?: SignalSource,
): Promise<TurnSetup> {
  // The cached setup (most calls of a turn) is answered here, without entering the loader: an
  // async function's frame holds every register of its body, allocated on each call.
  let cacheKey: string | undefined;
  try {
    cacheKey = turnId === undefined ? undefined : turnSetupCacheKey(sessionId, turnId);
    const cached = cacheKey ? dependencies.setupCache?.get(cacheKey) : undefined;
    if (cached) return Promise.resolve(cached);
  } catch (error) {
    return Promise.reject(error);
  }
  return loadTurnSetup(dependencies, sessionId, cacheKey, snapshot, signal);
}

/** The key of a turn's setup in `AtomDependencies.setupCache`. */
export function turnSetupCacheKey(sessionId: string, turnId: string): string {
  return `${sessionId}/${turnId}`;
}

/** {@link resolveTurnSetup} past its cache: loads, folds and resolves, then caches the setup. */
async function loadTurnSetup(
  dependencies: AtomDependencies,
  sessionId: string,
  cacheKey: string | undefined,
  snapshot: SessionSetupSnapshot | undefined,
  signal: SignalSource | undefined,
): Promise<TurnSetup> {
  const { backends } = dependencies;
  let loaded: SessionSetupSnapshot | undefined = snapshot;
  if (!loaded && backends.loadSessionSetup) {
    loaded = (await backends.loadSessionSetup(sessionId)) ?? undefined;
    if (!loaded) throw sessionNotFoundError(sessionId);
  }
  const session = loaded ? loaded.session : await backends.sessions.getSession(sessionId);
  if (!session) throw sessionNotFoundError(sessionId);
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
  addDeclaredTools(dependencies, overlay.declaredTools, tools, toolSpecs);
  if (dependencies.buildToolRegistry) {
    const built = await dependencies.buildToolRegistry({
      ...(dependencies.organizationId !== undefined
        ? { organizationId: dependencies.organizationId }
        : {}),
      sessionId,
      harnessChain: chain ?? [],
      agent,
      session,
      tools: new Map(tools),
      capabilities,
    });
    if (built) {
      tools.clear();
      toolSpecs.length = 0;
      for (const turnTool of built.values()) {
        tools.set(turnTool.tool.name, turnTool);
        toolSpecs.push(toolSpec(turnTool.tool));
      }
    }
  }
  const host = hostCapability(dependencies, session.agentId);
  if (host) capabilities.push({ capability: host, config: undefined });
  const mcp =
    dependencies.mcp && Object.keys(overlay.mcpServers).length > 0
      ? await addMcpTools(
          dependencies.mcp,
          { sessionId, servers: overlay.mcpServers, signal: abortSignalOf(signal), allow },
          tools,
          toolSpecs,
        )
      : { mcpTools: [], mcpIssues: [] };
  const setup: TurnSetup = {
    overlay,
    capabilities,
    tools,
    toolSpecs,
    fileSystem: await dependencies.fileSystems.forSession(sessionId),
    maxIterations: overlay.maxIterations ?? dependencies.limits.maxIterations,
    mcpTools: mcp.mcpTools,
    mcpIssues: mcp.mcpIssues,
  };
  if (cacheKey) dependencies.setupCache?.set(cacheKey, setup);
  return setup;
}

/** The `SESSION_NOT_FOUND` error for a session id. */
export function sessionNotFoundError(sessionId: string): EverrunsError {
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

/** Where a declared tool runs: a client-side one belongs to this pseudo-capability id. */
export const DECLARED_TOOL_CAPABILITY_ID = 'declared_tools';

/**
 * Adds the agent's and session's declared tools: a client-side one as a tool the turn waits on
 * (its parameters shown to the model as written), a built-in one as the tool of that name of a
 * registered capability (default configuration) unless an enabled capability already offers it.
 * A declared tool replaces a capability tool of the same name. Throws `CAPABILITY_NOT_FOUND` for
 * a built-in name no registered capability has.
 */
function addDeclaredTools(
  dependencies: AtomDependencies,
  declared: readonly DeclaredTool[],
  tools: Map<string, TurnTool>,
  toolSpecs: ToolSpec[],
): void {
  for (const entry of declared) {
    let turnTool: TurnTool;
    if (entry.type === 'client_side') {
      turnTool = {
        tool: {
          name: entry.name,
          description: entry.description,
          inputSchema: z.record(z.string(), z.unknown()),
          inputJsonSchema: entry.parameters,
          clientSide: true,
          execute: () => {
            throw new EverrunsError({
              code: 'STATE_INVALID',
              message: `Tool ${entry.name} is client-side: the host submits its result`,
            });
          },
        },
        capabilityId: DECLARED_TOOL_CAPABILITY_ID,
        config: undefined,
      };
    } else {
      if (tools.has(entry.name)) continue;
      const found = dependencies.capabilities
        .list()
        .find((capability) => capability.tools.some((tool) => tool.name === entry.name));
      const tool = found?.tools.find((candidate) => candidate.name === entry.name);
      if (!found || !tool) {
        throw new EverrunsError({
          code: 'CAPABILITY_NOT_FOUND',
          message: `No registered capability has the built-in tool ${entry.name}`,
          details: { toolName: entry.name },
        });
      }
      const resolved = dependencies.capabilities
        .resolve([{ id: found.id }])
        .find((candidate) => candidate.capability.id === found.id);
      turnTool = { tool: tool as ToolDefinition, capabilityId: found.id, config: resolved?.config };
    }
    const index = toolSpecs.findIndex((spec) => spec.name === entry.name);
    if (index >= 0) toolSpecs.splice(index, 1);
    tools.set(entry.name, turnTool);
    toolSpecs.push(toolSpec(turnTool.tool));
  }
}

/** The id under which the host's hooks and budget checker run (see {@link hostCapability}). */
export const HOST_CAPABILITY_ID = 'host';

/**
 * The host's hooks and budget checker as a capability that runs after every capability of the
 * session (so the engine's hook machinery runs them), or `undefined` when the host has none.
 */
function hostCapability(
  dependencies: AtomDependencies,
  agentId: string | undefined,
): Capability | undefined {
  const hooks = dependencies.hostHooks;
  const checker = dependencies.budgetChecker;
  if (!hooks && !checker) return undefined;
  const { organizationId } = dependencies;
  const capability: Capability = {
    id: HOST_CAPABILITY_ID,
    name: 'Host',
    description: "The host's hooks",
    tools: [],
  };
  if (hooks?.beforeToolCall) {
    const hook = hooks.beforeToolCall.bind(hooks);
    capability.beforeToolCall = (context) => hook({ ...context, config: undefined });
  }
  if (hooks?.afterToolCall) {
    const hook = hooks.afterToolCall.bind(hooks);
    capability.afterToolCall = (context) => hook({ ...context, config: undefined });
  }
  if (hooks?.beforeModelCall || checker) {
    const hook = hooks?.beforeModelCall?.bind(hooks);
    capability.beforeModelCall = async (context) => {
      const changed = hook ? await hook({ ...context, config: undefined }) : undefined;
      if (changed?.stop || !checker) return changed;
      const verdict = await checker({
        ...(organizationId !== undefined ? { organizationId } : {}),
        sessionId: context.sessionId,
        turnId: context.turnId,
        iteration: context.iteration,
        ...(agentId !== undefined ? { agentId } : {}),
        usage: () => context.usage(),
      });
      if (!verdict?.exhausted) return changed;
      return {
        ...(changed ?? {}),
        stop: {
          code: 'BUDGET_EXHAUSTED',
          message: verdict.message ?? 'The budget of this session is used up',
          ...(verdict.details ? { details: verdict.details } : {}),
        },
      };
    };
  }
  return capability;
}
