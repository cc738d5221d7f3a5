import {
  type BeforeModelCallResult,
  type Capability,
  defineCapability,
  defineTool,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import {
  type BudgetEntry,
  type BudgetingConfig,
  budgetingConfigSchema,
  describeBudgets,
  formatAmount,
  hasBudgets,
  measureBudgets,
} from './budget-status.js';

/** Id of the {@link budgetingCapability}, as upstream (`budgeting`). */
export const BUDGETING_CAPABILITY_ID = 'budgeting';

/** Below this share of a limit left (percent), `check_budget` reports `warning`. */
export const BUDGET_WARNING_PERCENT = 20;

/** Result of `check_budget`. */
export interface CheckBudgetResult {
  /**
   * `no_budgets` when no limit is configured; else the worst of the limits: `exhausted` (the
   * next model call is refused), `unpriced` (a cost limit cannot be computed: refused too),
   * `warning` (some limit has less than {@link BUDGET_WARNING_PERCENT}% left) or `active`.
   */
  status: 'no_budgets' | 'active' | 'warning' | 'exhausted' | 'unpriced';
  /** Every configured limit: used, limit, remaining. */
  budgets: BudgetEntry[];
  /** One sentence for the model on what to do. */
  hint: string;
}

function overallStatus(entries: readonly BudgetEntry[]): CheckBudgetResult['status'] {
  if (entries.length === 0) return 'no_budgets';
  if (entries.some((entry) => entry.status === 'exhausted')) return 'exhausted';
  if (entries.some((entry) => entry.status === 'unpriced')) return 'unpriced';
  if (entries.some((entry) => (entry.percentRemaining ?? 100) < BUDGET_WARNING_PERCENT)) {
    return 'warning';
  }
  return 'active';
}

function hintFor(status: CheckBudgetResult['status'], entries: readonly BudgetEntry[]): string {
  switch (status) {
    case 'no_budgets':
      return 'No budget is set for this session.';
    case 'exhausted':
      return 'A budget is used up: your next model call will be refused. Give your final answer now.';
    case 'unpriced':
      return 'A cost budget cannot be computed because a model has no price; model calls are refused until the operator adds its price.';
    default: {
      const least = Math.min(...entries.map((entry) => entry.percentRemaining ?? 100));
      return status === 'warning'
        ? `Only ${least}% of a budget is left: finish the core task briefly.`
        : `At least ${least}% of every budget is left.`;
    }
  }
}

/** The turn-ending error for an exhausted or unpriced limit (`undefined` when none is). */
function stopFor(entries: readonly BudgetEntry[]): BeforeModelCallResult['stop'] | undefined {
  const exhausted = entries.find((entry) => entry.status === 'exhausted');
  if (exhausted && exhausted.used !== null) {
    const used = formatAmount(exhausted.used, exhausted.unit);
    const limit = formatAmount(exhausted.limit, exhausted.unit);
    const what = exhausted.unit === 'tokens' ? 'token' : 'cost';
    const window = exhausted.scope === 'session' ? 'the session' : 'this turn';
    return {
      code: 'BUDGET_EXHAUSTED',
      message: `The ${what} budget of ${window} is used up: ${used} of ${limit}${exhausted.unit === 'tokens' ? ' tokens' : ''} used (budgeting ${exhausted.name}); the model was not called.`,
      details: {
        limitName: exhausted.name,
        scope: exhausted.scope,
        unit: exhausted.unit,
        used: exhausted.used,
        limit: exhausted.limit,
      },
    };
  }
  const unpriced = entries.find((entry) => entry.status === 'unpriced');
  if (unpriced) {
    const models = (unpriced.unpricedModels ?? []).join(', ');
    return {
      code: 'CONFIGURATION',
      message: `The budgeting capability has a cost limit (${unpriced.name}) but no price for ${models}: give the model's price (InProcessRuntimeBuilder.prices() or the host's prices option); the model was not called.`,
      details: {
        limitName: unpriced.name,
        scope: unpriced.scope,
        unit: unpriced.unit,
        limit: unpriced.limit,
        unpricedModels: unpriced.unpricedModels ?? [],
      },
    };
  }
  return undefined;
}

const checkBudgetTool = defineTool<z.ZodObject<Record<string, never>>, BudgetingConfig>({
  name: 'check_budget',
  description:
    'Check what this session may still spend: for each budget (per session or per turn, in tokens or cost) what was used, the limit and what remains, with an overall status.',
  inputSchema: z.strictObject({}),
  idempotent: true,
  async execute(_input, context): Promise<CheckBudgetResult | ReturnType<typeof toolError>> {
    const config = context.config ?? {};
    if (!hasBudgets(config)) {
      return { status: 'no_budgets', budgets: [], hint: hintFor('no_budgets', []) };
    }
    if (!context.usage) {
      return toolError('This runtime does not report usage to tools: the budget is unknown.');
    }
    const budgets = measureBudgets(config, await context.usage());
    const status = overallStatus(budgets);
    return { status, budgets, hint: hintFor(status, budgets) };
  },
});

/**
 * The `budgeting` capability: token and cost limits per session and per turn (see
 * {@link budgetingConfigSchema}). Before every model call it sums the usage stored for the
 * session and for the turn (the store's `sumUsage`, so several processes sharing a store share
 * the budget) and stops the turn when a limit is reached (`used >= limit`): the turn fails with
 * `BUDGET_EXHAUSTED`, stop reason `budget_exhausted`, and the model is not called. A cost limit
 * needs a price for every model that answered and for the model about to be called; without one
 * the turn fails with `CONFIGURATION` instead of passing unmetered. The system prompt names the
 * limits; `check_budget` tells the model what remains.
 */
export const budgetingCapability: Capability<BudgetingConfig> = defineCapability<BudgetingConfig>({
  id: BUDGETING_CAPABILITY_ID,
  name: 'Budgeting',
  description:
    'Limits what a session and each of its turns may use, in tokens or cost; a turn stops before a model call once a limit is reached, and check_budget shows what remains.',
  configSchema: budgetingConfigSchema as unknown as z.ZodType<BudgetingConfig>,
  systemPrompt: ({ config }) => {
    const limits = describeBudgets(config ?? {});
    if (limits === null) return null;
    return `This session has enforced budgets: ${limits}. Call check_budget before expensive work; when little remains, finish the core task briefly. A turn that reaches a budget is stopped before the next model call.`;
  },
  tools: [checkBudgetTool],
  async beforeModelCall(context) {
    const config = context.config ?? {};
    if (!hasBudgets(config)) return undefined;
    const entries = measureBudgets(config, await context.usage(), context.model.model);
    const stop = stopFor(entries);
    return stop ? { stop } : undefined;
  },
});
