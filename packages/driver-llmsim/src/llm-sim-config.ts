import {
  EverrunsError,
  formatZodError,
  type LlmRequest,
  type LlmResponse,
  type LlmStopReason,
  type LlmUsage,
  lazySchema,
  type ReasoningPart,
} from '@everruns-ts/core';
import { z } from 'zod';

/**
 * A tool call scripted into an {@link LlmSimConfig}. Without an `id`, the driver assigns
 * `call_<n>` (a counter per driver, from 1). `arguments` reaches the response exactly as given:
 * an object for a well-formed call, a string to simulate arguments the model garbled.
 */
export interface LlmSimToolCall {
  /** The call id; assigned by the driver when absent. */
  id?: string;
  /** Tool name; need not name an existing tool (to test unknown-tool handling). */
  name: string;
  /** Arguments passed through untouched. Defaults to `{}`. */
  arguments?: unknown;
}

/**
 * What a {@link LlmSimConfig.fromFunction} callback may return: a whole response, a plain text,
 * or a partial response whose missing members the driver fills in (text `''`, the config's tool
 * calls, estimated usage, `llmsim_<n>` id, a stop reason from the presence of tool calls).
 */
export type LlmSimResult =
  | string
  | {
      text?: string;
      /**
       * The exact `text_delta` pieces `stream()` yields for this answer, in order. Their
       * concatenation is the answer's text; with `text` as well, the two must agree (else the call
       * fails with `LLM_ERROR`). Without it, the text is cut as the config's streaming says.
       */
      textChunks?: readonly string[];
      /**
       * The model's reasoning: a text (one reasoning part) or whole reasoning parts. Without it,
       * the config's reasoning applies ({@link LlmSimConfig.withReasoning}).
       */
      reasoning?: string | readonly ReasoningPart[];
      /** Scripted calls; ids are assigned as for {@link LlmSimToolCall}. */
      toolCalls?: readonly LlmSimToolCall[];
      usage?: LlmUsage;
      responseId?: string;
      stopReason?: LlmStopReason;
      model?: string;
    };

/** What a {@link LlmSimConfig.fromFunction} callback is told besides the request. */
export interface LlmSimCallInfo {
  /** 0-based position of this answer among the driver's answered calls (since the last reset). */
  index: number;
  /** The caller's cancellation signal, if any. */
  signal?: AbortSignal;
}

/**
 * The callback of {@link LlmSimConfig.fromFunction}. Throwing an `EverrunsError` passes it to the
 * caller unchanged; anything else thrown becomes `LLM_ERROR` with the original as `cause`.
 */
export type LlmSimFunction = (
  request: LlmRequest,
  info: LlmSimCallInfo,
) => LlmSimResult | LlmResponse | Promise<LlmSimResult | LlmResponse>;

/**
 * A provider failure a scripted turn simulates ({@link LlmSimTurn.error}), named as upstream's
 * `SimError`. Each becomes an `EverrunsError` (see {@link LlmSimConfig.scripted}).
 */
export type LlmSimError =
  | { kind: 'rate_limit' }
  | { kind: 'timeout' }
  | { kind: 'transport' }
  | { kind: 'overloaded' }
  | { kind: 'authentication' }
  | { kind: 'quota_exhausted' }
  | { kind: 'unsupported_model'; model: string }
  | { kind: 'invalid_response'; message: string }
  | { kind: 'other'; message: string };

/**
 * One answer of a {@link LlmSimConfig.scripted} script, as upstream's `SimTurn`: plain text, tool
 * calls (empty text), text and tool calls together, a simulated provider error, or a stall (the
 * call never answers until its `AbortSignal` fires). Build them with the {@link LlmSimTurn}
 * helpers or write the objects directly.
 */
export type LlmSimTurn =
  | { kind: 'assistant'; text: string }
  | { kind: 'tool_calls'; toolCalls: readonly LlmSimToolCall[] }
  | { kind: 'mixed'; text: string; toolCalls: readonly LlmSimToolCall[] }
  | { kind: 'error'; error: LlmSimError }
  | { kind: 'stream_stall' };

/** Shorthands for the {@link LlmSimTurn} variants (upstream's `SimTurn::Assistant` and so on). */
export const LlmSimTurn = Object.freeze({
  /** A plain text answer. */
  assistant: (text: string): LlmSimTurn => ({ kind: 'assistant', text }),
  /** An answer of tool calls only (its text is empty). */
  toolCalls: (toolCalls: readonly LlmSimToolCall[]): LlmSimTurn => ({
    kind: 'tool_calls',
    toolCalls,
  }),
  /** An answer with text and tool calls. */
  mixed: (text: string, toolCalls: readonly LlmSimToolCall[]): LlmSimTurn => ({
    kind: 'mixed',
    text,
    toolCalls,
  }),
  /** A call that fails as `error` says; a string names an error kind without data. */
  error: (
    error:
      | LlmSimError
      | 'rate_limit'
      | 'timeout'
      | 'transport'
      | 'overloaded'
      | 'authentication'
      | 'quota_exhausted',
  ): LlmSimTurn => ({ kind: 'error', error: typeof error === 'string' ? { kind: error } : error }),
  /** A call that never answers (streams no event) until its `AbortSignal` fires. */
  streamStall: (): LlmSimTurn => ({ kind: 'stream_stall' }),
});

/**
 * What a position-based script does once its list is used up ({@link LlmSimConfig.withOnExhausted}),
 * as upstream's `OnExhausted`: `repeat_last` answers with the last entry again, `loop` starts over
 * from the first, `error` fails the call with `CONFIGURATION` (`llmsim scripted config exhausted`).
 */
export type LlmSimOnExhausted = 'repeat_last' | 'loop' | 'error';

/** How the text of each answer is produced. */
export type LlmSimTextSource =
  | { kind: 'fixed'; text: string }
  | { kind: 'echo' }
  | { kind: 'lorem'; words: number }
  | { kind: 'sequence'; texts: readonly string[] }
  | { kind: 'chunked'; answers: readonly (readonly string[])[] }
  | { kind: 'function'; fn: LlmSimFunction }
  | { kind: 'scripted'; turns: readonly LlmSimTurn[] }
  | { kind: 'error'; message: string }
  | { kind: 'model_not_available' };

const toolCallSchema = lazySchema(() =>
  z.object({
    id: z.string().min(1).optional(),
    name: z.string(),
    arguments: z.unknown().optional(),
  }),
);

const simErrorSchema = lazySchema(() =>
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('rate_limit') }),
    z.object({ kind: z.literal('timeout') }),
    z.object({ kind: z.literal('transport') }),
    z.object({ kind: z.literal('overloaded') }),
    z.object({ kind: z.literal('authentication') }),
    z.object({ kind: z.literal('quota_exhausted') }),
    z.object({ kind: z.literal('unsupported_model'), model: z.string() }),
    z.object({ kind: z.literal('invalid_response'), message: z.string() }),
    z.object({ kind: z.literal('other'), message: z.string() }),
  ]),
);

const turnSchema = lazySchema(() =>
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('assistant'), text: z.string() }),
    z.object({ kind: z.literal('tool_calls'), toolCalls: z.array(toolCallSchema) }),
    z.object({ kind: z.literal('mixed'), text: z.string(), toolCalls: z.array(toolCallSchema) }),
    z.object({ kind: z.literal('error'), error: simErrorSchema }),
    z.object({ kind: z.literal('stream_stall') }),
  ]),
);

const onExhaustedSchema = lazySchema(() => z.enum(['repeat_last', 'loop', 'error']));

function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `${what}: ${formatZodError(parsed.error)}`,
    });
  }
  return parsed.data;
}

/** How the tool calls of each answer are chosen. */
export type LlmSimToolCallSource =
  | { kind: 'none' }
  | { kind: 'fixed'; calls: readonly LlmSimToolCall[] }
  | { kind: 'sequence'; sets: readonly (readonly LlmSimToolCall[])[] };

/** How the reasoning of each answer is chosen. */
export type LlmSimReasoningSource =
  | { kind: 'none' }
  | { kind: 'fixed'; text: string }
  | { kind: 'sequence'; texts: readonly string[] };

/**
 * How `stream()` cuts an answer into deltas ({@link LlmSimConfig.withStreaming}). Every member is
 * optional; the defaults stream one word per delta with no pause.
 */
export interface LlmSimStreaming {
  /**
   * Characters (Unicode code points) per `text_delta`, `reasoning_delta` and tool call argument
   * piece. When unset, text and reasoning go {@link wordsPerChunk} words at a time and tool call
   * arguments {@link LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE} characters at a time.
   */
  chunkSize?: number;
  /**
   * Words per text or reasoning delta when `chunkSize` is unset; a word keeps its trailing
   * whitespace. Defaults to 1, as upstream's llmsim streams word by word.
   */
  wordsPerChunk?: number;
  /**
   * Milliseconds to wait between two streamed events (not before the first: that is
   * {@link LlmSimConfig.withLatency}). Defaults to 0: no timer at all. The wait honours the
   * call's `AbortSignal` (`ABORTED`).
   */
  chunkDelayMs?: number;
}

/** Characters per tool call argument piece when {@link LlmSimStreaming.chunkSize} is unset. */
export const LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE = 16;

interface LlmSimConfigState {
  text: LlmSimTextSource;
  toolCalls: LlmSimToolCallSource;
  reasoning: LlmSimReasoningSource;
  streaming: Readonly<LlmSimStreaming>;
  latencyMs: number;
  onExhausted: LlmSimOnExhausted | undefined;
  model: string | undefined;
  responseId: string | undefined;
  usage: LlmUsage | undefined;
}

/** The text of a config built without a static form (`new LlmSimDriver()`). */
export const LLMSIM_DEFAULT_TEXT = 'This is a simulated response from llmsim.';

/**
 * The script of an {@link LlmSimDriver}: an immutable value. Start from a static form
 * (`fixed`, `echo`, `lorem`, `sequence`, `fromFunction`) and chain `with…` methods; each returns a
 * new config and leaves the original untouched, so one config can seed many drivers.
 *
 * Positions in `sequence`, `chunked`, `withToolCallSequence` and `withReasoningSequence` count
 * the driver's answered calls, so a call cancelled during its latency does not use up a position.
 */
export class LlmSimConfig {
  readonly #state: Readonly<LlmSimConfigState>;

  private constructor(state: LlmSimConfigState) {
    this.#state = Object.freeze(state);
    Object.freeze(this);
  }

  /** Every answer has the text `text`. */
  static fixed(text: string): LlmSimConfig {
    if (typeof text !== 'string') throw new TypeError('LlmSimConfig.fixed expects a string');
    return LlmSimConfig.#create({ kind: 'fixed', text });
  }

  /**
   * Every answer repeats the text of the latest user message as `Echo: <text>` (as upstream's
   * llmsim), or `Echo: ` when the history has no user message. The driver searches backwards from
   * the newest message and stops at the first user message.
   */
  static echo(): LlmSimConfig {
    return LlmSimConfig.#create({ kind: 'echo' });
  }

  /** Every answer is `words` words of lorem ipsum (the same words each time). */
  static lorem(words: number): LlmSimConfig {
    if (!Number.isInteger(words) || words < 0) {
      throw new TypeError('LlmSimConfig.lorem expects a non-negative integer word count');
    }
    return LlmSimConfig.#create({ kind: 'lorem', words });
  }

  /**
   * Answer N has text N; once the list is used up it starts over from the first text (as
   * upstream's `sequence` cycles). `.withOnExhausted('repeat_last')` repeats the last text
   * instead, `'error'` fails the call. An empty list answers with empty text.
   */
  static sequence(texts: readonly string[]): LlmSimConfig {
    if (!Array.isArray(texts) || texts.some((text) => typeof text !== 'string')) {
      throw new TypeError('LlmSimConfig.sequence expects an array of strings');
    }
    return LlmSimConfig.#create({ kind: 'sequence', texts: Object.freeze([...texts]) });
  }

  /**
   * Each answer comes from `fn(request, info)`: a whole {@link LlmResponse}, a string, or a partial
   * {@link LlmSimResult}. When the result has no `toolCalls`, the config's tool calls apply.
   */
  static fromFunction(fn: LlmSimFunction): LlmSimConfig {
    if (typeof fn !== 'function')
      throw new TypeError('LlmSimConfig.fromFunction expects a function');
    return LlmSimConfig.#create({ kind: 'function', fn });
  }

  /**
   * Answer N streams exactly the chunks `answers[N]` as its `text_delta`s, and its text is their
   * concatenation (what `generate` returns too); once the list is used up the last answer
   * repeats (or as {@link withOnExhausted} says). An empty list answers with empty text.
   */
  static chunked(answers: readonly (readonly string[])[]): LlmSimConfig {
    if (
      !Array.isArray(answers) ||
      answers.some(
        (chunks) => !Array.isArray(chunks) || chunks.some((chunk) => typeof chunk !== 'string'),
      )
    ) {
      throw new TypeError('LlmSimConfig.chunked expects an array of arrays of strings');
    }
    return LlmSimConfig.#create({
      kind: 'chunked',
      answers: Object.freeze(answers.map((chunks) => Object.freeze([...chunks]))),
    });
  }

  /**
   * Replays `turns` in order, one per answer, as upstream's `scripted`: each turn is text, tool
   * calls, both, a simulated provider error or a stall ({@link LlmSimTurn}). The config's own tool
   * calls ({@link withToolCalls}, {@link withToolCallSequence}) do not apply: the turns carry them.
   * A tool call without an `id` gets `call_llmsim_<answer>_<call>` (both 0-based), as upstream.
   * Once the turns are used up the last one repeats, unless {@link withOnExhausted} says `loop`
   * or `error`. An empty list is valid to build but fails every call with `CONFIGURATION`.
   *
   * Error turns reject with `EverrunsError`: `rate_limit` → `LLM_ERROR` (details `kind:
   * 'rate_limit'`, `status: 429`, retryable), `timeout`, `transport` and `overloaded` →
   * `LLM_ERROR` (retryable, kinds as named), `authentication` → `LLM_ERROR` (`status: 401`),
   * `quota_exhausted` → `LLM_ERROR` (`kind: 'insufficient_quota'`), `unsupported_model` →
   * `MODEL_NOT_FOUND`, `invalid_response` and `other` → `LLM_ERROR` with the given message.
   * Invalid turns throw `INVALID_INPUT`.
   */
  static scripted(turns: readonly LlmSimTurn[]): LlmSimConfig {
    const parsed = parseInput(z.array(turnSchema), turns, 'LlmSimConfig.scripted');
    return LlmSimConfig.#create({
      kind: 'scripted',
      turns: Object.freeze(parsed.map((turn) => deepFreezeTurn(turn as LlmSimTurn))),
    });
  }

  /**
   * Every call fails with `EverrunsError` code `LLM_ERROR` and the message `LLM error: <message>`
   * (upstream's `LlmSimConfig::error`), to test how failures are handled. The request is still
   * recorded, and the latency still applies.
   */
  static error(message: string): LlmSimConfig {
    return LlmSimConfig.#create({
      kind: 'error',
      message: parseInput(z.string(), message, 'LlmSimConfig.error'),
    });
  }

  /**
   * Every call fails with `EverrunsError` code `MODEL_NOT_FOUND` naming the requested model
   * (upstream's `LlmSimConfig::model_not_available`).
   */
  static modelNotAvailable(): LlmSimConfig {
    return LlmSimConfig.#create({ kind: 'model_not_available' });
  }

  static #create(text: LlmSimTextSource): LlmSimConfig {
    return new LlmSimConfig({
      text,
      toolCalls: { kind: 'none' },
      reasoning: { kind: 'none' },
      streaming: Object.freeze({}),
      latencyMs: 0,
      onExhausted: undefined,
      model: undefined,
      responseId: undefined,
      usage: undefined,
    });
  }

  /** Every answer carries these tool calls (an empty list means none). */
  withToolCalls(calls: readonly LlmSimToolCall[]): LlmSimConfig {
    return this.#with({ toolCalls: { kind: 'fixed', calls: freezeCalls(calls) } });
  }

  /**
   * Answer N carries set N; an empty set means no tool calls; past the end of the list, none.
   */
  withToolCallSequence(sets: readonly (readonly LlmSimToolCall[])[]): LlmSimConfig {
    if (!Array.isArray(sets))
      throw new TypeError('withToolCallSequence expects an array of arrays');
    return this.#with({
      toolCalls: { kind: 'sequence', sets: Object.freeze(sets.map((set) => freezeCalls(set))) },
    });
  }

  /**
   * What happens once a position-based text script is used up: `repeat_last`, `loop` or `error`
   * ({@link LlmSimOnExhausted}). It applies to {@link scripted} (default `repeat_last`, as
   * upstream), {@link sequence} (default `loop`) and {@link chunked} (default `repeat_last`);
   * other forms have no end and ignore it. Invalid modes throw `INVALID_INPUT`.
   */
  withOnExhausted(mode: LlmSimOnExhausted): LlmSimConfig {
    return this.#with({
      onExhausted: parseInput(onExhaustedSchema, mode, 'LlmSimConfig.withOnExhausted'),
    });
  }

  /**
   * Waits `ms` milliseconds before answering (before the first delta when streaming). The wait
   * honours the call's `AbortSignal`: cancelling rejects with `EverrunsError` code `ABORTED`.
   */
  withLatency(ms: number): LlmSimConfig {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new TypeError('withLatency expects a non-negative number of milliseconds');
    }
    return this.#with({ latencyMs: ms });
  }

  /**
   * Every answer carries this reasoning text (one reasoning part, streamed as `reasoning_delta`s
   * before the text); an empty text means none. A `fromFunction` result's own `reasoning` wins.
   */
  withReasoning(text: string): LlmSimConfig {
    if (typeof text !== 'string') throw new TypeError('withReasoning expects a string');
    return this.#with({ reasoning: { kind: 'fixed', text } });
  }

  /** Answer N carries reasoning text N; an empty text means none; past the end, none. */
  withReasoningSequence(texts: readonly string[]): LlmSimConfig {
    if (!Array.isArray(texts) || texts.some((text) => typeof text !== 'string')) {
      throw new TypeError('withReasoningSequence expects an array of strings');
    }
    return this.#with({ reasoning: { kind: 'sequence', texts: Object.freeze([...texts]) } });
  }

  /**
   * How `stream()` cuts answers into deltas: a chunk size in characters or words, and a pause
   * between events. Replaces the streaming settings as a whole. `generate` is not affected.
   */
  withStreaming(streaming: LlmSimStreaming): LlmSimConfig {
    if (typeof streaming !== 'object' || streaming === null) {
      throw new TypeError('withStreaming expects an object');
    }
    const { chunkSize, wordsPerChunk, chunkDelayMs } = streaming;
    if (chunkSize !== undefined && !(Number.isInteger(chunkSize) && chunkSize > 0)) {
      throw new TypeError('withStreaming: chunkSize must be a positive integer');
    }
    if (wordsPerChunk !== undefined && !(Number.isInteger(wordsPerChunk) && wordsPerChunk > 0)) {
      throw new TypeError('withStreaming: wordsPerChunk must be a positive integer');
    }
    if (chunkDelayMs !== undefined && !(Number.isFinite(chunkDelayMs) && chunkDelayMs >= 0)) {
      throw new TypeError('withStreaming: chunkDelayMs must be a non-negative number');
    }
    const settings: LlmSimStreaming = {};
    if (chunkSize !== undefined) settings.chunkSize = chunkSize;
    if (wordsPerChunk !== undefined) settings.wordsPerChunk = wordsPerChunk;
    if (chunkDelayMs !== undefined) settings.chunkDelayMs = chunkDelayMs;
    return this.#with({ streaming: Object.freeze(settings) });
  }

  /** The model name reported in responses; by default the requested model's name. */
  withModel(name: string): LlmSimConfig {
    return this.#with({ model: name });
  }

  /** Every answer has this response id instead of `llmsim_<n>`. */
  withResponseId(id: string): LlmSimConfig {
    return this.#with({ responseId: id });
  }

  /** Every answer reports this usage instead of the estimate (characters / 4). */
  withUsage(usage: LlmUsage): LlmSimConfig {
    return this.#with({ usage: Object.freeze({ ...usage }) });
  }

  /** How answer texts are produced. */
  get text(): LlmSimTextSource {
    return this.#state.text;
  }

  /** How answer tool calls are chosen. */
  get toolCalls(): LlmSimToolCallSource {
    return this.#state.toolCalls;
  }

  /** How answer reasoning is chosen. */
  get reasoning(): LlmSimReasoningSource {
    return this.#state.reasoning;
  }

  /** How `stream()` cuts answers into deltas (`{}`: the defaults). */
  get streaming(): Readonly<LlmSimStreaming> {
    return this.#state.streaming;
  }

  /** Delay before each answer, in milliseconds (0: none). */
  get latencyMs(): number {
    return this.#state.latencyMs;
  }

  /**
   * What a used-up `scripted`, `sequence` or `chunked` script does: the mode set with
   * {@link withOnExhausted}, else the form's default (`loop` for `sequence`, else `repeat_last`).
   */
  get onExhausted(): LlmSimOnExhausted {
    return (
      this.#state.onExhausted ?? (this.#state.text.kind === 'sequence' ? 'loop' : 'repeat_last')
    );
  }

  /** The reported model name, when set with {@link withModel}. */
  get model(): string | undefined {
    return this.#state.model;
  }

  /** The fixed response id, when set with {@link withResponseId}. */
  get responseId(): string | undefined {
    return this.#state.responseId;
  }

  /** The fixed usage, when set with {@link withUsage}. */
  get usage(): LlmUsage | undefined {
    return this.#state.usage;
  }

  #with(changes: Partial<LlmSimConfigState>): LlmSimConfig {
    return new LlmSimConfig({ ...this.#state, ...changes });
  }
}

function freezeCalls(calls: readonly LlmSimToolCall[]): readonly LlmSimToolCall[] {
  if (!Array.isArray(calls)) throw new TypeError('Tool calls must be an array');
  return Object.freeze(
    calls.map((call) => {
      if (typeof call?.name !== 'string') throw new TypeError('A tool call needs a string name');
      return Object.freeze({ ...call });
    }),
  );
}

function deepFreezeTurn(turn: LlmSimTurn): LlmSimTurn {
  switch (turn.kind) {
    case 'tool_calls':
      return Object.freeze({ kind: turn.kind, toolCalls: freezeCalls(turn.toolCalls) });
    case 'mixed':
      return Object.freeze({
        kind: turn.kind,
        text: turn.text,
        toolCalls: freezeCalls(turn.toolCalls),
      });
    case 'error':
      return Object.freeze({ kind: turn.kind, error: Object.freeze({ ...turn.error }) });
    default:
      return Object.freeze({ ...turn });
  }
}
