export type { DriverTimeouts, HttpCallOptions, RetryInfo } from '@everruns-ts/driver-http';
export {
  ANTHROPIC_API_VERSION,
  ANTHROPIC_DEFAULT_BASE_URL,
  ANTHROPIC_DEFAULT_MAX_TOKENS,
  AnthropicDriver,
  type AnthropicDriverOptions,
} from './anthropic-driver.js';
export { ANTHROPIC_STRUCTURED_OUTPUT_TOOL } from './messages-options.js';
export {
  ANTHROPIC_CACHE_TTLS,
  ANTHROPIC_MAX_CACHE_BREAKPOINTS,
  type AnthropicCacheControl,
  type AnthropicPromptCaching,
  anthropicPromptCachingSchema,
} from './prompt-caching.js';
