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
  if (!isJsonObject(body)) return {};
  const error = isJsonObject(body.error) ? body.error : body;
  return {
    type: stringOrUndefined(error.type),
    message: stringOrUndefined(error.message),
  };
}

/**
 * Usage as one number per direction: input counts the uncached, cache-written and cache-read
 * prompt tokens together (comparable with OpenAI's `prompt_tokens`); cache reads and writes are
 * also reported apart (`cachedInputTokens`, `cacheWriteInputTokens`, when above zero). `message_delta` usage is
 * cumulative, so a field it carries replaces the one from `message_start`.
 */
function usageOf(value: unknown, previous?: LlmResponse['usage']): LlmResponse['usage'] {
  if (!isJsonObject(value)) return previous ?? { inputTokens: 0, outputTokens: 0 };
  const hasInput =
    value.input_tokens !== undefined ||
    value.cache_creation_input_tokens !== undefined ||
    value.cache_read_input_tokens !== undefined;
  const inputTokens =
    tokenCount(value.input_tokens) +
    tokenCount(value.cache_creation_input_tokens) +
    tokenCount(value.cache_read_input_tokens);
  const usage: LlmResponse['usage'] = {
    inputTokens: hasInput ? inputTokens : (previous?.inputTokens ?? 0),
    outputTokens:
      value.output_tokens !== undefined
        ? tokenCount(value.output_tokens)
        : (previous?.outputTokens ?? 0),
  };
  // Cache reads and writes: from this event when it says them, else from the earlier one.
  const cacheRead =
    value.cache_read_input_tokens !== undefined && value.cache_read_input_tokens !== null
      ? tokenCount(value.cache_read_input_tokens)
      : previous?.cachedInputTokens;
  if (cacheRead !== undefined && cacheRead > 0) usage.cachedInputTokens = cacheRead;
  const cacheWrite =
    value.cache_creation_input_tokens !== undefined && value.cache_creation_input_tokens !== null
      ? tokenCount(value.cache_creation_input_tokens)
      : previous?.cacheWriteInputTokens;
  if (cacheWrite !== undefined && cacheWrite > 0) usage.cacheWriteInputTokens = cacheWrite;
  return usage;
}

/**
 * A reasoning part from a `thinking` block (its text and signature; an empty signature is left
 * out) or a `redacted_thinking` block (its opaque `data`).
 */
function reasoningPart(
  type: 'thinking' | 'redacted_thinking',
  text: string,
  signature: string,
): ReasoningPart {
  if (type === 'redacted_thinking') return { type: 'reasoning', text: '', redactedData: text };
  return signature === '' ? { type: 'reasoning', text } : { type: 'reasoning', text, signature };
}

/**
 * The stop reason of an answer: one that stopped for a `tool_use` whose only tool call was the
 * structured output tool's ended its turn (`end_turn`).
 */
function stopReasonOf(reason: unknown, toolCalls: number, answeredWithOutputTool: boolean) {
  if (answeredWithOutputTool && toolCalls === 0 && reason === 'tool_use') return 'end_turn';
  return mapStopReason(reason, toolCalls > 0);
}

/**
 * Maps a whole (non-streamed) Messages API response. A call of `outputTool` (the structured
 * output tool, see `ANTHROPIC_STRUCTURED_OUTPUT_TOOL`) is the answer's text: its input as JSON;
 * the answer's other text blocks are then left out.
 */
export function fromMessage(body: JsonObject, outputTool?: string): LlmResponse {
  let text = '';
  let outputText: string | undefined;
  const toolCalls: ToolCall[] = [];
  const reasoning: ReasoningPart[] = [];
  const content = Array.isArray(body.content) ? body.content : [];
  for (const entry of content) {
    if (!isJsonObject(entry)) continue;
    if (entry.type === 'thinking') {
      reasoning.push(
        reasoningPart(
          'thinking',
          stringOrUndefined(entry.thinking) ?? '',
          stringOrUndefined(entry.signature) ?? '',
        ),
      );
    } else if (entry.type === 'redacted_thinking') {
      reasoning.push(reasoningPart('redacted_thinking', stringOrUndefined(entry.data) ?? '', ''));
    } else if (entry.type === 'text') text += stringOrUndefined(entry.text) ?? '';
    else if (entry.type === 'tool_use') {
      const id = stringOrUndefined(entry.id) ?? '';
      const name = stringOrUndefined(entry.name) ?? '';
      if (id === '' || name === '') throw protocolViolation('a tool_use block has no id or name');
      if (outputTool !== undefined && name === outputTool) {
        outputText = (outputText ?? '') + JSON.stringify(entry.input ?? {});
      } else toolCalls.push({ id, name, arguments: entry.input ?? {} });
    }
  }
  return toLlmResponse({
    text: outputText ?? text,
    toolCalls,
    usage: usageOf(body.usage),
    stopReason: stopReasonOf(body.stop_reason, toolCalls.length, outputText !== undefined),
    responseId: stringOrUndefined(body.id),
    model: stringOrUndefined(body.model),
    reasoning,
  });
}

/** A thinking or redacted thinking block being streamed. */
interface PartialReasoning {
  type: 'thinking' | 'redacted_thinking';
  /** The thinking text, or a redacted block's data. */
  text: string;
  signature: string;
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

/** A call of the structured output tool being streamed: its input is the answer's text. */
interface PartialOutput {
  startInput: unknown;
  /** Whether any of its input has been delivered as text. */
  delivered: boolean;
}

/**
 * Folds Messages API stream events (`message_start`, `content_block_start`,
 * `content_block_delta`, `message_delta`, `message_stop`) into deltas and, at the end, the whole
 * answer. Tool calls are numbered in the order their blocks start. A call of `outputTool` (the
 * structured output tool) is not a tool call: its input JSON streams as `text_delta`s and is the
 * answer's text (the answer's other text blocks are then left out of it).
 */
export class MessagesStreamAssembler {
  #text = '';
  readonly #outputTool: string | undefined;
  /** Structured output tool blocks by index. */
  readonly #outputs = new Map<number, PartialOutput>();
  /** The structured output text, once the structured output tool was called. */
  #outputText: string | undefined;
  #thinking = '';
  readonly #blocks = new Map<number, PartialToolCall>();
  /** Thinking and redacted thinking blocks by index. */
  readonly #reasoning = new Map<number, PartialReasoning>();
  /** Every content block by index: its type and whether it has stopped. */
  readonly #opened = new Map<number, { type: string; stopped: boolean }>();
  #started = false;
  #toolCount = 0;
  #stopReason: unknown;
  #usage: LlmResponse['usage'] = { inputTokens: 0, outputTokens: 0 };
  #responseId: string | undefined;
  #model: string | undefined;
  #stopped = false;

  /** `outputTool`: the name of the structured output tool, when the request offered it. */
  constructor(outputTool?: string) {
    this.#outputTool = outputTool;
  }

  /** Whether `message_stop` has arrived. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The thinking text streamed so far; never part of the answer's text. */
  get thinking(): string {
    return this.#thinking;
  }

  /**
   * The block a `content_block_delta` or `content_block_stop` names; a protocol violation when it
   * never started or has already stopped.
   */
  #openBlock(data: JsonObject, type: string): { type: string; stopped: boolean } {
    const index = data.index;
    const block = typeof index === 'number' ? this.#opened.get(index) : undefined;
    if (!block)
      throw protocolViolation(`${type} for content block ${String(index)}, which never started`);
    if (block.stopped)
      throw protocolViolation(`${type} for content block ${String(index)}, which has stopped`);
    return block;
  }

  /**
   * Takes one event (its `type` and parsed data) and returns the deltas it carries. Throws a
   * protocol violation for an event out of order: anything before `message_start`, a second
   * `message_start`, a block started twice, a delta for a block that never started or has
   * stopped, a delta of the wrong kind for its block, a `tool_use` block without id or name.
   */
  accept(type: string, data: JsonObject): LlmStreamEvent[] {
    if (type !== 'message_start' && type !== 'ping' && !this.#started && isMessageEvent(type)) {
      throw protocolViolation(`${type} before message_start`);
    }
    switch (type) {
      case 'message_start': {
        if (this.#started) throw protocolViolation('a second message_start in one stream');
        this.#started = true;
        const message = isJsonObject(data.message) ? data.message : {};
        this.#responseId = stringOrUndefined(message.id);
        this.#model = stringOrUndefined(message.model);
        this.#usage = usageOf(message.usage);
        return [];
      }
      case 'content_block_start': {
        if (typeof data.index !== 'number') {
          throw protocolViolation('content_block_start without an index');
        }
        const index = data.index;
        if (this.#opened.has(index)) {
          throw protocolViolation(`content block ${index} started twice`);
        }
        const block = isJsonObject(data.content_block) ? data.content_block : {};
        this.#opened.set(index, { type: stringOrUndefined(block.type) ?? '', stopped: false });
        if (block.type === 'text') {
          const text = stringOrUndefined(block.text) ?? '';
          if (text === '') return [];
          this.#text += text;
          return [{ type: 'text_delta', text }];
        }
        if (block.type === 'thinking' || block.type === 'redacted_thinking') {
          const text =
            block.type === 'thinking'
              ? (stringOrUndefined(block.thinking) ?? '')
              : (stringOrUndefined(block.data) ?? '');
          this.#reasoning.set(index, {
            type: block.type,
            text,
            signature: stringOrUndefined(block.signature) ?? '',
          });
          if (block.type === 'thinking' && text !== '') {
            this.#thinking += text;
            return [{ type: 'reasoning_delta', text }];
          }
          return [];
        }
        if (block.type === 'tool_use') {
          const id = stringOrUndefined(block.id) ?? '';
          const name = stringOrUndefined(block.name) ?? '';
          if (id === '' || name === '') {
            throw protocolViolation(`tool_use block ${index} has no id or name`);
          }
          if (this.#outputTool !== undefined && name === this.#outputTool) {
            this.#outputs.set(index, { startInput: block.input, delivered: false });
            this.#outputText ??= '';
            return [];
          }
          const partial: PartialToolCall = {
            toolIndex: this.#toolCount,
            id,
            name,
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
        const opened = this.#openBlock(data, type);
        const delta = isJsonObject(data.delta) ? data.delta : {};
        const expected = DELTA_BLOCK_TYPES[stringOrUndefined(delta.type) ?? ''];
        if (expected !== undefined && !expected.includes(opened.type)) {
          throw protocolViolation(
            `${String(delta.type)} for content block ${String(data.index)} of type ${opened.type}`,
          );
        }
        if (delta.type === 'thinking_delta') {
          const thinking = stringOrUndefined(delta.thinking) ?? '';
          const partial = this.#reasoning.get(tokenCount(data.index));
          if (partial) partial.text += thinking;
          this.#thinking += thinking;
          return thinking === '' ? [] : [{ type: 'reasoning_delta', text: thinking }];
        }
        if (delta.type === 'signature_delta') {
          const partial = this.#reasoning.get(tokenCount(data.index));
          if (partial) partial.signature += stringOrUndefined(delta.signature) ?? '';
          return [];
        }
        if (delta.type === 'text_delta') {
          const text = stringOrUndefined(delta.text) ?? '';
          if (text === '') return [];
          this.#text += text;
          return [{ type: 'text_delta', text }];
        }
        if (delta.type === 'input_json_delta') {
          const output = this.#outputs.get(tokenCount(data.index));
          if (output) return this.#outputDelta(output, stringOrUndefined(delta.partial_json) ?? '');
          const partial = this.#blocks.get(tokenCount(data.index));
          const json = stringOrUndefined(delta.partial_json) ?? '';
          if (!partial) return [];
          partial.inputJson += json;
          return [{ type: 'tool_call_delta', index: partial.toolIndex, argumentsDelta: json }];
        }
        // citations_delta and delta types added later: not part of the answer.
        return [];
      }
      case 'content_block_stop': {
        this.#openBlock(data, type).stopped = true;
        const output = this.#outputs.get(tokenCount(data.index));
        // Input given whole at the start (no deltas): it is the text, delivered now.
        if (output && !output.delivered) {
          return this.#outputDelta(
            output,
            JSON.stringify(isJsonObject(output.startInput) ? output.startInput : {}),
          );
        }
        return [];
      }
      case 'message_delta': {
        const delta = isJsonObject(data.delta) ? data.delta : {};
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
        // ping and event types added later.
        return [];
    }
  }

  #outputDelta(output: PartialOutput, json: string): LlmStreamEvent[] {
    if (json === '') return [];
    output.delivered = true;
    this.#outputText = (this.#outputText ?? '') + json;
    return [{ type: 'text_delta', text: json }];
  }

  /** The whole answer, once `message_stop` has arrived. */
  response(): LlmResponse {
    const toolCalls: ToolCall[] = [...this.#blocks.values()]
      .sort((left, right) => left.toolIndex - right.toolIndex)
      .map((call) => ({
        id: call.id,
        name: call.name,
        arguments:
          call.inputJson === '' && isJsonObject(call.startInput)
            ? call.startInput
            : parseToolArgumentsText(call.inputJson),
      }));
    return toLlmResponse({
      text: this.#outputText ?? this.#text,
      toolCalls,
      usage: this.#usage,
      stopReason: stopReasonOf(this.#stopReason, toolCalls.length, this.#outputText !== undefined),
      responseId: this.#responseId,
      model: this.#model,
      reasoning: [...this.#reasoning.entries()]
        .sort(([left], [right]) => left - right)
        .map(([, block]) => reasoningPart(block.type, block.text, block.signature)),
    });
  }
}

/** The message events that only make sense after `message_start`. */
function isMessageEvent(type: string): boolean {
  return (
    type === 'content_block_start' ||
    type === 'content_block_delta' ||
    type === 'content_block_stop' ||
    type === 'message_delta' ||
    type === 'message_stop'
  );
}

/** The block types each known delta type may arrive for. */
const DELTA_BLOCK_TYPES: Record<string, readonly string[] | undefined> = {
  text_delta: ['text'],
  input_json_delta: ['tool_use', 'server_tool_use', 'mcp_tool_use'],
  thinking_delta: ['thinking'],
  signature_delta: ['thinking'],
  citations_delta: ['text'],
};

/** Stream error types that may succeed when the call is made again. */
const RETRYABLE_STREAM_ERRORS = new Set([
  'overloaded_error',
  'api_error',
  'rate_limit_error',
  'timeout_error',
]);

/** An event's type: its `type` member, else its SSE event name. */
function eventType(data: JsonObject, event: string | undefined): string {
  return typeof data.type === 'string' ? data.type : (event ?? '');
}

/**
 * How a Messages API event stream is read: reading stops at `message_stop`, and an event of type
 * `error` is a provider error.
 */
export function messagesStreamProtocol(assembler = new MessagesStreamAssembler()): StreamProtocol {
  return {
    stopWhenComplete: true,
    errorOf: (data, event) =>
      eventType(data, event) === 'error' ? parseMessagesErrorBody(data) : undefined,
    isRetryableError: (type) => RETRYABLE_STREAM_ERRORS.has(type),
    accept: (data, event) => assembler.accept(eventType(data, event), data),
    isComplete: () => assembler.stopped,
    response: () => assembler.response(),
  };
}
