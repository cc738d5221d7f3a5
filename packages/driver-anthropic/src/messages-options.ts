import {
  EverrunsError,
  type LlmRequestOptions,
  parseLlmRequestOptions,
  type ToolSpec,
  unsupportedRequestOptionError,
} from '@everruns-ts/core';

const PROVIDER = 'Anthropic Messages';

/**
 * The name of the tool that carries structured output: with `responseFormat`, the driver offers
 * a tool of this name whose input schema is the response schema, and turns its call back into
 * the answer's text. A request that offers a tool of its own under this name is `INVALID_INPUT`.
 */
export const ANTHROPIC_STRUCTURED_OUTPUT_TOOL = 'everruns_structured_output';

/** The smallest thinking budget the Messages API accepts. */
export const ANTHROPIC_MIN_THINKING_BUDGET_TOKENS = 1024;

function invalid(message: string, option: keyof LlmRequestOptions): EverrunsError {
  return new EverrunsError({ code: 'INVALID_INPUT', message, details: { option } });
}

/**
 * Throws `INVALID_INPUT` for options the Messages API cannot take: `seed`, `reasoningEffort`
 * (use `thinkingBudgetTokens`); a thinking budget under 1,024 or not below `maxTokens`; with
 * thinking, `temperature`, a `topP` under 0.95, or a forced tool (`required` or a named tool).
 * With `responseFormat` (sent as a forced tool, see {@link ANTHROPIC_STRUCTURED_OUTPUT_TOOL}):
 * a schema whose top-level `type` is not `object`, `toolChoice` `none` or a named tool, and a
 * thinking budget unless `toolChoice` is `auto` (the API forces no tool with extended thinking).
 * When the request's tools are given, also a `toolChoice` naming a tool the request does not
 * offer, `required` with no tools, and, with `responseFormat`, a tool of the reserved name.
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
  if (options.responseFormat !== undefined) checkResponseFormat(options, tools);
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
  if (choice === 'required' && tools.length === 0 && options.responseFormat === undefined) {
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

/** The structured output checks of {@link checkMessagesRequestOptions}. */
function checkResponseFormat(options: LlmRequestOptions, tools?: readonly ToolSpec[]): void {
  const format = options.responseFormat;
  if (format === undefined) return;
  if (format.schema.type !== 'object') {
    throw invalid(
      'responseFormat.schema must have type "object" at the top level: it becomes a tool input schema',
      'responseFormat',
    );
  }
  const choice = options.toolChoice;
  if (choice === 'none' || typeof choice === 'object') {
    throw invalid(
      `toolChoice ${typeof choice === 'object' ? `naming tool ${choice.name}` : 'none'} contradicts responseFormat, which forces the structured output tool`,
      'toolChoice',
    );
  }
  if (options.thinkingBudgetTokens !== undefined && choice !== 'auto') {
    throw invalid(
      'with a thinking budget the API forces no tool, so responseFormat needs toolChoice "auto" (the structured output tool is then offered, not forced)',
      'responseFormat',
    );
  }
  if (tools?.some((tool) => tool.name === ANTHROPIC_STRUCTURED_OUTPUT_TOOL)) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `A tool is named ${ANTHROPIC_STRUCTURED_OUTPUT_TOOL}, the name the driver reserves for structured output (responseFormat)`,
      details: { option: 'responseFormat', tool: ANTHROPIC_STRUCTURED_OUTPUT_TOOL },
    });
  }
}

/**
 * The structured output tool of a request with `responseFormat`: its input schema is the
 * response schema. `undefined` without `responseFormat`.
 */
export function structuredOutputTool(
  options: LlmRequestOptions | undefined,
): { name: string; description: string; input_schema: Record<string, unknown> } | undefined {
  const format = options?.responseFormat;
  if (format === undefined) return undefined;
  return {
    name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
    description:
      format.description ??
      `Give your final answer by calling this tool once: its input is the answer (${format.name}). Call it only when you have everything you need.`,
    input_schema: format.schema,
  };
}

function toolChoiceOf(
  options: LlmRequestOptions,
  realTools: number,
): Record<string, unknown> | undefined {
  const choice = options.toolChoice;
  let wire: Record<string, unknown> | undefined;
  if (options.responseFormat !== undefined && choice !== 'auto') {
    // Structured output: the answer tool alone is forced; beside other tools, some tool is.
    wire =
      realTools === 0 ? { type: 'tool', name: ANTHROPIC_STRUCTURED_OUTPUT_TOOL } : { type: 'any' };
  } else if (choice === 'auto') wire = { type: 'auto' };
  else if (choice === 'none') wire = { type: 'none' };
  else if (choice === 'required') wire = { type: 'any' };
  else if (choice !== undefined) wire = { type: 'tool', name: choice.name };
  if (options.parallelToolCalls === false && wire?.type !== 'none') {
    wire = { ...(wire ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }
  return wire;
}

/**
 * Writes request options, already parsed, into a Messages body (checked first: `INVALID_INPUT`).
 * `maxOutputTokens` sets `max_tokens`; `stop` is `stop_sequences`; `toolChoice` and
 * `parallelToolCalls: false` (`disable_parallel_tool_use`) go into `tool_choice`, sent only with
 * tools; `responseFormat` forces the structured output tool the body already offers
 * (`{ type: 'tool' }` when it is the only tool, `{ type: 'any' }` beside others, `auto` when
 * `toolChoice` is `auto`); `thinkingBudgetTokens` is `thinking: { type: 'enabled',
 * budget_tokens }`; `extraBody` is merged last. `tools` are the request's own tools.
 */
export function applyMessagesRequestOptions(
  body: Record<string, unknown> & { max_tokens: number },
  options: LlmRequestOptions | undefined,
  tools: readonly ToolSpec[],
): void {
  if (!options) return;
  if (options.maxOutputTokens !== undefined) body.max_tokens = options.maxOutputTokens;
  checkMessagesRequestOptions(options, body.max_tokens, tools);
  if (options.temperature !== undefined) body.temperature = options.temperature;
  if (options.topP !== undefined) body.top_p = options.topP;
  if (options.stop !== undefined) body.stop_sequences = options.stop;
  if (tools.length > 0 || options.responseFormat !== undefined) {
    const toolChoice = toolChoiceOf(options, tools.length);
    if (toolChoice) body.tool_choice = toolChoice;
  }
  if (options.thinkingBudgetTokens !== undefined) {
    body.thinking = { type: 'enabled', budget_tokens: options.thinkingBudgetTokens };
  }
  if (options.extraBody !== undefined) Object.assign(body, options.extraBody);
}

/** Parses a request's options (`INVALID_INPUT` when they are not valid). */
export function parseMessagesRequestOptions(value: unknown): LlmRequestOptions | undefined {
  return parseLlmRequestOptions(value, 'request options');
}
