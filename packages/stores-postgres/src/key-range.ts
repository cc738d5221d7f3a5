import { encodePrefix } from './text-codec.js';

/**
 * Prefix listings of session keys (`session_values`, `session_secrets`) as index range scans.
 *
 * The primary key of those tables is `(session_hash, key_hash)`, so a prefix condition alone makes
 * the server walk every index entry of the session: the live keys and every key deleted since the
 * table was last vacuumed. A turn writes and deletes a tool-call journal entry, so on a server
 * whose autovacuum is off or behind, a long session's listings slowed down turn after turn. Schema
 * version 4 indexes the first {@link KEY_HEAD_LENGTH} characters of each key in byte order
 * (`COLLATE "C"`; keys of any length stay indexable), and a listing reads the range of heads that
 * can start with the prefix, then keeps the keys that really do (`starts_with`).
 */

/** How many leading characters of a key the head index holds. */
export const KEY_HEAD_LENGTH = 64;

/** The indexed expression; a query must spell it exactly so for the index to serve it. */
export const KEY_HEAD = `(left(key, ${KEY_HEAD_LENGTH}) COLLATE "C")`;

/** The bounds of a prefix listing's head range, for the query's parameters. */
export interface KeyHeadRange {
  /** The encoded prefix, for `starts_with`. */
  prefix: string;
  /** The smallest head a matching key can have. */
  low: string;
  /** A head greater than every matching key's, or `null` when no such string exists. */
  high: string | null;
}

/**
 * The range of heads of keys starting with `prefix` (not yet encoded), or `null` for an empty
 * prefix (every key matches). Strings compare by code point under `COLLATE "C"` (UTF-8 byte
 * order), so the heads of matching keys lie in `[low, high)` where `high` is the low bound with its
 * last code point raised by one.
 */
export function keyHeadRange(prefix: string): KeyHeadRange | null {
  const encoded = encodePrefix(prefix);
  if (encoded === '') return null;
  const points = Array.from(encoded).slice(0, KEY_HEAD_LENGTH);
  const low = points.join('');
  const upper = points.map((point) => point.codePointAt(0)!);
  while (upper.length > 0 && upper[upper.length - 1] === 0x10ffff) upper.pop();
  let high: string | null = null;
  if (upper.length > 0) {
    const last = upper[upper.length - 1]! + 1;
    // The surrogate code points never occur in stored text: the next one is U+E000.
    upper[upper.length - 1] = last >= 0xd800 && last <= 0xdfff ? 0xe000 : last;
    high = String.fromCodePoint(...upper);
  }
  return { prefix: encoded, low, high };
}

/**
 * The SQL condition for "key starts with the prefix" given the range's parameter numbers, served
 * by the head index when `high` exists.
 */
export function keyPrefixCondition(
  range: KeyHeadRange,
  prefixParam: number,
  lowParam: number,
  highParam: number,
): string {
  const head =
    range.high === null
      ? `${KEY_HEAD} >= $${lowParam}::text`
      : `${KEY_HEAD} >= $${lowParam}::text AND ${KEY_HEAD} < $${highParam}::text`;
  return `${head} AND starts_with(key, $${prefixParam}::text)`;
}

/**
 * The parameters {@link keyPrefixCondition} refers to, in the order prefix, low, high (left out
 * when `high` is `null`, as the condition then does not refer to it); they go last in a query's
 * parameter list.
 */
export function keyPrefixParams(range: KeyHeadRange): string[] {
  return range.high === null ? [range.prefix, range.low] : [range.prefix, range.low, range.high];
}
