import type {
  LanguageModelV4Content,
  LanguageModelV4FinishReason,
  LanguageModelV4GenerateResult,
  LanguageModelV4Usage,
} from '@ai-sdk/provider';
import {
  EverrunsError,
  type LlmResponse,
  type LlmStopReason,
  type LlmUsage,
  parseToolArgumentsText,
  type ReasoningPart,
  type ToolCall,
} from '@everruns-ts/core';

/**
 * Throws when a finish reason says the answer is not whole: `error` (the provider failed
 * mid-answer, not retryable) or `interrupted` (the generation was cut off, retryable). Such an
 * answer is never passed off as a success.
 */
export function assertAnswerComplete(
  finishReason: LanguageModelV4FinishReason | string | undefined,
  model: string,
): void {
  const unified = typeof finishReason === 'string' ? finishReason : finishReason?.unified;
  if (unified !== 'error' && unified !== 'interrupted') return;
  const retryable = unified === 'interrupted';
  throw new EverrunsError({
    code: 'LLM_ERROR',
    message: `Model ${model} ended its answer with finish reason ${unified}`,
    details: { model, finishReason: unified, retryable },
    retryable,
  });
}

/**
 * Token usage in everruns-ts terms (the V3 and V4 usage shapes are the same). Missing totals count
 * as 0; a provider that reports only the non-cached and cache-read parts of the input gets them
 * added up. `inputTokens.cacheRead`, `inputTokens.cacheWrite` and `outputTokens.reasoning` become
 * `cachedInputTokens`, `cacheWriteInputTokens` and `reasoningTokens` when above zero.
 */
export function toLlmUsage(usage: LanguageModelV4Usage | undefined): LlmUsage {
  const input = usage?.inputTokens;
  const output = usage?.outputTokens;
  const inputTokens =
    input?.total ?? (input?.noCache ?? 0) + (input?.cacheRead ?? 0) + (input?.cacheWrite ?? 0);
  const outputTokens = output?.total ?? (output?.text ?? 0) + (output?.reasoning ?? 0);
  const result: LlmUsage = { inputTokens, outputTokens };
  if (input?.cacheRead) result.cachedInputTokens = input.cacheRead;
  if (input?.cacheWrite) result.cacheWriteInputTokens = input.cacheWrite;
  if (output?.reasoning) result.reasoningTokens = output.reasoning;
  return result;
}

/**
 * The stop reason of an AI SDK finish reason. A `stop` that came with tool calls is reported
 * as `tool_calls` (some providers say `stop` when the model called tools). Accepts the plain
 * string form of older providers too.
 */
export function toStopReason(
  finishReason: LanguageModelV4FinishReason | string | undefined,
  hasToolCalls: boolean,
): LlmStopReason {
  const unified = typeof finishReason === 'string' ? finishReason : finishReason?.unified;
  switch (unified) {
    case 'tool-calls':
      return 'tool_calls';
    case 'length':
      return 'max_tokens';
    case 'content-filter':
      return 'content_filter';
    case 'stop':
      return hasToolCalls ? 'tool_calls' : 'end_turn';
    default:
      return hasToolCalls ? 'tool_calls' : 'other';
  }
}

/**
 * A reasoning part from an AI SDK reasoning part's text and provider metadata: Anthropic's
 * `signature` and `redactedData` (under `providerMetadata.anthropic`) are kept, so the reasoning
 * can go back to the provider unchanged.
 */
export function toReasoningPart(text: string, providerMetadata: unknown): ReasoningPart {
  const part: ReasoningPart = { type: 'reasoning', text };
  const anthropic =
    typeof providerMetadata === 'object' && providerMetadata !== null
      ? (providerMetadata as Record<string, unknown>).anthropic
      : undefined;
  if (typeof anthropic === 'object' && anthropic !== null) {
    const { signature, redactedData } = anthropic as Record<string, unknown>;
    if (typeof signature === 'string' && signature !== '') part.signature = signature;
    if (typeof redactedData === 'string') part.redactedData = redactedData;
  }
  return part;
}

/**
 * The text, the tool calls and the reasoning of a result's content, in order. Tool calls the
 * provider ran itself (`providerExecuted`) are not ours to run and are left out, as are their
 * results.
 */
export function collectContent(content: readonly LanguageModelV4Content[]): {
  text: string;
  toolCalls: ToolCall[];
  reasoning: ReasoningPart[];
} {
  let text = '';
  const toolCalls: ToolCall[] = [];
  const reasoning: ReasoningPart[] = [];
  for (const part of content) {
    if (part.type === 'text') text += part.text;
    else if (part.type === 'reasoning') {
      reasoning.push(toReasoningPart(part.text, part.providerMetadata));
    } else if (part.type === 'tool-call' && part.providerExecuted !== true) {
      toolCalls.push({
        id: part.toolCallId,
        name: part.toolName,
        arguments: parseToolArgumentsText(part.input),
      });
    }
  }
  return { text, toolCalls, reasoning };
}

/** The driver response of a `doGenerate` result; throws as {@link assertAnswerComplete} says. */
export function fromGenerateResult(
  result: LanguageModelV4GenerateResult,
  model: string,
): LlmResponse {
  assertAnswerComplete(result.finishReason, model);
  const { text, toolCalls, reasoning } = collectContent(result.content);
  const response: LlmResponse = {
    text,
    toolCalls,
    usage: toLlmUsage(result.usage),
    stopReason: toStopReason(result.finishReason, toolCalls.length > 0),
  };
  if (result.response?.id !== undefined) response.responseId = result.response.id;
  if (result.response?.modelId !== undefined) response.model = result.response.modelId;
  if (reasoning.length > 0) response.reasoning = reasoning;
  return response;
}
