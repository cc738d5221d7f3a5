import {
  EverrunsError,
  errorMessage,
  type LlmCallOptions,
  type LlmDriver,
  type LlmRequest,
  type LlmRequestOptions,
  type LlmResponse,
  type LlmStreamEvent,
  type LlmUsage,
  type Message,
  messageText,
  parseLlmRequestOptions,
  type ToolCall,
  throwIfAborted,
} from '@everruns-ts/core';
import {
  LLMSIM_DEFAULT_TEXT,
  LlmSimConfig,
  type LlmSimResult,
  type LlmSimToolCall,
} from './llm-sim-config.js';

const LOREM_WORDS = [
  'lorem',
  'ipsum',
  'dolor',
  'sit',
  'amet',
  'consectetur',
  'adipiscing',
  'elit',
  'sed',
  'do',
  'eiusmod',
  'tempor',
  'incididunt',
  'ut',
  'labore',
  'et',
  'dolore',
  'magna',
  'aliqua',
] as const;

/**
 * A deterministic simulated model: answers from an {@link LlmSimConfig} script and records every
 * request it receives. Register it in a `DriverRegistry` (provider type `llmsim`) for tests,
 * examples and benchmarks that must not depend on a real provider.
 *
 * Each call costs O(1) in the length of the history: the driver keeps a reference to the request
 * (no copy), estimates usage from the system prompt and the newest message only, and `echo`
 * scans back only as far as the newest user message.
 */
export class LlmSimDriver implements LlmDriver {
  /** Always `llmsim`. */
  readonly providerType = 'llmsim' as const;
  /** The script this driver follows. */
  readonly config: LlmSimConfig;
  readonly #requests: LlmRequest[] = [];
  #answered = 0;
  #generatedIds = 0;
  #lorem: string | undefined;

  /** Creates a driver following `config`; by default a fixed text ({@link LLMSIM_DEFAULT_TEXT}). */
  constructor(config: LlmSimConfig = LlmSimConfig.fixed(LLMSIM_DEFAULT_TEXT)) {
    if (!(config instanceof LlmSimConfig)) {
      throw new TypeError('LlmSimDriver expects an LlmSimConfig');
    }
    this.config = config;
  }

  /**
   * Every request sent to this driver since the last {@link reset}, oldest first, as the very
   * objects the caller passed (not copies). A request counts as soon as the call starts, including
   * calls later cancelled.
   */
  get requests(): readonly LlmRequest[] {
    return this.#requests;
  }

  /**
   * The request options of each recorded request, oldest first (`undefined` for a request without
   * any), so a test can assert what was asked of the model. The simulated model accepts every
   * valid option and does not change its answer for them; options the schema refuses reject
   * with `INVALID_INPUT` and the request is not recorded.
   */
  get requestOptions(): ReadonlyArray<LlmRequestOptions | undefined> {
    return this.#requests.map((request) => request.options);
  }

  /** How many calls this driver has received since the last {@link reset}. */
  get callCount(): number {
    return this.#requests.length;
  }

  /** Forgets recorded requests and restarts sequences, response ids and generated call ids. */
  reset(): void {
    this.#requests.length = 0;
    this.#answered = 0;
    this.#generatedIds = 0;
  }

  /**
   * Answers `request` from the script. Rejects with `ABORTED` when `options.signal` fires before
   * the answer is ready; errors thrown by a `fromFunction` callback surface as `LLM_ERROR` unless
   * they already are an `EverrunsError`.
   */
  async generate(request: LlmRequest, options: LlmCallOptions = {}): Promise<LlmResponse> {
    parseLlmRequestOptions(request.options, 'request options');
    this.#requests.push(request);
    await delay(this.config.latencyMs, options.signal);
    return this.#answer(request, options.signal);
  }

  /**
   * Streams the same answer {@link generate} would give: one `text_delta` per word (with its
   * trailing whitespace), one `tool_call_delta` per tool call carrying its whole arguments as
   * JSON (a string argument as is), then `finish`. The request is recorded when iteration starts.
   */
  async *stream(request: LlmRequest, options: LlmCallOptions = {}): AsyncIterable<LlmStreamEvent> {
    parseLlmRequestOptions(request.options, 'request options');
    this.#requests.push(request);
    await delay(this.config.latencyMs, options.signal);
    const response = await this.#answer(request, options.signal);
    for (const piece of response.text.match(/\S+\s*|\s+/g) ?? []) {
      throwIfAborted(options.signal);
      yield { type: 'text_delta', text: piece };
    }
    for (const [index, call] of response.toolCalls.entries()) {
      throwIfAborted(options.signal);
      yield {
        type: 'tool_call_delta',
        index,
        id: call.id,
        name: call.name,
        argumentsDelta:
          typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
      };
    }
    yield { type: 'finish', response };
  }

  async #answer(request: LlmRequest, signal: AbortSignal | undefined): Promise<LlmResponse> {
    const index = this.#answered++;
    const source = this.config.text;
    let result: LlmSimResult | LlmResponse;
    switch (source.kind) {
      case 'fixed':
        result = source.text;
        break;
      case 'echo':
        result = `Echo: ${latestUserText(request.messages)}`;
        break;
      case 'lorem':
        this.#lorem ??= loremText(source.words);
        result = this.#lorem;
        break;
      case 'sequence':
        result = source.texts[Math.min(index, source.texts.length - 1)] ?? '';
        break;
      case 'function':
        try {
          result = await source.fn(request, signal ? { index, signal } : { index });
        } catch (error) {
          if (EverrunsError.isInstance(error)) throw error;
          throw new EverrunsError({
            code: 'LLM_ERROR',
            message: `llmsim function failed: ${errorMessage(error)}`,
            cause: error,
          });
        }
        throwIfAborted(signal);
        if (typeof result !== 'string' && (typeof result !== 'object' || result === null)) {
          throw new EverrunsError({
            code: 'LLM_ERROR',
            message: 'llmsim function must return a string or a response object',
          });
        }
        break;
    }

    const partial = typeof result === 'string' ? { text: result } : result;
    const text = partial.text ?? '';
    const toolCalls = this.#materialize(partial.toolCalls ?? this.#scriptedCalls(index));
    return {
      text,
      toolCalls,
      usage:
        partial.usage ?? this.config.usage ?? estimateUsage(request, text, toolCalls.length > 0),
      responseId: partial.responseId ?? this.config.responseId ?? `llmsim_${index + 1}`,
      stopReason: partial.stopReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'end_turn'),
      model: partial.model ?? this.config.model ?? request.model.model,
    };
  }

  #scriptedCalls(index: number): readonly LlmSimToolCall[] {
    const source = this.config.toolCalls;
    switch (source.kind) {
      case 'none':
        return [];
      case 'fixed':
        return source.calls;
      case 'sequence':
        return source.sets[index] ?? [];
    }
  }

  #materialize(calls: readonly LlmSimToolCall[]): ToolCall[] {
    const toolCalls: ToolCall[] = [];
    for (const call of calls) {
      toolCalls.push({
        id: call.id ?? `call_${++this.#generatedIds}`,
        name: call.name,
        arguments: call.arguments === undefined ? {} : call.arguments,
      });
    }
    return toolCalls;
  }
}

function latestUserText(messages: readonly Message[]): string {
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index];
    if (message?.role === 'user') return messageText(message);
  }
  return '';
}

function loremText(words: number): string {
  const parts: string[] = [];
  for (let index = 0; index < words; index++) {
    parts.push(LOREM_WORDS[index % LOREM_WORDS.length] as string);
  }
  const text = parts.join(' ');
  return text ? `${text.charAt(0).toUpperCase()}${text.slice(1)}.` : '';
}

function messageChars(message: Message | undefined): number {
  if (!message) return 0;
  let chars = 0;
  for (const part of message.content) {
    if (part.type === 'text') chars += part.text.length;
    else if (part.type === 'tool_result') chars += part.content.length;
  }
  return chars;
}

/** About four characters per token, of the system prompt and the newest message only. */
function estimateUsage(request: LlmRequest, text: string, hasToolCalls: boolean): LlmUsage {
  const inputChars =
    request.systemPrompt.length + messageChars(request.messages[request.messages.length - 1]);
  return {
    inputTokens: Math.max(1, Math.ceil(inputChars / 4)),
    outputTokens: Math.max(hasToolCalls ? 1 : 0, Math.ceil(text.length / 4)),
  };
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> | undefined {
  throwIfAborted(signal);
  if (ms <= 0) return undefined;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(
        new EverrunsError({
          code: 'ABORTED',
          message: 'The llmsim call was aborted',
          cause: signal?.reason,
        }),
      );
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
