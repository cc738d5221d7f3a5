import { EverrunsError, errorMessage } from '@everruns-ts/core';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** What a driver reports before it waits and tries a request again. */
export interface RetryInfo {
  /** The attempt that failed, 1 for the first request. */
  attempt: number;
  /** How long the driver waits before the next attempt, in milliseconds. */
  delayMs: number;
  /** The HTTP status that caused the retry; absent when the connection failed. */
  status?: number;
  /** The (redacted) reason of the failed attempt. */
  message: string;
}

/** Retry settings of a driver. */
export interface RetrySettings {
  maxRetries: number;
  retryBaseDelayMs: number;
  maxRetryDelayMs: number;
  onRetry?: ((info: RetryInfo) => void) | undefined;
}

/** What a provider says in an error body. */
export interface ProviderErrorBody {
  type?: string | undefined;
  code?: string | undefined;
  message?: string | undefined;
}

/** One HTTP POST of a driver. */
export interface PostRequest extends RetrySettings {
  /** Display name of the provider in error messages, for example `OpenAI`. */
  providerName: string;
  /** The provider type, recorded in error details. */
  providerType: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  /** The credential, redacted from every error text. */
  apiKey: string | undefined;
  signal: AbortSignal | undefined;
  fetch: typeof globalThis.fetch;
  /** Reads the provider's error shape out of a parsed error body. */
  parseErrorBody(body: unknown): ProviderErrorBody;
}

const REDACTED = '[REDACTED]';
/** Shapes of well-known API keys, also when a provider echoes them half-masked. */
const KEY_SHAPES = /\b(?:sk|pk|rk)-[A-Za-z0-9_*-]{8,}/g;

/** Removes `apiKey`, and anything shaped like an API key, from `text`. */
export function redact(text: string, apiKey: string | undefined): string {
  let result = text;
  if (apiKey && apiKey.length >= 4) result = result.split(apiKey).join(REDACTED);
  return result.replace(KEY_SHAPES, REDACTED);
}

/** The `ABORTED` error of a cancelled model call. */
export function abortedError(signal: AbortSignal | undefined, cause?: unknown): EverrunsError {
  return new EverrunsError({
    code: 'ABORTED',
    message: 'The model call was aborted',
    cause: signal?.reason ?? cause,
  });
}

/** A network failure's message with the cause `fetch` hides behind it (`ECONNREFUSED`, …). */
function networkErrorMessage(error: unknown): string {
  const message = errorMessage(error);
  const cause =
    error instanceof Error ? (error.cause as { code?: unknown; message?: unknown }) : undefined;
  if (!cause || typeof cause !== 'object') return message;
  const detail =
    typeof cause.code === 'string'
      ? cause.code
      : typeof cause.message === 'string'
        ? cause.message
        : undefined;
  return detail && !message.includes(detail) ? `${message} (${detail})` : message;
}

/** True when `error` is what `fetch` or a body reader throws on abort. */
function isAbortError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    ((error as { name?: unknown }).name === 'AbortError' ||
      (error as { name?: unknown }).name === 'TimeoutError')
  );
}

/** Builds an `LLM_ERROR` whose message and details never contain the key. */
export function llmError(options: {
  providerName: string;
  providerType: string;
  apiKey: string | undefined;
  message: string;
  retryable: boolean;
  status?: number | undefined;
  providerError?: ProviderErrorBody | undefined;
  attempts?: number | undefined;
  cause?: unknown;
}): EverrunsError {
  const providerMessage =
    options.providerError?.message === undefined
      ? undefined
      : redact(options.providerError.message, options.apiKey);
  const details: Record<string, unknown> = {
    provider: options.providerType,
    retryable: options.retryable,
  };
  if (options.status !== undefined) details.status = options.status;
  if (options.providerError?.type !== undefined)
    details.providerErrorType = options.providerError.type;
  if (options.providerError?.code !== undefined)
    details.providerErrorCode = options.providerError.code;
  if (providerMessage !== undefined) details.providerErrorMessage = providerMessage;
  if (options.attempts !== undefined) details.attempts = options.attempts;
  return new EverrunsError({
    code: 'LLM_ERROR',
    message: redact(options.message, options.apiKey),
    details,
    retryable: options.retryable,
    // A cause is only kept when it cannot carry request headers (plain network errors do not).
    cause: options.cause,
  });
}

/** Waits `ms` milliseconds; rejects with `ABORTED` as soon as the signal fires. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The wait a response asks for through `retry-after-ms` or `retry-after` (seconds or an HTTP
 * date), in milliseconds; `undefined` when it asks for nothing usable.
 */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const milliseconds = headers.get('retry-after-ms');
  if (milliseconds !== null && milliseconds.trim() !== '') {
    const value = Number(milliseconds);
    if (Number.isFinite(value) && value >= 0) return value;
  }
  const header = headers.get('retry-after');
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(header);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Exponential backoff with jitter: `base * 2^(attempt - 1)`, between 75 % and 100 % of it. */
function backoffMs(attempt: number, settings: RetrySettings): number {
  const exponential = settings.retryBaseDelayMs * 2 ** (attempt - 1);
  const jittered = exponential * (0.75 + Math.random() * 0.25);
  return Math.min(settings.maxRetryDelayMs, Math.round(jittered));
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * POSTs JSON and returns the first successful response. 429 and 5xx answers and failed
 * connections are retried up to `maxRetries` times with bounded exponential backoff, honouring
 * `retry-after`; any other status is an `LLM_ERROR` carrying the provider's message.
 */
export async function postWithRetries(request: PostRequest): Promise<Response> {
  const { signal } = request;
  const body = JSON.stringify(request.body);
  const fetchFunction = request.fetch;
  for (let attempt = 1; ; attempt += 1) {
    if (signal?.aborted) throw abortedError(signal);
    let failure: EverrunsError;
    let delayMs: number | undefined;
    try {
      const response = await fetchFunction(request.url, {
        method: 'POST',
        headers: request.headers,
        body,
        signal: signal ?? null,
      });
      if (response.ok) return response;
      const text = await response.text();
      const parsed = parseJson(text);
      const providerError = parsed === undefined ? {} : request.parseErrorBody(parsed);
      if (providerError.message === undefined && text.trim() !== '' && parsed === undefined) {
        providerError.message = text.slice(0, 1000);
      }
      const retryable = isRetryableStatus(response.status);
      const described = providerError.message ?? response.statusText ?? 'no message';
      failure = llmError({
        providerName: request.providerName,
        providerType: request.providerType,
        apiKey: request.apiKey,
        message: `${request.providerName} API error ${response.status}${
          providerError.type ? ` (${providerError.type})` : ''
        }: ${described}`,
        retryable,
        status: response.status,
        providerError,
        attempts: attempt,
      });
      if (!retryable) throw failure;
      delayMs = retryAfterMs(response.headers);
    } catch (error) {
      if (signal?.aborted || isAbortError(error)) throw abortedError(signal, error);
      if (EverrunsError.isInstance(error)) throw error;
      failure = llmError({
        providerName: request.providerName,
        providerType: request.providerType,
        apiKey: request.apiKey,
        message: `${request.providerName} request failed: ${networkErrorMessage(error)}`,
        retryable: true,
        attempts: attempt,
      });
    }
    if (attempt > request.maxRetries) throw failure;
    const wait = Math.min(request.maxRetryDelayMs, delayMs ?? backoffMs(attempt, request));
    const status = failure.details.status;
    request.onRetry?.({
      attempt,
      delayMs: wait,
      ...(typeof status === 'number' ? { status } : {}),
      message: failure.message,
    });
    await sleep(wait, signal);
  }
}

/** Reads a whole JSON response body; a cut connection is a retryable `LLM_ERROR`. */
export async function readJsonBody(
  response: Response,
  context: Pick<PostRequest, 'providerName' | 'providerType' | 'apiKey' | 'signal'>,
): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    if (context.signal?.aborted || isAbortError(error)) throw abortedError(context.signal, error);
    throw llmError({
      ...context,
      message: `${context.providerName} response was cut off: ${networkErrorMessage(error)}`,
      retryable: true,
      status: response.status,
    });
  }
  const parsed = parseJson(text);
  if (parsed === undefined || typeof parsed !== 'object' || parsed === null) {
    throw llmError({
      ...context,
      message: `${context.providerName} returned a body that is not a JSON object`,
      retryable: false,
      status: response.status,
    });
  }
  return parsed;
}

/**
 * Yields the server-sent events of a streaming response. Bytes are decoded as UTF-8 across chunk
 * boundaries. A connection that fails mid-stream is a retryable `LLM_ERROR`; an abort is
 * `ABORTED`. Stopping the iteration early cancels the response body.
 */
export async function* readServerSentEvents(
  response: Response,
  context: Pick<PostRequest, 'providerName' | 'providerType' | 'apiKey' | 'signal'>,
): AsyncGenerator<EventSourceMessage> {
  const body = response.body;
  if (!body) {
    throw llmError({
      ...context,
      message: `${context.providerName} returned an empty streaming response`,
      retryable: true,
      status: response.status,
    });
  }
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event) });
  let finished = false;
  try {
    while (true) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        finished = true;
        if (context.signal?.aborted || isAbortError(error)) {
          throw abortedError(context.signal, error);
        }
        throw llmError({
          ...context,
          message: `${context.providerName} stream was interrupted: ${networkErrorMessage(error)}`,
          retryable: true,
          status: response.status,
        });
      }
      if (chunk.done) {
        finished = true;
        parser.feed(decoder.decode());
      } else {
        parser.feed(decoder.decode(chunk.value, { stream: true }));
      }
      while (pending.length > 0) {
        if (context.signal?.aborted) throw abortedError(context.signal);
        yield pending.shift()!;
      }
      if (chunk.done) return;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    else reader.releaseLock();
  }
}
