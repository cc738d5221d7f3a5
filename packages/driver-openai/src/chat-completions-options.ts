import {
  EverrunsError,
  type LlmRequestOptions,
  parseLlmRequestOptions,
  type ToolSpec,
  unsupportedRequestOptionError,
} from '@everruns-ts/core';

const PROVIDER = 'OpenAI Chat Completions';

/**
 * Throws `INVALID_INPUT` for options the Chat Completions API cannot take:
 * `thinkingBudgetTokens` (use `reasoningEffort`), and, when the request's tools are given, a
 * `toolChoice` naming a tool the request does not offer or `required` with no tools at all.
 */
export function checkChatRequestOptions(
  options: LlmRequestOptions,
  tools?: readonly ToolSpec[],
): void {
  if (options.thinkingBudgetTokens !== undefined) {
    throw unsupportedRequestOptionError(
      PROVIDER,
      'thinkingBudgetTokens',
      'there is no thinking budget; use reasoningEffort',
    );
  }
  if (tools === undefined || options.toolChoice === undefined) return;
  const choice = options.toolChoice;
  if (choice === 'required' && tools.length === 0) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: 'toolChoice is required but the request offers no tools',
      details: { option: 'toolChoice' },
    });
  }
  if (typeof choice === 'object' && !tools.some((tool) => tool.name === choice.name)) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `toolChoice names tool ${choice.name}, which the request does not offer`,
      details: { option: 'toolChoice', tool: choice.name },
    });
  }
}

/**
 * Writes request options into a Chat Completions body (validated first: `INVALID_INPUT`).
 * `maxOutputTokens` goes to `maxTokensParameter`; `tool_choice` and `parallel_tool_calls` are
 * sent only with tools (the API refuses them without); `extraBody` is merged last.
 */
export function applyChatRequestOptions(
  body: Record<string, unknown>,
  value: unknown,
  tools: readonly ToolSpec[],
  maxTokensParameter: 'max_completion_tokens' | 'max_tokens',
): void {
  const options = parseLlmRequestOptions(value, 'request options');
  if (!options) return;
  checkChatRequestOptions(options, tools);
  if (options.temperature !== undefined) body.temperature = options.temperature;
  if (options.topP !== undefined) body.top_p = options.topP;
  if (options.maxOutputTokens !== undefined) {
    delete body.max_tokens;
    delete body.max_completion_tokens;
    body[maxTokensParameter] = options.maxOutputTokens;
  }
  if (options.stop !== undefined) body.stop = options.stop;
  if (options.seed !== undefined) body.seed = options.seed;
  if (tools.length > 0) {
    const choice = options.toolChoice;
    if (choice !== undefined) {
      body.tool_choice =
        typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
    }
    if (options.parallelToolCalls !== undefined) {
      body.parallel_tool_calls = options.parallelToolCalls;
    }
  }
  if (options.responseFormat !== undefined) {
    const format = options.responseFormat;
    body.response_format = {
      type: 'json_schema',
      json_schema: {
        name: format.name,
        ...(format.description !== undefined ? { description: format.description } : {}),
        schema: format.schema,
        ...(format.strict !== undefined ? { strict: format.strict } : {}),
      },
    };
  }
  if (options.reasoningEffort !== undefined) body.reasoning_effort = options.reasoningEffort;
  if (options.extraBody !== undefined) Object.assign(body, options.extraBody);
}
