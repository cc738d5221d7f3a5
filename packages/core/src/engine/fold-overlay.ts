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

/** What one layer (a harness, the agent or the session) contributes to the overlay. */
interface OverlayLayer {
  systemPrompt?: string | undefined;
  capabilities: CapabilityConfig[];
  initialFiles: InitialFile[];
  maxIterations?: number | undefined;
  mcpServers?: McpServers | undefined;
  networkAccess?: NetworkAccessList | undefined;
}

/** The overlay being folded, layer by layer. */
interface OverlayFold {
  systemPrompts: string[];
  capabilities: Map<string, CapabilityConfig>;
  files: Map<string, InitialFile>;
  mcpServers: Map<string, McpServerConfig> | undefined;
  maxIterations: number | undefined;
  modelId: string | undefined;
  networkAccess: NetworkAccessList | undefined;
}

/** Folds one layer into `fold`; `modelId` is the layer's model (a harness's default model). */
function foldLayer(fold: OverlayFold, layer: OverlayLayer, modelId: string | undefined): void {
  fold.networkAccess = foldNetworkAccess(fold.networkAccess, layer.networkAccess);
  if (layer.systemPrompt?.trim()) fold.systemPrompts.push(layer.systemPrompt);
  for (const capability of layer.capabilities) {
    fold.capabilities.delete(capability.id);
    // A `disabled` entry switches off what an earlier layer switched on.
    if (capability.disabled !== true) fold.capabilities.set(capability.id, capability);
  }
  for (const file of layer.initialFiles) fold.files.set(file.path, file);
  // Definitions written before MCP servers existed have no `mcpServers`.
  if (layer.mcpServers) {
    for (const [name, server] of Object.entries(layer.mcpServers)) {
      fold.mcpServers ??= new Map();
      fold.mcpServers.delete(name);
      fold.mcpServers.set(name, server);
    }
  }
  if (layer.maxIterations !== undefined) fold.maxIterations = layer.maxIterations;
  if (modelId !== undefined) fold.modelId = modelId;
}

/** Folds harness chain → agent → session into one {@link SessionOverlay}. */
export function foldOverlay(
  harnessChain: readonly Harness[],
  agent: Agent | null,
  session: Session,
): SessionOverlay {
  const fold: OverlayFold = {
    systemPrompts: [],
    capabilities: new Map(),
    files: new Map(),
    mcpServers: undefined,
    maxIterations: undefined,
    modelId: undefined,
    networkAccess: undefined,
  };
  for (const harness of harnessChain) foldLayer(fold, harness, harness.defaultModelId);
  if (agent) foldLayer(fold, agent, agent.defaultModelId);
  foldLayer(fold, session, session.modelId);
  // Object.fromEntries, not assignment: a server may be named `__proto__`.
  const mcpServers: Record<string, McpServerConfig> = fold.mcpServers
    ? Object.fromEntries([...fold.mcpServers].filter(([, server]) => server.disabled !== true))
    : {};
  return {
    harnessChain,
    agent,
    session,
    systemPrompts: fold.systemPrompts,
    capabilities: [...fold.capabilities.values()],
    modelId: fold.modelId,
    maxIterations: fold.maxIterations,
    initialFiles: fold.files.size === 0 ? [] : [...fold.files.values()],
    toolAllowList: (agent?.tools ?? []).filter((tool): tool is string => typeof tool === 'string'),
    declaredTools: foldDeclaredTools(agent, session),
    networkAccess: fold.networkAccess,
    mcpServers,
  };
}

function foldDeclaredTools(agent: Agent | null, session: Session): DeclaredTool[] {
  // Sessions stored before declared tools existed have no `tools`.
  if (!agent?.tools?.length && !session.tools?.length) return [];
  const tools = new Map<string, DeclaredTool>();
  for (const tool of agent?.tools ?? []) if (typeof tool !== 'string') tools.set(tool.name, tool);
  // Sessions stored before declared tools existed have no `tools`.
  for (const tool of session.tools ?? []) {
    tools.delete(tool.name);
    tools.set(tool.name, tool);
  }
  return [...tools.values()];
}
