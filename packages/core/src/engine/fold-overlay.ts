import type {
  Agent,
  CapabilityConfig,
  DeclaredTool,
  Harness,
  InitialFile,
  NetworkAccessList,
  Session,
} from '../domain.js';
import type { McpServerConfig, McpServers } from '../mcp.js';
import { foldNetworkAccess } from '../network-access.js';

/** A session's effective settings: harness chain (root first), then agent, then session. */
export interface SessionOverlay {
  /** The harness chain, root first. */
  harnessChain: readonly Harness[];
  agent: Agent | null;
  session: Session;
  /** Non-empty system prompts in overlay order (harnesses root first, agent, session). */
  systemPrompts: string[];
  /** Capability configs in overlay order, each id once; a later layer's config wins. */
  capabilities: CapabilityConfig[];
  /** Model id: session, else agent, else the nearest harness that sets one. */
  modelId: string | undefined;
  /** Iteration limit: session, else agent, else the nearest harness that sets one. */
  maxIterations: number | undefined;
  /** Initial files by path; a later layer's file replaces an earlier one at the same path. */
  initialFiles: InitialFile[];
  /** Tool allow-list of the agent: its string `tools` (empty = every tool of the enabled capabilities). */
  toolAllowList: string[];
  /**
   * The tools the agent and session declare (their `DeclaredTool`s), agent first; a session
   * tool replaces an agent tool of the same name.
   */
  declaredTools: DeclaredTool[];
  /**
   * The folded network access list (see `foldNetworkAccess`), or undefined when no layer sets
   * one: a later layer only narrows `allowed` and adds to `blocked`.
   */
  networkAccess: NetworkAccessList | undefined;
  /**
   * The enabled MCP servers by name, in overlay order: a later layer's entry of a name replaces
   * the earlier one, and an entry with `disabled: true` switches the server off.
   */
  mcpServers: Record<string, McpServerConfig>;
}

/** Folds harness chain → agent → session into one {@link SessionOverlay}. */
export function foldOverlay(
  harnessChain: readonly Harness[],
  agent: Agent | null,
  session: Session,
): SessionOverlay {
  const layers: Array<{
    systemPrompt?: string | undefined;
    capabilities: CapabilityConfig[];
    initialFiles: InitialFile[];
    maxIterations?: number | undefined;
    modelId?: string | undefined;
    mcpServers?: McpServers | undefined;
    networkAccess?: NetworkAccessList | undefined;
  }> = [
    ...harnessChain.map((harness) => ({ ...harness, modelId: harness.defaultModelId })),
    ...(agent ? [{ ...agent, modelId: agent.defaultModelId }] : []),
    { ...session, modelId: session.modelId },
  ];
  const systemPrompts: string[] = [];
  const capabilities = new Map<string, CapabilityConfig>();
  const files = new Map<string, InitialFile>();
  const mcpServers = new Map<string, McpServerConfig>();
  let maxIterations: number | undefined;
  let modelId: string | undefined;
  let networkAccess: NetworkAccessList | undefined;
  for (const layer of layers) {
    networkAccess = foldNetworkAccess(networkAccess, layer.networkAccess);
    if (layer.systemPrompt?.trim()) systemPrompts.push(layer.systemPrompt);
    for (const capability of layer.capabilities) {
      capabilities.delete(capability.id);
      // A `disabled` entry switches off what an earlier layer switched on.
      if (capability.disabled !== true) capabilities.set(capability.id, capability);
    }
    for (const file of layer.initialFiles) files.set(file.path, file);
    // Definitions written before MCP servers existed have no `mcpServers`.
    for (const [name, server] of Object.entries(layer.mcpServers ?? {})) {
      mcpServers.delete(name);
      mcpServers.set(name, server);
    }
    if (layer.maxIterations !== undefined) maxIterations = layer.maxIterations;
    if (layer.modelId !== undefined) modelId = layer.modelId;
  }
  return {
    harnessChain,
    agent,
    session,
    systemPrompts,
    capabilities: [...capabilities.values()],
    modelId,
    maxIterations,
    initialFiles: [...files.values()],
    toolAllowList: (agent?.tools ?? []).filter((tool): tool is string => typeof tool === 'string'),
    declaredTools: foldDeclaredTools(agent, session),
    networkAccess,
    mcpServers: Object.fromEntries(
      [...mcpServers].filter(([, server]) => server.disabled !== true),
    ),
  };
}

function foldDeclaredTools(agent: Agent | null, session: Session): DeclaredTool[] {
  const tools = new Map<string, DeclaredTool>();
  for (const tool of agent?.tools ?? []) if (typeof tool !== 'string') tools.set(tool.name, tool);
  // Sessions stored before declared tools existed have no `tools`.
  for (const tool of session.tools ?? []) {
    tools.delete(tool.name);
    tools.set(tool.name, tool);
  }
  return [...tools.values()];
}
