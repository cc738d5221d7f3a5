import { type Message, type ToolSpec, yieldToEventLoop } from '@everruns-ts/core';

// Token counting for the compaction decision. OpenAI model families are counted with their real
// tokenizer (gpt-tokenizer: o200k_base or cl100k_base by model name); every other model gets an
// estimate of one token per four characters (rounded up), which over-counts plain English for
// most tokenizers and so errs on the side of compacting early.

/** Characters per token of the estimate used for models without a known tokenizer. */
export const ESTIMATE_CHARS_PER_TOKEN = 4;

/** Tokens added per message for its role and framing (as OpenAI's chat format costs). */
export const TOKENS_PER_MESSAGE = 4;

/** Tokens added per tool offered, for its framing. */
export const TOKENS_PER_TOOL = 8;

/** Words of the stand-in text an image part is counted as. */
const IMAGE_STAND_IN_WORDS = 200;

/** Which counter a model name gets. */
export type TokenizerName = 'o200k_base' | 'cl100k_base' | 'estimate';

/**
 * Longest piece of text handed to a tokenizer at once. A tokenizer's time grows with its input
 * (about 9 ms for 8,000 characters of random symbols here, 750 ms for a million), so a longer text
 * is counted piece by piece, cut at whitespace where it can be, and the counts added.
 */
export const TOKENIZER_PIECE_CHARS = 8_192;

/** Longest stretch the `…InSlices` counts run before they let the event loop have a turn. */
const SLICE_MS = 20;

/** Whitespace a piece may end before: the tokenizers start a new pre-token at it. */
function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** Where the piece of `text` starting at `start` ends (see {@link TOKENIZER_PIECE_CHARS}). */
function pieceEnd(text: string, start: number): number {
  const limit = start + TOKENIZER_PIECE_CHARS;
  if (limit >= text.length) return text.length;
  for (let end = limit; end > limit - 1_024; end--) {
    if (isWhitespace(text.charCodeAt(end))) return end;
  }
  // No whitespace near the limit: cut there, but not between the halves of a surrogate pair.
  const before = text.charCodeAt(limit - 1);
  return before >= 0xd800 && before <= 0xdbff ? limit - 1 : limit;
}

/**
 * The tokenizer for a model name: `o200k_base` for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, o4
 * and chatgpt-4o families; `cl100k_base` for gpt-4 and gpt-3.5 (and the text-embedding-3 and
 * ada-002 models); `estimate` otherwise. A provider prefix (`openai/gpt-4o`) is ignored.
 */
export function tokenizerFor(model: string): TokenizerName {
  const name = model.toLowerCase().split('/').pop() ?? '';
  if (/^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss)/.test(name)) {
    return 'o200k_base';
  }
  if (/^(gpt-4|gpt-3\.5|text-embedding-3|text-embedding-ada-002)/.test(name)) return 'cl100k_base';
  return 'estimate';
}

type CountFunction = (text: string) => number;

const loaded = new Map<TokenizerName, Promise<CountFunction>>();

async function loadCounter(name: TokenizerName): Promise<CountFunction> {
  if (name === 'o200k_base') {
    const { countTokens } = await import('gpt-tokenizer/encoding/o200k_base');
    return (text) => countTokens(text);
  }
  if (name === 'cl100k_base') {
    const { countTokens } = await import('gpt-tokenizer/encoding/cl100k_base');
    return (text) => countTokens(text);
  }
  return estimateTokens;
}

/** The estimate: `ceil(characters / 4)`. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / ESTIMATE_CHARS_PER_TOKEN);
}

/**
 * Counts the tokens of a context the way the compaction capability does: the system prompt, each
 * message (its text, reasoning, tool calls as name plus JSON arguments, tool results, plus
 * {@link TOKENS_PER_MESSAGE}) and each tool spec (name, description, JSON Schema, plus
 * {@link TOKENS_PER_TOOL}). A message object's count is kept while the object lives.
 */
export class TokenCounter {
  /** Which tokenizer this counter uses. */
  readonly tokenizer: TokenizerName;
  readonly #count: CountFunction;
  readonly #messageCache = new WeakMap<Message, number>();
  /** When the current slice of an `…InSlices` count began (see `#breathe`). */
  #sliceStarted: number | undefined;

  private constructor(tokenizer: TokenizerName, count: CountFunction) {
    this.tokenizer = tokenizer;
    this.#count = count;
  }

  /** The counter for a model name (see {@link tokenizerFor}); the tokenizer loads once. */
  static async forModel(model: string): Promise<TokenCounter> {
    const name = tokenizerFor(model);
    let counter = loaded.get(name);
    if (!counter) {
      counter = loadCounter(name);
      loaded.set(name, counter);
    }
    return new TokenCounter(name, await counter);
  }

  /**
   * Tokens of a plain text. A text longer than {@link TOKENIZER_PIECE_CHARS} is counted piece by
   * piece in one go; {@link textInSlices} gives the same count without holding the event loop.
   */
  text(text: string): number {
    let total = 0;
    for (const piece of this.#pieces(text)) total += this.#count(piece);
    return total;
  }

  /**
   * {@link text}'s count, letting the event loop have a turn whenever counting has run for 20 ms
   * (a tokenizer takes most of a second on a megabyte of text that is not words). Throws the
   * signal's reason once it is aborted.
   */
  async textInSlices(text: string, signal?: AbortSignal): Promise<number> {
    let total = 0;
    for (const piece of this.#pieces(text)) {
      await this.#breathe(signal);
      total += this.#count(piece);
    }
    return total;
  }

  /** The pieces {@link text} counts: the text whole when short (or estimated), else cut. */
  *#pieces(text: string): Generator<string> {
    if (text.length === 0) return;
    if (this.tokenizer === 'estimate' || text.length <= TOKENIZER_PIECE_CHARS) {
      yield text;
      return;
    }
    for (let start = 0; start < text.length; ) {
      const end = pieceEnd(text, start);
      yield text.slice(start, end);
      start = end;
    }
  }

  /** Tokens of one message (see the class comment). */
  message(message: Message): number {
    const cached = this.#messageCache.get(message);
    if (cached !== undefined) return cached;
    let total = TOKENS_PER_MESSAGE;
    for (const part of message.content) total += this.text(partText(part));
    this.#messageCache.set(message, total);
    return total;
  }

  /** {@link message}'s count, counted as {@link textInSlices} counts. */
  async messageInSlices(message: Message, signal?: AbortSignal): Promise<number> {
    const cached = this.#messageCache.get(message);
    if (cached !== undefined) return cached;
    let total = TOKENS_PER_MESSAGE;
    for (const part of message.content) total += await this.textInSlices(partText(part), signal);
    this.#messageCache.set(message, total);
    return total;
  }

  /** Tokens of several messages. */
  messages(messages: readonly Message[]): number {
    let total = 0;
    for (const message of messages) total += this.message(message);
    return total;
  }

  /** Each message's count, in order, counted as {@link textInSlices} counts. */
  async eachMessageInSlices(messages: readonly Message[], signal?: AbortSignal): Promise<number[]> {
    const counts: number[] = [];
    for (const message of messages) counts.push(await this.messageInSlices(message, signal));
    return counts;
  }

  /** When the slice that started last has run 20 ms, a turn for the event loop. */
  async #breathe(signal: AbortSignal | undefined): Promise<void> {
    if (this.#sliceStarted === undefined) this.#sliceStarted = performance.now();
    else if (performance.now() - this.#sliceStarted >= SLICE_MS) {
      await yieldToEventLoop();
      this.#sliceStarted = performance.now();
    }
    signal?.throwIfAborted();
  }

  /** Tokens of the tool specs offered. */
  tools(tools: readonly ToolSpec[]): number {
    let total = 0;
    for (const tool of tools) {
      total +=
        TOKENS_PER_TOOL +
        this.text(tool.name) +
        this.text(tool.description) +
        this.text(JSON.stringify(tool.inputSchema ?? {}));
    }
    return total;
  }

  /** Tokens of a whole request: system prompt, messages and tools. */
  context(request: {
    systemPrompt: string;
    messages: readonly Message[];
    tools?: readonly ToolSpec[];
  }): number {
    return (
      this.text(request.systemPrompt) +
      this.messages(request.messages) +
      this.tools(request.tools ?? [])
    );
  }
}

/** The text of a content part that the model is sent. */
export function partText(part: Message['content'][number]): string {
  switch (part.type) {
    case 'text':
      return part.text;
    case 'reasoning':
      return `${part.text}${part.redactedData ?? ''}`;
    case 'tool_call':
      return `${part.name} ${JSON.stringify(part.arguments ?? {})}`;
    case 'tool_result':
      return part.content;
    case 'image':
      // Images are priced per tile by providers; a fixed stand-in keeps them counted.
      return ' image'.repeat(IMAGE_STAND_IN_WORDS);
  }
}
