import {
  findModelPrice,
  type LlmUsage,
  type ModelPrices,
  type ModelUsageTotal,
  modelPricesSchema,
  type RuntimeMessageStore,
  sumSessionUsage,
  totalLlmUsage,
  usageCost,
} from '@everruns-ts/core';
import { invalidInputError } from './runtime-errors.js';

/** The usage of one model within a session (see {@link SessionUsage.byModel}). */
export interface ModelUsage extends ModelUsageTotal {
  /** What these calls cost, when the runtime's prices have one for the model. */
  cost?: number;
}

/** What a session's model calls used, summed from the store (see `InProcessRuntime.sessionUsage`). */
export interface SessionUsage {
  /** Every model call's usage added up; a detail field is present when any call reported it. */
  usage: LlmUsage;
  /** How many model calls the session made (agent messages that record a usage). */
  modelCalls: number;
  /**
   * The same per model (`metadata.model` of the agent messages, the model that answered), sorted
   * by name, calls without a model name last: a session that changed model has one entry each.
   */
  byModel: ModelUsage[];
  /**
   * What the session cost in the prices' currency: present when the runtime has prices and every
   * model in {@link byModel} has one (see `findModelPrice`), absent otherwise (then the entries
   * that have a price still carry their own `cost`).
   */
  cost?: number;
}

/** Builds a {@link SessionUsage} from per-model totals, pricing each model when `prices` has it. */
export function sessionUsageOf(
  totals: readonly ModelUsageTotal[],
  prices: ModelPrices | undefined,
): SessionUsage {
  let cost: number | undefined = 0;
  const byModel = totals.map((total): ModelUsage => {
    const price = findModelPrice(prices, total.model);
    if (!price) {
      cost = undefined;
      return { ...total };
    }
    const modelCost = usageCost(total.usage, price);
    if (cost !== undefined) cost += modelCost;
    return { ...total, cost: modelCost };
  });
  const result: SessionUsage = {
    usage: totalLlmUsage(totals),
    modelCalls: totals.reduce((sum, total) => sum + total.modelCalls, 0),
    byModel,
  };
  if (prices !== undefined && cost !== undefined) result.cost = cost;
  return result;
}

/**
 * What one turn's model calls cost (its stored agent messages, priced per model), or `undefined`
 * when a call's model has no price.
 */
export async function turnCostOf(
  store: RuntimeMessageStore,
  sessionId: string,
  turnId: string,
  prices: ModelPrices,
): Promise<number | undefined> {
  return sessionUsageOf(await sumSessionUsage(store, sessionId, { turnId }), prices).cost;
}

/** Validates a price table (`INVALID_INPUT` when malformed) and returns a copy. */
export function parseModelPrices(prices: unknown): ModelPrices {
  const parsed = modelPricesSchema.safeParse(prices);
  if (!parsed.success) throw invalidInputError('prices', parsed.error);
  return parsed.data;
}
