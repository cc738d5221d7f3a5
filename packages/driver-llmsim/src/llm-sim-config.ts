import type {
  LlmRequest,
  LlmResponse,
  LlmStopReason,
  LlmUsage,
  ReasoningPart,
} from '@everruns-ts/core';

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

/** How the text of each answer is produced. */
export type LlmSimTextSource =
  | { kind: 'fixed'; text: string }
  | { kind: 'echo' }
  | { kind: 'lorem'; words: number }
  | { kind: 'sequence'; texts: readonly string[] }
  | { kind: 'chunked'; answers: readonly (readonly string[])[] }
  | { kind: 'function'; fn: LlmSimFunction };

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
   * Answer N has text N; once the list is used up the last text repeats. An empty list answers
   * with empty text.
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
   * repeats. An empty list answers with empty text.
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

  static #create(text: LlmSimTextSource): LlmSimConfig {
    return new LlmSimConfig({
      text,
      toolCalls: { kind: 'none' },
      reasoning: { kind: 'none' },
      streaming: Object.freeze({}),
      latencyMs: 0,
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
