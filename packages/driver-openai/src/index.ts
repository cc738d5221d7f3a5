export type { RetryInfo } from './http.js';
export {
  OPENAI_DEFAULT_BASE_URL,
  OpenAiDriver,
  type OpenAiDriverOptions,
} from './openai-driver.js';
