export {
  LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE,
  LLMSIM_DEFAULT_TEXT,
  type LlmSimCallInfo,
  LlmSimConfig,
  type LlmSimError,
  type LlmSimFunction,
  type LlmSimOnExhausted,
  type LlmSimReasoningSource,
  type LlmSimResult,
  type LlmSimStreaming,
  type LlmSimTextSource,
  type LlmSimToolCall,
  type LlmSimToolCallSource,
  LlmSimTurn,
} from './llm-sim-config.js';
export { LlmSimDriver } from './llm-sim-driver.js';
