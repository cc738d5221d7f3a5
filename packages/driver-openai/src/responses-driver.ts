import {
  EverrunsError,
  formatZodError,
  type LlmDriver,
  type LlmProviderType,
  type LlmRequest,
  type LlmRequestOptions,
  type LlmResponse,
  type LlmStreamEvent,
  type ModelWithProvider,
} from '@everruns-ts/core';
import {
  checkHttpDriverOptions,
  generateFromStream,
  type HttpCallOptions,
  type HttpDriverOptions,
  isJsonObject,
  type JsonObject,
  llmError,
  type PostRequest,
  preparePost,
  requestWholeAnswer,
  streamAnswer,
} from '@everruns-ts/driver-http';
import { z } from 'zod';
import { OPENAI_DEFAULT_BASE_URL } from './openai-driver.js';
import { checkResponsesRequestOptions, toResponsesRequest } from './responses-request.js';
import {
  fromResponsesBody,
  parseResponsesErrorBody,
  responsesStreamProtocol,
} from './responses-response.js';

/** Options of {@link OpenAiResponsesDriver}. Every member is optional. */
export interface OpenAiResponsesDriverOptions extends HttpDriverOptions {
  /**
   * Key used when the request's `ModelWithProvider` has none. Without either, the driver reads
   * `OPENAI_API_KEY`; a server on another `baseUrl` may need none (no `Authorization` is sent).
   */
  apiKey?: string;
  /** API root used when the model has no `baseUrl`: `OPENAI_BASE_URL`, then OpenAI's. */
  baseUrl?: string;
  /** The provider type this instance registers under. Defaults to `openai-responses`. */
  providerType?: LlmProviderType;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * Whether a call that continues a model answer of the same turn (`LlmRequest.previousResponseId`)
   * sends `previous_response_id` and only the input after that answer (tool results, user
   * messages that came since) instead of the whole history. Defaults to `true`, or `false` when
   * `store` is `false` (an unstored response cannot be continued).
   */
  chaining?: boolean;
  /**
   * The `store` field: whether OpenAI keeps the responses (needed by chaining). Left out by
   * default, which is the provider's default (`true` at OpenAI).
   */
  store?: boolean;
  /**
   * Whether requests ask for `reasoning.encrypted_content` (`include`), kept on the reasoning
   * parts as `redactedData` and sent back with them. Defaults to `true` when `store` is `false`
   * (reasoning items of unstored responses can only go back encrypted), else `false`.
   */
  includeEncryptedReasoning?: boolean;
  /**
   * Whether a request that sends the whole history sends the stored reasoning items back, each
   * with the output items that followed it (under their ids, which the API pairs). Defaults to
   * `true`; `false` sends text and calls only, without item ids.
   */
  sendReasoning?: boolean;
  /** `reasoning.summary` of every request (`auto`, `concise`, `detailed`); not sent by default. */
  reasoningSummary?: 'auto' | 'concise' | 'detailed';
  /**
   * `strict` of every function tool. Defaults to `false` (the API's own default is `true`,
   * which refuses tool schemas with optional properties).
   */
  strictTools?: boolean;
}

const responsesOptionsSchema = z.object({
  providerType: z.string().min(1).optional(),
  chaining: z.boolean().optional(),
  store: z.boolean().optional(),
  includeEncryptedReasoning: z.boolean().optional(),
  sendReasoning: z.boolean().optional(),
  reasoningSummary: z.enum(['auto', 'concise', 'detailed']).optional(),
  strictTools: z.boolean().optional(),
});

/**
 * An {@link LlmDriver} for the OpenAI Responses API (`POST /responses`), registered under
 * `openai-responses`. Within a turn it continues the model's previous answer by
 * `previous_response_id` (see {@link OpenAiResponsesDriverOptions.chaining}); reasoning items
 * are kept on the agent message and sent back with the whole history.
 *
 * Errors are `EverrunsError`s: `LLM_ERROR` (details `status`, `providerErrorType`,
 * `providerErrorCode`, `providerErrorMessage`, `retryable`, `kind`) or `ABORTED`; none carries
 * the key.
 */
export class OpenAiResponsesDriver implements LlmDriver {
  /** The key of this driver in the `DriverRegistry`, `openai-responses` unless set. */
  readonly providerType: LlmProviderType;
  readonly #options: OpenAiResponsesDriverOptions;

  /** Throws `INVALID_INPUT` for an option of the wrong type. */
  constructor(options: OpenAiResponsesDriverOptions = {}) {
    const parsed = responsesOptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid OpenAiResponsesDriver options: ${formatZodError(parsed.error)}`,
      });
    }
    this.providerType = options.providerType ?? 'openai-responses';
    this.#options = checkHttpDriverOptions(options, 'OpenAiResponsesDriver');
  }

  /**
   * Calls the model and resolves with the whole answer. Streams underneath unless the
   * `streaming` option is `false`; either way a failure resolves nothing partial.
   */
  async generate(request: LlmRequest, options: HttpCallOptions = {}): Promise<LlmResponse> {
    if (this.#options.streaming ?? true) return generateFromStream(this.stream(request, options));
    const call = this.#prepare(request, options, false);
    return requestWholeAnswer(call, (body) => wholeAnswer(body, call), 'response output');
  }

  /**
   * Streams the answer as deltas, ending with one `finish` event holding the whole response.
   * A stream that ends before `response.completed` (or `response.incomplete`) throws a
   * retryable `LLM_ERROR` of kind `incomplete_stream` and no `finish` comes.
   */
  async *stream(
    request: LlmRequest,
    options: HttpCallOptions = {},
  ): AsyncGenerator<LlmStreamEvent> {
    const call = this.#prepare(request, options, true);
    yield* streamAnswer(call, () => responsesStreamProtocol());
  }

  /**
   * Throws `INVALID_INPUT` for request options the Responses API cannot take (`stop`, `seed`,
   * `thinkingBudgetTokens`, `extraBody` keys `input`, `instructions`, `previous_response_id`).
   */
  checkOptions(options: LlmRequestOptions, _model?: ModelWithProvider): void {
    checkResponsesRequestOptions(options);
  }

  #prepare(request: LlmRequest, options: HttpCallOptions, stream: boolean): PostRequest {
    const store = this.#options.store;
    return preparePost({
      providerName: 'OpenAI',
      providerType: this.providerType,
      options: this.#options,
      request,
      callOptions: options,
      apiKeyVariable: 'OPENAI_API_KEY',
      baseUrlVariable: 'OPENAI_BASE_URL',
      defaultBaseUrl: OPENAI_DEFAULT_BASE_URL,
      path: 'responses',
      stream,
      providerHeaders: (apiKey): Record<string, string> =>
        apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      body: () =>
        toResponsesRequest(request, {
          stream,
          chaining: this.#options.chaining ?? store !== false,
          store,
          includeEncryptedReasoning: this.#options.includeEncryptedReasoning ?? store === false,
          sendReasoning: this.#options.sendReasoning ?? true,
          reasoningSummary: this.#options.reasoningSummary,
          strictTools: this.#options.strictTools ?? false,
        }),
      parseErrorBody: parseResponsesErrorBody,
    });
  }
}

/** A non-streamed response; a `failed` one is an `LLM_ERROR` with the provider's error. */
function wholeAnswer(body: JsonObject, call: PostRequest): LlmResponse | undefined {
  if (body.status === 'failed') {
    const providerError = parseResponsesErrorBody(isJsonObject(body.error) ? body.error : {});
    const type = providerError.type ?? '';
    throw llmError({
      ...call,
      message: `${call.providerName} response failed${type ? ` (${type})` : ''}: ${
        providerError.message ?? 'no message'
      }`,
      retryable: /server|overload|rate_limit|timeout/.test(type),
      status: 200,
      providerError,
      details: { kind: 'response_failed' },
    });
  }
  return fromResponsesBody(body);
}
