import type {
  LlmResponse,
  LlmStopReason,
  LlmStreamEvent,
  ReasoningPart,
  ToolCall,
} from '@everruns-ts/core';
import {
  isJsonObject,
  type JsonObject,
  type ProviderErrorBody,
  parseToolArgumentsText,
  protocolViolation,
  type StreamProtocol,
  stringOrUndefined,
  tokenCount,
  toLlmResponse,
} from '@everruns-ts/driver-http';

/**
 * Maps a Chat Completions `finish_reason`. Some compatible servers answer `stop` although the
 * message carries tool calls; that is reported as `tool_calls`.
 */
export function mapFinishReason(reason: unknown, hasToolCalls: boolean): LlmStopReason {
  switch (reason) {
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'stop':
      return hasToolCalls ? 'tool_calls' : 'end_turn';
    case 'length':
      return 'max_tokens';
    case 'content_filter':
      return 'content_filter';
    default:
      return hasToolCalls ? 'tool_calls' : 'other';
  }
}

/** Reads `{ error: { message, type, code } }`, the error body of OpenAI and most compatibles. */
export function parseChatErrorBody(body: unknown): ProviderErrorBody {
  if (!isJsonObject(body)) return {};
  const error = isJsonObject(body.error) ? body.error : body;
  const code = error.code;
  return {
    type: stringOrUndefined(error.type),
    code: typeof code === 'string' || typeof code === 'number' ? String(code) : undefined,
    message:
      stringOrUndefined(error.message) ??
      (typeof body.error === 'string' ? body.error : undefined) ??
      stringOrUndefined(body.message),
  };
}

/**
 * The pieces of a message or delta: answer text, reasoning text (kept out of the answer) and
 * refusal text. `content` may be a string or an array of parts (Mistral's magistral models send
 * `[{ type: 'thinking', thinking: [{ type: 'text', text }] }, { type: 'text', text }]`); the
 * reasoning may also come as `reasoning_content` (DeepSeek, Qwen, GLM) or `reasoning`
 * (OpenRouter, Groq); a refusal as `refusal`, a string.
 */
export interface MessagePieces {
  text: string;
  reasoning: string;
  refusal: string;
}

/** The text of a thinking part's `thinking`: a string or an array of text parts. */
function thinkingText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return '';
  return value
    .map((part) =>
      typeof part === 'string'
        ? part
        : isJsonObject(part)
          ? (stringOrUndefined(part.text) ?? '')
          : '',
    )
    .join('');
}

/** Reads the answer, reasoning and refusal out of a message or a streamed delta. */
export function messagePieces(message: JsonObject): MessagePieces {
  const pieces: MessagePieces = { text: '', reasoning: '', refusal: '' };
  const content = message.content;
  if (typeof content === 'string') pieces.text += content;
  else if (Array.isArray(content)) {
    for (const part of content) {
      if (typeof part === 'string') {
        pieces.text += part;
        continue;
      }
      if (!isJsonObject(part)) continue;
      switch (part.type) {
        case 'text':
        case 'output_text':
          pieces.text += stringOrUndefined(part.text) ?? '';
          break;
        case 'thinking':
        case 'reasoning':
          pieces.reasoning +=
            thinkingText(part.thinking) || thinkingText(part.reasoning) || thinkingText(part.text);
          break;
        case 'refusal':
          pieces.refusal += stringOrUndefined(part.refusal) ?? '';
          break;
        default:
          // Images, audio and part types added later are not part of a text answer.
          break;
      }
    }
  }
  pieces.reasoning +=
    stringOrUndefined(message.reasoning_content) ?? stringOrUndefined(message.reasoning) ?? '';
  pieces.refusal += stringOrUndefined(message.refusal) ?? '';
  return pieces;
}

/** Whether a `finish_reason` is set (some servers send `""` for "not yet"). */
function isFinishReason(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

/** A token count above zero, else `undefined` (details are reported only when they count). */
function presentCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * Maps a Chat Completions `usage`. Cache reads come from `prompt_tokens_details.cached_tokens`
 * (OpenAI, Azure, xAI, Groq) or DeepSeek's `prompt_cache_hit_tokens`; reasoning tokens from
 * `completion_tokens_details.reasoning_tokens`. A detail the server does not send, or sends as 0,
 * stays absent.
 */
export function usageOf(value: unknown): LlmResponse['usage'] {
  if (!isJsonObject(value)) return { inputTokens: 0, outputTokens: 0 };
  const usage: LlmResponse['usage'] = {
    inputTokens: tokenCount(value.prompt_tokens),
    outputTokens: tokenCount(value.completion_tokens),
  };
  const promptDetails = isJsonObject(value.prompt_tokens_details)
    ? value.prompt_tokens_details
    : {};
  const completionDetails = isJsonObject(value.completion_tokens_details)
    ? value.completion_tokens_details
    : {};
  const cached =
    presentCount(promptDetails.cached_tokens) ?? presentCount(value.prompt_cache_hit_tokens);
  if (cached !== undefined) usage.cachedInputTokens = cached;
  const reasoning = presentCount(completionDetails.reasoning_tokens);
  if (reasoning !== undefined) usage.reasoningTokens = reasoning;
  return usage;
}

let generatedIds = 0;

/** An id for a tool call a (non-OpenAI) server sent without one. */
function fallbackToolCallId(index: number): string {
  generatedIds += 1;
  return `call_${Date.now().toString(36)}_${generatedIds}_${index}`;
}

/** Maps a whole (non-streamed) chat completion; `undefined` when it has no choice. */
export function fromChatCompletion(body: JsonObject): LlmResponse | undefined {
  const choices = Array.isArray(body.choices) ? body.choices : [];
  const choice = choices[0];
  if (!isJsonObject(choice)) return undefined;
  const message = isJsonObject(choice.message) ? choice.message : {};
  const toolCalls: ToolCall[] = [];
  const wireCalls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  wireCalls.forEach((call, index) => {
    if (!isJsonObject(call)) return;
    const fn = isJsonObject(call.function) ? call.function : {};
    const id = stringOrUndefined(call.id);
    const name = stringOrUndefined(fn.name) ?? '';
    if (name === '') throw protocolViolation(`tool call ${index} has no function name`);
    toolCalls.push({
      id: id && id !== '' ? id : fallbackToolCallId(index),
      name,
      arguments: parseToolArgumentsText(stringOrUndefined(fn.arguments) ?? ''),
    });
  });
  const pieces = messagePieces(message);
  const refused = pieces.refusal !== '';
  return toLlmResponse({
    text: pieces.text + pieces.refusal,
    toolCalls,
    usage: usageOf(body.usage ?? (isJsonObject(body.x_groq) ? body.x_groq.usage : undefined)),
    stopReason: refused
      ? 'content_filter'
      : mapFinishReason(choice.finish_reason, toolCalls.length > 0),
    responseId: stringOrUndefined(body.id),
    model: stringOrUndefined(body.model),
    reasoning: reasoningParts(pieces.reasoning),
  });
}

/** The reasoning text as the response's reasoning parts: one part, or none when empty. */
function reasoningParts(text: string): ReasoningPart[] | undefined {
  return text === '' ? undefined : [{ type: 'reasoning', text }];
}

interface PartialToolCall {
  id: string | undefined;
  name: string;
  arguments: string;
}

/**
 * Folds streamed `chat.completion.chunk` objects into deltas and, at the end, the whole answer.
 * Tool call pieces are assembled per `index`, so parallel calls may interleave.
 */
export class ChatCompletionStreamAssembler {
  #text = '';
  #reasoning = '';
  #refused = false;
  readonly #toolCalls = new Map<number, PartialToolCall>();
  #finishReason: unknown;
  #usage: LlmResponse['usage'] = { inputTokens: 0, outputTokens: 0 };
  #responseId: string | undefined;
  #model: string | undefined;

  /** Whether a choice has reported its `finish_reason`. */
  get finished(): boolean {
    return isFinishReason(this.#finishReason);
  }

  /**
   * The reasoning text streamed so far (`reasoning_content`, `reasoning`, thinking parts). It is
   * never part of the answer's text; it is streamed as `reasoning_delta` and kept in the
   * response's `reasoning`.
   */
  get reasoning(): string {
    return this.#reasoning;
  }

  /** Takes one chunk and returns the deltas it carries. */
  accept(chunk: JsonObject): LlmStreamEvent[] {
    const events: LlmStreamEvent[] = [];
    this.#responseId ??= stringOrUndefined(chunk.id) || undefined;
    this.#model ??= stringOrUndefined(chunk.model) || undefined;
    if (isJsonObject(chunk.usage)) this.#usage = usageOf(chunk.usage);
    // Groq puts the usage of a stream under `x_groq` in its last chunk.
    else if (isJsonObject(chunk.x_groq) && isJsonObject(chunk.x_groq.usage)) {
      this.#usage = usageOf(chunk.x_groq.usage);
    }
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (const choice of choices) {
      if (!isJsonObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue;
      // Gemini's compatible endpoint puts the whole message in `message` on some chunks.
      const delta = isJsonObject(choice.delta)
        ? choice.delta
        : isJsonObject(choice.message)
          ? choice.message
          : {};
      const pieces = messagePieces(delta);
      if (pieces.reasoning !== '') {
        this.#reasoning += pieces.reasoning;
        events.push({ type: 'reasoning_delta', text: pieces.reasoning });
      }
      // A refusal is the visible answer: its text is streamed and kept as the answer's text.
      const text = pieces.text + pieces.refusal;
      if (pieces.refusal !== '') this.#refused = true;
      if (text) {
        this.#text += text;
        events.push({ type: 'text_delta', text });
      }
      const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls : [];
      for (const call of calls) {
        if (!isJsonObject(call)) continue;
        const fn = isJsonObject(call.function) ? call.function : {};
        const id = stringOrUndefined(call.id);
        const name = stringOrUndefined(fn.name);
        // Without an index, a piece with an id or a name starts a call; others continue the last.
        const index =
          typeof call.index === 'number'
            ? call.index
            : id || name
              ? this.#toolCalls.size
              : Math.max(0, this.#toolCalls.size - 1);
        let partial = this.#toolCalls.get(index);
        if (!partial) {
          if (!name) {
            throw protocolViolation(`the first piece of tool call ${index} has no function name`);
          }
          partial = { id: undefined, name: '', arguments: '' };
          this.#toolCalls.set(index, partial);
        }
        const argumentsDelta = stringOrUndefined(fn.arguments) ?? '';
        // Ids and names arrive once (some servers repeat them): set, never append.
        if (id && partial.id === undefined) partial.id = id;
        if (name && partial.name === '') partial.name = name;
        partial.arguments += argumentsDelta;
        const event: LlmStreamEvent = { type: 'tool_call_delta', index, argumentsDelta };
        if (id) event.id = id;
        if (name) event.name = name;
        events.push(event);
      }
      if (isFinishReason(choice.finish_reason)) this.#finishReason = choice.finish_reason;
    }
    return events;
  }

  /** The whole answer, once the stream is complete. */
  response(): LlmResponse {
    const toolCalls: ToolCall[] = [...this.#toolCalls.entries()]
      .sort(([left], [right]) => left - right)
      .map(([index, call]) => ({
        id: call.id ?? fallbackToolCallId(index),
        name: call.name,
        arguments: parseToolArgumentsText(call.arguments),
      }));
    return toLlmResponse({
      text: this.#text,
      toolCalls,
      usage: this.#usage,
      stopReason: this.#refused
        ? 'content_filter'
        : mapFinishReason(this.#finishReason, toolCalls.length > 0),
      responseId: this.#responseId,
      model: this.#model,
      reasoning: reasoningParts(this.#reasoning),
    });
  }
}

/**
 * How a Chat Completions event stream is read: it ends with `data: [DONE]` (or, from servers that
 * send none, once a choice has finished); an event with an `error` member, or of SSE type `error`,
 * is a provider error.
 */
export function chatCompletionStreamProtocol(
  assembler = new ChatCompletionStreamAssembler(),
): StreamProtocol {
  // `finish_reason` may come with the last content (Gemini), alone in a chunk with an empty
  // delta, before a usage chunk whose `choices` is empty (OpenAI's include_usage), or with
  // Groq's `x_groq` usage; the stream is complete once any choice has finished.
  return {
    doneMarker: '[DONE]',
    errorOf: (chunk, event) =>
      chunk.error !== undefined || event === 'error' ? parseChatErrorBody(chunk) : undefined,
    isRetryableError: (type) => /server|overload|rate_limit|timeout/.test(type),
    accept: (chunk) => assembler.accept(chunk),
    isComplete: () => assembler.finished,
    response: () => assembler.response(),
  };
}
