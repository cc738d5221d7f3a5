import type { LlmResponse, LlmStopReason, LlmStreamEvent, ToolCall } from '@everruns-ts/core';
import type { ProviderErrorBody } from '@everruns-ts/driver-http';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * Parses a tool call's argument text. Empty text means "no arguments" (`{}`); text that is not
 * JSON is returned as the raw string, which the act step reports to the model as a tool error.
 */
export function parseToolArguments(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

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
  if (!isObject(body)) return {};
  const error = isObject(body.error) ? body.error : body;
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

function usageOf(value: unknown): LlmResponse['usage'] {
  if (!isObject(value)) return { inputTokens: 0, outputTokens: 0 };
  return { inputTokens: count(value.prompt_tokens), outputTokens: count(value.completion_tokens) };
}

let generatedIds = 0;

/** An id for a tool call a (non-OpenAI) server sent without one. */
function fallbackToolCallId(index: number): string {
  generatedIds += 1;
  return `call_${Date.now().toString(36)}_${generatedIds}_${index}`;
}

/** Maps a whole (non-streamed) chat completion; `undefined` when it has no choice. */
export function fromChatCompletion(body: Json): LlmResponse | undefined {
  const choices = Array.isArray(body.choices) ? body.choices : [];
  const choice = choices[0];
  if (!isObject(choice)) return undefined;
  const message = isObject(choice.message) ? choice.message : {};
  const toolCalls: ToolCall[] = [];
  const wireCalls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  wireCalls.forEach((call, index) => {
    if (!isObject(call)) return;
    const fn = isObject(call.function) ? call.function : {};
    const id = stringOrUndefined(call.id);
    toolCalls.push({
      id: id && id !== '' ? id : fallbackToolCallId(index),
      name: stringOrUndefined(fn.name) ?? '',
      arguments: parseToolArguments(stringOrUndefined(fn.arguments) ?? ''),
    });
  });
  const response: LlmResponse = {
    text: stringOrUndefined(message.content) ?? '',
    toolCalls,
    usage: usageOf(body.usage),
    stopReason: mapFinishReason(choice.finish_reason, toolCalls.length > 0),
  };
  const id = stringOrUndefined(body.id);
  if (id) response.responseId = id;
  const model = stringOrUndefined(body.model);
  if (model) response.model = model;
  return response;
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
  readonly #toolCalls = new Map<number, PartialToolCall>();
  #finishReason: unknown;
  #usage: LlmResponse['usage'] = { inputTokens: 0, outputTokens: 0 };
  #responseId: string | undefined;
  #model: string | undefined;

  /** Whether a choice has reported its `finish_reason`. */
  get finished(): boolean {
    return this.#finishReason !== undefined && this.#finishReason !== null;
  }

  /** Takes one chunk and returns the deltas it carries. */
  accept(chunk: Json): LlmStreamEvent[] {
    const events: LlmStreamEvent[] = [];
    this.#responseId ??= stringOrUndefined(chunk.id) || undefined;
    this.#model ??= stringOrUndefined(chunk.model) || undefined;
    if (isObject(chunk.usage)) this.#usage = usageOf(chunk.usage);
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (const choice of choices) {
      if (!isObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue;
      const delta = isObject(choice.delta) ? choice.delta : {};
      const content = stringOrUndefined(delta.content);
      if (content) {
        this.#text += content;
        events.push({ type: 'text_delta', text: content });
      }
      const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls : [];
      for (const call of calls) {
        if (!isObject(call)) continue;
        const index = typeof call.index === 'number' ? call.index : this.#toolCalls.size;
        const fn = isObject(call.function) ? call.function : {};
        let partial = this.#toolCalls.get(index);
        if (!partial) {
          partial = { id: undefined, name: '', arguments: '' };
          this.#toolCalls.set(index, partial);
        }
        const id = stringOrUndefined(call.id);
        const name = stringOrUndefined(fn.name);
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
      if (choice.finish_reason !== undefined && choice.finish_reason !== null) {
        this.#finishReason = choice.finish_reason;
      }
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
        arguments: parseToolArguments(call.arguments),
      }));
    const response: LlmResponse = {
      text: this.#text,
      toolCalls,
      usage: this.#usage,
      stopReason: mapFinishReason(this.#finishReason, toolCalls.length > 0),
    };
    if (this.#responseId) response.responseId = this.#responseId;
    if (this.#model) response.model = this.#model;
    return response;
  }
}
