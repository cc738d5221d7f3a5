import { EverrunsError } from '@everruns-ts/core';

/** SQLSTATEs after which the same transaction may succeed when run again. */
const RETRYABLE_TRANSACTION_STATES = new Set(['40001', '40P01']);

/** SQLSTATEs that mean the connection or the server went away (or is not there yet). */
const CONNECTION_STATES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '08007',
]);

/**
 * A protocol violation: the server ends the connection after one it cannot read past (a `FATAL`
 * report), but answers a statement whose messages disagree with it (a bind with the wrong number
 * of parameters) with an `ERROR` and goes on serving the connection.
 */
const PROTOCOL_VIOLATION = '08P01';

const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const CONNECTION_MESSAGES = [
  'Connection terminated',
  'connection error',
  'not queryable',
  'timeout exceeded when trying to connect',
  'Connection ended',
];

/** The SQLSTATE (or Node errno) of a driver error, if it has one. */
export function errorState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The violated constraint of a `23505` unique violation. */
export function violatedConstraint(error: unknown): string | undefined {
  if (errorState(error) !== '23505') return undefined;
  const constraint = (error as { constraint?: unknown }).constraint;
  return typeof constraint === 'string' ? constraint : undefined;
}

/** True for serialization failures and deadlocks. */
export function isTransactionRetryable(error: unknown): boolean {
  const state = errorState(error);
  return state !== undefined && RETRYABLE_TRANSACTION_STATES.has(state);
}

/** True when the error means the connection was lost or could not be made. */
export function isConnectionError(error: unknown): boolean {
  if (EverrunsError.isInstance(error)) return false;
  const state = errorState(error);
  if (state !== undefined && (CONNECTION_STATES.has(state) || CONNECTION_ERRNOS.has(state)))
    return true;
  if (state === PROTOCOL_VIOLATION) {
    return (error as { severity?: unknown }).severity !== 'ERROR';
  }
  if (error instanceof Error && state === undefined) {
    return CONNECTION_MESSAGES.some((text) => error.message.includes(text));
  }
  return false;
}

/**
 * Turns anything a driver threw into an {@link EverrunsError}; `EverrunsError`s pass through.
 * The driver error stays available as `cause`; the message names the operation.
 */
export function translateError(error: unknown, operation: string): EverrunsError {
  if (EverrunsError.isInstance(error)) return error;
  const state = errorState(error);
  const reason = error instanceof Error ? error.message : String(error);
  const details: Record<string, unknown> = { operation };
  if (state !== undefined) details.sqlState = state;
  if (isTransactionRetryable(error)) {
    return new EverrunsError({
      code: 'STORE_CONFLICT',
      message: `PostgreSQL store: ${operation} kept failing with a retryable conflict (${state}): ${reason}`,
      cause: error,
      details,
      retryable: true,
    });
  }
  if (isConnectionError(error)) {
    return new EverrunsError({
      code: 'STORE_UNAVAILABLE',
      message: `PostgreSQL store: ${operation} failed because the database could not be reached: ${reason}`,
      cause: error,
      details,
      retryable: true,
    });
  }
  if (state === '54000' || state === '54001' || /too large|exceeds/i.test(reason)) {
    return new EverrunsError({
      code: 'VALUE_TOO_LARGE',
      message: `PostgreSQL store: ${operation} failed: a value is larger than PostgreSQL accepts: ${reason}`,
      cause: error,
      details,
    });
  }
  if (state === '42P01' || state === '3F000' || state === '42703') {
    return new EverrunsError({
      code: 'CONFIGURATION',
      message: `PostgreSQL store: ${operation} failed: the schema is missing or out of date; call migrate() first (${reason})`,
      cause: error,
      details,
    });
  }
  if (state?.startsWith('28') || state === '3D000') {
    return new EverrunsError({
      code: 'CONFIGURATION',
      message: `PostgreSQL store: ${operation} failed: the connection settings were refused (${reason})`,
      cause: error,
      details,
    });
  }
  return new EverrunsError({
    code: 'INTERNAL',
    message: `PostgreSQL store: ${operation} failed: ${reason}`,
    cause: error,
    details,
  });
}
