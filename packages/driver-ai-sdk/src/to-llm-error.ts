import { AISDKError, APICallError } from '@ai-sdk/provider';
import { EverrunsError, redactSecretValues } from '@everruns-ts/core';

/** What {@link toLlmError} says about the call that failed. */
export interface LlmErrorContext {
  /** The provider type the driver is registered under. */
  providerType: string;
  /** The everruns-ts model name the request asked for. */
  model: string;
  /** The AI SDK provider id of the model, for example `google.generative-ai`. */
  provider?: string;
  /** The call's abort signal: when it has fired, any failure is `ABORTED`. */
  signal?: AbortSignal;
  /** A key to keep out of the message, when the request carried one. */
  apiKey?: string;
}

function isAbortError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    ((error as { name?: unknown }).name === 'AbortError' ||
      (error as { name?: unknown }).name === 'ResponseAborted')
  );
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/** The wait a provider asked for before a retry, from `retry-after-ms` or `retry-after`. */
export function retryAfterMs(headers: Record<string, string> | undefined): number | undefined {
  if (!headers) return undefined;
  const lower = new Map(
    Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
  );
  const milliseconds = Number(lower.get('retry-after-ms'));
  if (lower.has('retry-after-ms') && Number.isFinite(milliseconds) && milliseconds >= 0) {
    return milliseconds;
  }
  const value = lower.get('retry-after');
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * The `EverrunsError` of a failed AI SDK model call:
 * - `ABORTED` when the call's signal fired (whatever the model threw then);
 * - `LLM_ERROR` otherwise, `retryable` as the provider's `APICallError.isRetryable` says (429,
 *   5xx, failed connections) and `false` for anything else. Details: `providerType`, `model`,
 *   `provider`, `status`, `providerErrorType` (the AI SDK error's name), `providerErrorMessage`,
 *   `retryable`, `retryAfterMs` when the provider sent one.
 *
 * Another `EverrunsError` passes through unchanged. The request's key is redacted from the messages.
 */
export function toLlmError(error: unknown, context: LlmErrorContext): EverrunsError {
  const redact = (text: string): string =>
    context.apiKey ? redactSecretValues(text, new Map([['apiKey', context.apiKey]])) : text;
  if (context.signal?.aborted || isAbortError(error)) {
    return new EverrunsError({
      code: 'ABORTED',
      message: `The call to model ${context.model} was aborted`,
      details: { providerType: context.providerType, model: context.model },
    });
  }
  if (EverrunsError.isInstance(error)) return error;
  const providerErrorMessage = redact(messageOf(error));
  const details: Record<string, unknown> = {
    providerType: context.providerType,
    model: context.model,
  };
  if (context.provider !== undefined) details.provider = context.provider;
  let retryable = false;
  if (APICallError.isInstance(error)) {
    retryable = error.isRetryable;
    if (error.statusCode !== undefined) details.status = error.statusCode;
    const wait = retryAfterMs(error.responseHeaders);
    if (wait !== undefined) details.retryAfterMs = wait;
  }
  if (AISDKError.isInstance(error)) details.providerErrorType = error.name;
  details.providerErrorMessage = providerErrorMessage;
  details.retryable = retryable;
  const status = details.status === undefined ? '' : ` (HTTP ${String(details.status)})`;
  return new EverrunsError({
    code: 'LLM_ERROR',
    message: `Model ${context.model} (${context.provider ?? context.providerType}) failed${status}: ${providerErrorMessage}`,
    details,
    retryable,
  });
}
