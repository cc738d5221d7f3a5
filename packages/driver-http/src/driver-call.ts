import {
  EverrunsError,
  type LlmCallOptions,
  type LlmRequest,
  type LlmResponse,
  type LlmStreamEvent,
} from '@everruns-ts/core';
import {
  type AttemptClock,
  CallClock,
  type DriverTimeouts,
  type HttpCallOptions,
  parseDriverTimeouts,
  parseHttpCallOptions,
  resolveTimeouts,
} from './call-timeouts.js';
import {
  abortedError,
  isPermanentQuotaError,
  llmError,
  openResponse,
  type PostRequest,
  type ProviderErrorBody,
  type RetryInfo,
  readJsonBody,
  readServerSentEvents,
  waitBeforeRetry,
} from './http.js';
import { isJsonObject, type JsonObject } from './json.js';

/** The connection options every HTTP driver offers; each is optional. */
export interface HttpDriverOptions {
  /** Key used when the request's model has none; else the provider's environment variable. */
  apiKey?: string;
  /** API root used when the model has no `baseUrl`; else the environment, then the default. */
  baseUrl?: string;
  /** Extra headers sent with every request; they override the driver's own. */
  headers?: Record<string, string>;
  /** Retries after a 429, a 5xx or a failed connection. Defaults to 2. */
  maxRetries?: number;
  /** First backoff delay in milliseconds, doubled per retry. Defaults to 500. */
  retryBaseDelayMs?: number;
  /** Upper bound of any wait between attempts, `retry-after` included. Defaults to 30 000. */
  maxRetryDelayMs?: number;
  /** Called before each wait between attempts; the message is redacted. */
  onRetry?: (info: RetryInfo) => void;
  /**
   * Whether `generate()` streams the answer (and assembles it) instead of asking for one JSON
   * body. Defaults to `true`: long answers then never sit idle on a connection.
   */
  streaming?: boolean;
  /** The `fetch` to use. Defaults to the global `fetch`. */
  fetch?: typeof globalThis.fetch;
  /**
   * Timeouts of every call (connect, first byte, idle between chunks, whole call); a call's own
   * `timeouts` option wins per field. See {@link DriverTimeouts} for the defaults.
   */
  timeouts?: DriverTimeouts;
}

/**
 * Checks a driver's options when it is built: the timeouts are validated with zod; a bad value
 * throws `INVALID_INPUT`. Returns a copy.
 */
export function checkHttpDriverOptions<Options extends HttpDriverOptions>(
  options: Options,
  driverName: string,
): Options {
  if (options.timeouts !== undefined)
    parseDriverTimeouts(options.timeouts, `${driverName} options`);
  return { ...options };
}

/** What a driver tells {@link preparePost} about its provider and this one call. */
export interface PreparePostSettings {
  /** Display name of the provider, for example `OpenAI`. */
  providerName: string;
  /** The provider type the driver registers under. */
  providerType: string;
  /** The driver's options. */
  options: HttpDriverOptions;
  /** The model call; its model's `apiKey` and `baseUrl` win over the options. */
  request: LlmRequest;
  /** The call's options (its abort signal, its timeouts); validated here. */
  callOptions: LlmCallOptions | HttpCallOptions;
  /** The environment variable read for the key, for example `OPENAI_API_KEY`. */
  apiKeyVariable: string;
  /** The environment variable read for the API root, for example `OPENAI_BASE_URL`. */
  baseUrlVariable: string;
  /** The provider's own API root; without a key, calling it is a `CONFIGURATION` error. */
  defaultBaseUrl: string;
  /** The endpoint below the API root, for example `chat/completions`. */
  path: string;
  /** Whether the call streams (the `accept` header says which). */
  stream: boolean;
  /** The provider's own headers: the one carrying the key (when there is one), a version, … */
  providerHeaders(apiKey: string | undefined): Record<string, string>;
  /** Builds the JSON body; called once the key check has passed. */
  body(): unknown;
  /** Reads the provider's error shape out of a parsed error body. */
  parseErrorBody(body: unknown): ProviderErrorBody;
}

/** The value of an environment variable; `undefined` when unset, empty, or there is no `process`. */
export function environmentVariable(name: string): string | undefined {
  const value = typeof process === 'undefined' ? undefined : process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** `path` appended to `baseUrl`'s path, keeping its query string. */
export function endpoint(baseUrl: string, path: string): string {
  const url = new URL(baseUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
  return url.toString();
}

/**
 * Resolves key, API root, headers and retry settings of one call into a {@link PostRequest}.
 * Throws `CONFIGURATION` when no key is found and the call would go to the provider's own API.
 */
export function preparePost(settings: PreparePostSettings): PostRequest {
  const { options, request } = settings;
  const callOptions = parseHttpCallOptions(settings.callOptions);
  const apiKey =
    request.model.apiKey ?? options.apiKey ?? environmentVariable(settings.apiKeyVariable);
  const baseUrl =
    request.model.baseUrl ??
    options.baseUrl ??
    environmentVariable(settings.baseUrlVariable) ??
    settings.defaultBaseUrl;
  if (!apiKey && baseUrl === settings.defaultBaseUrl) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `No ${settings.providerName} API key: set apiKey on the model or the driver, or the ${settings.apiKeyVariable} environment variable`,
      details: { provider: settings.providerType },
    });
  }
  return {
    providerName: settings.providerName,
    providerType: settings.providerType,
    url: endpoint(baseUrl, settings.path),
    headers: {
      'content-type': 'application/json',
      accept: settings.stream ? 'text/event-stream' : 'application/json',
      ...settings.providerHeaders(apiKey),
      ...options.headers,
    },
    body: settings.body(),
    apiKey,
    signal: callOptions.signal,
    fetch: options.fetch ?? globalThis.fetch,
    parseErrorBody: settings.parseErrorBody,
    maxRetries: Math.max(0, options.maxRetries ?? 2),
    retryBaseDelayMs: Math.max(0, options.retryBaseDelayMs ?? 500),
    maxRetryDelayMs: Math.max(0, options.maxRetryDelayMs ?? 30_000),
    onRetry: options.onRetry,
    timeouts: resolveTimeouts(options.timeouts, callOptions.timeouts),
    streaming: settings.stream,
  };
}

/**
 * Resolves with the `finish` response of a stream: how a streaming driver's `generate()` is
 * built from its `stream()`. A failure of the stream rejects; nothing partial resolves.
 */
export async function generateFromStream(
  events: AsyncIterable<LlmStreamEvent>,
): Promise<LlmResponse> {
  for await (const event of events) {
    if (event.type === 'finish') return event.response;
  }
  // A driver's stream() always ends with `finish` or throws.
  throw new EverrunsError({ code: 'INTERNAL', message: 'The stream ended without finishing' });
}

/**
 * POSTs a non-streaming call and maps the JSON answer. When `toResponse` finds no answer in the
 * body, the call fails with a non-retryable `LLM_ERROR` "returned no <missing>". `toResponse`
 * may throw a {@link protocolViolation}, which becomes a non-retryable `LLM_ERROR` of kind
 * `protocol_violation`.
 */
export async function requestWholeAnswer(
  call: PostRequest,
  toResponse: (body: JsonObject) => LlmResponse | undefined,
  missing: string,
): Promise<LlmResponse> {
  const clock = new CallClock(resolveTimeouts(undefined, call.timeouts), call.signal);
  try {
    const opened = await openResponse(call, clock);
    let body: unknown;
    try {
      body = await readJsonBody(opened.response, call, { call: clock, attempt: opened.clock });
    } finally {
      opened.clock.dispose();
    }
    let answer: LlmResponse | undefined;
    try {
      answer = isJsonObject(body) ? toResponse(body) : undefined;
    } catch (error) {
      throw asProtocolError(error, call, opened.response.status);
    }
    if (!answer) {
      const providerError = call.parseErrorBody(body);
      throw llmError({
        ...call,
        message: `${call.providerName} returned no ${missing}${
          providerError.message ? `: ${providerError.message}` : ''
        }`,
        retryable: false,
        status: opened.response.status,
        providerError,
      });
    }
    return answer;
  } finally {
    clock.dispose();
  }
}

const PROTOCOL_VIOLATION = Symbol.for('everruns-ts.driver-http.protocol-violation');

/**
 * The error a {@link StreamProtocol} (or a `toResponse` mapper) throws when the provider breaks
 * its own protocol: a second `message_start`, a delta for a block that never started, a tool
 * call without a name. {@link streamAnswer} turns it into a non-retryable `LLM_ERROR` with
 * details `kind: 'protocol_violation'`.
 */
export function protocolViolation(message: string): Error {
  const error = new Error(message);
  Object.defineProperty(error, PROTOCOL_VIOLATION, { value: true });
  return error;
}

function isProtocolViolation(error: unknown): error is Error {
  return (
    error instanceof Error &&
    (error as unknown as Record<symbol, unknown>)[PROTOCOL_VIOLATION] === true
  );
}

function asProtocolError(error: unknown, call: PostRequest, status: number): unknown {
  if (!isProtocolViolation(error)) return error;
  return llmError({
    ...call,
    message: `${call.providerName} broke its stream protocol: ${error.message}`,
    retryable: false,
    status,
    details: { kind: 'protocol_violation' },
  });
}

/** How {@link streamAnswer} reads one provider's server-sent events; one per call attempt. */
export interface StreamProtocol {
  /** A data payload that ends the stream, such as OpenAI's `[DONE]`. */
  readonly doneMarker?: string;
  /** Whether to stop reading as soon as {@link isComplete} turns true. */
  readonly stopWhenComplete?: boolean;
  /** The provider error an event carries, or `undefined` for an ordinary event. */
  errorOf(data: JsonObject, event: string | undefined): ProviderErrorBody | undefined;
  /** Whether a stream error of this (non-empty) provider type may succeed when retried. */
  isRetryableError(type: string): boolean;
  /**
   * Takes one event and returns the deltas it carries. Throws a {@link protocolViolation} when
   * the event breaks the provider's protocol.
   */
  accept(data: JsonObject, event: string | undefined): Iterable<LlmStreamEvent>;
  /** Whether the answer is complete, so an end of the stream here is not a cut. */
  isComplete(): boolean;
  /** The whole answer, once complete; may throw a {@link protocolViolation}. */
  response(): LlmResponse;
}

/**
 * POSTs a streaming call and yields its deltas, ending with one `finish` event holding the whole
 * answer.
 *
 * - A stream that ends (end marker or closed connection) before the protocol says the answer is
 *   complete is a retryable `LLM_ERROR` of kind `incomplete_stream`; an event that is not JSON
 *   is a retryable `LLM_ERROR` too.
 * - A provider error event is an `LLM_ERROR` of kind `stream_error` (retryable as the protocol
 *   says, never for an out-of-quota error); a broken protocol is a non-retryable one of kind
 *   `protocol_violation`; a timeout is a retryable one of kind `timeout`; an abort is `ABORTED`.
 * - A retryable failure that comes before any delta has been yielded is retried like a 5xx (same
 *   `maxRetries`, backoff and `onRetry`) when `protocol` is a factory, which gives each attempt a
 *   fresh protocol. Once a delta has been yielded, a failure is thrown, never retried silently.
 */
export async function* streamAnswer(
  call: PostRequest,
  protocol: StreamProtocol | (() => StreamProtocol),
): AsyncGenerator<LlmStreamEvent> {
  const clock = new CallClock(resolveTimeouts(undefined, call.timeouts), call.signal);
  const canRetry = typeof protocol === 'function';
  let attemptsBefore = 0;
  let delivered = false;
  try {
    while (true) {
      const current = typeof protocol === 'function' ? protocol() : protocol;
      const opened = await openResponse(call, clock, attemptsBefore);
      try {
        for await (const event of readAttempt(call, current, opened.response, clock, opened)) {
          delivered = true;
          yield event;
        }
        return;
      } catch (error) {
        const retryable =
          canRetry &&
          !delivered &&
          EverrunsError.isInstance(error) &&
          error.code === 'LLM_ERROR' &&
          error.retryable &&
          !clock.expired &&
          opened.attemptNumber <= call.maxRetries;
        if (!retryable) throw error;
        await waitBeforeRetry(call, clock, opened.attemptNumber, error);
        attemptsBefore = opened.attemptNumber;
      } finally {
        opened.clock.dispose();
      }
    }
  } finally {
    clock.dispose();
  }
}

/** One attempt's events: the deltas, then `finish`; throws as {@link streamAnswer} says. */
async function* readAttempt(
  call: PostRequest,
  protocol: StreamProtocol,
  response: Response,
  clock: CallClock,
  opened: { clock: AttemptClock },
): AsyncGenerator<LlmStreamEvent> {
  const status = response.status;
  for await (const message of readServerSentEvents(response, call, {
    call: clock,
    attempt: opened.clock,
  })) {
    const text = message.data.trim();
    if (protocol.doneMarker !== undefined && text === protocol.doneMarker) break;
    if (text === '') continue;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw llmError({
        ...call,
        message: `${call.providerName} sent a stream event that is not JSON`,
        retryable: true,
        status,
        details: { kind: 'invalid_event' },
      });
    }
    if (!isJsonObject(data)) continue;
    const providerError = protocol.errorOf(data, message.event);
    if (providerError) {
      const type = providerError.type ?? '';
      const quota = isPermanentQuotaError(providerError);
      throw llmError({
        ...call,
        message: `${call.providerName} stream error${type ? ` (${type})` : ''}: ${
          providerError.message ?? 'no message'
        }`,
        retryable: !quota && (type === '' || protocol.isRetryableError(type)),
        status,
        providerError,
        details: { kind: quota ? 'insufficient_quota' : 'stream_error' },
      });
    }
    let events: Iterable<LlmStreamEvent>;
    try {
      events = [...protocol.accept(data, message.event)];
    } catch (error) {
      throw asProtocolError(error, call, status);
    }
    yield* events;
    if (protocol.stopWhenComplete && protocol.isComplete()) break;
  }
  if (clock.callerSignal?.aborted) throw abortedError(clock.callerSignal);
  if (!protocol.isComplete()) {
    throw llmError({
      ...call,
      message: `${call.providerName} stream ended before the answer was complete`,
      retryable: true,
      status,
      details: { kind: 'incomplete_stream' },
    });
  }
  let answer: LlmResponse;
  try {
    answer = protocol.response();
  } catch (error) {
    throw asProtocolError(error, call, status);
  }
  yield { type: 'finish', response: answer };
}
