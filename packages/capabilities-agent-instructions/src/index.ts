export {
  AGENT_INSTRUCTIONS_CAPABILITY_ID,
  AGENTS_MD_PATH,
  agentInstructionsCapability,
  formatAgentInstructions,
  MAX_AGENTS_MD_CHARS,
} from './agent-instructions-capability.js';
