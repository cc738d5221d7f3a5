export {
  LLMSIM_DEFAULT_TEXT,
  type LlmSimCallInfo,
  LlmSimConfig,
  type LlmSimFunction,
  type LlmSimResult,
  type LlmSimTextSource,
  type LlmSimToolCall,
  type LlmSimToolCallSource,
} from './llm-sim-config.js';
export { LlmSimDriver } from './llm-sim-driver.js';
