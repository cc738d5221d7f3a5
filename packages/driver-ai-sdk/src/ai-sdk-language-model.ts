import type { LanguageModelV3, LanguageModelV4 } from '@ai-sdk/provider';

/**
 * A model that implements the AI SDK's provider specification: `LanguageModelV4` (the current
 * one) or `LanguageModelV3` (providers built for AI SDK 6). Every `@ai-sdk/*` provider returns
 * one, for example `google('gemini-2.5-flash')` or `bedrock('anthropic.claude-…')`.
 */
export type AiSdkLanguageModel = LanguageModelV4 | LanguageModelV3;

/**
 * True when `value` is an {@link AiSdkLanguageModel} this driver can call: an object with
 * `specificationVersion` `v4` or `v3` and the `doGenerate` / `doStream` methods.
 */
export function isAiSdkLanguageModel(value: unknown): value is AiSdkLanguageModel {
  if (typeof value !== 'object' || value === null) return false;
  const model = value as Record<string, unknown>;
  return (
    (model.specificationVersion === 'v4' || model.specificationVersion === 'v3') &&
    typeof model.doGenerate === 'function' &&
    typeof model.doStream === 'function'
  );
}
