import type { ToolSpec } from './capability.js';
import { EverrunsError } from './errors.js';
import type { LlmRequestOptions } from './llm-request-options.js';
import type { Message, ReasoningPart, ToolCall } from './message.js';
import type { LlmProviderType, ModelWithProvider } from './model.js';

/** What the reason step sends to a driver. */
export interface LlmRequest {
  /** The model to call, with its credential and base URL. */
  model: ModelWithProvider;
  /** The assembled system prompt. */
  systemPrompt: string;
  /** The session history, oldest first. Drivers must not mutate it. */
  messages: readonly Message[];
  /** Tools the model may call. */
  tools: readonly ToolSpec[];
  sessionId: string;
  turnId: string;
  /** 1-based iteration of the turn. */
  iteration: number;
  /** Upper bound on generated tokens, when the caller sets one. */
  maxOutputTokens?: number;
  /**
   * Request options (temperature, tool choice, structured output, …): the model configuration's
   * merged with the turn's. A driver maps what its provider supports and throws `INVALID_INPUT`
   * for the rest before sending anything. `options.maxOutputTokens` wins over `maxOutputTokens`.
   */
  options?: LlmRequestOptions;
  /**
   * The `responseId` of the model answer this call continues, within one turn (the planner
   * carries it from a reason step through the act step to the next reason step, as upstream's
   * `previous_response_id`). A driver of a provider that keeps conversation state (the OpenAI
   * Responses API) may then send only the messages after the agent message holding that
   * `responseId` in its metadata; other drivers ignore it. Absent on a turn's first call.
   */
  previousResponseId?: string;
}

/**
 * Token usage of one model call. The optional details are parts of the two totals; a driver sets
 * one when the provider reports a count above zero, and leaves it out otherwise.
 */
export interface LlmUsage {
  /** Every input token, cached or not. */
  inputTokens: number;
  /** Every generated token, reasoning included. */
  outputTokens: number;
  /** Input tokens read from the provider's prompt cache (part of `inputTokens`). */
  cachedInputTokens?: number;
  /** Input tokens written to the provider's prompt cache (Anthropic `cache_creation_input_tokens`). */
  cacheWriteInputTokens?: number;
  /** Output tokens spent on reasoning or thinking (part of `outputTokens`). */
  reasoningTokens?: number;
}

/** Why the model stopped. */
export type LlmStopReason = 'end_turn' | 'tool_calls' | 'max_tokens' | 'content_filter' | 'other';

/** A driver's complete answer. */
export interface LlmResponse {
  text: string;
  toolCalls: ToolCall[];
  usage: LlmUsage;
  responseId?: string;
  stopReason: LlmStopReason;
  /** The model that answered, when the provider says. */
  model?: string;
  /**
   * The model's reasoning, in the order it came (thinking text with its signature, redacted
   * reasoning as opaque data); absent when there was none. Never part of `text`. The reason step
   * stores it on the agent message, before the text and tool calls.
   */
  reasoning?: ReasoningPart[];
}

/** One streamed piece of an answer. The last event is always `finish` with the whole response. */
export type LlmStreamEvent =
  | { type: 'text_delta'; text: string }
  /** A piece of reasoning (thinking) text; never part of the answer's text. */
  | { type: 'reasoning_delta'; text: string }
  | { type: 'tool_call_delta'; index: number; id?: string; name?: string; argumentsDelta: string }
  | { type: 'finish'; response: LlmResponse };

/** Options of one driver call. */
export interface LlmCallOptions {
  /** Cancels the call; the driver rejects with `ABORTED`. */
  signal?: AbortSignal;
}

/**
 * A model provider. Errors are `EverrunsError` with code `LLM_ERROR` (or `ABORTED`), carrying the
 * provider's message with any credential redacted.
 */
export interface LlmDriver {
  /** The provider type this driver serves, the key in the {@link DriverRegistry}. */
  readonly providerType: LlmProviderType;
  /** Calls the model and resolves with the whole answer. */
  generate(request: LlmRequest, options?: LlmCallOptions): Promise<LlmResponse>;
  /** Streams the answer; optional. */
  stream?(request: LlmRequest, options?: LlmCallOptions): AsyncIterable<LlmStreamEvent>;
  /**
   * Throws `INVALID_INPUT` for request options (already schema-valid) this driver cannot send to
   * `model` with `tools` (the turn's tools, when known); optional. The runtime calls it before a
   * turn writes anything; `generate` and `stream` check the same again before sending.
   */
  checkOptions?(
    options: LlmRequestOptions,
    model: ModelWithProvider,
    tools?: readonly ToolSpec[],
  ): void;
}

/** Drivers by provider type. */
export class DriverRegistry {
  readonly #drivers = new Map<string, LlmDriver>();

  /** Registers a driver under its `providerType`, replacing any earlier one. */
  register(driver: LlmDriver): this {
    this.#drivers.set(driver.providerType, driver);
    return this;
  }

  /** The driver for `providerType`; throws `DRIVER_NOT_FOUND`. */
  get(providerType: LlmProviderType): LlmDriver {
    const driver = this.#drivers.get(providerType);
    if (!driver) {
      throw new EverrunsError({
        code: 'DRIVER_NOT_FOUND',
        message: `No driver is registered for provider type ${providerType}`,
        details: { providerType },
      });
    }
    return driver;
  }

  /** Whether a driver is registered for `providerType`. */
  has(providerType: LlmProviderType): boolean {
    return this.#drivers.has(providerType);
  }

  /** Registered provider types. */
  providerTypes(): string[] {
    return [...this.#drivers.keys()];
  }
}
