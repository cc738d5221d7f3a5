import type { Message, ToolSpec } from '@everruns-ts/core';

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

  /** Tokens of a plain text. */
  text(text: string): number {
    return text.length === 0 ? 0 : this.#count(text);
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

  /** Tokens of several messages. */
  messages(messages: readonly Message[]): number {
    let total = 0;
    for (const message of messages) total += this.message(message);
    return total;
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
