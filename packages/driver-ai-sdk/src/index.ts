export {
  AI_SDK_DEFAULT_PROVIDER_TYPE,
  type AiSdkCallSettings,
  AiSdkDriver,
  type AiSdkDriverOptions,
} from './ai-sdk-driver.js';
export { type AiSdkLanguageModel, isAiSdkLanguageModel } from './ai-sdk-language-model.js';
export { MAX_STREAMED_ANSWER_CHARS } from './read-ai-sdk-stream.js';
export { toAiSdkPrompt, toAiSdkTools } from './to-ai-sdk-prompt.js';
