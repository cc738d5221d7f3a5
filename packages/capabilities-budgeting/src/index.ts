export {
  type BudgetEntry,
  type BudgetingConfig,
  type BudgetLimits,
  type BudgetScope,
  type BudgetUnit,
  budgetingConfigSchema,
  budgetLimitsSchema,
  countedTokens,
  measureBudgets,
  pricedCost,
} from './budget-status.js';
export {
  BUDGET_WARNING_PERCENT,
  BUDGETING_CAPABILITY_ID,
  budgetingCapability,
  type CheckBudgetResult,
} from './budgeting-capability.js';
