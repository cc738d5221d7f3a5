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
import { type FollowingItem, reasoningPartOf } from './responses-reasoning.js';

/**
 * Reads a Responses API error: an HTTP error body `{ error: { message, type, code } }`, an
 * `error` stream event `{ type: 'error', code, message }` or a failed response's
 * `{ error: { code, message } }`. The code stands in for the type where there is none (the type
 * of an `error` event is the event's own name).
 */
export function parseResponsesErrorBody(body: unknown): ProviderErrorBody {
  if (!isJsonObject(body)) return {};
  const error = isJsonObject(body.error) ? body.error : body;
  const code = error.code;
  const codeText = typeof code === 'string' || typeof code === 'number' ? String(code) : undefined;
  const type = stringOrUndefined(error.type);
  return {
    type: type !== undefined && type !== 'error' ? type : codeText,
    code: codeText,
    message:
      stringOrUndefined(error.message) ??
      (typeof body.error === 'string' ? body.error : undefined) ??
      stringOrUndefined(body.message),
  };
}

/** A token count above zero, else `undefined` (details are reported only when they count). */
function presentCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * Maps a Responses `usage`: `input_tokens`, `output_tokens`, cache reads from
 * `input_tokens_details.cached_tokens`, reasoning from `output_tokens_details.reasoning_tokens`.
 */
export function responsesUsageOf(value: unknown): LlmResponse['usage'] {
  if (!isJsonObject(value)) return { inputTokens: 0, outputTokens: 0 };
  const usage: LlmResponse['usage'] = {
    inputTokens: tokenCount(value.input_tokens),
    outputTokens: tokenCount(value.output_tokens),
  };
  const inputDetails = isJsonObject(value.input_tokens_details) ? value.input_tokens_details : {};
  const outputDetails = isJsonObject(value.output_tokens_details)
    ? value.output_tokens_details
    : {};
  const cached = presentCount(inputDetails.cached_tokens);
  if (cached !== undefined) usage.cachedInputTokens = cached;
  const reasoning = presentCount(outputDetails.reasoning_tokens);
  if (reasoning !== undefined) usage.reasoningTokens = reasoning;
  return usage;
}

/**
 * Maps a response's `status` (and `incomplete_details.reason`): `completed` → `tool_calls` when
 * it called tools, else `end_turn`; `incomplete` for `max_output_tokens` → `max_tokens`, for
 * `content_filter` → `content_filter`; anything else → `other`.
 */
export function mapResponsesStatus(response: JsonObject, hasToolCalls: boolean): LlmStopReason {
  const status = response.status;
  if (status === 'incomplete') {
    const details = isJsonObject(response.incomplete_details) ? response.incomplete_details : {};
    if (details.reason === 'max_output_tokens') return 'max_tokens';
    if (details.reason === 'content_filter') return 'content_filter';
    return 'other';
  }
  if (hasToolCalls) return 'tool_calls';
  return status === 'completed' || status === undefined ? 'end_turn' : 'other';
}

let generatedIds = 0;

/** An id for a function call a (compatible) server sent without a `call_id`. */
function fallbackCallId(index: number): string {
  generatedIds += 1;
  return `call_${Date.now().toString(36)}_${generatedIds}_${index}`;
}

/** Joined texts of a list of `{ text }` parts (summary or reasoning content). */
function partTexts(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  const texts: string[] = [];
  for (const part of value) {
    if (isJsonObject(part) && typeof part.text === 'string' && part.text !== '') {
      texts.push(part.text);
    }
  }
  return texts;
}

/**
 * Reads the output items of a response (in order) into the answer's pieces: text and refusal of
 * `message` items, `function_call` items as tool calls, `reasoning` items as reasoning parts
 * (see `responses-reasoning.ts`); other item types (built-in tools) are skipped.
 */
export function outputPieces(output: readonly unknown[]): {
  text: string;
  refused: boolean;
  toolCalls: ToolCall[];
  reasoning: ReasoningPart[];
} {
  let text = '';
  let refused = false;
  const toolCalls: ToolCall[] = [];
  const reasoningItems: Array<{
    id: string;
    text: string;
    encryptedContent?: string | undefined;
    following: FollowingItem[];
  }> = [];
  const current = () => reasoningItems.at(-1);
  output.forEach((item, index) => {
    if (!isJsonObject(item)) return;
    const id = stringOrUndefined(item.id);
    switch (item.type) {
      case 'message': {
        for (const part of Array.isArray(item.content) ? item.content : []) {
          if (!isJsonObject(part)) continue;
          if (part.type === 'output_text') text += stringOrUndefined(part.text) ?? '';
          else if (part.type === 'refusal') {
            const refusal = stringOrUndefined(part.refusal) ?? '';
            text += refusal;
            refused = true;
          }
        }
        if (id) current()?.following.push({ type: 'message', id });
        break;
      }
      case 'function_call': {
        const name = stringOrUndefined(item.name) ?? '';
        if (name === '') throw protocolViolation(`function call item ${index} has no name`);
        const callId = stringOrUndefined(item.call_id) || fallbackCallId(index);
        toolCalls.push({
          id: callId,
          name,
          arguments: parseToolArgumentsText(stringOrUndefined(item.arguments) ?? ''),
        });
        if (id) current()?.following.push({ type: 'function_call', id, callId });
        break;
      }
      case 'reasoning': {
        const summary = partTexts(item.summary);
        const texts = summary.length > 0 ? summary : partTexts(item.content);
        const encrypted = stringOrUndefined(item.encrypted_content);
        if (!id && texts.length === 0) break;
        reasoningItems.push({
          id: id ?? '',
          text: texts.join('\n\n'),
          encryptedContent: encrypted,
          following: [],
        });
        break;
      }
      default:
        break;
    }
  });
  const reasoning = reasoningItems.map(
    (item): ReasoningPart =>
      // Reasoning without an id (some compatible servers) cannot be sent back: text only.
      item.id === '' ? { type: 'reasoning', text: item.text } : reasoningPartOf(item),
  );
  return { text, refused, toolCalls, reasoning };
}

/** Maps a whole response object (`POST /responses` without streaming, or a final event's). */
export function fromResponsesBody(body: JsonObject): LlmResponse | undefined {
  if (!Array.isArray(body.output)) return undefined;
  const pieces = outputPieces(body.output);
  return toLlmResponse({
    text: pieces.text,
    toolCalls: pieces.toolCalls,
    usage: responsesUsageOf(body.usage),
    stopReason:
      pieces.refused && body.status !== 'incomplete'
        ? 'content_filter'
        : mapResponsesStatus(body, pieces.toolCalls.length > 0),
    responseId: stringOrUndefined(body.id),
    model: stringOrUndefined(body.model),
    reasoning: pieces.reasoning,
  });
}

/** One output item as assembled from stream events. */
interface StreamedItem {
  type: string;
  /** The item as known so far: from `output_item.added`, replaced by `output_item.done`. */
  item: JsonObject;
  text: string;
  refusal: string;
  arguments: string;
  /** Summary (or reasoning) texts by index. */
  reasoning: string[];
  /** Index among the answer's function calls, for `tool_call_delta`. */
  callIndex?: number;
  /** Made by a delta that came before its item was announced (compatible servers). */
  implicit?: boolean;
  done: boolean;
}

/**
 * Folds Responses API stream events into deltas and, at the end, the whole answer. The answer is
 * complete once `response.completed` or `response.incomplete` has come; items are assembled per
 * `output_index` from their deltas, each replaced by its `response.output_item.done` item.
 */
export class ResponsesStreamAssembler {
  readonly #items = new Map<number, StreamedItem>();
  readonly #byId = new Map<string, number>();
  #created = false;
  #final: JsonObject | undefined;
  #callCount = 0;
  #responseId: string | undefined;
  #model: string | undefined;

  /** Whether `response.completed` or `response.incomplete` has come. */
  get finished(): boolean {
    return this.#final !== undefined;
  }

  #index(event: JsonObject): number | undefined {
    if (typeof event.output_index === 'number') return event.output_index;
    const id =
      stringOrUndefined(event.item_id) ??
      (isJsonObject(event.item) ? stringOrUndefined(event.item.id) : undefined);
    return id === undefined ? undefined : this.#byId.get(id);
  }

  /** The index of the latest item of `type` not finished yet. */
  #latestOpen(type: string): number | undefined {
    let latest: number | undefined;
    for (const [index, item] of this.#items) {
      if (item.type === type && !item.done && (latest === undefined || index > latest)) {
        latest = index;
      }
    }
    return latest;
  }

  /** The item an event is about; created for text and reasoning deltas that name none. */
  #itemOf(event: JsonObject, type: string): StreamedItem | undefined {
    const index = this.#index(event);
    const known = index === undefined ? undefined : this.#items.get(index);
    if (known) return known;
    if (type === 'function_call') return undefined;
    // A compatible server may stream text without announcing its item first, or without
    // saying which item a delta belongs to: the latest open item of the type takes it.
    const open = index === undefined ? this.#latestOpen(type) : undefined;
    if (open !== undefined) return this.#items.get(open);
    const at = index ?? this.#nextIndex();
    const item: StreamedItem = {
      type,
      item: { type },
      text: '',
      refusal: '',
      arguments: '',
      reasoning: [],
      implicit: true,
      done: false,
    };
    this.#items.set(at, item);
    return item;
  }

  /** The index after the highest one seen. */
  #nextIndex(): number {
    return this.#items.size === 0 ? 0 : Math.max(...this.#items.keys()) + 1;
  }

  #add(index: number, wire: JsonObject): LlmStreamEvent[] {
    const type = stringOrUndefined(wire.type) ?? '';
    const existing = this.#items.get(index);
    // An item whose deltas came before its announcement is adopted, its deltas kept.
    if (existing?.implicit && existing.type === type && type !== 'function_call') {
      existing.item = wire;
      existing.implicit = false;
      const id = stringOrUndefined(wire.id);
      if (id) this.#byId.set(id, index);
      return [];
    }
    if (existing) {
      throw protocolViolation(`output item ${index} was added twice`);
    }
    const item: StreamedItem = {
      type,
      item: wire,
      text: '',
      refusal: '',
      arguments: '',
      reasoning: [],
      done: false,
    };
    this.#items.set(index, item);
    const id = stringOrUndefined(wire.id);
    if (id) this.#byId.set(id, index);
    if (type !== 'function_call') return [];
    const name = stringOrUndefined(wire.name) ?? '';
    if (name === '') throw protocolViolation(`function call item ${index} has no name`);
    item.callIndex = this.#callCount;
    this.#callCount += 1;
    const argumentsText = stringOrUndefined(wire.arguments) ?? '';
    item.arguments = argumentsText;
    const event: LlmStreamEvent = {
      type: 'tool_call_delta',
      index: item.callIndex,
      name,
      argumentsDelta: argumentsText,
    };
    const callId = stringOrUndefined(wire.call_id);
    if (callId) event.id = callId;
    return [event];
  }

  #reasoningDelta(event: JsonObject, slot: number): LlmStreamEvent[] {
    const item = this.#itemOf(event, 'reasoning');
    const delta = stringOrUndefined(event.delta) ?? '';
    if (!item || delta === '') return [];
    const events: LlmStreamEvent[] = [];
    // A new summary part of the same item is set apart by a blank line, as it is stored.
    if (item.reasoning[slot] === undefined && item.reasoning.some((text) => text !== '')) {
      events.push({ type: 'reasoning_delta', text: '\n\n' });
    }
    item.reasoning[slot] = (item.reasoning[slot] ?? '') + delta;
    events.push({ type: 'reasoning_delta', text: delta });
    return events;
  }

  /** Takes one event and returns the deltas it carries; throws on a broken protocol. */
  accept(event: JsonObject, name: string | undefined): LlmStreamEvent[] {
    const type = stringOrUndefined(event.type) ?? name ?? '';
    // Nothing after the final event changes the answer.
    if (this.#final !== undefined) return [];
    switch (type) {
      case 'response.created': {
        if (this.#created) throw protocolViolation('a second response.created in one stream');
        this.#created = true;
        this.#note(event.response);
        return [];
      }
      case 'response.in_progress':
        this.#note(event.response);
        return [];
      case 'response.output_item.added': {
        const index = this.#index(event) ?? this.#nextIndex();
        if (!isJsonObject(event.item)) throw protocolViolation('output_item.added without item');
        return this.#add(index, event.item);
      }
      case 'response.output_text.delta': {
        const item = this.#itemOf(event, 'message');
        const delta = stringOrUndefined(event.delta) ?? '';
        if (!item || delta === '') return [];
        item.text += delta;
        return [{ type: 'text_delta', text: delta }];
      }
      case 'response.refusal.delta': {
        const item = this.#itemOf(event, 'message');
        const delta = stringOrUndefined(event.delta) ?? '';
        if (!item || delta === '') return [];
        item.refusal += delta;
        // A refusal is the visible answer: streamed and kept as the answer's text.
        return [{ type: 'text_delta', text: delta }];
      }
      case 'response.reasoning_summary_text.delta':
        return this.#reasoningDelta(
          event,
          typeof event.summary_index === 'number' ? event.summary_index : 0,
        );
      case 'response.reasoning_text.delta':
        return this.#reasoningDelta(
          event,
          typeof event.content_index === 'number' ? event.content_index : 0,
        );
      case 'response.function_call_arguments.delta': {
        const item = this.#itemOf(event, 'function_call');
        if (item?.type !== 'function_call' || item.callIndex === undefined) {
          throw protocolViolation('function call arguments for an item that was never added');
        }
        const delta = stringOrUndefined(event.delta) ?? '';
        item.arguments += delta;
        return delta === ''
          ? []
          : [{ type: 'tool_call_delta', index: item.callIndex, argumentsDelta: delta }];
      }
      case 'response.output_item.done':
        return this.#done(event);
      case 'response.completed':
      case 'response.incomplete': {
        const response = isJsonObject(event.response) ? event.response : {};
        this.#note(response);
        this.#final =
          response.status === undefined
            ? { ...response, status: type === 'response.completed' ? 'completed' : 'incomplete' }
            : response;
        return [];
      }
      default:
        // Part boundaries, `.done` events repeating what the deltas said, built-in tool events.
        return [];
    }
  }

  #note(value: unknown): void {
    if (!isJsonObject(value)) return;
    this.#responseId ??= stringOrUndefined(value.id) || undefined;
    this.#model ??= stringOrUndefined(value.model) || undefined;
  }

  #done(event: JsonObject): LlmStreamEvent[] {
    if (!isJsonObject(event.item)) throw protocolViolation('output_item.done without item');
    const type = stringOrUndefined(event.item.type) ?? '';
    let index = this.#index(event);
    if (index === undefined) {
      // The item its deltas made, when they came without saying which item they were for.
      const open = this.#latestOpen(type);
      if (open !== undefined && this.#items.get(open)?.implicit) index = open;
    }
    index ??= this.#nextIndex();
    let item = this.#items.get(index);
    const events: LlmStreamEvent[] = [];
    if (!item) {
      // Not announced: taken as added now (its deltas are what `done` holds).
      events.push(...this.#add(index, event.item));
      item = this.#items.get(index) as StreamedItem;
    }
    if (item.type === 'function_call' && item.callIndex !== undefined) {
      // Arguments a server gave only in the finished item are streamed as one last piece.
      const whole = stringOrUndefined(event.item.arguments) ?? '';
      if (whole.length > item.arguments.length && whole.startsWith(item.arguments)) {
        events.push({
          type: 'tool_call_delta',
          index: item.callIndex,
          argumentsDelta: whole.slice(item.arguments.length),
        });
        item.arguments = whole;
      }
    }
    item.item = event.item;
    item.done = true;
    return events;
  }

  /** The output items as assembled: each finished item as sent, others from their deltas. */
  #assembledOutput(): JsonObject[] {
    return [...this.#items.entries()]
      .sort(([left], [right]) => left - right)
      .map(([, item]) => {
        if (item.done) return item.item;
        switch (item.type) {
          case 'message':
            return {
              ...item.item,
              type: 'message',
              content: [
                ...(item.text !== '' ? [{ type: 'output_text', text: item.text }] : []),
                ...(item.refusal !== '' ? [{ type: 'refusal', refusal: item.refusal }] : []),
              ],
            };
          case 'function_call':
            return { ...item.item, arguments: item.arguments };
          case 'reasoning':
            return {
              ...item.item,
              summary: item.reasoning.map((text) => ({ type: 'summary_text', text })),
            };
          default:
            return item.item;
        }
      });
  }

  /** The whole answer, once the stream is complete. */
  response(): LlmResponse {
    const final = this.#final ?? {};
    const assembled = this.#assembledOutput();
    const output =
      assembled.length > 0 ? assembled : Array.isArray(final.output) ? final.output : [];
    const body: JsonObject = {
      ...final,
      id: stringOrUndefined(final.id) || this.#responseId,
      model: stringOrUndefined(final.model) || this.#model,
      output,
    };
    return fromResponsesBody(body) as LlmResponse;
  }
}

/**
 * How a Responses API event stream is read: complete at `response.completed` or
 * `response.incomplete`; an `error` event or `response.failed` is a provider error, retried
 * before any output when its code says the server or a rate limit failed.
 */
export function responsesStreamProtocol(
  assembler = new ResponsesStreamAssembler(),
): StreamProtocol {
  return {
    doneMarker: '[DONE]',
    errorOf: (data, event) => {
      const type = data.type ?? event;
      if (type === 'error') return parseResponsesErrorBody(data);
      if (type === 'response.failed') {
        const response = isJsonObject(data.response) ? data.response : {};
        const error = parseResponsesErrorBody(isJsonObject(response.error) ? response.error : {});
        return { ...error, message: error.message ?? 'the response failed' };
      }
      return undefined;
    },
    isRetryableError: (type) => /server|overload|rate_limit|timeout/.test(type),
    accept: (data, event) => assembler.accept(data, event),
    isComplete: () => assembler.finished,
    response: () => assembler.response(),
  };
}
