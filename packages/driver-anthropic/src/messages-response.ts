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
 * Parses the JSON text a streamed `tool_use` block accumulated. Empty text means "no arguments"
 * (`{}`); text that is not JSON is returned as the raw string.
 */
export function parseToolInput(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Maps a Messages API `stop_reason`. */
export function mapStopReason(reason: unknown, hasToolCalls: boolean): LlmStopReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return hasToolCalls ? 'tool_calls' : 'end_turn';
    case 'tool_use':
      return 'tool_calls';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'max_tokens';
    case 'refusal':
      return 'content_filter';
    default:
      return hasToolCalls ? 'tool_calls' : 'other';
  }
}

/** Reads `{ type: 'error', error: { type, message } }`, the Messages API error body. */
export function parseMessagesErrorBody(body: unknown): ProviderErrorBody {
  if (!isObject(body)) return {};
  const error = isObject(body.error) ? body.error : body;
  return {
    type: stringOrUndefined(error.type),
    message: stringOrUndefined(error.message),
  };
}

/**
 * Usage as one number per direction: input counts the uncached, cache-written and cache-read
 * prompt tokens together (comparable with OpenAI's `prompt_tokens`).
 */
function usageOf(value: unknown, previous?: LlmResponse['usage']): LlmResponse['usage'] {
  if (!isObject(value)) return previous ?? { inputTokens: 0, outputTokens: 0 };
  const hasInput =
    value.input_tokens !== undefined ||
    value.cache_creation_input_tokens !== undefined ||
    value.cache_read_input_tokens !== undefined;
  const inputTokens =
    count(value.input_tokens) +
    count(value.cache_creation_input_tokens) +
    count(value.cache_read_input_tokens);
  return {
    inputTokens: hasInput ? inputTokens : (previous?.inputTokens ?? 0),
    outputTokens:
      value.output_tokens !== undefined
        ? count(value.output_tokens)
        : (previous?.outputTokens ?? 0),
  };
}

/** Maps a whole (non-streamed) Messages API response. */
export function fromMessage(body: Json): LlmResponse {
  let text = '';
  const toolCalls: ToolCall[] = [];
  const content = Array.isArray(body.content) ? body.content : [];
  for (const entry of content) {
    if (!isObject(entry)) continue;
    if (entry.type === 'text') text += stringOrUndefined(entry.text) ?? '';
    else if (entry.type === 'tool_use') {
      toolCalls.push({
        id: stringOrUndefined(entry.id) ?? '',
        name: stringOrUndefined(entry.name) ?? '',
        arguments: entry.input ?? {},
      });
    }
  }
  const response: LlmResponse = {
    text,
    toolCalls,
    usage: usageOf(body.usage),
    stopReason: mapStopReason(body.stop_reason, toolCalls.length > 0),
  };
  const id = stringOrUndefined(body.id);
  if (id) response.responseId = id;
  const model = stringOrUndefined(body.model);
  if (model) response.model = model;
  return response;
}

interface PartialToolCall {
  /** Position among the answer's tool calls, the `index` of its stream deltas. */
  toolIndex: number;
  id: string;
  name: string;
  /** Input given whole in `content_block_start` (normally `{}`). */
  startInput: unknown;
  inputJson: string;
}

/**
 * Folds Messages API stream events (`message_start`, `content_block_start`,
 * `content_block_delta`, `message_delta`, `message_stop`) into deltas and, at the end, the whole
 * answer. Tool calls are numbered in the order their blocks start.
 */
export class MessagesStreamAssembler {
  #text = '';
  readonly #blocks = new Map<number, PartialToolCall>();
  #toolCount = 0;
  #stopReason: unknown;
  #usage: LlmResponse['usage'] = { inputTokens: 0, outputTokens: 0 };
  #responseId: string | undefined;
  #model: string | undefined;
  #stopped = false;

  /** Whether `message_stop` has arrived. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Takes one event (its `type` and parsed data) and returns the deltas it carries. */
  accept(type: string, data: Json): LlmStreamEvent[] {
    switch (type) {
      case 'message_start': {
        const message = isObject(data.message) ? data.message : {};
        this.#responseId = stringOrUndefined(message.id);
        this.#model = stringOrUndefined(message.model);
        this.#usage = usageOf(message.usage);
        return [];
      }
      case 'content_block_start': {
        const index = count(data.index);
        const block = isObject(data.content_block) ? data.content_block : {};
        if (block.type === 'text') {
          const text = stringOrUndefined(block.text) ?? '';
          if (text === '') return [];
          this.#text += text;
          return [{ type: 'text_delta', text }];
        }
        if (block.type === 'tool_use') {
          const partial: PartialToolCall = {
            toolIndex: this.#toolCount,
            id: stringOrUndefined(block.id) ?? '',
            name: stringOrUndefined(block.name) ?? '',
            startInput: block.input,
            inputJson: '',
          };
          this.#toolCount += 1;
          this.#blocks.set(index, partial);
          return [
            {
              type: 'tool_call_delta',
              index: partial.toolIndex,
              id: partial.id,
              name: partial.name,
              argumentsDelta: '',
            },
          ];
        }
        return [];
      }
      case 'content_block_delta': {
        const delta = isObject(data.delta) ? data.delta : {};
        if (delta.type === 'text_delta') {
          const text = stringOrUndefined(delta.text) ?? '';
          if (text === '') return [];
          this.#text += text;
          return [{ type: 'text_delta', text }];
        }
        if (delta.type === 'input_json_delta') {
          const partial = this.#blocks.get(count(data.index));
          const json = stringOrUndefined(delta.partial_json) ?? '';
          if (!partial) return [];
          partial.inputJson += json;
          return [{ type: 'tool_call_delta', index: partial.toolIndex, argumentsDelta: json }];
        }
        // thinking_delta, signature_delta, citations_delta: not part of the answer we keep.
        return [];
      }
      case 'message_delta': {
        const delta = isObject(data.delta) ? data.delta : {};
        if (delta.stop_reason !== undefined && delta.stop_reason !== null) {
          this.#stopReason = delta.stop_reason;
        }
        this.#usage = usageOf(data.usage, this.#usage);
        return [];
      }
      case 'message_stop':
        this.#stopped = true;
        return [];
      default:
        // ping, content_block_stop and event types added later.
        return [];
    }
  }

  /** The whole answer, once `message_stop` has arrived. */
  response(): LlmResponse {
    const toolCalls: ToolCall[] = [...this.#blocks.values()]
      .sort((left, right) => left.toolIndex - right.toolIndex)
      .map((call) => ({
        id: call.id,
        name: call.name,
        arguments:
          call.inputJson === '' && isObject(call.startInput)
            ? call.startInput
            : parseToolInput(call.inputJson),
      }));
    const response: LlmResponse = {
      text: this.#text,
      toolCalls,
      usage: this.#usage,
      stopReason: mapStopReason(this.#stopReason, toolCalls.length > 0),
    };
    if (this.#responseId) response.responseId = this.#responseId;
    if (this.#model) response.model = this.#model;
    return response;
  }
}
