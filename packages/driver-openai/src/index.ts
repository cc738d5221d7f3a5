export type { DriverTimeouts, HttpCallOptions, RetryInfo } from '@everruns-ts/driver-http';
export {
  OPENAI_DEFAULT_BASE_URL,
  OpenAiDriver,
  type OpenAiDriverOptions,
} from './openai-driver.js';
export {
  OpenAiResponsesDriver,
  type OpenAiResponsesDriverOptions,
} from './responses-driver.js';
