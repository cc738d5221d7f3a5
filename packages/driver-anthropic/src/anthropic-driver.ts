import type {
  LlmDriver,
  LlmProviderType,
  LlmRequest,
  LlmRequestOptions,
  LlmResponse,
  LlmStreamEvent,
  ModelWithProvider,
  ToolSpec,
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
import {
  ANTHROPIC_STRUCTURED_OUTPUT_TOOL,
  checkMessagesRequestOptions,
} from './messages-options.js';
import { toMessagesRequest } from './messages-request.js';
import {
  fromMessage,
  MessagesStreamAssembler,
  messagesStreamProtocol,
  parseMessagesErrorBody,
} from './messages-response.js';
import {
  type AnthropicPromptCaching,
  type PromptCachingPlan,
  resolvePromptCaching,
} from './prompt-caching.js';

/** The Anthropic API root used when neither the model, the options nor `ANTHROPIC_BASE_URL` set one. */
export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
/** The `anthropic-version` header sent unless the options name another. */
export const ANTHROPIC_API_VERSION = '2023-06-01';
/** `max_tokens` sent when neither the request nor the options set one (the API requires it). */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** Options of {@link AnthropicDriver}. Every member is optional. */
export interface AnthropicDriverOptions extends HttpDriverOptions {
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
  /**
   * Prompt caching: `cache_control` breakpoints on the system prompt, the last tool and the last
   * block of the latest message, so each request of a tool loop reads what the one before wrote.
   * `false` sends none; `{ system?, tools?, messages?, ttl? }` switches places off (each `true`
   * unless `false`) and sets the entry's lifetime (`'5m'` or `'1h'`; left out by default).
   * Checked with zod (`INVALID_INPUT`). Defaults to `true`.
   */
  promptCaching?: AnthropicPromptCaching;
}

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
  readonly #promptCaching: PromptCachingPlan | undefined;

  /** Throws `INVALID_INPUT` for bad `timeouts` or `promptCaching`. */
  constructor(options: AnthropicDriverOptions = {}) {
    this.providerType = options.providerType ?? 'anthropic';
    this.#options = checkHttpDriverOptions(options, 'AnthropicDriver');
    this.#promptCaching = resolvePromptCaching(options.promptCaching);
  }

  /**
   * Calls the model and resolves with the whole answer. Streams underneath unless the
   * `streaming` option is `false`; either way a failure resolves nothing partial.
   */
  async generate(request: LlmRequest, options: HttpCallOptions = {}): Promise<LlmResponse> {
    if (this.#options.streaming ?? true) return generateFromStream(this.stream(request, options));
    return requestWholeAnswer(
      this.#prepare(request, options, false),
      (body) => (body.type === 'message' ? fromMessage(body, outputToolOf(request)) : undefined),
      'message',
    );
  }

  /**
   * Streams the answer as deltas, ending with one `finish` event holding the whole response.
   * If the stream breaks before `message_stop`, the iteration throws a retryable `LLM_ERROR`
   * and no `finish` comes: persist only what `finish` carries.
   */
  async *stream(
    request: LlmRequest,
    options: HttpCallOptions = {},
  ): AsyncGenerator<LlmStreamEvent> {
    const call = this.#prepare(request, options, true);
    // A factory: an attempt retried before any output starts from a fresh assembler.
    const outputTool = outputToolOf(request);
    yield* streamAnswer(call, () =>
      messagesStreamProtocol(new MessagesStreamAssembler(outputTool)),
    );
  }

  /**
   * Throws `INVALID_INPUT` for request options this driver cannot send: `seed`,
   * `reasoningEffort`; a thinking budget that is under 1,024, not below the output token limit,
   * or combined with `temperature`, a `topP` under 0.95 or a forced tool; a `responseFormat`
   * whose schema is not an object schema, or combined with `toolChoice` `none` or a named tool,
   * or with a thinking budget unless `toolChoice` is `auto`. With `tools` (the turn's), also a
   * named `toolChoice` the tools do not offer, `required` without tools (and without
   * `responseFormat`) and, with `responseFormat`, a tool named
   * {@link ANTHROPIC_STRUCTURED_OUTPUT_TOOL}. The runtime calls it before a turn writes anything.
   */
  checkOptions(
    options: LlmRequestOptions,
    _model?: ModelWithProvider,
    tools?: readonly ToolSpec[],
  ): void {
    checkMessagesRequestOptions(
      options,
      options.maxOutputTokens ?? this.#options.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
      tools,
    );
  }

  #prepare(request: LlmRequest, options: HttpCallOptions, stream: boolean): PostRequest {
    return preparePost({
      providerName: 'Anthropic',
      providerType: this.providerType,
      options: this.#options,
      request,
      callOptions: options,
      apiKeyVariable: 'ANTHROPIC_API_KEY',
      baseUrlVariable: 'ANTHROPIC_BASE_URL',
      defaultBaseUrl: ANTHROPIC_DEFAULT_BASE_URL,
      path: 'v1/messages',
      stream,
      providerHeaders: (apiKey) => ({
        'anthropic-version': this.#options.anthropicVersion ?? ANTHROPIC_API_VERSION,
        ...(apiKey ? { 'x-api-key': apiKey } : {}),
      }),
      body: () =>
        toMessagesRequest(request, {
          stream,
          defaultMaxTokens: this.#options.maxTokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
          promptCaching: this.#promptCaching,
        }),
      parseErrorBody: parseMessagesErrorBody,
    });
  }
}

/** The structured output tool's name when the request asks for structured output. */
function outputToolOf(request: LlmRequest): string | undefined {
  return request.options?.responseFormat !== undefined
    ? ANTHROPIC_STRUCTURED_OUTPUT_TOOL
    : undefined;
}
