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
import { toChatCompletionRequest } from './chat-completions-request.js';
import {
  ChatCompletionStreamAssembler,
  fromChatCompletion,
  parseChatErrorBody,
} from './chat-completions-response.js';

/** The OpenAI API root used when neither the model, the options nor `OPENAI_BASE_URL` set one. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** Options of {@link OpenAiDriver}. Every member is optional. */
export interface OpenAiDriverOptions {
  /**
   * Key used when the request's `ModelWithProvider` has none. Without either, the driver reads
   * `OPENAI_API_KEY`. A server on another `baseUrl` may need no key at all (Ollama, LM Studio);
   * then no `Authorization` header is sent. The key is never logged nor put in an error.
   */
  apiKey?: string;
  /**
   * API root used when the model has no `baseUrl`. Defaults to `OPENAI_BASE_URL`, then
   * {@link OPENAI_DEFAULT_BASE_URL}. A query string (for example an Azure-style `api-version`)
   * is kept.
   */
  baseUrl?: string;
  /**
   * The provider type this instance registers under. Defaults to `openai`; give another name to
   * register a second instance for another compatible server (for example `ollama`).
   */
  providerType?: LlmProviderType;
  /** Extra headers sent with every request (for example OpenRouter's `HTTP-Referer`). */
  headers?: Record<string, string>;
  /** Retries after a 429, a 5xx or a failed connection. Defaults to 2 (three attempts in all). */
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
  /**
   * Whether a streaming request sends `stream_options: { include_usage: true }` so the stream
   * ends with token usage. Defaults to `true`; turn it off for servers that reject the field.
   */
  streamUsage?: boolean;
  /**
   * Which body field carries `maxOutputTokens`. Defaults to `max_completion_tokens` (OpenAI's
   * current name, required by its reasoning models); older compatible servers want `max_tokens`.
   */
  maxTokensParameter?: 'max_completion_tokens' | 'max_tokens';
  /** The `fetch` to use (a proxy-aware one, for instance). Defaults to the global `fetch`. */
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

/**
 * An {@link LlmDriver} for the OpenAI Chat Completions API and every server compatible with it
 * (vLLM, Ollama, LM Studio, OpenRouter, gateways): give such a server's root as `baseUrl`.
 *
 * Errors are `EverrunsError`s: `LLM_ERROR` (details `status`, `providerErrorType`,
 * `providerErrorMessage`, `retryable`) or `ABORTED`; none carries the key.
 */
export class OpenAiDriver implements LlmDriver {
  /** The key of this driver in the `DriverRegistry`, `openai` unless set in the options. */
  readonly providerType: LlmProviderType;
  readonly #options: OpenAiDriverOptions;

  constructor(options: OpenAiDriverOptions = {}) {
    this.providerType = options.providerType ?? 'openai';
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
      // stream() always ends with `finish` or throws.
      throw new EverrunsError({ code: 'INTERNAL', message: 'The stream ended without finishing' });
    }
    const call = this.#prepare(request, options, false);
    const response = await postWithRetries(call);
    const body = await readJsonBody(response, call);
    const answer = isObject(body) ? fromChatCompletion(body) : undefined;
    if (!answer) {
      const providerError = parseChatErrorBody(body);
      throw llmError({
        ...call,
        message: `${call.providerName} returned no choice${
          providerError.message ? `: ${providerError.message}` : ''
        }`,
        retryable: false,
        status: response.status,
        providerError,
      });
    }
    return answer;
  }

  /**
   * Streams the answer as deltas, ending with one `finish` event holding the whole response.
   * If the stream breaks before that, the iteration throws a retryable `LLM_ERROR` and no
   * `finish` comes: persist only what `finish` carries.
   */
  async *stream(request: LlmRequest, options: LlmCallOptions = {}): AsyncGenerator<LlmStreamEvent> {
    const call = this.#prepare(request, options, true);
    const response = await postWithRetries(call);
    const assembler = new ChatCompletionStreamAssembler();
    let done = false;
    for await (const message of readServerSentEvents(response, call)) {
      const data = message.data.trim();
      if (data === '[DONE]') {
        done = true;
        break;
      }
      if (data === '') continue;
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        throw llmError({
          ...call,
          message: `${call.providerName} sent a stream event that is not JSON`,
          retryable: true,
          status: response.status,
        });
      }
      if (!isObject(chunk)) continue;
      if (chunk.error !== undefined || message.event === 'error') {
        const providerError = parseChatErrorBody(chunk);
        const type = providerError.type ?? '';
        throw llmError({
          ...call,
          message: `${call.providerName} stream error${type ? ` (${type})` : ''}: ${
            providerError.message ?? 'no message'
          }`,
          retryable: type === '' || /server|overload|rate_limit|timeout/.test(type),
          status: response.status,
          providerError,
        });
      }
      yield* assembler.accept(chunk);
    }
    if (options.signal?.aborted) throw abortedError(options.signal);
    if (!done && !assembler.finished) {
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
      request.model.apiKey ?? this.#options.apiKey ?? environmentVariable('OPENAI_API_KEY');
    const baseUrl =
      request.model.baseUrl ??
      this.#options.baseUrl ??
      environmentVariable('OPENAI_BASE_URL') ??
      OPENAI_DEFAULT_BASE_URL;
    if (!apiKey && baseUrl === OPENAI_DEFAULT_BASE_URL) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message:
          'No OpenAI API key: set apiKey on the model or the driver, or the OPENAI_API_KEY environment variable',
        details: { provider: this.providerType },
      });
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
    };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    Object.assign(headers, this.#options.headers);
    return {
      providerName: 'OpenAI',
      providerType: this.providerType,
      url: endpoint(baseUrl, 'chat/completions'),
      headers,
      body: toChatCompletionRequest(request, {
        stream,
        streamUsage: this.#options.streamUsage ?? true,
        maxTokensParameter: this.#options.maxTokensParameter ?? 'max_completion_tokens',
      }),
      apiKey,
      signal: options.signal,
      fetch: this.#options.fetch ?? globalThis.fetch,
      parseErrorBody: parseChatErrorBody,
      maxRetries: Math.max(0, this.#options.maxRetries ?? 2),
      retryBaseDelayMs: Math.max(0, this.#options.retryBaseDelayMs ?? 500),
      maxRetryDelayMs: Math.max(0, this.#options.maxRetryDelayMs ?? 30_000),
      onRetry: this.#options.onRetry,
    };
  }
}
