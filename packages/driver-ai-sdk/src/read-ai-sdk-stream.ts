import { InvalidResponseDataError, type LanguageModelV4StreamPart } from '@ai-sdk/provider';
import {
  EverrunsError,
  type LlmResponse,
  type LlmStreamEvent,
  parseToolArgumentsText,
  type ToolCall,
} from '@everruns-ts/core';
import {
  assertAnswerComplete,
  toLlmUsage,
  toReasoningPart,
  toStopReason,
} from './from-ai-sdk-result.js';

/** Copies the `anthropic` members of a part's provider metadata (signature, redacted data). */
function mergeAnthropicMetadata(target: Record<string, unknown>, metadata: unknown): void {
  if (typeof metadata !== 'object' || metadata === null) return;
  const anthropic = (metadata as Record<string, unknown>).anthropic;
  if (typeof anthropic === 'object' && anthropic !== null) Object.assign(target, anthropic);
}

/**
 * The most characters of a streamed answer a driver keeps: text, reasoning and tool-call input
 * deltas, whole `tool-call` inputs, and the ids and names of its tool calls and reasoning blocks,
 * counted over the whole stream (128 Mi, as `MAX_STREAM_DATA_CHARS` of the HTTP drivers). A
 * stream that sends more stops with a non-retryable `LLM_ERROR` of kind `response_too_large`
 * and its provider request is cancelled: a model (or a proxy before it) that streams without end
 * cannot grow the answer until the process runs out of memory.
 */
export const MAX_STREAMED_ANSWER_CHARS = 128 * 1024 * 1024;

/** The error of a stream past {@link MAX_STREAMED_ANSWER_CHARS}. */
function answerTooLargeError(model: string): EverrunsError {
  return new EverrunsError({
    code: 'LLM_ERROR',
    message: `The stream of model ${model} sent more than ${MAX_STREAMED_ANSWER_CHARS} characters of answer`,
    details: {
      model,
      kind: 'response_too_large',
      limit: MAX_STREAMED_ANSWER_CHARS,
      retryable: false,
    },
    retryable: false,
  });
}

/** Thrown out of {@link readAiSdkStream} for an `error` part, so the caller maps the error. */
export class StreamErrorPart {
  /** The `error` part's payload, as the provider gave it. */
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

/**
 * The error of a truncated answer: a retryable `LLM_ERROR` with details `kind:
 * 'incomplete_stream'`, as the HTTP drivers report a stream that ends before the provider said
 * the answer was complete.
 */
export function incompleteStreamError(model: string, cause?: unknown): EverrunsError {
  return new EverrunsError({
    code: 'LLM_ERROR',
    message: `The stream of model ${model} ended before its finish part`,
    details: { model, kind: 'incomplete_stream', retryable: true },
    retryable: true,
    cause,
  });
}

/**
 * Whether an `error` part is a provider's own report that the stream it read ended with no
 * finish reason (`@ai-sdk/openai-compatible` sends an `InvalidResponseDataError` saying so, then
 * a `finish` part of reason `error`): a truncation, not a provider failure.
 */
function isTruncationReport(error: unknown): boolean {
  return (
    InvalidResponseDataError.isInstance(error) &&
    /ended without a finish reason/i.test(error.message)
  );
}

interface ToolCallState {
  index: number;
  id: string;
  name: string;
  input: string;
  /** Whether deltas already went out for it (`tool-input-*` parts). */
  streamed: boolean;
  call?: ToolCall;
}

/**
 * Turns an AI SDK stream (`LanguageModelV4StreamPart`s; V3 parts have the same shape) into
 * driver stream events: `text-delta` → `text_delta`; `tool-input-start` / `tool-input-delta` and
 * whole `tool-call` parts → `tool_call_delta` (indexed in order of first appearance);
 * `reasoning-delta` → `reasoning_delta`, each reasoning block (by id, with the provider metadata
 * of its start, deltas and end) kept for the response's `reasoning`; `finish` → the closing
 * `finish` event with the assembled response. Sources, files, metadata and raw parts are not
 * forwarded. Tool calls the provider ran itself are left out.
 *
 * Throws a {@link StreamErrorPart} for an `error` part, and the retryable `LLM_ERROR` of kind
 * `incomplete_stream` ({@link incompleteStreamError}) when the stream closes without a `finish`
 * part, or when the provider reports in an `error` part that the stream it read had no finish
 * reason: a truncated answer is never a success. A `finish` part of reason `other` is a whole
 * answer (stop reason `other`). When `signal`
 * fires, the stream is cancelled, so the caller can report `ABORTED` at once. Past
 * {@link MAX_STREAMED_ANSWER_CHARS} characters kept, it throws the non-retryable `LLM_ERROR` of
 * kind `response_too_large`.
 */
export async function* readAiSdkStream(
  stream: ReadableStream<LanguageModelV4StreamPart>,
  model: string,
  signal?: AbortSignal,
): AsyncGenerator<LlmStreamEvent> {
  const reader = stream.getReader();
  // A provider stream that ignores the abort signal still stops: cancelling ends the pending read.
  const onAbort = (): void => {
    reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let text = '';
  const calls = new Map<string, ToolCallState>();
  const providerExecuted = new Set<string>();
  let responseId: string | undefined;
  let modelId: string | undefined;
  /** Reasoning blocks by id, in order of first appearance. */
  const reasoning = new Map<string, { text: string; metadata: Record<string, unknown> }>();
  /** Characters kept so far (see {@link MAX_STREAMED_ANSWER_CHARS}). */
  let kept = 0;
  const keep = (text: string): void => {
    kept += text.length;
    if (kept > MAX_STREAMED_ANSWER_CHARS) throw answerTooLargeError(model);
  };
  const stateOf = (id: string, name: string): ToolCallState => {
    let state = calls.get(id);
    if (!state) {
      keep(id);
      keep(name);
      state = { index: calls.size, id, name, input: '', streamed: false };
      calls.set(id, state);
    }
    return state;
  };
  try {
    while (true) {
      const { done, value: part } = await reader.read();
      if (done) break;
      switch (part.type) {
        case 'reasoning-start':
        case 'reasoning-delta':
        case 'reasoning-end': {
          let block = reasoning.get(part.id);
          if (!block) {
            keep(part.id);
            block = { text: '', metadata: {} };
            reasoning.set(part.id, block);
          }
          mergeAnthropicMetadata(block.metadata, part.providerMetadata);
          if (part.type === 'reasoning-delta' && part.delta !== '') {
            keep(part.delta);
            block.text += part.delta;
            yield { type: 'reasoning_delta', text: part.delta };
          }
          break;
        }
        case 'text-delta':
          if (part.delta === '') break;
          keep(part.delta);
          text += part.delta;
          yield { type: 'text_delta', text: part.delta };
          break;
        case 'tool-input-start': {
          if (part.providerExecuted === true) {
            providerExecuted.add(part.id);
            break;
          }
          const state = stateOf(part.id, part.toolName);
          state.streamed = true;
          yield {
            type: 'tool_call_delta',
            index: state.index,
            id: part.id,
            name: part.toolName,
            argumentsDelta: '',
          };
          break;
        }
        case 'tool-input-delta': {
          const state = calls.get(part.id);
          if (!state || part.delta === '') break;
          keep(part.delta);
          state.input += part.delta;
          yield { type: 'tool_call_delta', index: state.index, argumentsDelta: part.delta };
          break;
        }
        case 'tool-call': {
          if (part.providerExecuted === true || providerExecuted.has(part.toolCallId)) break;
          const state = stateOf(part.toolCallId, part.toolName);
          keep(part.input);
          state.call = {
            id: part.toolCallId,
            name: part.toolName,
            arguments: parseToolArgumentsText(part.input),
          };
          if (!state.streamed) {
            state.streamed = true;
            state.input = part.input;
            yield {
              type: 'tool_call_delta',
              index: state.index,
              id: part.toolCallId,
              name: part.toolName,
              argumentsDelta: part.input,
            };
          }
          break;
        }
        case 'response-metadata':
          if (part.id !== undefined) responseId = part.id;
          if (part.modelId !== undefined) modelId = part.modelId;
          break;
        case 'error':
          if (isTruncationReport(part.error)) throw incompleteStreamError(model, part.error);
          throw new StreamErrorPart(part.error);
        case 'finish': {
          assertAnswerComplete(part.finishReason, model);
          // A call whose input streamed but whose closing `tool-call` part never came is
          // assembled from the streamed input.
          const toolCalls = [...calls.values()]
            .sort((left, right) => left.index - right.index)
            .map(
              (state) =>
                state.call ?? {
                  id: state.id,
                  name: state.name,
                  arguments: parseToolArgumentsText(state.input),
                },
            );
          const response: LlmResponse = {
            text,
            toolCalls,
            usage: toLlmUsage(part.usage),
            stopReason: toStopReason(part.finishReason, toolCalls.length > 0),
          };
          if (responseId !== undefined) response.responseId = responseId;
          if (modelId !== undefined) response.model = modelId;
          if (reasoning.size > 0) {
            response.reasoning = [...reasoning.values()].map((block) =>
              toReasoningPart(block.text, { anthropic: block.metadata }),
            );
          }
          yield { type: 'finish', response };
          return;
        }
        default:
          break;
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Stops the provider's request when the consumer leaves early or a part was bad.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  throw incompleteStreamError(model);
}
