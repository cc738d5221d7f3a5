import type { LlmResponse, LlmStopReason, ReasoningPart, ToolCall } from '@everruns-ts/core';

/** A parsed JSON object, as a provider's bodies and stream events are read. */
export type JsonObject = Record<string, unknown>;

/** True when `value` is a plain JSON object (not `null`, not an array). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` when it is a string, else `undefined`. */
export function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** `value` when it is a finite number (a token count, an index), else 0. */
export function tokenCount(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * Parses the JSON text of a tool call's arguments: core's `parseToolArgumentsText` (empty text is
 * `{}`; text that is not JSON or passes the bounds on arguments stays the raw string, which the
 * act step reports to the model as a tool error), re-exported here where drivers look for it.
 */
export { parseToolArgumentsText } from '@everruns-ts/core';

/** The parts of a provider's answer that {@link toLlmResponse} assembles. */
export interface LlmResponseParts {
  text: string;
  toolCalls: ToolCall[];
  usage: LlmResponse['usage'];
  stopReason: LlmStopReason;
  /** The provider's id of the answer; left out of the response when empty. */
  responseId?: string | undefined;
  /** The model that answered; left out of the response when empty. */
  model?: string | undefined;
  /** The model's reasoning parts; left out of the response when there are none. */
  reasoning?: ReasoningPart[] | undefined;
}

/** Builds an `LlmResponse`, leaving out an empty `responseId`, `model` or `reasoning`. */
export function toLlmResponse(parts: LlmResponseParts): LlmResponse {
  const response: LlmResponse = {
    text: parts.text,
    toolCalls: parts.toolCalls,
    usage: parts.usage,
    stopReason: parts.stopReason,
  };
  if (parts.responseId) response.responseId = parts.responseId;
  if (parts.model) response.model = parts.model;
  if (parts.reasoning && parts.reasoning.length > 0) response.reasoning = parts.reasoning;
  return response;
}
