import {
  type EventBus,
  EverrunsError,
  formatZodError,
  type InputMessage,
  inputMessageSchema,
  newId,
  type RuntimeEvent,
  type SessionSetupSnapshot,
  validateTurnInput,
} from '@everruns-ts/core';
import {
  initialTurnStep,
  loadWaitingTurn,
  parseRuntimeTurnStep,
  pendingClientToolCalls,
  type RuntimeHostAdapter,
  TurnEventTranslator,
  type TurnResult,
  TurnStream,
  type TurnStreamPart,
  type TurnStreamSink,
} from '@everruns-ts/runtime/host';
import { z } from 'zod';
import { assertRunning, type HostContext } from './host-context.js';
import { assertTurnId, failedTurnError, turnIdSchema, unknownTurnError } from './host-errors.js';
import { claimTurnLease, releaseTurnLease, turnLeaseHolder } from './host-turn-lease.js';
import { fromJsonbValue } from './jsonb-text.js';
import type { TurnWatch } from './turn-notifications.js';
import type { HostTurnStatus } from './turn-records.js';

/** Options of `PgBossHost.submitTurn`. */
export interface SubmitTurnOptions {
  /**
   * The turn id; generated when absent. 1 to 256 characters, without control characters or lone
   * surrogates (`INVALID_INPUT` otherwise, nothing written): the host keeps it in its table and
   * in the notification of the turn's end.
   */
  turnId?: string;
  /**
   * Stream the turn: its reason steps call the model through the driver's `stream` and emit the
   * answer's pieces as ephemeral events, and the handle is an `AsyncIterable<TurnStreamPart>`
   * ({@link StreamingTurnHandle}) fed by the stores' event bus, whichever process runs the
   * steps. Needs an event bus with `subscribe` that hears other processes (the PostgreSQL bus).
   */
  stream?: boolean;
  /** The stream's buffer before deltas are merged (`TurnStreamOptions.highWaterMark`). */
  highWaterMark?: number;
}

const submitTurnOptionsSchema = z.object({
  turnId: turnIdSchema.optional(),
  stream: z.boolean().optional(),
  highWaterMark: z.number().int().positive().optional(),
});

/** Options of {@link TurnHandle.result}. */
export interface TurnResultOptions {
  /** Stops waiting (rejects with `ABORTED`). */
  signal?: AbortSignal;
  /** Gives up waiting after this many milliseconds (rejects with `LIMIT_EXCEEDED`). */
  timeoutMs?: number;
}

/** A submitted turn: await its result or poll its status. */
export interface TurnHandle {
  readonly turnId: string;
  readonly sessionId: string;
  /** The turn as the host's table has it now. */
  status(): Promise<HostTurnStatus>;
  /**
   * Waits until the turn completes (or waits for client tool results) and resolves with its
   * result; rejects with the host's error when the turn `failed`.
   */
  result(options?: TurnResultOptions): Promise<TurnResult>;
}

/**
 * The handle of a streamed turn ({@link SubmitTurnOptions.stream}): iterate it once for the
 * turn's parts, as `InProcessRuntime.streamTurn` yields them (`turn-start`, `step-start`,
 * `text-delta`, `reasoning-delta`, `tool-call-start`, `tool-call-delta`, `tool-call`,
 * `tool-result`, `step-finish`, then `turn-finish` with the handle's result), or use `stream`
 * (its `result` promise, web adapters).
 */
export interface StreamingTurnHandle extends TurnHandle, AsyncIterable<TurnStreamPart> {
  /**
   * The turn's stream. It ends with `turn-finish` once the turn completes (or waits for client
   * tool results), after every event the workers emitted before that has arrived; with an
   * `error` part when the turn `failed` or the host stopped (its `result` then rejects).
   */
  readonly stream: TurnStream;
}

/** The `subscribe` of a bus, with the PostgreSQL bus's options and readiness where it has them. */
type SubscribingBus = EventBus & {
  subscribe(
    listener: (event: RuntimeEvent) => void,
    options?: { sessionId?: string },
  ): (() => void) & { ready?: Promise<void> };
  caughtUp?(): Promise<void>;
};

/**
 * The client side of turns: submitting one (a row in the `turns` table and its input step job),
 * handles that poll or await it, and resuming one from its checkpoint.
 */
export class TurnSubmission {
  readonly #context: HostContext;

  constructor(context: HostContext) {
    this.#context = context;
  }

  /**
   * Records a turn and enqueues its input step. Throws `INVALID_INPUT`, `SESSION_NOT_FOUND`,
   * `LIMIT_EXCEEDED` (input size), `CAPABILITY_NOT_FOUND`, `MODEL_NOT_FOUND`, `CONFIGURATION`,
   * `DRIVER_NOT_FOUND` (as the input step checks them), `TURN_IN_PROGRESS`, `TURN_WAITING_FOR_TOOL_RESULTS` (a turn of the session waits for client
   * tool results: submit them first) and `DUPLICATE_ID` before anything runs.
   */
  async submitTurn(
    sessionId: string,
    input: InputMessage,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle | StreamingTurnHandle> {
    const { adapter, turns, steps } = this.#context;
    assertRunning(this.#context);
    const parsedOptions = submitTurnOptionsSchema.safeParse(options ?? {});
    if (!parsedOptions.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid submitTurn options: ${formatZodError(parsedOptions.error)}`,
      });
    }
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'sessionId must be a non-empty string',
      });
    }
    const parsed = inputMessageSchema.safeParse(input);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid input message: ${formatZodError(parsed.error)}`,
      });
    }
    const turnId = parsedOptions.data.turnId ?? newId('turn');
    const { sessions } = adapter.backends;
    // The session's lease first: no other runtime on these stores runs a turn on it meanwhile.
    // Where the backends can, the claim reads the session's setup in the same round trip.
    await this.#claimAndValidate(sessionId, turnId, parsed.data);
    const initial = initialTurnStep({
      sessionId,
      turnId,
      input: parsed.data,
      maxIterations: adapter.limits.maxIterations,
      maxRepeatedToolCalls: adapter.limits.maxRepeatedToolCalls,
    });
    const streaming = parsedOptions.data.stream === true;
    const step = streaming ? { ...initial, state: { ...initial.state, stream: true } } : initial;
    let listener: TurnListener | undefined;
    // Taken before the turn's row is written: while it holds, the turn has not ended, so the
    // handle's first wait needs no read of the row.
    const watch = this.#context.notifications.watch(turnId);
    try {
      // A streamed turn's subscriber listens before anything is enqueued, so no event is missed.
      if (streaming) listener = await this.#listen(sessionId, turnId);
      // The turn's row and its first job in one atomic write: neither exists without the other.
      const waiting = await turns.insert(turnId, sessionId, step, (db) =>
        steps.enqueue(step, 0, db),
      );
      if (waiting !== null) throw await waitingForToolResultsError(adapter, sessionId, waiting);
      await steps.wake(true);
    } catch (error) {
      if (watch) this.#context.notifications.unwatch(turnId, watch);
      listener?.unsubscribe();
      await releaseTurnLease(sessions, sessionId, turnId);
      throw error;
    }
    const handle = this.#handle(turnId, sessionId, watch);
    if (!listener) return handle;
    const highWaterMark = parsedOptions.data.highWaterMark;
    const stream = new TurnStream(
      (sink) => listener.attach(sink, handle),
      highWaterMark === undefined ? {} : { highWaterMark },
    );
    return {
      ...handle,
      stream,
      [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
    };
  }

  /**
   * Claims the session's turn lease for `turnId`, then checks everything the input step would
   * check before writing (the input's size, the session's capabilities, model and driver), so a
   * refused turn is never recorded; a refused turn releases the lease. With backends that offer
   * `claimTurnLeaseAndLoadSetup`, the claim reads the setup the checks need in the same round
   * trip. Throws `SESSION_NOT_FOUND`, `TURN_IN_PROGRESS` and the checks' errors.
   */
  async #claimAndValidate(sessionId: string, turnId: string, input: InputMessage): Promise<void> {
    const { adapter, turnLeaseMs } = this.#context;
    const { backends } = adapter;
    const { sessions, claimTurnLeaseAndLoadSetup } = backends;
    let setup: SessionSetupSnapshot | undefined;
    if (claimTurnLeaseAndLoadSetup) {
      const claimed = await claimTurnLeaseAndLoadSetup.call(
        backends,
        sessionId,
        turnLeaseHolder(turnId),
        turnLeaseMs,
      );
      setup = claimed.setup ?? undefined;
    } else {
      if (!(await sessions.getSession(sessionId))) {
        throw new EverrunsError({
          code: 'SESSION_NOT_FOUND',
          message: `Session ${sessionId} does not exist`,
          details: { sessionId },
        });
      }
      await claimTurnLease(sessions, sessionId, turnId, turnLeaseMs);
    }
    try {
      await validateTurnInput(adapter, { sessionId, input, ...(setup ? { setup } : {}) });
    } catch (error) {
      await releaseTurnLease(sessions, sessionId, turnId);
      throw error;
    }
  }

  /**
   * Subscribes to the session's events on the stores' bus (waiting until other processes' events
   * arrive) and translates the turn's into parts; parts are held until a stream attaches.
   */
  async #listen(sessionId: string, turnId: string): Promise<TurnListener> {
    const bus = this.#context.adapter.backends.events as Partial<SubscribingBus>;
    if (typeof bus.subscribe !== 'function') {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message:
          'Streaming a turn needs an event bus with subscribe that hears other processes (the PostgreSQL event bus)',
      });
    }
    const translator = new TurnEventTranslator({ turnId });
    const held: TurnStreamPart[] = [];
    let sink: TurnStreamSink | undefined;
    const unsubscribe = bus.subscribe(
      (event) => {
        for (const part of translator.translate(event)) {
          if (sink) sink.push(part);
          else held.push(part);
        }
      },
      { sessionId },
    );
    try {
      await unsubscribe.ready;
    } catch (error) {
      unsubscribe();
      throw error;
    }
    // Bounded: a bus whose connection stays down must not hold the stream open for ever.
    const caughtUp = async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          bus.caughtUp?.(),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, CAUGHT_UP_TIMEOUT_MS);
          }),
        ]);
      } catch (error) {
        this.#context.onError(error);
      } finally {
        clearTimeout(timer);
      }
    };
    return {
      unsubscribe,
      attach: (target, handle) => {
        sink = target;
        for (const part of held.splice(0)) target.push(part);
        handle.result().then(
          async (result) => {
            await caughtUp();
            unsubscribe();
            target.end(result);
          },
          async (error: unknown) => {
            await caughtUp();
            unsubscribe();
            target.fail(error);
          },
        );
      },
    };
  }

  /** A handle on a turn submitted earlier (by any process). */
  handle(turnId: string, sessionId: string): TurnHandle {
    assertTurnId(turnId);
    return this.#handle(turnId, sessionId, null);
  }

  /** {@link handle}, with the watch taken when this process submitted the turn. */
  #handle(turnId: string, sessionId: string, watch: TurnWatch | null): TurnHandle {
    return {
      turnId,
      sessionId,
      status: async () => {
        const status = await this.status(turnId);
        if (!status) throw unknownTurnError(turnId);
        return status;
      },
      result: (options) => this.#awaitResult(turnId, options ?? {}, watch),
    };
  }

  /** The turn as the host's table has it, or `null` for an unknown turn. */
  async status(turnId: string): Promise<HostTurnStatus | null> {
    assertTurnId(turnId);
    const row = await this.#context.turns.get(turnId);
    if (!row) return null;
    const { stepValue: _step, ...status } = row;
    return status;
  }

  /**
   * Resumes a failed or stuck turn from its checkpoint as a new generation of jobs; does nothing
   * for a completed turn. Throws `INVALID_INPUT` for an unknown turn.
   */
  async resumeTurn(turnId: string): Promise<void> {
    assertRunning(this.#context);
    assertTurnId(turnId);
    const next = await this.#context.turns.nextGeneration(turnId);
    if (!next) return;
    await this.#context.steps.send(parseRuntimeTurnStep(next.step), next.generation, true);
  }

  /**
   * Waits for the turn's result, reading its row after each notification of it (and at least once
   * a second). A `watch` taken before the turn's row was written spares the first read while it
   * holds: the turn has not been announced since, so it is still running; and when the turn's
   * notification carried its result (a completed turn), no read at all.
   */
  async #awaitResult(
    turnId: string,
    options: TurnResultOptions,
    watch: TurnWatch | null,
  ): Promise<TurnResult> {
    const { notifications } = this.#context;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    await notifications.listen();
    for (let first = true; ; first = false) {
      if (options.signal?.aborted) {
        throw new EverrunsError({
          code: 'ABORTED',
          message: 'Stopped waiting for the turn',
          cause: options.signal.reason,
        });
      }
      if (watch?.completed !== undefined) {
        // Parsed on each call: every caller gets its own object, as from a read of the row.
        const completed = parseCompletedResult(watch.completed);
        if (completed !== undefined) return completed;
        watch.completed = undefined;
      }
      if (!first || !watch?.live || watch.announced) {
        const status = await this.status(turnId);
        if (!status) throw unknownTurnError(turnId);
        if (status.result && status.status !== 'running') return status.result;
        if (status.status === 'failed') throw failedTurnError(turnId, status.error);
      }
      if (this.#context.stopped) {
        throw new EverrunsError({ code: 'ABORTED', message: 'The host was stopped' });
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new EverrunsError({
          code: 'LIMIT_EXCEEDED',
          message: `Turn ${turnId} did not finish within ${options.timeoutMs} ms`,
          details: { turnId },
        });
      }
      await notifications.waitForChange(turnId, Math.min(remaining, 1_000), options.signal);
    }
  }
}

/** A completed turn's result from its notification; `undefined` when it does not parse (the row is read). */
function parseCompletedResult(text: string): TurnResult | undefined {
  try {
    // The row's JSON text, as `TurnRecords` wrote it (see `jsonb-text.ts`).
    const value: unknown = fromJsonbValue(JSON.parse(text));
    return typeof value === 'object' && value !== null ? (value as TurnResult) : undefined;
  } catch {
    return undefined;
  }
}

/** How long a streamed turn's end waits for the bus to deliver the turn's last events. */
const CAUGHT_UP_TIMEOUT_MS = 10_000;

/** A streamed turn's subscription, before and after its stream exists. */
interface TurnListener {
  unsubscribe(): void;
  /** Feeds `sink` with the turn's parts, then ends it with the handle's result. */
  attach(sink: TurnStreamSink, handle: TurnHandle): void;
}

/**
 * The `TURN_WAITING_FOR_TOOL_RESULTS` error for a new turn refused because `waitingTurnId` waits
 * for client tool results (details `sessionId`, `turnId`, `pendingToolCallIds`).
 */
async function waitingForToolResultsError(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  waitingTurnId: string,
): Promise<EverrunsError> {
  const resume = await loadWaitingTurn(adapter, sessionId, waitingTurnId).catch(() => null);
  const pending = resume ? await pendingClientToolCalls(adapter, resume) : [];
  const ids = pending.map((call) => call.id);
  return new EverrunsError({
    code: 'TURN_WAITING_FOR_TOOL_RESULTS',
    message: `Turn ${waitingTurnId} of session ${sessionId} waits for the results of client-side tool calls ${ids.join(', ')}; submit them (isError: true abandons a call) before starting a new turn`,
    details: { sessionId, turnId: waitingTurnId, pendingToolCallIds: ids },
  });
}
