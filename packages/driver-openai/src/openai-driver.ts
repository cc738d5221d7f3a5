import type {
  LlmDriver,
  LlmProviderType,
  LlmRequest,
  LlmRequestOptions,
  LlmResponse,
  LlmStreamEvent,
  ModelWithProvider,
} from '@everruns-ts/core';
import {
  checkHttpDriverOptions,
  generateFromStream,
  type HttpCallOptions,
  type HttpDriverOptions,
  type PostRequest,
  preparePost,
  requestWholeAnswer,
  streamAnswer,
} from '@everruns-ts/driver-http';
import { checkChatRequestOptions } from './chat-completions-options.js';
import { toChatCompletionRequest } from './chat-completions-request.js';
import {
  chatCompletionStreamProtocol,
  fromChatCompletion,
  parseChatErrorBody,
} from './chat-completions-response.js';

/** The OpenAI API root used when neither the model, the options nor `OPENAI_BASE_URL` set one. */
export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** Options of {@link OpenAiDriver}. Every member is optional. */
export interface OpenAiDriverOptions extends HttpDriverOptions {
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
  /**
   * Whether an assistant message that called tools carries the reasoning the model gave with it
   * back as `reasoning_content`, as DeepSeek's thinking mode requires within a tool loop (Kimi and
   * GLM accept it too). Defaults to `true`; only messages with stored reasoning are affected.
   * Turn it off for a server that rejects the field.
   */
  sendReasoningContent?: boolean;
  /** The `fetch` to use (a proxy-aware one, for instance). Defaults to the global `fetch`. */
  fetch?: typeof globalThis.fetch;
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
    this.#options = checkHttpDriverOptions(options, 'OpenAiDriver');
  }

  /**
   * Calls the model and resolves with the whole answer. Streams underneath unless the
   * `streaming` option is `false`; either way a failure resolves nothing partial.
   */
  async generate(request: LlmRequest, options: HttpCallOptions = {}): Promise<LlmResponse> {
    if (this.#options.streaming ?? true) return generateFromStream(this.stream(request, options));
    return requestWholeAnswer(this.#prepare(request, options, false), fromChatCompletion, 'choice');
  }

  /**
   * Streams the answer as deltas, ending with one `finish` event holding the whole response.
   * If the stream breaks before that, the iteration throws a retryable `LLM_ERROR` and no
   * `finish` comes: persist only what `finish` carries.
   */
  async *stream(
    request: LlmRequest,
    options: HttpCallOptions = {},
  ): AsyncGenerator<LlmStreamEvent> {
    const call = this.#prepare(request, options, true);
    // A factory: an attempt retried before any output starts from a fresh assembler.
    yield* streamAnswer(call, () => chatCompletionStreamProtocol());
  }

  /**
   * Throws `INVALID_INPUT` for request options this driver cannot send (`thinkingBudgetTokens`;
   * use `reasoningEffort`). The runtime calls it before a turn writes anything.
   */
  checkOptions(options: LlmRequestOptions, _model?: ModelWithProvider): void {
    checkChatRequestOptions(options);
  }

  #prepare(request: LlmRequest, options: HttpCallOptions, stream: boolean): PostRequest {
    return preparePost({
      providerName: 'OpenAI',
      providerType: this.providerType,
      options: this.#options,
      request,
      callOptions: options,
      apiKeyVariable: 'OPENAI_API_KEY',
      baseUrlVariable: 'OPENAI_BASE_URL',
      defaultBaseUrl: OPENAI_DEFAULT_BASE_URL,
      path: 'chat/completions',
      stream,
      providerHeaders: (apiKey): Record<string, string> =>
        apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      body: () =>
        toChatCompletionRequest(request, {
          stream,
          streamUsage: this.#options.streamUsage ?? true,
          maxTokensParameter: this.#options.maxTokensParameter ?? 'max_completion_tokens',
          sendReasoningContent: this.#options.sendReasoningContent ?? true,
        }),
      parseErrorBody: parseChatErrorBody,
    });
  }
}
