export {
  COMPACTION_CAPABILITY_ID,
  COMPACTION_SUMMARY_PROMPT,
  type CompactionConfig,
  compactionCapability,
  compactionConfigSchema,
  DEFAULT_CONTEXT_WINDOW_TOKENS,
  MAX_TRANSCRIPT_PART_CHARS,
} from './compaction-capability.js';
export {
  ESTIMATE_CHARS_PER_TOKEN,
  estimateTokens,
  partText,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_TOOL,
  TokenCounter,
  type TokenizerName,
  tokenizerFor,
} from './token-count.js';
