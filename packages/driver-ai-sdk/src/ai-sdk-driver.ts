import type {
  LanguageModelV3,
  LanguageModelV4,
  LanguageModelV4CallOptions,
  LanguageModelV4GenerateResult,
  LanguageModelV4StreamPart,
} from '@ai-sdk/provider';
import {
  EverrunsError,
  type LlmCallOptions,
  type LlmDriver,
  type LlmProviderType,
  type LlmRequest,
  type LlmRequestOptions,
  type LlmResponse,
  type LlmStreamEvent,
  type ModelWithProvider,
} from '@everruns-ts/core';
import { type AiSdkLanguageModel, isAiSdkLanguageModel } from './ai-sdk-language-model.js';
import { applyAiSdkRequestOptions, checkAiSdkRequestOptions } from './apply-request-options.js';
import { fromGenerateResult } from './from-ai-sdk-result.js';
import { readAiSdkStream, StreamErrorPart } from './read-ai-sdk-stream.js';
import { toAiSdkPrompt, toAiSdkTools, toV3Prompt } from './to-ai-sdk-prompt.js';
import { toLlmError } from './to-llm-error.js';

/** The provider type an {@link AiSdkDriver} registers under unless its options name another. */
export const AI_SDK_DEFAULT_PROVIDER_TYPE = 'ai-sdk';

/**
 * Call settings passed through to every call of the model, as the AI SDK spells them
 * (`temperature`, `topP`, `seed`, `providerOptions`, `headers`, …). The prompt, tools,
 * `maxOutputTokens` (from the request) and the abort signal are the driver's own.
 */
export type AiSdkCallSettings = Omit<
  LanguageModelV4CallOptions,
  'prompt' | 'tools' | 'abortSignal' | 'maxOutputTokens' | 'includeRawChunks'
>;

/** Options of {@link AiSdkDriver}. */
export interface AiSdkDriverOptions {
  /**
   * The AI SDK models this driver serves, by the everruns-ts model name a `ModelWithProvider`
   * gives in `model`: an object (`{ 'gemini-flash': google('gemini-2.5-flash') }`) or a function
   * from the name to a model (`(name) => google(name)`), returning `undefined` for a name it
   * does not know (the call then fails with `MODEL_NOT_FOUND`).
   */
  models:
    | Readonly<Record<string, AiSdkLanguageModel>>
    | ((model: string) => AiSdkLanguageModel | undefined);
  /**
   * The provider type this instance registers under. Defaults to
   * {@link AI_SDK_DEFAULT_PROVIDER_TYPE} (`ai-sdk`); give each instance its own name to
   * register several (for example `google` and `bedrock`).
   */
  providerType?: LlmProviderType;
  /** Settings sent with every call, such as `temperature` or `providerOptions`. */
  callSettings?: AiSdkCallSettings;
  /**
   * Retries after an error the provider marks retryable (`APICallError.isRetryable`: 429, 5xx,
   * failed connections) and after a truncated stream, as long as nothing was streamed to the
   * caller yet. Defaults to 2 (three attempts in all); AI SDK provider models do not retry on
   * their own.
   */
  maxRetries?: number;
  /** First backoff delay in milliseconds, doubled per retry. Defaults to 500. */
  retryBaseDelayMs?: number;
  /** Upper bound of any wait between attempts, `retry-after` included. Defaults to 30 000. */
  maxRetryDelayMs?: number;
  /**
   * Whether `generate()` calls the model's `doStream` and assembles the answer instead of
   * calling `doGenerate`. Defaults to `false`.
   */
  streaming?: boolean;
}

function abortedError(model: string): EverrunsError {
  return new EverrunsError({
    code: 'ABORTED',
    message: `The call to model ${model} was aborted`,
    details: { model },
  });
}

/** Waits `milliseconds`, rejecting with `ABORTED` when the signal fires first. */
function wait(milliseconds: number, model: string, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(model));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(model));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, milliseconds);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * An {@link LlmDriver} that runs models implementing the AI SDK's provider specification
 * (`LanguageModelV4`, or `LanguageModelV3` from providers built for AI SDK 6): `@ai-sdk/google`,
 * `@ai-sdk/amazon-bedrock`, `@ai-sdk/mistral`, `@ai-sdk/groq`, `@ai-sdk/openai-compatible` and
 * the rest work as everruns-ts models without a driver each.
 *
 * Map everruns-ts model names to AI SDK models in `models`, register the driver, and point a
 * `ModelWithProvider` at it: `{ model: 'gemini-flash', providerType: 'ai-sdk' }`. The AI SDK
 * model carries its own key and base URL, so the `apiKey` and `baseUrl` of the
 * `ModelWithProvider` are not used (the key is only kept out of error messages).
 *
 * Errors are `EverrunsError`s: `LLM_ERROR` (details `status`, `providerErrorType`,
 * `providerErrorMessage`, `retryable`), `ABORTED`, or `MODEL_NOT_FOUND` for a model name
 * `models` does not know.
 */
export class AiSdkDriver implements LlmDriver {
  /** The key of this driver in the `DriverRegistry`, `ai-sdk` unless set in the options. */
  readonly providerType: LlmProviderType;
  readonly #options: AiSdkDriverOptions;

  /** Throws a `TypeError` when an entry of an object `models` is not an AI SDK model. */
  constructor(options: AiSdkDriverOptions) {
    if (typeof options.models !== 'function') {
      for (const [name, model] of Object.entries(options.models)) {
        if (!isAiSdkLanguageModel(model)) {
          throw new TypeError(
            `models.${name} is not an AI SDK language model (specificationVersion v4 or v3)`,
          );
        }
      }
    }
    this.providerType = options.providerType ?? AI_SDK_DEFAULT_PROVIDER_TYPE;
    this.#options = { ...options };
  }

  /**
   * Calls the model's `doGenerate` (or `doStream`, with the `streaming` option) and resolves
   * with the whole answer, retrying retryable failures.
   */
  async generate(request: LlmRequest, options: LlmCallOptions = {}): Promise<LlmResponse> {
    if (this.#options.streaming === true) {
      let response: LlmResponse | undefined;
      for await (const event of this.stream(request, options)) {
        if (event.type === 'finish') response = event.response;
      }
      if (response) return response;
      throw new EverrunsError({ code: 'INTERNAL', message: 'The stream ended without finish' });
    }
    if (options.signal?.aborted) throw abortedError(request.model.model);
    const model = this.#resolve(request);
    const callOptions = this.#callOptions(request, model, options.signal);
    for (let attempt = 0; ; attempt++) {
      try {
        const result = (await model.doGenerate(
          callOptions as LanguageModelV4CallOptions & Parameters<LanguageModelV3['doGenerate']>[0],
        )) as LanguageModelV4GenerateResult;
        if (options.signal?.aborted) throw abortedError(request.model.model);
        return fromGenerateResult(result, request.model.model);
      } catch (error) {
        await this.#beforeRetry(error, attempt, request, model, options.signal);
      }
    }
  }

  /**
   * Streams the answer from the model's `doStream`, ending with one `finish` event holding the
   * whole response. A failure before any event was delivered is retried; after that, the
   * iteration throws (`LLM_ERROR` or `ABORTED`) and no `finish` comes.
   */
  async *stream(request: LlmRequest, options: LlmCallOptions = {}): AsyncGenerator<LlmStreamEvent> {
    if (options.signal?.aborted) throw abortedError(request.model.model);
    const model = this.#resolve(request);
    const callOptions = this.#callOptions(request, model, options.signal);
    for (let attempt = 0; ; attempt++) {
      let delivered = false;
      try {
        const result = await model.doStream(
          callOptions as LanguageModelV4CallOptions & Parameters<LanguageModelV3['doStream']>[0],
        );
        const stream = result.stream as ReadableStream<LanguageModelV4StreamPart>;
        for await (const event of readAiSdkStream(stream, request.model.model, options.signal)) {
          if (options.signal?.aborted) throw abortedError(request.model.model);
          delivered = true;
          yield event;
        }
        return;
      } catch (error) {
        if (delivered) throw this.#toError(error, request, model, options.signal);
        await this.#beforeRetry(error, attempt, request, model, options.signal);
      }
    }
  }

  #toError(
    error: unknown,
    request: LlmRequest,
    model: AiSdkLanguageModel,
    signal: AbortSignal | undefined,
  ): EverrunsError {
    const cause = error instanceof StreamErrorPart ? error.error : error;
    return toLlmError(cause, {
      providerType: this.providerType,
      model: request.model.model,
      provider: model.provider,
      signal,
      apiKey: request.model.apiKey,
    });
  }

  /** Throws the mapped error unless it is retryable and attempts remain; else waits. */
  async #beforeRetry(
    error: unknown,
    attempt: number,
    request: LlmRequest,
    model: AiSdkLanguageModel,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const mapped = this.#toError(error, request, model, signal);
    if (!mapped.retryable || attempt >= (this.#options.maxRetries ?? 2)) throw mapped;
    const maxDelay = this.#options.maxRetryDelayMs ?? 30_000;
    const backoff = (this.#options.retryBaseDelayMs ?? 500) * 2 ** attempt;
    const asked = mapped.details.retryAfterMs;
    const delay = Math.min(maxDelay, typeof asked === 'number' ? asked : backoff);
    await wait(delay, request.model.model, signal);
  }

  #resolve(request: LlmRequest): AiSdkLanguageModel {
    const models = this.#options.models;
    const name = request.model.model;
    const model =
      typeof models === 'function'
        ? models(name)
        : Object.hasOwn(models, name)
          ? models[name]
          : undefined;
    if (model === undefined) {
      throw new EverrunsError({
        code: 'MODEL_NOT_FOUND',
        message: `Provider type ${this.providerType} has no AI SDK model named ${name}`,
        details: { providerType: this.providerType, model: name },
      });
    }
    if (!isAiSdkLanguageModel(model)) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: `The model ${name} of provider type ${this.providerType} is not an AI SDK language model (specificationVersion v4 or v3)`,
        details: { providerType: this.providerType, model: name },
      });
    }
    return model;
  }

  /**
   * Throws `INVALID_INPUT` for request options this driver cannot send (`extraBody`; use
   * `callSettings.providerOptions`). The runtime calls it before a turn writes anything.
   */
  checkOptions(options: LlmRequestOptions, _model?: ModelWithProvider): void {
    checkAiSdkRequestOptions(options);
  }

  #callOptions(
    request: LlmRequest,
    model: AiSdkLanguageModel,
    signal: AbortSignal | undefined,
  ): LanguageModelV4CallOptions {
    const prompt = toAiSdkPrompt(request);
    const callOptions: LanguageModelV4CallOptions = {
      ...this.#options.callSettings,
      prompt:
        (model as LanguageModelV4 | LanguageModelV3).specificationVersion === 'v3'
          ? (toV3Prompt(prompt) as unknown as LanguageModelV4CallOptions['prompt'])
          : prompt,
    };
    if (request.tools.length > 0) callOptions.tools = toAiSdkTools(request.tools);
    if (request.maxOutputTokens !== undefined)
      callOptions.maxOutputTokens = request.maxOutputTokens;
    applyAiSdkRequestOptions(callOptions, request.options, request.tools);
    if (signal !== undefined) callOptions.abortSignal = signal;
    return callOptions;
  }
}
