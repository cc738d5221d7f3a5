import { EverrunsError, errorMessage } from '@everruns-ts/core';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import {
  type AttemptClock,
  CallClock,
  type DriverTimeouts,
  type ExpiredTimeout,
  resolveTimeouts,
} from './call-timeouts.js';

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
  /** The call's timeouts; unset ones take {@link DEFAULT_DRIVER_TIMEOUTS}. */
  timeouts?: DriverTimeouts | undefined;
  /**
   * Whether the answer streams. A non-streamed answer's headers come with the whole answer, so
   * the wait for them is timed by `firstByteTimeoutMs` instead of `connectTimeoutMs`.
   */
  streaming?: boolean | undefined;
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
  /** More details, such as `kind` (`timeout`, `incomplete_stream`, …) and `timeout`. */
  details?: Record<string, unknown> | undefined;
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
  Object.assign(details, options.details);
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
export function backoffMs(attempt: number, settings: RetrySettings): number {
  const exponential = settings.retryBaseDelayMs * 2 ** (attempt - 1);
  const jittered = exponential * (0.75 + Math.random() * 0.25);
  return Math.min(settings.maxRetryDelayMs, Math.round(jittered));
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * Provider error codes (or types) that say the account is out of quota or over a billing limit:
 * retrying cannot help, even when they come with a 429.
 */
export const PERMANENT_QUOTA_ERRORS: ReadonlySet<string> = new Set([
  'insufficient_quota',
  'billing_hard_limit_reached',
  'billing_not_active',
]);

/** Whether a provider error says the account is out of quota (see {@link PERMANENT_QUOTA_ERRORS}). */
export function isPermanentQuotaError(providerError: ProviderErrorBody): boolean {
  return (
    (providerError.code !== undefined && PERMANENT_QUOTA_ERRORS.has(providerError.code)) ||
    (providerError.type !== undefined && PERMANENT_QUOTA_ERRORS.has(providerError.type))
  );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

type ErrorContext = Pick<PostRequest, 'providerName' | 'providerType' | 'apiKey'>;

const PHASE_WORDS: Record<ExpiredTimeout['phase'], string> = {
  connect: 'no response headers',
  firstByte: 'no first byte of the answer',
  idle: 'no data',
  total: 'the call did not finish',
};

/**
 * The retryable `LLM_ERROR` of a timeout: details `kind: 'timeout'`, `timeout` (the phase) and
 * `timeoutMs`.
 */
export function timeoutError(
  context: ErrorContext,
  expired: ExpiredTimeout,
  status?: number,
): EverrunsError {
  return llmError({
    ...context,
    message: `${context.providerName} call timed out: ${PHASE_WORDS[expired.phase]} within ${expired.limitMs} ms (${expired.phase} timeout)`,
    retryable: true,
    status,
    details: { kind: 'timeout', timeout: expired.phase, timeoutMs: expired.limitMs },
  });
}

/**
 * What an error thrown while a call was under way means once its clocks are asked: the caller's
 * abort (`ABORTED`), a timeout (`LLM_ERROR`, kind `timeout`), or `undefined` when neither.
 */
export function interruption(
  error: unknown,
  context: ErrorContext,
  clock: CallClock,
  attempt?: AttemptClock,
  status?: number,
): EverrunsError | undefined {
  if (clock.callerSignal?.aborted) return abortedError(clock.callerSignal, error);
  if (clock.expired) return timeoutError(context, clock.expired, status);
  if (attempt?.expired) return timeoutError(context, attempt.expired, status);
  if (isAbortError(error)) return abortedError(clock.callerSignal, error);
  return undefined;
}

/** A successful response and the attempt that got it (its clock still running). */
export interface OpenedResponse {
  response: Response;
  /** The 1-based attempt number that succeeded. */
  attemptNumber: number;
  /** The attempt's clock: its signal governs the body too; dispose of it when done. */
  clock: AttemptClock;
}

/**
 * {@link postWithRetries} for a call with its own clock: attempts are numbered from
 * `attemptsBefore + 1` (earlier attempts of the same call count against `maxRetries`).
 */
export async function openResponse(
  request: PostRequest,
  clock: CallClock,
  attemptsBefore = 0,
): Promise<OpenedResponse> {
  const body = JSON.stringify(request.body);
  const fetchFunction = request.fetch;
  for (let attempt = attemptsBefore + 1; ; attempt += 1) {
    if (clock.callerSignal?.aborted) throw abortedError(clock.callerSignal);
    if (clock.expired) throw timeoutError(request, clock.expired);
    let failure: EverrunsError;
    let delayMs: number | undefined;
    const attemptClock = clock.attempt();
    try {
      attemptClock.arm(request.streaming === false ? 'firstByte' : 'connect');
      const response = await fetchFunction(request.url, {
        method: 'POST',
        headers: request.headers,
        body,
        signal: attemptClock.signal,
      });
      if (response.ok) {
        attemptClock.disarm();
        return { response, attemptNumber: attempt, clock: attemptClock };
      }
      attemptClock.arm('idle');
      // An error body is read up to 1 Mi characters: enough for any provider's error.
      const { text } = await readBodyText(response, MAX_ERROR_BODY_CHARS);
      const parsed = parseJson(text);
      const providerError = parsed === undefined ? {} : request.parseErrorBody(parsed);
      if (providerError.message === undefined && text.trim() !== '' && parsed === undefined) {
        providerError.message = text.slice(0, 1000);
      }
      const quota = isPermanentQuotaError(providerError);
      const retryable = isRetryableStatus(response.status) && !quota;
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
        details: quota ? { kind: 'insufficient_quota' } : undefined,
      });
      attemptClock.dispose();
      if (!retryable) throw failure;
      delayMs = retryAfterMs(response.headers);
    } catch (error) {
      attemptClock.dispose();
      if (EverrunsError.isInstance(error)) throw error;
      const interrupted = interruption(error, request, clock, attemptClock);
      if (interrupted && !interrupted.retryable) throw interrupted;
      if (interrupted && clock.expired) throw interrupted;
      failure =
        interrupted ??
        llmError({
          providerName: request.providerName,
          providerType: request.providerType,
          apiKey: request.apiKey,
          message: `${request.providerName} request failed: ${networkErrorMessage(error)}`,
          retryable: true,
          attempts: attempt,
        });
    }
    if (attempt > request.maxRetries) throw failure;
    await waitBeforeRetry(request, clock, attempt, failure, delayMs);
  }
}

/**
 * Reports a retry through `onRetry` and waits (the `delayMs` a response asked for, else the
 * backoff), capped at `maxRetryDelayMs`; the caller's abort or the total timeout cut it short.
 */
export async function waitBeforeRetry(
  request: PostRequest,
  clock: CallClock,
  attempt: number,
  failure: EverrunsError,
  delayMs?: number,
): Promise<void> {
  const wait = Math.min(request.maxRetryDelayMs, delayMs ?? backoffMs(attempt, request));
  const status = failure.details.status;
  request.onRetry?.({
    attempt,
    delayMs: wait,
    ...(typeof status === 'number' ? { status } : {}),
    message: failure.message,
  });
  try {
    await sleep(wait, clock.signal);
  } catch (error) {
    throw interruption(error, request, clock) ?? error;
  }
}

/**
 * POSTs JSON and returns the first successful response. 429 and 5xx answers and failed
 * connections are retried up to `maxRetries` times with bounded exponential backoff, honouring
 * `retry-after`; a 429 saying the account is out of quota (`insufficient_quota`,
 * `billing_hard_limit_reached`) and any other status are an `LLM_ERROR` carrying the provider's
 * message. The connect timeout of `request.timeouts` applies to each attempt and the total
 * timeout to the whole; reading the body is the caller's business (it has no timeout here).
 */
export async function postWithRetries(request: PostRequest): Promise<Response> {
  const clock = new CallClock(resolveTimeouts(undefined, request.timeouts), request.signal);
  try {
    const opened = await openResponse(request, clock);
    return opened.response;
  } finally {
    clock.dispose();
  }
}

/**
 * Reads a whole JSON response body; a cut connection is a retryable `LLM_ERROR`. With `timing`,
 * the idle timeout runs while the body is read.
 */
export async function readJsonBody(
  response: Response,
  context: Pick<PostRequest, 'providerName' | 'providerType' | 'apiKey' | 'signal'>,
  timing?: { call: CallClock; attempt: AttemptClock },
): Promise<unknown> {
  let text: string;
  try {
    timing?.attempt.arm('idle');
    const read = await readBodyText(response, MAX_RESPONSE_BODY_CHARS);
    timing?.attempt.disarm();
    if (read.cut) {
      throw llmError({
        ...context,
        message: `${context.providerName} response is longer than ${MAX_RESPONSE_BODY_CHARS} characters`,
        retryable: false,
        status: response.status,
        details: { kind: 'response_too_large', limit: MAX_RESPONSE_BODY_CHARS },
      });
    }
    text = read.text;
  } catch (error) {
    if (error instanceof EverrunsError) throw error;
    if (timing) {
      const interrupted = interruption(
        error,
        context,
        timing.call,
        timing.attempt,
        response.status,
      );
      if (interrupted) throw interrupted;
    }
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
 * Most characters of a provider's whole (not streamed) answer body (64 Mi); a longer body fails
 * the call with a non-retryable `LLM_ERROR` of kind `response_too_large` instead of being held in
 * memory whole.
 */
export const MAX_RESPONSE_BODY_CHARS = 64 * 1024 * 1024;

/** Most characters of an error response's body that are read (the rest is not). */
const MAX_ERROR_BODY_CHARS = 1024 * 1024;

/**
 * The body of `response` decoded as UTF-8 (as `response.text()` decodes it), read no further
 * than `limit` characters: `cut` says the body went on (the rest is not read; the connection is
 * closed). Errors of the read are thrown as `response.text()` throws them.
 */
async function readBodyText(
  response: Response,
  limit: number,
): Promise<{ text: string; cut: boolean }> {
  const body = response.body;
  if (!body) return { text: '', cut: false };
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const parts: string[] = [];
  let length = 0;
  let done = false;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) {
        done = true;
        parts.push(decoder.decode());
        return { text: parts.join(''), cut: false };
      }
      const text = decoder.decode(chunk.value, { stream: true });
      if (length + text.length > limit) {
        parts.push(text.slice(0, limit - length));
        return { text: parts.join(''), cut: true };
      }
      length += text.length;
      parts.push(text);
    }
  } finally {
    if (!done) await reader.cancel().catch(() => undefined);
  }
}

/**
 * Most characters a streaming response may send without completing an event (16 Mi). A provider's
 * events are small (a delta, a usage record), so past this the stream is not one; without a bound,
 * an endpoint that sends data without ever ending an event would grow the parser's buffer until
 * the process ran out of memory (no total timeout applies by default).
 */
export const MAX_UNFINISHED_EVENT_CHARS = 16 * 1024 * 1024;

/**
 * Most characters of event data one streaming response may carry (128 Mi). A provider's answer of
 * the longest outputs models give today (a few hundred thousand tokens, one small JSON event per
 * piece) stays well under it; without a bound, an endpoint that streams valid events without end
 * grows the answer the driver puts together until the process runs out of memory (no total
 * timeout applies by default). Comments (keep-alives) do not count.
 */
export const MAX_STREAM_DATA_CHARS = 128 * 1024 * 1024;

/**
 * Yields the server-sent events of a streaming response. Bytes are decoded as UTF-8 across chunk
 * boundaries. A connection that fails mid-stream is a retryable `LLM_ERROR`; an abort is
 * `ABORTED`. Stopping the iteration early cancels the response body. With `timing`, the
 * first-byte timeout runs until the first chunk and the idle timeout between chunks (time spent
 * by the consumer between reads does not count); either is a retryable `LLM_ERROR` of kind
 * `timeout`. Past {@link MAX_UNFINISHED_EVENT_CHARS} without an event's end, or
 * {@link MAX_STREAM_DATA_CHARS} of event data in all, the stream stops with a non-retryable
 * `LLM_ERROR` (kinds `invalid_event` and `response_too_large`).
 */
export async function* readServerSentEvents(
  response: Response,
  context: Pick<PostRequest, 'providerName' | 'providerType' | 'apiKey' | 'signal'>,
  timing?: { call: CallClock; attempt: AttemptClock },
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
  // Characters fed since the parser last completed an event or a comment (a keep-alive).
  let unfinished = 0;
  // Characters of event data parsed so far.
  let data = 0;
  const parser = createParser({
    onEvent: (event) => {
      pending.push(event);
      unfinished = 0;
      data += event.data.length;
    },
    onComment: () => {
      unfinished = 0;
    },
  });
  let finished = false;
  let firstChunk = true;
  try {
    while (true) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        timing?.attempt.arm(firstChunk ? 'firstByte' : 'idle');
        chunk = await reader.read();
        timing?.attempt.disarm();
        firstChunk = false;
      } catch (error) {
        finished = true;
        if (timing) {
          const interrupted = interruption(
            error,
            context,
            timing.call,
            timing.attempt,
            response.status,
          );
          if (interrupted) throw interrupted;
        }
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
        const text = decoder.decode(chunk.value, { stream: true });
        unfinished += text.length;
        parser.feed(text);
        if (unfinished > MAX_UNFINISHED_EVENT_CHARS) {
          throw llmError({
            ...context,
            message: `${context.providerName} sent more than ${MAX_UNFINISHED_EVENT_CHARS} characters without completing a stream event`,
            retryable: false,
            status: response.status,
            details: { kind: 'invalid_event', limit: MAX_UNFINISHED_EVENT_CHARS },
          });
        }
      }
      if (data > MAX_STREAM_DATA_CHARS) {
        throw llmError({
          ...context,
          message: `${context.providerName} streamed more than ${MAX_STREAM_DATA_CHARS} characters of event data`,
          retryable: false,
          status: response.status,
          details: { kind: 'response_too_large', limit: MAX_STREAM_DATA_CHARS },
        });
      }
      while (pending.length > 0) {
        if (context.signal?.aborted) throw abortedError(context.signal);
        yield pending.shift()!;
      }
      if (chunk.done) return;
    }
  } finally {
    timing?.attempt.disarm();
    if (!finished) await reader.cancel().catch(() => undefined);
    else reader.releaseLock();
  }
}
