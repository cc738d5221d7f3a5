import type { LanguageModelV4CallOptions } from '@ai-sdk/provider';
import {
  EverrunsError,
  type LlmRequestOptions,
  parseLlmRequestOptions,
  type ToolSpec,
  unsupportedRequestOptionError,
} from '@everruns-ts/core';

type ProviderOptions = NonNullable<LanguageModelV4CallOptions['providerOptions']>;

/**
 * Throws `INVALID_INPUT` for options no AI SDK call option carries (`extraBody`: set provider
 * fields through the driver's `callSettings.providerOptions`). When the request's tools are
 * given, also a `toolChoice` naming a tool the request does not offer or `required` with none.
 */
export function checkAiSdkRequestOptions(
  options: LlmRequestOptions,
  tools?: readonly ToolSpec[],
): void {
  if (options.extraBody !== undefined) {
    throw unsupportedRequestOptionError(
      'AI SDK',
      'extraBody',
      'the provider specification has no raw body; use callSettings.providerOptions',
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

function withProviderOption(
  providerOptions: ProviderOptions | undefined,
  provider: string,
  values: Record<string, unknown>,
): ProviderOptions {
  return {
    ...providerOptions,
    [provider]: { ...providerOptions?.[provider], ...values },
  } as ProviderOptions;
}

/**
 * Writes request options into AI SDK call options (validated first: `INVALID_INPUT`), over the
 * driver's `callSettings`: `temperature`, `topP`, `maxOutputTokens`, `stopSequences`, `seed`,
 * `toolChoice` (with tools only), `responseFormat` (`{ type: 'json', schema, name,
 * description }`), `reasoning` (from `reasoningEffort`), and provider options for what the
 * specification has no field for: `thinkingBudgetTokens` as `anthropic.thinking` and
 * `google.thinkingConfig.thinkingBudget`, `parallelToolCalls` as `openai.parallelToolCalls` and
 * `anthropic.disableParallelToolUse`.
 */
export function applyAiSdkRequestOptions(
  callOptions: LanguageModelV4CallOptions,
  value: unknown,
  tools: readonly ToolSpec[],
): void {
  const options = parseLlmRequestOptions(value, 'request options');
  if (!options) return;
  checkAiSdkRequestOptions(options, tools);
  if (options.temperature !== undefined) callOptions.temperature = options.temperature;
  if (options.topP !== undefined) callOptions.topP = options.topP;
  if (options.maxOutputTokens !== undefined) callOptions.maxOutputTokens = options.maxOutputTokens;
  if (options.stop !== undefined) callOptions.stopSequences = [...options.stop];
  if (options.seed !== undefined) callOptions.seed = options.seed;
  const choice = options.toolChoice;
  if (choice !== undefined && tools.length > 0) {
    callOptions.toolChoice =
      typeof choice === 'string' ? { type: choice } : { type: 'tool', toolName: choice.name };
  }
  if (options.responseFormat !== undefined) {
    const format = options.responseFormat;
    callOptions.responseFormat = {
      type: 'json',
      schema: format.schema as NonNullable<
        Extract<LanguageModelV4CallOptions['responseFormat'], { type: 'json' }>['schema']
      >,
      name: format.name,
      ...(format.description !== undefined ? { description: format.description } : {}),
    };
  }
  if (options.reasoningEffort !== undefined) callOptions.reasoning = options.reasoningEffort;
  if (options.thinkingBudgetTokens !== undefined) {
    const budget = options.thinkingBudgetTokens;
    callOptions.providerOptions = withProviderOption(callOptions.providerOptions, 'anthropic', {
      thinking: { type: 'enabled', budgetTokens: budget },
    });
    callOptions.providerOptions = withProviderOption(callOptions.providerOptions, 'google', {
      thinkingConfig: { thinkingBudget: budget },
    });
  }
  if (options.parallelToolCalls !== undefined && tools.length > 0) {
    const parallel = options.parallelToolCalls;
    callOptions.providerOptions = withProviderOption(callOptions.providerOptions, 'openai', {
      parallelToolCalls: parallel,
    });
    callOptions.providerOptions = withProviderOption(callOptions.providerOptions, 'anthropic', {
      disableParallelToolUse: !parallel,
    });
  }
}
