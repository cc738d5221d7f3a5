import type { LlmResponse, LlmStopReason, LlmStreamEvent, ToolCall } from '@everruns-ts/core';
import {
  isJsonObject,
  type JsonObject,
  type ProviderErrorBody,
  parseToolArgumentsText,
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

function usageOf(value: unknown): LlmResponse['usage'] {
  if (!isJsonObject(value)) return { inputTokens: 0, outputTokens: 0 };
  return {
    inputTokens: tokenCount(value.prompt_tokens),
    outputTokens: tokenCount(value.completion_tokens),
  };
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
    toolCalls.push({
      id: id && id !== '' ? id : fallbackToolCallId(index),
      name: stringOrUndefined(fn.name) ?? '',
      arguments: parseToolArgumentsText(stringOrUndefined(fn.arguments) ?? ''),
    });
  });
  return toLlmResponse({
    text: stringOrUndefined(message.content) ?? '',
    toolCalls,
    usage: usageOf(body.usage),
    stopReason: mapFinishReason(choice.finish_reason, toolCalls.length > 0),
    responseId: stringOrUndefined(body.id),
    model: stringOrUndefined(body.model),
  });
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
  accept(chunk: JsonObject): LlmStreamEvent[] {
    const events: LlmStreamEvent[] = [];
    this.#responseId ??= stringOrUndefined(chunk.id) || undefined;
    this.#model ??= stringOrUndefined(chunk.model) || undefined;
    if (isJsonObject(chunk.usage)) this.#usage = usageOf(chunk.usage);
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (const choice of choices) {
      if (!isJsonObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue;
      const delta = isJsonObject(choice.delta) ? choice.delta : {};
      const content = stringOrUndefined(delta.content);
      if (content) {
        this.#text += content;
        events.push({ type: 'text_delta', text: content });
      }
      const calls = Array.isArray(delta.tool_calls) ? delta.tool_calls : [];
      for (const call of calls) {
        if (!isJsonObject(call)) continue;
        const index = typeof call.index === 'number' ? call.index : this.#toolCalls.size;
        const fn = isJsonObject(call.function) ? call.function : {};
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
        arguments: parseToolArgumentsText(call.arguments),
      }));
    return toLlmResponse({
      text: this.#text,
      toolCalls,
      usage: this.#usage,
      stopReason: mapFinishReason(this.#finishReason, toolCalls.length > 0),
      responseId: this.#responseId,
      model: this.#model,
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
