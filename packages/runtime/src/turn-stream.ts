import { EverrunsError, errorMessage, formatZodError } from '@everruns-ts/core';
import { z } from 'zod';
import type { TurnResult } from './turn-step.js';
import type { TurnStreamLike, TurnStreamPart } from './turn-stream-parts.js';
import {
  turnStreamToReadableStream,
  turnStreamToSSEResponse,
  turnStreamToUIMessageStreamResponse,
  type UIMessageStreamResponseOptions,
} from './turn-stream-web.js';

/** The default {@link TurnStreamOptions.highWaterMark}. */
export const DEFAULT_TURN_STREAM_HIGH_WATER_MARK = 256;

/** Options of {@link TurnStream}. */
export interface TurnStreamOptions {
  /**
   * How many unread parts the stream buffers before it starts merging deltas (a positive
   * integer; default {@link DEFAULT_TURN_STREAM_HIGH_WATER_MARK}). Past it, a `text-delta`,
   * `reasoning-delta` or `tool-call-delta` is appended to the last buffered part when that part
   * is a delta of the same kind, step and call, instead of taking a place of its own. The turn
   * never waits for the consumer.
   */
  highWaterMark?: number;
}

const turnStreamOptionsSchema = z
  .object({ highWaterMark: z.number().int().positive().optional() })
  .passthrough();

/** What the producer of a {@link TurnStream} writes to. */
export interface TurnStreamSink {
  /** Buffers one part for the consumer (ignored once the stream ended or the consumer left). */
  push(part: TurnStreamPart): void;
  /** Ends the stream with `turn-finish` carrying `result`; `result` resolves with it. */
  end(result: TurnResult): void;
  /**
   * Ends the stream with an `error` part (unless the last part already is an error of the same
   * code); `result` rejects with `error`.
   */
  fail(error: unknown): void;
}

type DeltaPart = Extract<
  TurnStreamPart,
  { type: 'text-delta' | 'reasoning-delta' | 'tool-call-delta' }
>;

function isDelta(part: TurnStreamPart): part is DeltaPart {
  return (
    part.type === 'text-delta' || part.type === 'reasoning-delta' || part.type === 'tool-call-delta'
  );
}

/** Whether `next` can be merged into `last`: deltas of the same kind, step and call. */
function mergeable(last: TurnStreamPart, next: DeltaPart): last is DeltaPart {
  if (last.type !== next.type || last.iteration !== next.iteration) return false;
  if (last.type === 'tool-call-delta' && next.type === 'tool-call-delta') {
    return last.toolCallId === next.toolCallId;
  }
  return true;
}

/** The text a delta part carries. */
function deltaText(part: DeltaPart): string {
  return part.type === 'tool-call-delta' ? part.argumentsDelta : part.text;
}

/** `part` carrying `text` instead. */
function withDeltaText(part: DeltaPart, text: string): DeltaPart {
  return part.type === 'tool-call-delta' ? { ...part, argumentsDelta: text } : { ...part, text };
}

/** The `error` part's payload for any thrown value. */
function errorPayload(error: unknown): Extract<TurnStreamPart, { type: 'error' }>['error'] {
  if (EverrunsError.isInstance(error)) {
    return {
      code: error.code,
      message: error.message,
      ...(Object.keys(error.details).length > 0 ? { details: { ...error.details } } : {}),
    };
  }
  return { code: 'INTERNAL', message: errorMessage(error) };
}

function noop(): void {}

/**
 * A turn as it runs (what `InProcessRuntime.streamTurn` returns): iterate it once with
 * `for await` for its {@link TurnStreamPart}s, await {@link result} for the {@link TurnResult}.
 *
 * - The parts end with `turn-finish` (the turn ended, successfully or not, or waits for client
 *   tool results), or with an `error` part when the turn could not run or was aborted; the
 *   iteration then ends and `result` rejects with the same typed error.
 * - `result` settles whether or not anyone iterates or awaits it (a rejection nobody awaits is
 *   not reported as unhandled).
 * - One consumer: iterating a second time throws `INVALID_INPUT`.
 * - A consumer that stops iterating (`break`, `return()`) detaches: the buffered parts are dropped
 *   and the turn runs on to its end, then releases the session as any turn does.
 * - Bounded buffer: the turn never waits for the consumer. Up to `highWaterMark` unread parts are
 *   buffered as they come; past it, each delta is merged into the last buffered part when that
 *   is a delta of the same kind, step and call (a slow reader then gets fewer, larger deltas with
 *   the same text). Other parts are always buffered; a turn has few of them (one per step, tool
 *   call and result), so the memory a stalled reader holds is bounded by the turn's own output.
 */
export class TurnStream<Output = unknown> implements TurnStreamLike {
  /**
   * The turn's result; rejects with the typed error of a turn that could not run or was aborted.
   * `Output` types its structured `output` (`streamTurn(..., { output })`).
   */
  readonly result: Promise<TurnResult<Output>>;
  readonly #highWaterMark: number;
  /** Unread parts, oldest first, from {@link #head}. */
  #buffer: TurnStreamPart[] = [];
  #head = 0;
  #ended = false;
  #detached = false;
  #iterated = false;
  /**
   * Merging past `highWaterMark`: the index of the buffered delta later deltas go into, and the
   * texts merged so far (the first is that delta's own). They are joined when the part is read or
   * another part follows it, and from time to time before, so a long answer is held as a few
   * flat strings, not as one string object per delta.
   */
  #mergeIndex = -1;
  #mergeTexts: string[] = [];
  /** Characters in `#mergeTexts[0]`, and in the rest. */
  #mergeJoinedLength = 0;
  #mergePendingLength = 0;
  /** The last part pushed (read or not). */
  #lastPushed: TurnStreamPart | undefined;
  #waiting: ((value: IteratorResult<TurnStreamPart>) => void) | undefined;
  #resolve!: (result: TurnResult<Output>) => void;
  #reject!: (error: unknown) => void;

  /**
   * Creates a stream and calls `start` at once with its sink (a producer writes the parts, then
   * ends or fails it). Never throws: a `start` that throws, or options the schema refuses
   * (`INVALID_INPUT`, `start` is then not called), fail the stream.
   */
  constructor(start: (sink: TurnStreamSink) => void, options: TurnStreamOptions = {}) {
    this.result = new Promise<TurnResult<Output>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.result.catch(noop);
    // Most streams take the default: no schema run for them.
    const highWaterMark = (options as TurnStreamOptions | null | undefined)?.highWaterMark;
    const parsed =
      options !== null &&
      typeof options === 'object' &&
      Object.getPrototypeOf(options) === Object.prototype &&
      (highWaterMark === undefined || (Number.isSafeInteger(highWaterMark) && highWaterMark > 0))
        ? ({ success: true, data: { highWaterMark } } as const)
        : turnStreamOptionsSchema.safeParse(options ?? {});
    this.#highWaterMark = parsed.success
      ? (parsed.data.highWaterMark ?? DEFAULT_TURN_STREAM_HIGH_WATER_MARK)
      : DEFAULT_TURN_STREAM_HIGH_WATER_MARK;
    const sink: TurnStreamSink = {
      push: (part) => this.#push(part),
      end: (result) => this.#end(result),
      fail: (error) => this.#fail(error),
    };
    if (!parsed.success) {
      this.#fail(
        new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Invalid stream options: ${formatZodError(parsed.error)}`,
        }),
      );
      return;
    }
    try {
      start(sink);
    } catch (error) {
      this.#fail(error);
    }
  }

  /** How many parts are buffered and not read yet. */
  get bufferedParts(): number {
    return this.#buffer.length - this.#head;
  }

  /** The `highWaterMark` this stream buffers up to before merging deltas. */
  get highWaterMark(): number {
    return this.#highWaterMark;
  }

  #push(part: TurnStreamPart): void {
    if (this.#ended) return;
    this.#lastPushed = part;
    if (this.#detached) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      waiting({ value: part, done: false });
      return;
    }
    if (this.bufferedParts >= this.#highWaterMark && isDelta(part)) {
      const lastIndex = this.#buffer.length - 1;
      const last = this.#buffer[lastIndex];
      if (last !== undefined && mergeable(last, part)) {
        this.#merge(lastIndex, last, deltaText(part));
        return;
      }
    }
    this.#settleMerge();
    this.#buffer.push(part);
  }

  #merge(index: number, into: DeltaPart, text: string): void {
    if (this.#mergeIndex !== index) {
      this.#settleMerge();
      const first = deltaText(into);
      this.#mergeIndex = index;
      this.#mergeTexts = [first];
      this.#mergeJoinedLength = first.length;
      this.#mergePendingLength = 0;
    }
    const texts = this.#mergeTexts;
    texts.push(text);
    this.#mergePendingLength += text.length;
    // Join when the pieces are many: often enough that few are held, rarely enough (when their
    // text is small next to what is joined already) that joining stays linear overall.
    if (
      texts.length >= 4096 ||
      (texts.length >= 256 && this.#mergePendingLength * 16 >= this.#mergeJoinedLength)
    ) {
      const joined = texts.join('');
      this.#mergeTexts = [joined];
      this.#mergeJoinedLength = joined.length;
      this.#mergePendingLength = 0;
    }
  }

  /** Writes the merged text into its buffered part; no merge is under way afterwards. */
  #settleMerge(): void {
    const index = this.#mergeIndex;
    if (index < 0) return;
    this.#mergeIndex = -1;
    const texts = this.#mergeTexts;
    this.#mergeTexts = [];
    const part = this.#buffer[index];
    if (part !== undefined && isDelta(part)) {
      this.#buffer[index] = withDeltaText(part, texts.join(''));
    }
  }

  #end(result: TurnResult): void {
    if (this.#ended) return;
    this.#push({ type: 'turn-finish', result });
    this.#close();
    this.#resolve(result as TurnResult<Output>);
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    const payload = errorPayload(error);
    const last = this.#lastPushed;
    const alreadySaid = last?.type === 'error' && last.error.code === payload.code;
    if (!alreadySaid) this.#push({ type: 'error', error: payload });
    this.#close();
    this.#reject(error);
  }

  /** No more parts come; a reader waiting on an empty buffer is told so. */
  #close(): void {
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  #detach(): void {
    this.#detached = true;
    this.#mergeIndex = -1;
    this.#mergeTexts = [];
    this.#buffer = [];
    this.#head = 0;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  #next(): Promise<IteratorResult<TurnStreamPart>> {
    if (this.#detached) return Promise.resolve({ value: undefined, done: true });
    if (this.#head < this.#buffer.length) {
      if (this.#mergeIndex === this.#head) this.#settleMerge();
      const part = this.#buffer[this.#head] as TurnStreamPart;
      this.#head++;
      if (this.#head === this.#buffer.length) {
        this.#buffer = [];
        this.#head = 0;
      } else if (this.#head >= 1024 && this.#head * 2 >= this.#buffer.length) {
        this.#settleMerge();
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value: part, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiting !== undefined) {
      return Promise.reject(
        new EverrunsError({
          code: 'INVALID_INPUT',
          message: 'TurnStream: next() was called again before the previous call resolved',
        }),
      );
    }
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /**
   * The parts as a web-standard `ReadableStream` (see `turnStreamToReadableStream`). It reads
   * this stream, so iterate one or the other.
   */
  toReadableStream(): ReadableStream<TurnStreamPart> {
    return turnStreamToReadableStream(this);
  }

  /**
   * A `Response` streaming the parts as Server-Sent Events (see `turnStreamToSSEResponse`). It
   * reads this stream, so iterate one or the other.
   */
  toSSEResponse(init?: ResponseInit): Response {
    return turnStreamToSSEResponse(this, init);
  }

  /**
   * A `Response` in the Vercel AI SDK's UI message stream protocol, what `useChat` reads (see
   * `turnStreamToUIMessageStreamResponse`). It reads this stream, so iterate one or the other.
   */
  toUIMessageStreamResponse(init?: ResponseInit & UIMessageStreamResponseOptions): Response {
    return turnStreamToUIMessageStreamResponse(this, init);
  }

  /**
   * The parts, once. Throws `INVALID_INPUT` when the stream is iterated a second time. Leaving
   * the loop early detaches (the turn goes on).
   */
  [Symbol.asyncIterator](): AsyncIterator<TurnStreamPart> {
    if (this.#iterated) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'A TurnStream can be iterated once; it is already being (or was) iterated',
      });
    }
    this.#iterated = true;
    return {
      next: () => this.#next(),
      return: () => {
        this.#detach();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
