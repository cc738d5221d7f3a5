export {
  DEFAULT_MAX_CHILDREN_PER_SESSION,
  DEFAULT_MAX_CHILDREN_PER_TURN,
  DEFAULT_MAX_SUBAGENT_DEPTH,
  SPAWN_AGENT_TIMEOUT_MS,
  type SpawnAgentResult,
  SUBAGENTS_CAPABILITY_ID,
  type SubagentDefinition,
  type SubagentsConfig,
  type SubagentsConfigInput,
  subagentDefinitionSchema,
  subagentsCapability,
  subagentsConfigSchema,
} from './subagents-capability.js';
