import { EverrunsError, type LlmCallOptions } from '@everruns-ts/core';
import { z } from 'zod';

/**
 * Where a model call was when a timeout ended it: waiting for the response headers (`connect`),
 * for the first byte of a streamed body (`firstByte`), for the next chunk (`idle`), or the whole
 * call, retries and waits between them included (`total`).
 */
export type DriverTimeoutPhase = 'connect' | 'firstByte' | 'idle' | 'total';

/** A limit in milliseconds (a positive integer), or `false` for none. */
const limitSchema = z.union([z.number().int().positive(), z.literal(false)]);

/** The zod schema of {@link DriverTimeouts}; unknown keys are refused. */
export const driverTimeoutsSchema = z
  .object({
    connectTimeoutMs: limitSchema.optional(),
    firstByteTimeoutMs: limitSchema.optional(),
    idleTimeoutMs: limitSchema.optional(),
    totalTimeoutMs: limitSchema.optional(),
  })
  .strict();

/**
 * The timeouts of a driver's calls, each in milliseconds or `false` for none. Given on the
 * driver's options and per call (`{ timeouts }` in the call options); a per-call value wins.
 */
export interface DriverTimeouts {
  /**
   * From sending the request until the response's status and headers arrive (the connection,
   * TLS and the server accepting the call). Defaults to 60 000. With `streaming: false` the
   * headers only come with the whole answer, so that wait counts as `firstByteTimeoutMs`.
   */
  connectTimeoutMs?: number | false | undefined;
  /**
   * From the headers until the first chunk of the body (for a non-streamed call: from sending
   * the request until the headers). Defaults to 600 000 (a reasoning model may think long).
   */
  firstByteTimeoutMs?: number | false | undefined;
  /**
   * The longest silence between two chunks of the body. Time the consumer of a stream spends
   * between reads does not count. Defaults to 300 000.
   */
  idleTimeoutMs?: number | false | undefined;
  /** The whole call, every retry and wait included. Defaults to `false` (no limit). */
  totalTimeoutMs?: number | false | undefined;
}

/** The timeouts used when neither the driver's options nor the call set one. */
export const DEFAULT_DRIVER_TIMEOUTS: Readonly<Required<DriverTimeouts>> = Object.freeze({
  connectTimeoutMs: 60_000,
  firstByteTimeoutMs: 600_000,
  idleTimeoutMs: 300_000,
  totalTimeoutMs: false,
});

/** Whether `value` looks like an `AbortSignal` (one from another realm passes too). */
function isAbortSignalLike(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { aborted?: unknown }).aborted === 'boolean' &&
    typeof (value as { addEventListener?: unknown }).addEventListener === 'function'
  );
}

/** The zod schema of {@link HttpCallOptions}: `signal` and `timeouts`; other keys pass through. */
export const httpCallOptionsSchema = z.looseObject({
  signal: z.custom<AbortSignal>(isAbortSignalLike, 'Expected an AbortSignal').optional(),
  timeouts: driverTimeoutsSchema.optional(),
});

/** The options of one call to an HTTP driver: core's call options plus timeouts. */
export interface HttpCallOptions extends LlmCallOptions {
  /** Timeouts of this call; each one set here replaces the driver's. */
  timeouts?: DriverTimeouts;
}

/**
 * Checks timeouts given to a driver or a call; throws `INVALID_INPUT` naming the bad field.
 * `where` says which (for example `OpenAiDriver options`).
 */
export function parseDriverTimeouts(value: unknown, where: string): DriverTimeouts {
  const parsed = driverTimeoutsSchema.safeParse(value ?? {});
  if (!parsed.success) throw invalidOptions(parsed.error, where);
  return parsed.data;
}

/** Checks the options of one call; throws `INVALID_INPUT` naming the bad field. */
export function parseHttpCallOptions(value: unknown): HttpCallOptions {
  const parsed = httpCallOptionsSchema.safeParse(value ?? {});
  if (!parsed.success) throw invalidOptions(parsed.error, 'call options');
  return parsed.data as HttpCallOptions;
}

function invalidOptions(error: z.ZodError, where: string): EverrunsError {
  const issue = error.issues[0];
  const path = issue?.path.join('.') ?? '';
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `Invalid ${where}${path ? ` (${path})` : ''}: ${issue?.message ?? 'invalid value'}`,
    details: { issues: error.issues.map((each) => ({ path: each.path, message: each.message })) },
  });
}

/** Per-call timeouts laid over the driver's, over the defaults. */
export function resolveTimeouts(
  driver: DriverTimeouts | undefined,
  call: DriverTimeouts | undefined,
): Required<DriverTimeouts> {
  const pick = (key: keyof DriverTimeouts): number | false =>
    call?.[key] ?? driver?.[key] ?? DEFAULT_DRIVER_TIMEOUTS[key] ?? false;
  return {
    connectTimeoutMs: pick('connectTimeoutMs'),
    firstByteTimeoutMs: pick('firstByteTimeoutMs'),
    idleTimeoutMs: pick('idleTimeoutMs'),
    totalTimeoutMs: pick('totalTimeoutMs'),
  };
}

const PHASE_LIMIT: Record<DriverTimeoutPhase, keyof DriverTimeouts> = {
  connect: 'connectTimeoutMs',
  firstByte: 'firstByteTimeoutMs',
  idle: 'idleTimeoutMs',
  total: 'totalTimeoutMs',
};

/** A timeout that fired: its phase and its limit. */
export interface ExpiredTimeout {
  phase: DriverTimeoutPhase;
  limitMs: number;
}

/**
 * The clock of one model call: its signal fires when the caller aborts or the total timeout
 * runs out; each attempt gets an {@link AttemptClock} for the per-phase timeouts.
 */
export class CallClock {
  readonly timeouts: Required<DriverTimeouts>;
  readonly callerSignal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired: ExpiredTimeout | undefined;
  readonly #onCallerAbort = () => this.#controller.abort(this.callerSignal?.reason);

  constructor(timeouts: Required<DriverTimeouts>, callerSignal: AbortSignal | undefined) {
    this.timeouts = timeouts;
    this.callerSignal = callerSignal;
    if (callerSignal?.aborted) this.#controller.abort(callerSignal.reason);
    else callerSignal?.addEventListener('abort', this.#onCallerAbort, { once: true });
    const total = timeouts.totalTimeoutMs;
    if (total !== false) {
      this.#timer = setTimeout(() => {
        this.#expired = { phase: 'total', limitMs: total };
        this.#controller.abort(new Error(`total timeout of ${total} ms`));
      }, total);
    }
  }

  /** Fires when the caller aborts or the total timeout runs out. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The total timeout, once it has run out. */
  get expired(): ExpiredTimeout | undefined {
    return this.#expired;
  }

  /** A clock for one attempt, aborted with this call. */
  attempt(): AttemptClock {
    return new AttemptClock(this);
  }

  /** Stops the total timer and lets go of the caller's signal. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.callerSignal?.removeEventListener('abort', this.#onCallerAbort);
  }
}

/** The per-phase timeouts of one HTTP attempt; its signal goes to `fetch`. */
export class AttemptClock {
  readonly #call: CallClock;
  readonly #controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expired: ExpiredTimeout | undefined;
  readonly #onCallAbort = () => this.#controller.abort(this.#call.signal.reason);

  constructor(call: CallClock) {
    this.#call = call;
    if (call.signal.aborted) this.#controller.abort(call.signal.reason);
    else call.signal.addEventListener('abort', this.#onCallAbort, { once: true });
  }

  /** Fires when this attempt times out, the caller aborts or the total timeout runs out. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The phase timeout that ended this attempt, if one did. */
  get expired(): ExpiredTimeout | undefined {
    return this.#expired;
  }

  /** Starts the timeout of `phase`, replacing the one running. */
  arm(phase: Exclude<DriverTimeoutPhase, 'total'>): void {
    clearTimeout(this.#timer);
    const limit = this.#call.timeouts[PHASE_LIMIT[phase]];
    if (limit === false || limit === undefined) return;
    this.#timer = setTimeout(() => {
      this.#expired = { phase, limitMs: limit };
      this.#controller.abort(new Error(`${phase} timeout of ${limit} ms`));
    }, limit);
  }

  /** Stops the running phase timeout. */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Stops the timer and lets go of the call's signal. */
  dispose(): void {
    this.disarm();
    this.#call.signal.removeEventListener('abort', this.#onCallAbort);
  }
}
