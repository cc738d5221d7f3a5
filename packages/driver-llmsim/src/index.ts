export {
  LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE,
  LLMSIM_DEFAULT_TEXT,
  type LlmSimCallInfo,
  LlmSimConfig,
  type LlmSimFunction,
  type LlmSimReasoningSource,
  type LlmSimResult,
  type LlmSimStreaming,
  type LlmSimTextSource,
  type LlmSimToolCall,
  type LlmSimToolCallSource,
} from './llm-sim-config.js';
export { LlmSimDriver } from './llm-sim-driver.js';
