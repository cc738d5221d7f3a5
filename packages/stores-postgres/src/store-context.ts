import { EverrunsError } from '@everruns-ts/core';
import type { PostgresDatabase } from './postgres-database.js';
import type { SecretCipher } from './secret-cipher.js';
import { encodedByteLength } from './text-codec.js';

/** The default of `maxValueBytes`: 64 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;
/** The highest accepted `maxValueBytes`: 256 MiB (PostgreSQL refuses a field above 1 GB). */
export const MAX_VALUE_BYTES_CEILING = 256 * 1024 * 1024;

/** What every PostgreSQL store shares. */
export interface StoreContext {
  db: PostgresDatabase;
  cipher: SecretCipher;
  maxValueBytes: number;
}

/**
 * Throws `VALUE_TOO_LARGE` when `encoded` (a value in its stored form) is larger than the limit.
 * Checked before anything is sent, so an oversized write writes nothing.
 */
export function checkSize(context: StoreContext, encoded: string, what: string): void {
  if (encoded.length <= context.maxValueBytes / 3) return;
  const size = encodedByteLength(encoded);
  if (size > context.maxValueBytes) {
    throw new EverrunsError({
      code: 'VALUE_TOO_LARGE',
      message: `${what} is ${size} bytes once encoded, more than the PostgreSQL store's limit of ${context.maxValueBytes} bytes`,
      details: { size, limit: context.maxValueBytes },
    });
  }
}

/** Parses a JSON document this package wrote; a damaged one is `STATE_INVALID`. */
export function parseStored<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new EverrunsError({
      code: 'STATE_INVALID',
      message: `Stored ${what} is not valid JSON`,
      cause: error,
    });
  }
}

/** `JSON.stringify` that refuses values JSON cannot carry (`INVALID_INPUT`). */
export function stringifyForStore(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `${what} cannot be stored as JSON: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    });
  }
  if (text === undefined) {
    throw new EverrunsError({ code: 'INVALID_INPUT', message: `${what} cannot be stored as JSON` });
  }
  return text;
}

/** Orders strings by UTF-16 code units, as `Array.prototype.sort` does by default. */
export function compareStrings(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Throws a `TypeError` unless `value` is a string (a programmer mistake, not a data problem). */
export function requireString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string`);
}
