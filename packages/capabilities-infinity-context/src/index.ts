export {
  excerpt,
  INFINITY_CONTEXT_CAPABILITY_ID,
  type InfinityContextConfig,
  infinityContextCapability,
  infinityContextConfigSchema,
  QUERY_HISTORY_DEFAULT_LIMIT,
  QUERY_HISTORY_MAX_LIMIT,
  type QueryHistoryMessage,
  type QueryHistoryResult,
} from './infinity-context-capability.js';
