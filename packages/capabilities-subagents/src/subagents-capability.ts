import {
  type Capability,
  type CapabilityConfig,
  capabilityConfigSchema,
  defineCapability,
  defineTool,
  EverrunsError,
  type SubagentRunRequest,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link subagentsCapability}, as upstream (`subagents`). */
export const SUBAGENTS_CAPABILITY_ID = 'subagents';

/** Default of `maxSubagentDepth`: a top-level session is depth 0, its children 1, theirs 2. */
export const DEFAULT_MAX_SUBAGENT_DEPTH = 2;
/** Default of `maxChildrenPerTurn`. */
export const DEFAULT_MAX_CHILDREN_PER_TURN = 8;
/** Default of `maxChildrenPerSession`. */
export const DEFAULT_MAX_CHILDREN_PER_SESSION = 50;
/** How long one `spawn_agent` call may run (the child's whole turn): 15 minutes. */
export const SPAWN_AGENT_TIMEOUT_MS = 15 * 60_000;

/** The session storage prefix of this capability's records of its calls. */
const CALLS_PREFIX = 'subagents:calls/';

/** Schema of one agent a parent may start by name (see {@link SubagentsConfig.agents}). */
export const subagentDefinitionSchema = z.strictObject({
  /** The name the model passes as `agent` (case-insensitive). */
  name: z.string().min(1).max(100),
  /** What it is good at, shown to the model. */
  description: z.string().default(''),
  /** An agent of the agent store whose settings the child takes. */
  agentId: z.string().min(1).optional(),
  /** The child's system prompt. */
  systemPrompt: z.string().optional(),
  /** Capabilities switched on for the child (after its harness and agent layers). */
  capabilities: z.array(capabilityConfigSchema).optional(),
  /** The child's model id. */
  modelId: z.string().min(1).optional(),
  /** Reason/act iterations of the child's turn. */
  maxIterations: z.number().int().positive().optional(),
  /** Overrides the capability's `inheritModel` for this agent. */
  inheritModel: z.boolean().optional(),
  /** Overrides the capability's `inheritWorkspace` for this agent. */
  inheritWorkspace: z.boolean().optional(),
});
/** One agent a parent may start by name. */
export type SubagentDefinition = z.infer<typeof subagentDefinitionSchema>;

/** Schema of {@link SubagentsConfig}. */
export const subagentsConfigSchema = z.strictObject({
  /** Agents the model may start by name. */
  agents: z.array(subagentDefinitionSchema).default([]),
  /** True: the model may start a child with its own `system_prompt` (an inline agent). Default true. */
  allowInlinePrompt: z.boolean().default(true),
  /** True: a child uses the model of its parent's turn (unless its agent names one). Default false. */
  inheritModel: z.boolean().default(false),
  /** True: a child works in its parent's workspace (same files). Default false: a fresh one. */
  inheritWorkspace: z.boolean().default(false),
  /** Deepest child allowed; a top-level session is depth 0; 0 forbids children. Default 2. */
  maxSubagentDepth: z.number().int().min(0).max(16).default(DEFAULT_MAX_SUBAGENT_DEPTH),
  /** Children one turn of a session may start. Default 8. */
  maxChildrenPerTurn: z.number().int().min(0).max(1024).default(DEFAULT_MAX_CHILDREN_PER_TURN),
  /** Children a session may start over its life. Default 50. */
  maxChildrenPerSession: z
    .number()
    .int()
    .min(0)
    .max(10_000)
    .default(DEFAULT_MAX_CHILDREN_PER_SESSION),
});
/** Configuration of the `subagents` capability (validated; defaults applied). */
export type SubagentsConfig = z.infer<typeof subagentsConfigSchema>;
/** What a harness, agent or session gives as the capability's configuration. */
export type SubagentsConfigInput = z.input<typeof subagentsConfigSchema>;

/** Result of `spawn_agent`. */
export interface SpawnAgentResult {
  /** The child session (its `parentSessionId` is this session). */
  subagent_session_id: string;
  name: string;
  /** `completed` when the child answered; else the child turn's stop reason. */
  status: string;
  /** The child's final answer. */
  result: string;
  iterations: number;
  error?: { code: string; message: string };
}

const spawnAgentInput = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .describe(
      "A short human-readable name for the subagent (e.g. 'Test Runner'); unique in this session.",
    ),
  instructions: z
    .string()
    .trim()
    .min(1)
    .describe('What the subagent should do; it sees nothing of this conversation but this text.'),
  agent: z
    .string()
    .min(1)
    .optional()
    .describe('The name of a configured agent to start; omit for a general subagent.'),
  system_prompt: z
    .string()
    .min(1)
    .optional()
    .describe('A system prompt for an ad-hoc subagent (when no agent is named).'),
});
type SpawnAgentInput = z.infer<typeof spawnAgentInput>;

function limitError(message: string, details: Record<string, unknown>): EverrunsError {
  return new EverrunsError({ code: 'LIMIT_EXCEEDED', message, details });
}

/** Depth of the session: 0 for a top-level one, +1 per `parentSessionId` link (cycles refused). */
async function depthOf(context: ToolContext<SubagentsConfig>, limit: number): Promise<number> {
  const sessions = context.sessions;
  if (!sessions) return 0;
  let depth = 0;
  const seen = new Set<string>([context.sessionId]);
  let cursor = (await sessions.getSession(context.sessionId))?.parentSessionId;
  while (cursor !== undefined) {
    depth++;
    if (depth > limit || seen.has(cursor)) return depth;
    seen.add(cursor);
    cursor = (await sessions.getSession(cursor))?.parentSessionId;
  }
  return depth;
}

/** Checks the limits (before anything is created) and returns what to ask the host for. */
async function planSpawn(
  input: SpawnAgentInput,
  context: ToolContext<SubagentsConfig>,
): Promise<SubagentRunRequest> {
  const config = subagentsConfigSchema.parse(context.config ?? {});
  let definition: SubagentDefinition | undefined;
  if (input.agent !== undefined) {
    definition = config.agents.find(
      (agent) => agent.name.toLowerCase() === input.agent?.toLowerCase(),
    );
    if (!definition) {
      const known = config.agents.map((agent) => agent.name);
      throw new EverrunsError({
        code: 'AGENT_NOT_FOUND',
        message: `No agent named ${JSON.stringify(input.agent)}; configured: ${known.length ? known.join(', ') : 'none'}`,
        details: { agent: input.agent, available: known },
      });
    }
    if (input.system_prompt !== undefined) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'Give either agent or system_prompt, not both',
      });
    }
  } else if (input.system_prompt !== undefined && !config.allowInlinePrompt) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Ad-hoc subagents are not allowed here: name one of the configured agents (${config.agents.map((agent) => agent.name).join(', ') || 'none'})`,
    });
  }

  const callKey = `${CALLS_PREFIX}${context.turnId}/${context.toolCallId}`;
  const known = (await context.storage.getValue(context.sessionId, callKey)) !== null;
  if (!known) {
    const depth = await depthOf(context, config.maxSubagentDepth);
    if (depth + 1 > config.maxSubagentDepth) {
      throw limitError(
        `Subagent depth limit reached: a child of this session would be at depth ${depth + 1}, but maxSubagentDepth is ${config.maxSubagentDepth}. Do the work yourself.`,
        { limit: 'maxSubagentDepth', max: config.maxSubagentDepth, depth: depth + 1 },
      );
    }
    const inTurn = await context.storage.listKeys(
      context.sessionId,
      `${CALLS_PREFIX}${context.turnId}/`,
    );
    if (inTurn.length >= config.maxChildrenPerTurn) {
      throw limitError(
        `Subagent limit of this turn reached: ${inTurn.length} started, maxChildrenPerTurn is ${config.maxChildrenPerTurn}.`,
        { limit: 'maxChildrenPerTurn', max: config.maxChildrenPerTurn, started: inTurn.length },
      );
    }
    const inSession = await context.storage.listKeys(context.sessionId, CALLS_PREFIX);
    if (inSession.length >= config.maxChildrenPerSession) {
      throw limitError(
        `Subagent limit of this session reached: ${inSession.length} started, maxChildrenPerSession is ${config.maxChildrenPerSession}.`,
        {
          limit: 'maxChildrenPerSession',
          max: config.maxChildrenPerSession,
          started: inSession.length,
        },
      );
    }
    const children = (await context.subagents?.children()) ?? [];
    const wanted = input.name.toLowerCase();
    if (children.some((child) => child.title?.toLowerCase() === wanted)) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `A subagent named ${JSON.stringify(input.name)} already exists in this session; choose another name`,
      });
    }
    await context.storage.setValue(context.sessionId, callKey, input.name);
  }

  const capabilities: CapabilityConfig[] | undefined = definition?.capabilities;
  return {
    name: input.name,
    instructions: input.instructions,
    inheritModel: definition?.inheritModel ?? config.inheritModel,
    inheritWorkspace: definition?.inheritWorkspace ?? config.inheritWorkspace,
    metadata: { agent: definition?.name ?? null },
    ...(definition?.agentId ? { agentId: definition.agentId } : {}),
    ...(definition?.systemPrompt ? { systemPrompt: definition.systemPrompt } : {}),
    ...(input.system_prompt ? { systemPrompt: input.system_prompt } : {}),
    ...(capabilities ? { capabilities } : {}),
    ...(definition?.modelId ? { modelId: definition.modelId } : {}),
    ...(definition?.maxIterations ? { maxIterations: definition.maxIterations } : {}),
  };
}

const spawnAgentTool = defineTool<typeof spawnAgentInput, SubagentsConfig>({
  name: 'spawn_agent',
  description:
    'Delegate a self-contained task to a subagent: a child session with its own context window runs it and its final answer comes back as this tool result. Name a configured agent with `agent`, or give an ad-hoc `system_prompt`.',
  inputSchema: spawnAgentInput,
  timeoutMs: SPAWN_AGENT_TIMEOUT_MS,
  // Re-running the call after a crash resumes the same child (created once per call id).
  idempotent: true,
  async execute(input, context): Promise<SpawnAgentResult | ReturnType<typeof toolError>> {
    if (!context.subagents) {
      return toolError('This runtime cannot run subagents (no subagent host in the tool context).');
    }
    const request = await planSpawn(input, context);
    const outcome = await context.subagents.run(request);
    return {
      subagent_session_id: outcome.sessionId,
      name: input.name,
      status:
        outcome.success && outcome.stopReason === 'end_turn' ? 'completed' : outcome.stopReason,
      result: outcome.response,
      iterations: outcome.iterations,
      ...(outcome.error ? { error: outcome.error } : {}),
    };
  },
});

function describeAgents(config: SubagentsConfig): string {
  const lines = config.agents.map(
    (agent) => `- ${agent.name}${agent.description ? `: ${agent.description}` : ''}`,
  );
  const inline = config.allowInlinePrompt
    ? 'You may also start an ad-hoc subagent with your own system_prompt.'
    : 'Only these agents may be started.';
  return lines.length ? `Agents you can start by name:\n${lines.join('\n')}\n${inline}` : inline;
}

/**
 * The `subagents` capability (tool `spawn_agent`): the model delegates a task to a child session
 * (a configured agent, or an ad-hoc system prompt) and gets the child's final answer as the tool
 * result. Depth and fan-out are limited (`maxSubagentDepth`, `maxChildrenPerTurn`,
 * `maxChildrenPerSession`; an exceeded limit is a tool error the model reads). Children inherit
 * the parent's model and workspace only when configured. Needs a host that offers
 * `ToolContext.subagents` (the in-process runtime and `host-pgboss` do).
 */
export const subagentsCapability: Capability<SubagentsConfig> = defineCapability<SubagentsConfig>({
  id: SUBAGENTS_CAPABILITY_ID,
  name: 'Subagents',
  description:
    'Delegate tasks to subagents: child sessions with their own context window whose final answer comes back to the parent.',
  configSchema: subagentsConfigSchema as unknown as z.ZodType<SubagentsConfig>,
  systemPrompt: ({ config }) => {
    const parsed = subagentsConfigSchema.parse(config ?? {});
    return `Use spawn_agent for independent, self-contained work that benefits from a separate context; the subagent sees only your instructions and returns its final answer. Avoid it for quick steps you can do directly. Subagents nest at most ${parsed.maxSubagentDepth} levels deep; at most ${parsed.maxChildrenPerTurn} per turn.\n${describeAgents(parsed)}`;
  },
  tools: [spawnAgentTool],
});
