import {
  ERROR_CODES,
  type ErrorCode,
  EverrunsError,
  errorMessage,
  formatZodError,
  idSchema,
} from '@everruns-ts/core';

/** An error as the host records it in its `turns` table. */
export interface RecordedError {
  code: string;
  message: string;
}

/** Codes after which retrying a step cannot help: the turn fails at once. */
const PERMANENT_CODES = new Set<string>(['STATE_INVALID', 'SESSION_NOT_FOUND', 'INVALID_INPUT']);

/** True when a step that threw `error` would fail the same way on every retry. */
export function isPermanentStepError(error: unknown): boolean {
  return EverrunsError.isInstance(error) && PERMANENT_CODES.has(error.code);
}

/** The code and message of anything thrown, for the `turns` table. */
export function recordedError(error: unknown): RecordedError {
  return {
    code: EverrunsError.isInstance(error) ? error.code : 'INTERNAL',
    message: errorMessage(error),
  };
}

/** A `CONFIGURATION` error about the host's options. */
export function configurationError(
  message: string,
  details: Record<string, unknown> = {},
): EverrunsError {
  return new EverrunsError({ code: 'CONFIGURATION', message, details });
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A turn id a caller gives the host: an id as core's `idSchema` takes them (1 to 256 characters,
 * no control characters), well-formed UTF-16. The host keeps it in its table and in the `NOTIFY`
 * payload that announces the turn's end (`schema:turnId`, then a newline and the result), where
 * a newline would end it early, a NUL cannot go and a long one would not fit; node-postgres
 * sends a lone surrogate as U+FFFD, so the row would name another id than the caller's.
 */
export const turnIdSchema = idSchema.refine(
  (value) => !LONE_SURROGATE.test(value),
  'must not hold a lone surrogate',
);

/** Throws `INVALID_INPUT` unless `turnId` is one {@link turnIdSchema} takes (the id is not echoed). */
export function assertTurnId(turnId: unknown): asserts turnId is string {
  const parsed = turnIdSchema.safeParse(turnId);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid turnId: ${formatZodError(parsed.error)}`,
    });
  }
}

/** The `INVALID_INPUT` error for a turn id the host's table does not have. */
export function unknownTurnError(turnId: string): EverrunsError {
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `Turn ${turnId} is unknown to this host`,
    details: { turnId },
  });
}

/** The error a failed turn's handle rejects with: the recorded code when it is one of ours. */
export function failedTurnError(
  turnId: string,
  recorded: RecordedError | undefined,
): EverrunsError {
  const code = recorded?.code;
  return new EverrunsError({
    code: code && isErrorCode(code) ? code : 'INTERNAL',
    message: recorded?.message ?? `Turn ${turnId} failed`,
    details: { turnId, ...(code ? { errorCode: code } : {}) },
  });
}

function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

const STALE_STEP_MARKER = Symbol.for('everruns-ts.host-pgboss.stale-step');

/**
 * Thrown inside a step whose claim on its turn was taken over (a retry of a step that outlived
 * `stepTimeoutSeconds`, a newer generation): the step stops without writing to the turn or the
 * session. Never leaves the host.
 */
export class StaleStepError extends Error {
  readonly [STALE_STEP_MARKER] = true;

  constructor(turnId: string) {
    super(`The step of turn ${turnId} lost its claim to a newer one`);
    this.name = 'StaleStepError';
  }

  /** True for a {@link StaleStepError} (of any copy of this package). */
  static isInstance(error: unknown): error is StaleStepError {
    return typeof error === 'object' && error !== null && STALE_STEP_MARKER in error;
  }
}
