import {
  findModelPrice,
  type ModelPrices,
  type ModelUsageTotal,
  type UsageSnapshot,
  usageCost,
} from '@everruns-ts/core';
import { z } from 'zod';

const limitsSchema = z.strictObject({
  /**
   * At most this many tokens: input plus output tokens of every stored model call, as the
   * provider reported them (cached input counts in full, reasoning tokens are part of output).
   */
  maxTokens: z.number().int().positive().optional(),
  /** At most this cost, priced with the runtime's prices (the prices' currency). */
  maxCost: z.number().finite().positive().optional(),
});

/** Schema of {@link BudgetLimits}. */
export const budgetLimitsSchema = limitsSchema;
/** The limits of one window (the session, or one turn). */
export type BudgetLimits = z.infer<typeof limitsSchema>;

/**
 * Schema of {@link BudgetingConfig}, the `budgeting` capability's per-session configuration:
 * limits for the whole session and for each turn, in tokens and/or cost. No limit is set by
 * default (the capability then only offers `check_budget`, which reports `no_budgets`).
 */
export const budgetingConfigSchema = z
  .strictObject({
    /** Limits on everything the session's model calls used. */
    session: limitsSchema.optional(),
    /** Limits on what one turn's model calls used; every turn starts a fresh window. */
    turn: limitsSchema.optional(),
  })
  .default({});
/** See {@link budgetingConfigSchema}. */
export type BudgetingConfig = z.infer<typeof budgetingConfigSchema>;

/** Which window a limit applies to. */
export type BudgetScope = 'session' | 'turn';
/** What a limit counts. */
export type BudgetUnit = 'tokens' | 'cost';

/** One limit, measured. */
export interface BudgetEntry {
  /** The configuration field, for example `session.maxTokens`. */
  name: `${BudgetScope}.${'maxTokens' | 'maxCost'}`;
  scope: BudgetScope;
  unit: BudgetUnit;
  limit: number;
  /** What the window used so far; `null` for a cost limit when a model has no price. */
  used: number | null;
  /** `limit - used`, never below 0; `null` when `used` is. */
  remaining: number | null;
  /** `remaining / limit` in percent, rounded to one decimal; `null` when `used` is. */
  percentRemaining: number | null;
  /**
   * `active`; `exhausted` when `used >= limit` (the next model call is refused); `unpriced` when
   * a cost cannot be computed because a model (one that answered, or the one about to be called)
   * has no price — the next model call is refused too.
   */
  status: 'active' | 'exhausted' | 'unpriced';
  /** The models without a price (only for `unpriced`). */
  unpricedModels?: string[];
}

/** Names every configured limit, in a fixed order: session first, tokens before cost. */
function configuredLimits(config: BudgetingConfig): Array<{
  name: BudgetEntry['name'];
  scope: BudgetScope;
  unit: BudgetUnit;
  limit: number;
}> {
  const limits: ReturnType<typeof configuredLimits> = [];
  for (const scope of ['session', 'turn'] as const) {
    const window = config[scope];
    if (window?.maxTokens !== undefined) {
      limits.push({
        name: `${scope}.maxTokens`,
        scope,
        unit: 'tokens',
        limit: window.maxTokens,
      });
    }
    if (window?.maxCost !== undefined) {
      limits.push({ name: `${scope}.maxCost`, scope, unit: 'cost', limit: window.maxCost });
    }
  }
  return limits;
}

/** Whether the configuration sets any limit. */
export function hasBudgets(config: BudgetingConfig): boolean {
  return configuredLimits(config).length > 0;
}

/** The tokens a budget counts for some totals: input plus output tokens. */
export function countedTokens(totals: readonly ModelUsageTotal[]): number {
  let sum = 0;
  for (const total of totals) sum += total.usage.inputTokens + total.usage.outputTokens;
  return sum;
}

/**
 * The cost of some totals at `prices` (see `findModelPrice` and `usageCost` of
 * `@everruns-ts/core`), or the models without a price; calls whose messages name no model are
 * reported as `(unnamed)`.
 */
export function pricedCost(
  totals: readonly ModelUsageTotal[],
  prices: ModelPrices | undefined,
): { cost: number } | { unpricedModels: string[] } {
  let cost = 0;
  const unpriced: string[] = [];
  for (const total of totals) {
    const price = findModelPrice(prices, total.model);
    if (!price) unpriced.push(total.model ?? '(unnamed)');
    else cost += usageCost(total.usage, price);
  }
  return unpriced.length > 0 ? { unpricedModels: unpriced } : { cost };
}

/**
 * Measures every configured limit against a usage snapshot. `nextModel` is the model about to
 * be called (or that the model will be, for `check_budget`): a cost limit needs its price too,
 * since what it is about to spend could not be counted otherwise.
 */
export function measureBudgets(
  config: BudgetingConfig,
  usage: UsageSnapshot,
  nextModel?: string,
): BudgetEntry[] {
  return configuredLimits(config).map(({ name, scope, unit, limit }) => {
    const totals = scope === 'session' ? usage.session : usage.turn;
    let used: number;
    if (unit === 'tokens') {
      used = countedTokens(totals);
    } else {
      const priced = pricedCost(totals, usage.prices);
      const unpricedModels = 'unpricedModels' in priced ? [...priced.unpricedModels] : [];
      if (nextModel !== undefined && !findModelPrice(usage.prices, nextModel)) {
        if (!unpricedModels.includes(nextModel)) unpricedModels.push(nextModel);
      }
      if (unpricedModels.length > 0 || !('cost' in priced)) {
        return {
          name,
          scope,
          unit,
          limit,
          used: null,
          remaining: null,
          percentRemaining: null,
          status: 'unpriced',
          unpricedModels,
        };
      }
      used = priced.cost;
    }
    const remaining = Math.max(0, limit - used);
    return {
      name,
      scope,
      unit,
      limit,
      used,
      remaining,
      percentRemaining: Math.round((remaining / limit) * 1000) / 10,
      status: used >= limit ? 'exhausted' : 'active',
    };
  });
}

/** A number as the messages show it: tokens as integers, cost with up to 6 decimals. */
export function formatAmount(value: number, unit: BudgetUnit): string {
  return unit === 'tokens' ? String(value) : String(Math.round(value * 1e6) / 1e6);
}

/** What one limit allows, in words, for the system prompt. */
export function describeLimit(entry: Pick<BudgetEntry, 'scope' | 'unit' | 'limit'>): string {
  const amount =
    entry.unit === 'tokens'
      ? `${formatAmount(entry.limit, 'tokens')} tokens`
      : `a cost of ${formatAmount(entry.limit, 'cost')}`;
  return `${amount} per ${entry.scope}`;
}

/** Every configured limit in words (for the system prompt), or `null` when none is set. */
export function describeBudgets(config: BudgetingConfig): string | null {
  const limits = configuredLimits(config);
  if (limits.length === 0) return null;
  return limits.map(describeLimit).join(', ');
}
