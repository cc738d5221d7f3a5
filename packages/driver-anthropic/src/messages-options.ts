import {
  EverrunsError,
  type LlmRequestOptions,
  parseLlmRequestOptions,
  type ToolSpec,
  unsupportedRequestOptionError,
} from '@everruns-ts/core';

const PROVIDER = 'Anthropic Messages';

/** The smallest thinking budget the Messages API accepts. */
export const ANTHROPIC_MIN_THINKING_BUDGET_TOKENS = 1024;

function invalid(message: string, option: keyof LlmRequestOptions): EverrunsError {
  return new EverrunsError({ code: 'INVALID_INPUT', message, details: { option } });
}

/**
 * Throws `INVALID_INPUT` for options the Messages API cannot take: `seed`, `reasoningEffort`
 * (use `thinkingBudgetTokens`) and `responseFormat` (no JSON-schema mode; offer a tool instead);
 * a thinking budget under 1,024 or not below `maxTokens`; with thinking, `temperature`, a `topP`
 * under 0.95, or a forced tool (`required` or a named tool). When the request's tools are given,
 * also a `toolChoice` naming a tool the request does not offer or `required` with no tools.
 */
export function checkMessagesRequestOptions(
  options: LlmRequestOptions,
  maxTokens: number,
  tools?: readonly ToolSpec[],
): void {
  if (options.seed !== undefined) {
    throw unsupportedRequestOptionError(PROVIDER, 'seed', 'the API has no seed');
  }
  if (options.reasoningEffort !== undefined) {
    throw unsupportedRequestOptionError(
      PROVIDER,
      'reasoningEffort',
      'use thinkingBudgetTokens for extended thinking',
    );
  }
  if (options.responseFormat !== undefined) {
    throw unsupportedRequestOptionError(
      PROVIDER,
      'responseFormat',
      'the API has no JSON schema mode; offer a tool with that input schema and force it with toolChoice',
    );
  }
  const budget = options.thinkingBudgetTokens;
  if (budget !== undefined) {
    if (budget < ANTHROPIC_MIN_THINKING_BUDGET_TOKENS) {
      throw invalid(
        `thinkingBudgetTokens must be at least ${ANTHROPIC_MIN_THINKING_BUDGET_TOKENS}`,
        'thinkingBudgetTokens',
      );
    }
    if (budget >= maxTokens) {
      throw invalid(
        `thinkingBudgetTokens (${budget}) must be less than the output token limit (${maxTokens})`,
        'thinkingBudgetTokens',
      );
    }
    if (options.temperature !== undefined) {
      throw invalid('temperature cannot be set together with a thinking budget', 'temperature');
    }
    if (options.topP !== undefined && options.topP < 0.95) {
      throw invalid('with a thinking budget, topP must be between 0.95 and 1', 'topP');
    }
    const choice = options.toolChoice;
    if (choice === 'required' || typeof choice === 'object') {
      throw invalid('a thinking budget cannot be combined with a forced tool choice', 'toolChoice');
    }
  }
  if (tools === undefined || options.toolChoice === undefined) return;
  const choice = options.toolChoice;
  if (choice === 'required' && tools.length === 0) {
    throw invalid('toolChoice is required but the request offers no tools', 'toolChoice');
  }
  if (typeof choice === 'object' && !tools.some((tool) => tool.name === choice.name)) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `toolChoice names tool ${choice.name}, which the request does not offer`,
      details: { option: 'toolChoice', tool: choice.name },
    });
  }
}

function toolChoiceOf(options: LlmRequestOptions): Record<string, unknown> | undefined {
  const choice = options.toolChoice;
  let wire: Record<string, unknown> | undefined;
  if (choice === 'auto') wire = { type: 'auto' };
  else if (choice === 'none') wire = { type: 'none' };
  else if (choice === 'required') wire = { type: 'any' };
  else if (choice !== undefined) wire = { type: 'tool', name: choice.name };
  if (options.parallelToolCalls === false && wire?.type !== 'none') {
    wire = { ...(wire ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }
  return wire;
}

/**
 * Writes request options into a Messages body (validated first: `INVALID_INPUT`).
 * `maxOutputTokens` sets `max_tokens`; `stop` is `stop_sequences`; `toolChoice` and
 * `parallelToolCalls: false` (`disable_parallel_tool_use`) go into `tool_choice`, sent only with
 * tools; `thinkingBudgetTokens` is `thinking: { type: 'enabled', budget_tokens }`; `extraBody`
 * is merged last.
 */
export function applyMessagesRequestOptions(
  body: Record<string, unknown> & { max_tokens: number },
  value: unknown,
  tools: readonly ToolSpec[],
): void {
  const options = parseLlmRequestOptions(value, 'request options');
  if (!options) return;
  if (options.maxOutputTokens !== undefined) body.max_tokens = options.maxOutputTokens;
  checkMessagesRequestOptions(options, body.max_tokens, tools);
  if (options.temperature !== undefined) body.temperature = options.temperature;
  if (options.topP !== undefined) body.top_p = options.topP;
  if (options.stop !== undefined) body.stop_sequences = options.stop;
  if (tools.length > 0) {
    const toolChoice = toolChoiceOf(options);
    if (toolChoice) body.tool_choice = toolChoice;
  }
  if (options.thinkingBudgetTokens !== undefined) {
    body.thinking = { type: 'enabled', budget_tokens: options.thinkingBudgetTokens };
  }
  if (options.extraBody !== undefined) Object.assign(body, options.extraBody);
}
