import * as crypto from 'node:crypto';

/**
 * PostgreSQL `text` cannot hold U+0000, and node-postgres sends strings as UTF-8, which cannot
 * carry a lone surrogate (it would become U+FFFD). Every user string stored in a `text` column
 * goes through {@link encodeText} first, so any JavaScript string round-trips exactly.
 *
 * The encoding is a prefix code that keeps code-point order among the escaped characters:
 * U+0000 becomes `\u0001` `0`, U+0001 becomes `\u0001` `1`, a lone surrogate becomes `\u0001` `u`
 * plus four hex digits; every other character stands for itself. So `encodeText(p)` is a prefix
 * of `encodeText(s)` when `p` is a prefix of `s` (unless `p` ends inside a surrogate pair of `s`:
 * see {@link encodePrefix}), and prefix queries work on the encoded form. Strings without these
 * characters (nearly all) are stored unchanged.
 *
 * JSON documents need none of this: `JSON.stringify` already escapes U+0000, U+0001 and lone
 * surrogates.
 */
const ESCAPE = '\u0001';

const isWellFormed = (String.prototype as unknown as { isWellFormed?: (this: string) => boolean })
  .isWellFormed;

const SPECIAL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding NUL and U+0001 is the point
  /[\u0000\u0001]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0001 is the escape character
const ESCAPED = /\u0001(?:([01])|u([0-9a-f]{4}))/g;

function needsEncoding(value: string): boolean {
  if (value.includes('\u0000') || value.includes(ESCAPE)) return true;
  if (isWellFormed) return !isWellFormed.call(value);
  SPECIAL.lastIndex = 0;
  return SPECIAL.test(value);
}

function escapeSpecial(char: string): string {
  if (char === '\u0000') return `${ESCAPE}0`;
  if (char === ESCAPE) return `${ESCAPE}1`;
  return `${ESCAPE}u${char.charCodeAt(0).toString(16)}`;
}

function unescapeSpecial(
  _match: string,
  digit: string | undefined,
  hex: string | undefined,
): string {
  if (digit === '0') return '\u0000';
  if (digit === '1') return ESCAPE;
  return String.fromCharCode(Number.parseInt(hex as string, 16));
}

/** Encodes any string into one PostgreSQL `text` can store; see the module comment. */
export function encodeText(value: string): string {
  return needsEncoding(value) ? value.replace(SPECIAL, escapeSpecial) : value;
}

/** Reverses {@link encodeText}. */
export function decodeText(value: string): string {
  return value.includes(ESCAPE) ? value.replace(ESCAPED, unescapeSpecial) : value;
}

/**
 * The encoded form of a prefix for a `starts_with` query. A prefix ending in a high surrogate may
 * stop in the middle of a surrogate pair of a stored string, whose encoded form keeps the pair
 * whole; that last code unit is left out here, and the caller filters the rows with
 * `String.prototype.startsWith`.
 */
export function encodePrefix(prefix: string): string {
  return encodeText(endsInHighSurrogate(prefix) ? prefix.slice(0, -1) : prefix);
}

/**
 * Whether `text` ends in a high surrogate: as a prefix, it may stop inside a surrogate pair of a
 * stored string, which no encoded or byte-ordered form of it can express.
 */
export function endsInHighSurrogate(text: string): boolean {
  const last = text.charCodeAt(text.length - 1);
  return last >= 0xd800 && last <= 0xdbff;
}

/** Encodes an optional string; `undefined` and `null` become SQL `NULL`. */
export function encodeOptionalText(value: string | null | undefined): string | null {
  return value === undefined || value === null ? null : encodeText(value);
}

/**
 * The SHA-256 of a string's encoded form. Tables index these digests instead of the strings, so
 * ids and keys of any length (a B-tree entry is limited to about 2.7 kB) can be looked up.
 */
export function textDigest(value: string): Buffer {
  const known = recentDigests.get(value);
  if (known !== undefined) return known;
  const encoded = encodeText(value);
  const digest =
    oneShotHash === undefined
      ? crypto.createHash('sha256').update(encoded, 'utf8').digest()
      : oneShotHash('sha256', encoded, 'buffer');
  // The same ids come back several times per turn (a session's digest goes with nearly every
  // statement of its turn): the latest short ones are kept. Callers only read the buffer.
  if (value.length <= MAX_REMEMBERED_LENGTH) {
    if (recentDigests.size >= MAX_REMEMBERED_DIGESTS) {
      recentDigests.delete(recentDigests.keys().next().value as string);
    }
    recentDigests.set(value, digest);
  }
  return digest;
}

/** `crypto.hash` (Node 20.12 and later): one call, no `Hash` object; else `undefined`. */
const oneShotHash = (
  crypto as unknown as {
    hash?: (algorithm: string, data: string, outputEncoding: 'buffer') => Buffer;
  }
).hash;

/** How many digests {@link textDigest} keeps, and of strings up to which length. */
const MAX_REMEMBERED_DIGESTS = 1024;
const MAX_REMEMBERED_LENGTH = 256;
/** The latest digests of short strings, oldest first. */
const recentDigests = new Map<string, Buffer>();

/** Size of a string in bytes once encoded and sent as UTF-8. */
export function encodedByteLength(encoded: string): number {
  return Buffer.byteLength(encoded, 'utf8');
}
