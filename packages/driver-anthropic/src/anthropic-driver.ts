import {
  EverrunsError,
  type LlmCallOptions,
  type LlmDriver,
  type LlmProviderType,
  type LlmRequest,
  type LlmResponse,
  type LlmStreamEvent,
} from '@everruns-ts/core';
import {
  abortedError,
  llmError,
  type PostRequest,
  postWithRetries,
  type RetryInfo,
  readJsonBody,
  readServerSentEvents,
} from '@everruns-ts/driver-http';
import { toMessagesRequest } from './messages-request.js';
import {
  fromMessage,
  MessagesStreamAssembler,
  parseMessagesErrorBody,
} from './messages-response.js';

/** The Anthropic API root used when neither the model, the options nor `ANTHROPIC_BASE_URL` set one. */
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
/** The `anthropic-version` header sent unless the options name another. */
export const ANTHROPIC_API_VERSION = '2023-06-01';
/** `max_tokens` sent when neither the request nor the options set one (the API requires it). */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** Options of {@link AnthropicDriver}. Every member is optional. */
export interface AnthropicDriverOptions {
  /**
   * Key used when the request's `ModelWithProvider` has none. Without either, the driver reads
   * `ANTHROPIC_API_KEY`. It is sent as `x-api-key`, never logged nor put in an error.
   */
  apiKey?: string;
  /**
   * API root used when the model has no `baseUrl` (requests go to `<root>/v1/messages`).
   * Defaults to `ANTHROPIC_BASE_URL`, then {@link ANTHROPIC_DEFAULT_BASE_URL}.
   */
  baseUrl?: string;
  /** The provider type this instance registers under. Defaults to `anthropic`. */
  providerType?: LlmProviderType;
  /** Extra headers sent with every request (for example `anthropic-beta`). */
  headers?: Record<string, string>;
  /** The `anthropic-version` header. Defaults to {@link ANTHROPIC_API_VERSION}. */
  anthropicVersion?: string;
  /**
   * `max_tokens` when the request sets no `maxOutputTokens`. Defaults to
   * {@link ANTHROPIC_DEFAULT_MAX_TOKENS}.
   */
  maxTokens?: number;
  /** Retries after a 429, a 5xx (529 "overloaded" included) or a failed connection. Defaults to 2. */
  maxRetries?: number;
  /** First backoff delay in milliseconds, doubled per retry. Defaults to 500. */
  retryBaseDelayMs?: number;
  /** Upper bound of any wait between attempts, `retry-after` included. Defaults to 30 000. */
  maxRetryDelayMs?: number;
  /** Called before each wait between attempts; the message is redacted. */
  onRetry?: (info: RetryInfo) => void;
  /**
   * Whether `generate()` streams the answer (and assembles it) instead of asking for one JSON
   * body. Defaults to `true`.
   */
  streaming?: boolean;
  /** The `fetch` to use. Defaults to the global `fetch`. */
  fetch?: typeof globalThis.fetch;
}

function environmentVariable(name: string): string | undefined {
  const value = typeof process === 'undefined' ? undefined : process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

function endpoint(baseUrl: string, path: string): string {
  const url = new URL(baseUrl);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
  return url.toString();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const RETRYABLE_STREAM_ERRORS = new Set([
  'overloaded_error',
  'api_error',
  'rate_limit_error',
  'timeout_error',
]);

/**
 * An {@link LlmDriver} for the Anthropic Messages API.
 *
 * Errors are `EverrunsError`s: `LLM_ERROR` (details `status`, `providerErrorType`,
 * `providerErrorMessage`, `retryable`) or `ABORTED`; none carries the key.
 */
export class AnthropicDriver implements LlmDriver {
  /** The key of this driver in the `DriverRegistry`, `anthropic` unless set in the options. */
  readonly providerType: LlmProviderType;
  readonly #options: AnthropicDriverOptions;

  constructor(options: AnthropicDriverOptions = {}) {
    this.providerType = options.providerType ?? 'anthropic';
    this.#options = { ...options };
  }

  /**
   * Calls the model and resolves with the whole answer. Streams underneath unless the
   * `streaming` option is `false`; either way a failure resolves nothing partial.
   */
  async generate(request: LlmRequest, options: LlmCallOptions = {}): Promise<LlmResponse> {
    if (this.#options.streaming ?? true) {
      for await (const event of this.stream(request, options)) {
        if (event.type === 'finish') return event.response;
      }
      throw new EverrunsError({ code: 'INTERNAL', message: 'The stream ended without finishing' });
    }
    const call = this.#prepare(request, options, false);
    const response = await postWithRetries(call);
    const body = await readJsonBody(response, call);
    if (!isObject(body) || body.type !== 'message') {
      const providerError = parseMessagesErrorBody(body);
      throw llmError({
        ...call,
        message: `${call.providerName} returned no message${
          providerError.message ? `: ${providerError.message}` : ''
        }`,
        retryable: false,
        status: response.status,
        providerError,
      });
    }
    return fromMessage(body);
  }

  /**
   * Streams the answer as deltas, ending with one `finish` event holding the whole response.
   * If the stream breaks before `message_stop`, the iteration throws a retryable `LLM_ERROR`
   * and no `finish` comes: persist only what `finish` carries.
   */
  async *stream(request: LlmRequest, options: LlmCallOptions = {}): AsyncGenerator<LlmStreamEvent> {
    const call = this.#prepare(request, options, true);
    const response = await postWithRetries(call);
    const assembler = new MessagesStreamAssembler();
    for await (const message of readServerSentEvents(response, call)) {
      if (message.data.trim() === '') continue;
      let data: unknown;
      try {
        data = JSON.parse(message.data);
      } catch {
        throw llmError({
          ...call,
          message: `${call.providerName} sent a stream event that is not JSON`,
          retryable: true,
          status: response.status,
        });
      }
      if (!isObject(data)) continue;
      const type = typeof data.type === 'string' ? data.type : (message.event ?? '');
      if (type === 'error') {
        const providerError = parseMessagesErrorBody(data);
        const errorType = providerError.type ?? '';
        throw llmError({
          ...call,
          message: `${call.providerName} stream error${errorType ? ` (${errorType})` : ''}: ${
            providerError.message ?? 'no message'
          }`,
          retryable: errorType === '' || RETRYABLE_STREAM_ERRORS.has(errorType),
          status: response.status,
          providerError,
        });
      }
      yield* assembler.accept(type, data);
      if (assembler.stopped) break;
    }
    if (options.signal?.aborted) throw abortedError(options.signal);
    if (!assembler.stopped) {
      throw llmError({
        ...call,
        message: `${call.providerName} stream ended before the answer was complete`,
        retryable: true,
        status: response.status,
      });
    }
    yield { type: 'finish', response: assembler.response() };
  }

  #prepare(request: LlmRequest, options: LlmCallOptions, stream: boolean): PostRequest {
    const apiKey =
      request.model.apiKey ?? this.#options.apiKey ?? environmentVariable('ANTHROPIC_API_KEY');
    const baseUrl =
      request.model.baseUrl ??
      this.#options.baseUrl ??
      environmentVariable('ANTHROPIC_BASE_URL') ??
      ANTHROPIC_DEFAULT_BASE_URL;
    if (!apiKey && baseUrl === ANTHROPIC_DEFAULT_BASE_URL) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message:
          'No Anthropic API key: set apiKey on the model or the driver, or the ANTHROPIC_API_KEY environment variable',
        details: { provider: this.providerType },
      });
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
      'anthropic-version': this.#options.anthropicVersion ?? ANTHROPIC_API_VERSION,
    };
    if (apiKey) headers['x-api-key'] = apiKey;
    Object.assign(headers, this.#options.headers);
    return {
      providerName: 'Anthropic',
      providerType: this.providerType,
      url: endpoint(baseUrl, 'v1/messages'),
      headers,
      body: toMessagesRequest(request, {
        stream,
        defaultMaxTokens: this.#options.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
      }),
      apiKey,
      signal: options.signal,
      fetch: this.#options.fetch ?? globalThis.fetch,
      parseErrorBody: parseMessagesErrorBody,
      maxRetries: Math.max(0, this.#options.maxRetries ?? 2),
      retryBaseDelayMs: Math.max(0, this.#options.retryBaseDelayMs ?? 500),
      maxRetryDelayMs: Math.max(0, this.#options.maxRetryDelayMs ?? 30_000),
      onRetry: this.#options.onRetry,
    };
  }
}
