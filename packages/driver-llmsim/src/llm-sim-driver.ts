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
  type ReasoningPart,
  type ToolCall,
  throwIfAborted,
} from '@everruns-ts/core';
import {
  LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE,
  LLMSIM_DEFAULT_TEXT,
  LlmSimConfig,
  type LlmSimError,
  type LlmSimOnExhausted,
  type LlmSimResult,
  type LlmSimStreaming,
  type LlmSimToolCall,
  type LlmSimTurn,
} from './llm-sim-config.js';

/** One scripted answer: the response, and the text chunks the script fixed, if any. */
interface ScriptedAnswer {
  response: LlmResponse;
  textChunks: readonly string[] | undefined;
}

/** A scripted turn that never answers (upstream's `SimTurn::StreamStall`). */
const STALL = Symbol('llmsim stall');

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
    const answer = await this.#answer(request, options.signal);
    if (answer === STALL) return stallUntilAborted(options.signal);
    return answer.response;
  }

  /**
   * Streams the same answer {@link generate} would give for the same script position, cut as the
   * config's {@link LlmSimConfig.withStreaming} says (by default one word per delta, no pause):
   * `reasoning_delta`s for the reasoning text, `text_delta`s (the answer's own
   * {@link LlmSimResult.textChunks} or {@link LlmSimConfig.chunked} chunks when scripted), then per
   * tool call one `tool_call_delta` with its id and name (and no argument text) followed by its
   * arguments as JSON (a string argument as is) in pieces, and last `finish` with the very
   * response `generate` would resolve with. The request is recorded when iteration starts. The
   * call's `AbortSignal` is checked before every event and cancels a pause between events:
   * the iteration then throws `ABORTED` and no `finish` comes.
   */
  async *stream(request: LlmRequest, options: LlmCallOptions = {}): AsyncIterable<LlmStreamEvent> {
    parseLlmRequestOptions(request.options, 'request options');
    this.#requests.push(request);
    const signal = options.signal;
    await delay(this.config.latencyMs, signal);
    const answer = await this.#answer(request, signal);
    if (answer === STALL) return await stallUntilAborted(signal);
    const { response, textChunks } = answer;
    const streaming = this.config.streaming;
    const pauseMs = streaming.chunkDelayMs ?? 0;
    let first = true;
    // Before every event but the first: the abort check, then the pause (no timer when 0).
    const between = async (): Promise<void> => {
      if (first) {
        first = false;
        throwIfAborted(signal);
        return;
      }
      await delay(pauseMs, signal);
    };
    for (const part of response.reasoning ?? []) {
      for (const piece of textPieces(part.text, streaming)) {
        await between();
        yield { type: 'reasoning_delta', text: piece };
      }
    }
    for (const piece of textChunks ?? textPieces(response.text, streaming)) {
      if (piece === '') continue;
      await between();
      yield { type: 'text_delta', text: piece };
    }
    for (const [index, call] of response.toolCalls.entries()) {
      await between();
      yield { type: 'tool_call_delta', index, id: call.id, name: call.name, argumentsDelta: '' };
      const argumentsText =
        typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
      const size = streaming.chunkSize ?? LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE;
      for (const piece of characterPieces(argumentsText, size)) {
        await between();
        yield { type: 'tool_call_delta', index, argumentsDelta: piece };
      }
    }
    await between();
    yield { type: 'finish', response };
  }

  async #answer(
    request: LlmRequest,
    signal: AbortSignal | undefined,
  ): Promise<ScriptedAnswer | typeof STALL> {
    const index = this.#answered++;
    const source = this.config.text;
    const onExhausted = this.config.onExhausted;
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
        result = source.texts[scriptPosition(index, source.texts.length, onExhausted)] ?? '';
        break;
      case 'chunked':
        result = {
          textChunks:
            source.answers[scriptPosition(index, source.answers.length, onExhausted)] ?? [],
        };
        break;
      case 'error':
        throw new EverrunsError({ code: 'LLM_ERROR', message: `LLM error: ${source.message}` });
      case 'model_not_available':
        throw modelNotAvailable(request.model.model);
      case 'scripted': {
        if (source.turns.length === 0) {
          throw new EverrunsError({
            code: 'CONFIGURATION',
            message: 'llmsim scripted config must contain at least one turn',
          });
        }
        const turn = source.turns[
          scriptPosition(index, source.turns.length, onExhausted)
        ] as LlmSimTurn;
        if (turn.kind === 'stream_stall') return STALL;
        if (turn.kind === 'error') throw simulatedError(turn.error, request.model.model);
        const calls = turn.kind === 'assistant' ? [] : turn.toolCalls;
        result = {
          text: turn.kind === 'tool_calls' ? '' : turn.text,
          toolCalls: calls.map((call, callIndex) =>
            call.id === undefined ? { ...call, id: `call_llmsim_${index}_${callIndex}` } : call,
          ),
        };
        break;
      }
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

    const partial: Exclude<LlmSimResult, string> =
      typeof result === 'string' ? { text: result } : result;
    const textChunks = partial.textChunks;
    const text = textChunks === undefined ? (partial.text ?? '') : textChunks.join('');
    if (textChunks !== undefined && partial.text !== undefined && partial.text !== text) {
      throw new EverrunsError({
        code: 'LLM_ERROR',
        message: 'llmsim answer: textChunks do not add up to text',
      });
    }
    const toolCalls = this.#materialize(partial.toolCalls ?? this.#scriptedCalls(index));
    const response: LlmResponse = {
      text,
      toolCalls,
      usage:
        partial.usage ?? this.config.usage ?? estimateUsage(request, text, toolCalls.length > 0),
      responseId: partial.responseId ?? this.config.responseId ?? `llmsim_${index + 1}`,
      stopReason: partial.stopReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'end_turn'),
      model: partial.model ?? this.config.model ?? request.model.model,
    };
    const reasoning = reasoningParts(partial.reasoning ?? this.#scriptedReasoning(index));
    if (reasoning) response.reasoning = reasoning;
    return { response, textChunks };
  }

  #scriptedReasoning(index: number): string {
    const source = this.config.reasoning;
    switch (source.kind) {
      case 'none':
        return '';
      case 'fixed':
        return source.text;
      case 'sequence':
        return source.texts[index] ?? '';
    }
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

/**
 * The list position of answer `index` in a script of `length` entries, as `mode` says once the
 * script is used up. Throws `CONFIGURATION` for `error`. An empty script gives position 0 (the
 * caller answers with its empty default).
 */
function scriptPosition(index: number, length: number, mode: LlmSimOnExhausted): number {
  if (length === 0 || index < length) return index;
  switch (mode) {
    case 'repeat_last':
      return length - 1;
    case 'loop':
      return index % length;
    case 'error':
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message: 'llmsim scripted config exhausted',
        details: { answers: length },
      });
  }
}

function modelNotAvailable(model: string): EverrunsError {
  return new EverrunsError({
    code: 'MODEL_NOT_FOUND',
    message: `Model not available: ${model}`,
    details: { model },
  });
}

/** The `EverrunsError` a scripted error turn rejects with. */
function simulatedError(error: LlmSimError, requestedModel: string): EverrunsError {
  const llmError = (
    message: string,
    details: Record<string, unknown>,
    retryable: boolean,
  ): EverrunsError =>
    new EverrunsError({
      code: 'LLM_ERROR',
      message,
      details: { providerType: 'llmsim', ...details },
      retryable,
    });
  switch (error.kind) {
    case 'rate_limit':
      return llmError(
        'Rate limit exceeded. Please retry after some time.',
        { kind: 'rate_limit', status: 429 },
        true,
      );
    case 'timeout':
      return llmError('Request timed out', { kind: 'timeout' }, true);
    case 'transport':
      return llmError('Transport connection failed', { kind: 'transport' }, true);
    case 'overloaded':
      return llmError('Provider overloaded', { kind: 'overloaded', status: 529 }, true);
    case 'authentication':
      return llmError(
        'Invalid provider credentials',
        { kind: 'authentication', status: 401 },
        false,
      );
    case 'quota_exhausted':
      return llmError('Provider quota exhausted', { kind: 'insufficient_quota' }, false);
    case 'unsupported_model':
      return modelNotAvailable(error.model || requestedModel);
    case 'invalid_response':
      return llmError(error.message, { kind: 'invalid_response' }, false);
    case 'other':
      return llmError(error.message, { kind: 'other' }, false);
  }
}

/**
 * Never settles until `signal` fires, then rejects with `ABORTED`; without a signal it never
 * settles (a stalled provider).
 */
function stallUntilAborted(signal: AbortSignal | undefined): Promise<never> {
  throwIfAborted(signal);
  return new Promise((_resolve, reject) => {
    signal?.addEventListener(
      'abort',
      () =>
        reject(
          new EverrunsError({
            code: 'ABORTED',
            message: 'The llmsim call was aborted',
            cause: signal.reason,
          }),
        ),
      { once: true },
    );
  });
}

/** Reasoning parts of a scripted reasoning: copies, or none for an empty text or list. */
function reasoningParts(
  reasoning: string | readonly ReasoningPart[] | undefined,
): ReasoningPart[] | undefined {
  if (reasoning === undefined || reasoning === '') return undefined;
  if (typeof reasoning === 'string') return [{ type: 'reasoning', text: reasoning }];
  return reasoning.length === 0 ? undefined : reasoning.map((part) => ({ ...part }));
}

/** A text cut as the streaming settings say; no empty piece. */
function textPieces(text: string, streaming: LlmSimStreaming): string[] {
  if (text === '') return [];
  if (streaming.chunkSize !== undefined) return characterPieces(text, streaming.chunkSize);
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const perChunk = streaming.wordsPerChunk ?? 1;
  if (perChunk === 1) return words;
  const pieces: string[] = [];
  for (let start = 0; start < words.length; start += perChunk) {
    pieces.push(words.slice(start, start + perChunk).join(''));
  }
  return pieces;
}

/** `text` in pieces of `size` code points (a surrogate pair is never cut); no empty piece. */
function characterPieces(text: string, size: number): string[] {
  const points = Array.from(text);
  const pieces: string[] = [];
  for (let start = 0; start < points.length; start += size) {
    pieces.push(points.slice(start, start + size).join(''));
  }
  return pieces;
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
