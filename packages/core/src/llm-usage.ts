import { z } from 'zod';
import type { LlmUsage } from './driver.js';
import { lazySchema } from './lazy-schema.js';

/**
 * Schema of {@link LlmUsage}, for usage carried in persisted turn state and events. The detail
 * fields are optional so usage written before they existed still validates.
 */
export const llmUsageSchema = lazySchema(() =>
  z.object({
    inputTokens: z.number(),
    outputTokens: z.number(),
    cachedInputTokens: z.number().optional(),
    cacheWriteInputTokens: z.number().optional(),
    reasoningTokens: z.number().optional(),
  }),
);

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

/** The usage of a session's model calls with one model (see `RuntimeMessageStore.sumUsage`). */
export interface ModelUsageTotal {
  /** The agent messages' `metadata.model` (the model that answered); `null` when they name none. */
  model: string | null;
  /** The summed usage; a detail field is present when any of the calls reported it. */
  usage: LlmUsage;
  /** How many model calls (agent messages with a `metadata.usage` object) were summed. */
  modelCalls: number;
}

/**
 * The model call an agent message records, or `null` when it records none. A message counts as a
 * model call when its role is `agent` and its `metadata.usage` is an object; a usage field counts
 * when it is a finite number (any other value counts as zero, and a detail field without a number
 * stays absent). `model` is `metadata.model` when it is a string. Every message store sums with
 * these rules, so `sumUsage` of any backend equals this function applied to each message.
 */
export function modelCallOf(message: {
  role: string;
  metadata?: Record<string, unknown> | undefined;
}): { model: string | null; usage: LlmUsage } | null {
  if (message.role !== 'agent') return null;
  const raw = message.metadata?.usage;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const fields = raw as Record<string, unknown>;
  const usage: LlmUsage = {
    inputTokens: finiteOrZero(fields.inputTokens),
    outputTokens: finiteOrZero(fields.outputTokens),
  };
  for (const key of DETAIL_KEYS) {
    const value = fields[key];
    if (typeof value === 'number' && Number.isFinite(value)) usage[key] = value;
  }
  const model = message.metadata?.model;
  return { model: typeof model === 'string' ? model : null, usage };
}

function finiteOrZero(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * Adds up model calls per model: the reference sum of `RuntimeMessageStore.sumUsage` (see
 * {@link modelCallOf}), also used by the runtime for stores without it. Feed it messages with
 * {@link UsageTally.add}, read the totals with {@link UsageTally.totals}.
 */
export class UsageTally {
  // Most sessions and turns use one model: its entry is held alone, and a Map is made only when
  // a second model appears (a Map costs ~270 bytes, and a session keeps a tally per turn).
  #first: ModelUsageTotal | undefined;
  #others: Map<string | null, ModelUsageTotal> | undefined;

  /** Counts the message when it records a model call; returns whether it did. */
  add(message: { role: string; metadata?: Record<string, unknown> | undefined }): boolean {
    const call = modelCallOf(message);
    if (!call) return false;
    this.addTotal({ model: call.model, usage: call.usage, modelCalls: 1 });
    return true;
  }

  /** Adds an already summed total (merging it into the entry of its model). */
  addTotal(total: ModelUsageTotal): void {
    if (this.#first === undefined || this.#first.model === total.model) {
      this.#first = merged(this.#first, total);
      return;
    }
    this.#others ??= new Map();
    this.#others.set(total.model, merged(this.#others.get(total.model), total));
  }

  /** One entry per model, sorted by model name (code-unit order), the entry without a name last. */
  totals(): ModelUsageTotal[] {
    if (this.#first === undefined) return [];
    return [this.#first, ...(this.#others?.values() ?? [])]
      .map((total) => ({ ...total, usage: { ...total.usage } }))
      .sort(compareModels);
  }
}

/** `total` added to `current` (the entry of the same model), as a new entry. */
function merged(current: ModelUsageTotal | undefined, total: ModelUsageTotal): ModelUsageTotal {
  return current
    ? {
        model: total.model,
        usage: addLlmUsage(current.usage, total.usage),
        modelCalls: current.modelCalls + total.modelCalls,
      }
    : { model: total.model, usage: { ...total.usage }, modelCalls: total.modelCalls };
}

function compareModels(left: ModelUsageTotal, right: ModelUsageTotal): number {
  if (left.model === right.model) return 0;
  if (left.model === null) return 1;
  if (right.model === null) return -1;
  return left.model < right.model ? -1 : 1;
}

/** Sums several totals into one usage (detail fields present when any total has them). */
export function totalLlmUsage(totals: readonly { usage: LlmUsage }[]): LlmUsage {
  let sum: LlmUsage = { inputTokens: 0, outputTokens: 0 };
  for (const total of totals) sum = addLlmUsage(sum, total.usage);
  return sum;
}

const pricePerMillion = z.number().finite().nonnegative();

/**
 * Schema of {@link ModelPrice}: what one model costs per million tokens, in whatever currency
 * the embedder uses (the runtime ships no prices). The cached-input, cache-write and reasoning
 * prices default to the input and output prices.
 */
export const modelPriceSchema = lazySchema(() =>
  z.strictObject({
    /** Input tokens that are neither read from nor written to the prompt cache. */
    inputPerMillion: pricePerMillion,
    /** Output tokens that are not reasoning tokens. */
    outputPerMillion: pricePerMillion,
    /** Input tokens read from the prompt cache (`cachedInputTokens`). Default `inputPerMillion`. */
    cachedInputPerMillion: pricePerMillion.optional(),
    /** Input tokens written to the prompt cache (`cacheWriteInputTokens`). Default `inputPerMillion`. */
    cacheWritePerMillion: pricePerMillion.optional(),
    /** Reasoning tokens (`reasoningTokens`). Default `outputPerMillion`. */
    reasoningPerMillion: pricePerMillion.optional(),
  }),
);
/** See {@link modelPriceSchema}. */
export type ModelPrice = z.infer<typeof modelPriceSchema>;

/** Schema of {@link ModelPrices}: prices by model name (see {@link findModelPrice}). */
export const modelPricesSchema = lazySchema(() => z.record(z.string().min(1), modelPriceSchema));
/** Prices by model name. */
export type ModelPrices = z.infer<typeof modelPricesSchema>;

/** A dated snapshot suffix, as in `gpt-4.1-mini-2025-04-14` or `claude-3-5-haiku-20241022`. */
const SNAPSHOT_SUFFIX = /-(?:\d{4}-\d{2}-\d{2}|\d{8})$/;

/**
 * The price of a model: the entry named exactly as `model`, else, when `model` ends in a dated
 * snapshot suffix (`-2025-04-14`, `-20241022`), the entry named without it (providers report the
 * snapshot that answered, for example `gpt-4.1-mini-2025-04-14` for `gpt-4.1-mini`). No other
 * matching: `gpt-4o-mini` is never priced as `gpt-4o`. `undefined` when none fits.
 */
export function findModelPrice(
  prices: ModelPrices | undefined,
  model: string | null | undefined,
): ModelPrice | undefined {
  if (!prices || model === null || model === undefined) return undefined;
  if (Object.hasOwn(prices, model)) return prices[model];
  const base = model.replace(SNAPSHOT_SUFFIX, '');
  return base !== model && Object.hasOwn(prices, base) ? prices[base] : undefined;
}

/**
 * The cost of a usage at a price, in the price's currency. Cached and cache-write input tokens
 * are parts of `inputTokens` and priced at their own rates, reasoning tokens part of
 * `outputTokens` at theirs; the rest at the plain input and output rates (never below zero
 * when a provider reports details above the totals).
 */
export function usageCost(usage: LlmUsage, price: ModelPrice): number {
  const cached = usage.cachedInputTokens ?? 0;
  const cacheWrite = usage.cacheWriteInputTokens ?? 0;
  const reasoning = usage.reasoningTokens ?? 0;
  const plainInput = Math.max(0, usage.inputTokens - cached - cacheWrite);
  const plainOutput = Math.max(0, usage.outputTokens - reasoning);
  return (
    (plainInput * price.inputPerMillion +
      cached * (price.cachedInputPerMillion ?? price.inputPerMillion) +
      cacheWrite * (price.cacheWritePerMillion ?? price.inputPerMillion) +
      plainOutput * price.outputPerMillion +
      reasoning * (price.reasoningPerMillion ?? price.outputPerMillion)) /
    1_000_000
  );
}
