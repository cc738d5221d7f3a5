import { describe, expect, it } from 'vitest';
import { addLlmUsage, llmUsageSchema } from './index.js';

describe('LLM usage details', () => {
  it('adds totals and keeps every detail either side reported', () => {
    const sum = addLlmUsage(
      { inputTokens: 100, outputTokens: 20, cachedInputTokens: 60 },
      { inputTokens: 50, outputTokens: 30, reasoningTokens: 12, cacheWriteInputTokens: 8 },
    );
    expect(sum).toEqual({
      inputTokens: 150,
      outputTokens: 50,
      cachedInputTokens: 60,
      cacheWriteInputTokens: 8,
      reasoningTokens: 12,
    });
  });

  it('adds no detail field when neither side has one, and counts a missing usage as zero', () => {
    expect(addLlmUsage({ inputTokens: 1, outputTokens: 2 }, undefined)).toEqual({
      inputTokens: 1,
      outputTokens: 2,
    });
    expect(
      Object.keys(addLlmUsage({ inputTokens: 1, outputTokens: 2 }, { inputTokens: 3 })),
    ).toEqual(['inputTokens', 'outputTokens']);
  });

  it('validates usage persisted before the detail fields existed, and with them', () => {
    expect(llmUsageSchema.parse({ inputTokens: 5, outputTokens: 6 })).toEqual({
      inputTokens: 5,
      outputTokens: 6,
    });
    const detailed = {
      inputTokens: 5,
      outputTokens: 6,
      cachedInputTokens: 1,
      cacheWriteInputTokens: 2,
      reasoningTokens: 3,
    };
    expect(llmUsageSchema.parse(detailed)).toEqual(detailed);
    expect(
      llmUsageSchema.safeParse({ inputTokens: 5, outputTokens: 6, reasoningTokens: 'x' }).success,
    ).toBe(false);
  });
});
