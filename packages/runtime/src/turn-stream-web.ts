import { EverrunsError, formatZodError, lazySchema } from '@everruns-ts/core';
import { z } from 'zod';
import type { TurnStreamLike, TurnStreamPart } from './turn-stream-parts.js';

// Web-standard faces of a streamed turn: a `ReadableStream` of its parts, a Server-Sent Events
// `Response`, and a `Response` in the Vercel AI SDK's UI message stream protocol (what `useChat`
// reads). All three pull: the turn stream is read one part per read of the body, so a slow client
// holds the turn stream's own bounded buffer, never a second one here. Cancelling the body (a
// client that went away) ends the iteration through the iterator's `return()`.

type TurnError = Extract<TurnStreamPart, { type: 'error' }>['error'];
type TurnResultOfStream = Extract<TurnStreamPart, { type: 'turn-finish' }>['result'];

const turnStreamInputSchema = lazySchema(() =>
  z.custom<TurnStreamLike>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function' &&
      typeof (value as { result?: { then?: unknown } }).result?.then === 'function',
    { message: 'expected a turn stream (an async iterable of parts with a result promise)' },
  ),
);

function checkedTurnStream(stream: unknown): TurnStreamLike {
  const parsed = turnStreamInputSchema.safeParse(stream);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid turn stream: ${formatZodError(parsed.error)}`,
    });
  }
  // The body reports a turn that could not run (its `error` part); the rejected `result` must not
  // also surface as an unhandled rejection when the caller only reads the body.
  parsed.data.result.catch(() => {});
  return parsed.data;
}

/** Opens the stream's iterator on first use, so an unread body starts nothing. */
class LazyIterator {
  #iterator: AsyncIterator<TurnStreamPart> | undefined;
  constructor(private readonly stream: TurnStreamLike) {}

  next(): Promise<IteratorResult<TurnStreamPart>> {
    this.#iterator ??= this.stream[Symbol.asyncIterator]();
    return this.#iterator.next();
  }

  /** Tells the turn stream its consumer is gone (even when nothing was read yet). */
  async stop(): Promise<void> {
    this.#iterator ??= this.stream[Symbol.asyncIterator]();
    await this.#iterator.return?.();
  }
}

/**
 * A web-standard `ReadableStream` of a turn's parts, for code that speaks streams rather than
 * async iterables (a `Response` body after your own encoding, `pipeThrough`, a worker transfer).
 *
 * Pull-based with a high-water mark of 0: a part is taken from the turn stream only when the
 * reader asks for one. `reader.cancel()` ends the iteration through the iterator's `return()`,
 * which releases the turn stream (the turn itself still ends as it would with any consumer that
 * stops iterating). Throws `INVALID_INPUT` when `stream` is not a turn stream.
 */
export function turnStreamToReadableStream(stream: TurnStreamLike): ReadableStream<TurnStreamPart> {
  const iterator = new LazyIterator(checkedTurnStream(stream));
  return new ReadableStream<TurnStreamPart>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel() {
        await iterator.stop();
      },
    },
    { highWaterMark: 0 },
  );
}

/** Headers both event-stream responses send unless `init.headers` sets them. */
const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

function responseHeaders(
  init: ResponseInit | undefined,
  defaults: Readonly<Record<string, string>>,
): Headers {
  const headers = new Headers(init?.headers);
  for (const [name, value] of Object.entries(defaults)) {
    if (!headers.has(name)) headers.set(name, value);
  }
  return headers;
}

function responseInitOf(init: ResponseInit | undefined): ResponseInit {
  return {
    ...(init?.status === undefined ? {} : { status: init.status }),
    ...(init?.statusText === undefined ? {} : { statusText: init.statusText }),
  };
}

/** What an error thrown by the iteration itself (not an `error` part) looks like as a part. */
function turnErrorOf(error: unknown): TurnError {
  if (EverrunsError.isInstance(error)) return { code: error.code, message: error.message };
  return {
    code: 'INTERNAL',
    message: error instanceof Error ? error.message : 'The turn stream failed',
  };
}

/** Encodes a part stream into a byte body, one read of the turn stream per pull. */
interface BodyEncoder {
  /** Text for one part (possibly empty). */
  part(part: TurnStreamPart): string;
  /** Text when the iteration threw instead of ending. */
  failure(error: TurnError): string;
  /** Text after the last part. */
  end(): string;
}

function encodedBody(stream: TurnStreamLike, encoder: BodyEncoder): ReadableStream<Uint8Array> {
  const iterator = new LazyIterator(stream);
  const utf8 = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          let text: string;
          let done = false;
          try {
            const next = await iterator.next();
            done = next.done === true;
            text = done ? encoder.end() : encoder.part(next.value);
          } catch (error) {
            done = true;
            text = encoder.failure(turnErrorOf(error)) + encoder.end();
          }
          if (text) controller.enqueue(utf8.encode(text));
          if (done) {
            controller.close();
            return;
          }
          if (text) return;
        }
      },
      async cancel() {
        await iterator.stop();
      },
    },
    { highWaterMark: 0 },
  );
}

function sseEvent(part: TurnStreamPart): string {
  // JSON.stringify escapes CR and LF, so the data is always one line.
  return `event: ${part.type}\ndata: ${JSON.stringify(part)}\n\n`;
}

/**
 * A `Response` streaming a turn's parts as Server-Sent Events: one event per part, its `event:`
 * field the part's `type` and its `data:` field the part as one line of JSON (which carries the
 * `type` too, so a reader may ignore the event names). Events have no `id:`: a stream cannot be
 * resumed. The body ends after the last part (`turn-finish`, or the `error` of a turn that could
 * not run or was aborted); an iteration that throws instead sends a final `error` event.
 *
 * Headers: `content-type: text/event-stream`, `cache-control: no-cache` and
 * `x-accel-buffering: no`, unless `init.headers` sets them; `init.status`/`statusText` pass
 * through. The body pulls from the turn stream as the client reads; cancelling it releases the
 * turn stream. Throws `INVALID_INPUT` when `stream` is not a turn stream.
 */
export function turnStreamToSSEResponse(stream: TurnStreamLike, init?: ResponseInit): Response {
  const body = encodedBody(checkedTurnStream(stream), {
    part: sseEvent,
    failure: (error) => sseEvent({ type: 'error', error }),
    end: () => '',
  });
  return new Response(body, {
    ...responseInitOf(init),
    headers: responseHeaders(init, EVENT_STREAM_HEADERS),
  });
}

/** Options of {@link turnStreamToUIMessageStreamResponse}, beside the `ResponseInit` fields. */
export interface UIMessageStreamResponseOptions {
  /**
   * Id of the assistant message the client builds (the `start` chunk's `messageId`). Defaults to
   * the turn's id, taken from its `turn-start` part.
   */
  messageId?: string;
  /** Whether reasoning (thinking) text is sent as reasoning parts. Defaults to `true`. */
  sendReasoning?: boolean;
  /**
   * The `errorText` sent for a failed model call or turn. Defaults to the error's message; pass a
   * function to hide provider details from end users.
   */
  errorText?: (error: { code: string; message: string }) => string;
}

const uiOptionsSchema = lazySchema(() =>
  z.object({
    messageId: z.string().min(1).optional(),
    sendReasoning: z.boolean().optional(),
    errorText: z
      .custom<(error: TurnError) => string>((value) => typeof value === 'function', {
        message: 'expected a function',
      })
      .optional(),
  }),
);

/** One chunk of the UI message stream protocol, as this adapter sends them. */
type UIChunk = { type: string } & Record<string, unknown>;

/** A turn's stop reason as the protocol's `finishReason`. */
function finishReasonOf(result: TurnResultOfStream): string {
  switch (result.stopReason) {
    case 'end_turn':
      return 'stop';
    case 'waiting_for_tool_results':
      return 'tool-calls';
    case 'llm_error':
    case 'provider_not_configured':
    case 'error':
    case 'dependency_blocked':
      return 'error';
    default:
      return result.success ? 'stop' : 'other';
  }
}

/**
 * Turns our parts into UI message chunks. One assistant message per turn; each reason step is a
 * protocol step (`start-step` … `finish-step`, the step's tool results inside it, as the AI SDK
 * sends them); text and reasoning get one block each per stretch of the step (a tool call or the
 * other kind of text closes the open block); tool calls keep their ids.
 */
class UIMessageChunkMapper {
  #started = false;
  #stepOpen = false;
  #text: string | undefined;
  #reasoning: string | undefined;
  #blocks = 0;
  /** Tool calls begun with `tool-call-start` and not yet complete: provider id → tool name. */
  #openCalls = new Map<string, string>();
  /** Every tool call the client knows, by the id the runtime stores it under → the id sent. */
  #knownCalls = new Map<string, string>();
  #errorSent = false;
  #finishReason: string | undefined;
  #aborted = false;

  constructor(private readonly options: z.infer<typeof uiOptionsSchema>) {}

  part(part: TurnStreamPart): UIChunk[] {
    const chunks: UIChunk[] = [];
    if (!this.#started) {
      this.#started = true;
      const messageId =
        this.options.messageId ?? (part.type === 'turn-start' ? part.turnId : undefined);
      chunks.push(messageId === undefined ? { type: 'start' } : { type: 'start', messageId });
    }
    switch (part.type) {
      case 'turn-start':
        break;
      case 'step-start':
        this.#closeStep(chunks);
        chunks.push({ type: 'start-step' });
        this.#stepOpen = true;
        break;
      case 'text-delta':
        if (!part.text) break;
        this.#closeReasoning(chunks);
        if (this.#text === undefined) {
          this.#text = `text-${++this.#blocks}`;
          chunks.push({ type: 'text-start', id: this.#text });
        }
        chunks.push({ type: 'text-delta', id: this.#text, delta: part.text });
        break;
      case 'reasoning-delta':
        if (!part.text || this.options.sendReasoning === false) break;
        this.#closeText(chunks);
        if (this.#reasoning === undefined) {
          this.#reasoning = `reasoning-${++this.#blocks}`;
          chunks.push({ type: 'reasoning-start', id: this.#reasoning });
        }
        chunks.push({ type: 'reasoning-delta', id: this.#reasoning, delta: part.text });
        break;
      case 'tool-call-start':
        this.#closeBlocks(chunks);
        this.#openCalls.set(part.toolCallId, part.toolName);
        chunks.push({
          type: 'tool-input-start',
          toolCallId: part.toolCallId,
          toolName: part.toolName,
        });
        break;
      case 'tool-call-delta':
        if (this.#openCalls.has(part.toolCallId)) {
          chunks.push({
            type: 'tool-input-delta',
            toolCallId: part.toolCallId,
            inputTextDelta: part.argumentsDelta,
          });
        }
        break;
      case 'tool-call': {
        this.#closeBlocks(chunks);
        const sentId = this.#begunIdOf(part.toolCallId, part.toolName);
        this.#knownCalls.set(part.toolCallId, sentId);
        chunks.push({
          type: 'tool-input-available',
          toolCallId: sentId,
          toolName: part.toolName,
          input: part.arguments,
        });
        break;
      }
      case 'tool-result': {
        let sentId = this.#knownCalls.get(part.toolCallId);
        if (sentId === undefined) {
          // A result of a call this stream never showed (its input is not known here): the
          // client needs the call before its output.
          sentId = part.toolCallId;
          this.#knownCalls.set(sentId, sentId);
          chunks.push({
            type: 'tool-input-available',
            toolCallId: sentId,
            toolName: part.toolName,
            input: null,
          });
        }
        chunks.push(
          part.isError
            ? { type: 'tool-output-error', toolCallId: sentId, errorText: part.result }
            : { type: 'tool-output-available', toolCallId: sentId, output: part.result },
        );
        break;
      }
      case 'step-finish':
        // The step's tool results still belong to it: `finish-step` waits for the next step or
        // the end of the turn.
        this.#closeBlocks(chunks);
        break;
      case 'turn-finish':
        this.#closeStep(chunks);
        this.#finishReason = finishReasonOf(part.result);
        if (!part.result.success && !this.#errorSent && part.result.error) {
          this.#sendError(chunks, part.result.error);
        }
        break;
      case 'error':
        this.#closeStep(chunks);
        if (part.error.code === 'ABORTED') {
          this.#aborted = true;
          chunks.push({ type: 'abort', reason: part.error.message });
        } else {
          this.#sendError(chunks, part.error);
        }
        break;
      default:
        // A part type this version does not know: nothing the protocol can show.
        break;
    }
    return chunks;
  }

  failure(error: TurnError): UIChunk[] {
    const chunks = this.#ensureStarted();
    this.#closeStep(chunks);
    this.#sendError(chunks, error);
    return chunks;
  }

  end(): UIChunk[] {
    const chunks = this.#ensureStarted();
    this.#closeStep(chunks);
    if (!this.#aborted) {
      const finishReason = this.#finishReason ?? (this.#errorSent ? 'error' : 'other');
      chunks.push({ type: 'finish', finishReason });
    }
    return chunks;
  }

  #ensureStarted(): UIChunk[] {
    if (this.#started) return [];
    this.#started = true;
    return [
      this.options.messageId === undefined
        ? { type: 'start' }
        : { type: 'start', messageId: this.options.messageId },
    ];
  }

  #sendError(chunks: UIChunk[], error: TurnError): void {
    this.#errorSent = true;
    const errorText = this.options.errorText ? this.options.errorText(error) : error.message;
    chunks.push({ type: 'error', errorText });
  }

  /**
   * The id the client knows a completed call under: its own when it was begun under it, else
   * (the runtime stored it under a fresh id) the oldest begun, unfinished call of the same tool.
   */
  #begunIdOf(storedId: string, toolName: string): string {
    if (this.#openCalls.delete(storedId)) return storedId;
    for (const [begunId, begunTool] of this.#openCalls) {
      if (begunTool === toolName && !this.#knownCalls.has(begunId)) {
        this.#openCalls.delete(begunId);
        return begunId;
      }
    }
    return storedId;
  }

  #closeText(chunks: UIChunk[]): void {
    if (this.#text === undefined) return;
    chunks.push({ type: 'text-end', id: this.#text });
    this.#text = undefined;
  }

  #closeReasoning(chunks: UIChunk[]): void {
    if (this.#reasoning === undefined) return;
    chunks.push({ type: 'reasoning-end', id: this.#reasoning });
    this.#reasoning = undefined;
  }

  #closeBlocks(chunks: UIChunk[]): void {
    this.#closeReasoning(chunks);
    this.#closeText(chunks);
  }

  #closeStep(chunks: UIChunk[]): void {
    this.#closeBlocks(chunks);
    this.#openCalls.clear();
    if (this.#stepOpen) {
      chunks.push({ type: 'finish-step' });
      this.#stepOpen = false;
    }
  }
}

function uiData(chunks: UIChunk[]): string {
  let text = '';
  for (const chunk of chunks) text += `data: ${JSON.stringify(chunk)}\n\n`;
  return text;
}

/**
 * A `Response` in the Vercel AI SDK's UI message stream protocol (v1), so a front end built on
 * `useChat` (or `readUIMessageStream`) reads an everruns-ts turn unchanged. The body is Server-Sent
 * Events, each `data:` a JSON chunk, ending with `data: [DONE]`; the header
 * `x-vercel-ai-ui-message-stream: v1` marks the protocol.
 *
 * The turn becomes one assistant message: `start` (with {@link UIMessageStreamResponseOptions.messageId},
 * by default the turn's id), then per reason step `start-step`, its reasoning
 * (`reasoning-start`/`-delta`/`-end`), text (`text-start`/`-delta`/`-end`) and tool calls
 * (`tool-input-start`, `tool-input-delta` with the argument text, `tool-input-available` with the
 * parsed arguments, keeping the call's id), the results of those calls (`tool-output-available`
 * whose `output` is the result text the model saw, or `tool-output-error` for a tool error), and
 * `finish-step`; last `finish` with a `finishReason` (`stop`, `tool-calls` when the turn waits
 * for client tool results, `error`, `other`). A failed model call or turn sends an `error` chunk;
 * an aborted turn sends `abort` and no `finish`.
 *
 * Headers: `content-type: text/event-stream`, `cache-control: no-cache`,
 * `x-accel-buffering: no` and `x-vercel-ai-ui-message-stream: v1`, unless `init.headers` sets
 * them. The body pulls from the turn stream as the client reads; cancelling it releases the turn
 * stream. Throws `INVALID_INPUT` when `stream` is not a turn stream or an option is invalid.
 */
export function turnStreamToUIMessageStreamResponse(
  stream: TurnStreamLike,
  init?: ResponseInit & UIMessageStreamResponseOptions,
): Response {
  const source = checkedTurnStream(stream);
  const parsed = uiOptionsSchema.safeParse({
    messageId: init?.messageId,
    sendReasoning: init?.sendReasoning,
    errorText: init?.errorText,
  });
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid UI message stream options: ${formatZodError(parsed.error)}`,
    });
  }
  const mapper = new UIMessageChunkMapper(parsed.data);
  const body = encodedBody(source, {
    part: (part) => uiData(mapper.part(part)),
    failure: (error) => uiData(mapper.failure(error)),
    end: () => `${uiData(mapper.end())}data: [DONE]\n\n`,
  });
  return new Response(body, {
    ...responseInitOf(init),
    headers: responseHeaders(init, {
      ...EVENT_STREAM_HEADERS,
      'x-vercel-ai-ui-message-stream': 'v1',
    }),
  });
}
