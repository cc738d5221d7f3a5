import { describe, expect, it } from 'vitest';
import {
  findModelPrice,
  modelCallOf,
  modelPricesSchema,
  totalLlmUsage,
  UsageTally,
  usageCost,
} from './index.js';

describe('model prices', () => {
  const prices = modelPricesSchema.parse({
    'gpt-4o': { inputPerMillion: 2.5, outputPerMillion: 10 },
    'gpt-4.1-mini': {
      inputPerMillion: 0.4,
      outputPerMillion: 1.6,
      cachedInputPerMillion: 0.1,
      cacheWritePerMillion: 0.5,
      reasoningPerMillion: 2,
    },
  });

  it('prices cached, cache-write and reasoning tokens apart from the rest of their totals', () => {
    const price = prices['gpt-4.1-mini']!;
    // 1,000,000 input of which 200,000 cached and 100,000 written; 500,000 output of which
    // 100,000 reasoning.
    const cost = usageCost(
      {
        inputTokens: 1_000_000,
        outputTokens: 500_000,
        cachedInputTokens: 200_000,
        cacheWriteInputTokens: 100_000,
        reasoningTokens: 100_000,
      },
      price,
    );
    expect(cost).toBeCloseTo(0.7 * 0.4 + 0.2 * 0.1 + 0.1 * 0.5 + 0.4 * 1.6 + 0.1 * 2, 12);
    // Without detail prices, details cost what the totals cost.
    expect(
      usageCost(
        { inputTokens: 2_000_000, outputTokens: 1_000_000, cachedInputTokens: 1_000_000 },
        prices['gpt-4o']!,
      ),
    ).toBeCloseTo(5 + 10, 12);
    // Details above the totals never make a negative part.
    expect(
      usageCost({ inputTokens: 10, outputTokens: 0, cachedInputTokens: 1_000_010 }, price),
    ).toBeCloseTo(0.1 * 1.00001, 12);
  });

  it('finds a price by exact name or by the name without a dated snapshot suffix only', () => {
    expect(findModelPrice(prices, 'gpt-4o')).toBe(prices['gpt-4o']);
    expect(findModelPrice(prices, 'gpt-4.1-mini-2025-04-14')).toBe(prices['gpt-4.1-mini']);
    expect(findModelPrice(prices, 'gpt-4o-20240806')).toBe(prices['gpt-4o']);
    expect(findModelPrice(prices, 'gpt-4o-mini')).toBeUndefined();
    expect(findModelPrice(prices, 'gpt-4o-mini-2024-07-18')).toBeUndefined();
    expect(findModelPrice(prices, 'toString')).toBeUndefined();
    expect(findModelPrice(prices, null)).toBeUndefined();
    expect(findModelPrice(undefined, 'gpt-4o')).toBeUndefined();
  });

  it('refuses malformed prices', () => {
    expect(
      modelPricesSchema.safeParse({ m: { inputPerMillion: -1, outputPerMillion: 1 } }).success,
    ).toBe(false);
    expect(modelPricesSchema.safeParse({ m: { inputPerMillion: 1 } }).success).toBe(false);
    expect(
      modelPricesSchema.safeParse({
        m: { inputPerMillion: 1, outputPerMillion: 1, cachedPerMillion: 1 },
      }).success,
    ).toBe(false);
    expect(
      modelPricesSchema.safeParse({ '': { inputPerMillion: 1, outputPerMillion: 1 } }).success,
    ).toBe(false);
    expect(
      modelPricesSchema.safeParse({
        m: { inputPerMillion: Number.POSITIVE_INFINITY, outputPerMillion: 1 },
      }).success,
    ).toBe(false);
  });
});

describe('model calls of messages', () => {
  it('counts agent messages with a usage object, per model, numbers only', () => {
    expect(
      modelCallOf({ role: 'user', metadata: { usage: { inputTokens: 1, outputTokens: 1 } } }),
    ).toBeNull();
    expect(modelCallOf({ role: 'agent', metadata: { usage: 'x' } })).toBeNull();
    expect(modelCallOf({ role: 'agent' })).toBeNull();
    expect(
      modelCallOf({
        role: 'agent',
        metadata: {
          model: 7,
          usage: { inputTokens: Number.NaN, outputTokens: 2, reasoningTokens: '3' },
        },
      }),
    ).toEqual({ model: null, usage: { inputTokens: 0, outputTokens: 2 } });
    const tally = new UsageTally();
    tally.add({
      role: 'agent',
      metadata: { model: 'b', usage: { inputTokens: 1, outputTokens: 2 } },
    });
    tally.add({ role: 'agent', metadata: { usage: { inputTokens: 5, outputTokens: 5 } } });
    tally.add({
      role: 'agent',
      metadata: { model: 'a', usage: { inputTokens: 3, outputTokens: 4, cachedInputTokens: 1 } },
    });
    tally.add({
      role: 'agent',
      metadata: { model: 'b', usage: { inputTokens: 1, outputTokens: 2 } },
    });
    const totals = tally.totals();
    expect(totals.map((total) => [total.model, total.modelCalls])).toEqual([
      ['a', 1],
      ['b', 2],
      [null, 1],
    ]);
    expect(totalLlmUsage(totals)).toEqual({
      inputTokens: 10,
      outputTokens: 13,
      cachedInputTokens: 1,
    });
  });
});
