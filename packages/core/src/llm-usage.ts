import { z } from 'zod';
import type { LlmUsage } from './driver.js';

/**
 * Schema of {@link LlmUsage}, for usage carried in persisted turn state and events. The detail
 * fields are optional so usage written before they existed still validates.
 */
export const llmUsageSchema = z.object({
  inputTokens: z.number(),
  outputTokens: z.number(),
  cachedInputTokens: z.number().optional(),
  cacheWriteInputTokens: z.number().optional(),
  reasoningTokens: z.number().optional(),
});

const DETAIL_KEYS = ['cachedInputTokens', 'cacheWriteInputTokens', 'reasoningTokens'] as const;

/**
 * The sum of two usages. Totals always add; a detail field is present in the sum when either side
 * has it (the side without it counts as zero), so a turn's usage keeps every detail any call
 * reported.
 */
export function addLlmUsage(left: LlmUsage, right: Partial<LlmUsage> | undefined): LlmUsage {
  const sum: LlmUsage = {
    inputTokens: left.inputTokens + (right?.inputTokens ?? 0),
    outputTokens: left.outputTokens + (right?.outputTokens ?? 0),
  };
  for (const key of DETAIL_KEYS) {
    const a = left[key];
    const b = right?.[key];
    if (a !== undefined || b !== undefined) sum[key] = (a ?? 0) + (b ?? 0);
  }
  return sum;
}
