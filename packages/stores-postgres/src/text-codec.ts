import { createHash } from 'node:crypto';

/**
 * PostgreSQL `text` cannot hold U+0000, and node-postgres sends strings as UTF-8, which cannot
 * carry a lone surrogate (it would become U+FFFD). Every user string stored in a `text` column
 * goes through {@link encodeText} first, so any JavaScript string round-trips exactly.
 *
 * The encoding is a prefix code that keeps code-point order among the escaped characters:
 * U+0000 becomes `\u0001` `0`, U+0001 becomes `\u0001` `1`, a lone surrogate becomes `\u0001` `u`
 * plus four hex digits; every other character stands for itself. So `encodeText(p)` is a prefix
 * of `encodeText(s)` exactly when `p` is a prefix of `s`, and prefix queries work on the encoded
 * form. Strings without these characters (nearly all) are stored unchanged.
 *
 * JSON documents need none of this: `JSON.stringify` already escapes U+0000, U+0001 and lone
 * surrogates.
 */
const ESCAPE = '\u0001';

const isWellFormed = (String.prototype as unknown as { isWellFormed?: (this: string) => boolean })
  .isWellFormed;

function needsEncoding(value: string): boolean {
  if (value.includes('\u0000') || value.includes(ESCAPE)) return true;
  if (isWellFormed) return !isWellFormed.call(value);
  return /[\ud800-\udfff]/.test(value) && hasLoneSurrogate(value);
}

function hasLoneSurrogate(value: string): boolean {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = value.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) index++;
      else return true;
    } else if (code >= 0xdc00 && code <= 0xdfff) return true;
  }
  return false;
}

/** Encodes any string into one PostgreSQL `text` can store; see the module comment. */
export function encodeText(value: string): string {
  if (!needsEncoding(value)) return value;
  let out = '';
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code === 0) out += `${ESCAPE}0`;
    else if (code === 1) out += `${ESCAPE}1`;
    else if (code >= 0xd800 && code <= 0xdbff) {
      const next = value.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += value[index]! + value[index + 1]!;
        index++;
      } else out += `${ESCAPE}u${code.toString(16)}`;
    } else if (code >= 0xdc00 && code <= 0xdfff) out += `${ESCAPE}u${code.toString(16)}`;
    else out += value[index]!;
  }
  return out;
}

/** Reverses {@link encodeText}. */
export function decodeText(value: string): string {
  if (!value.includes(ESCAPE)) return value;
  let out = '';
  for (let index = 0; index < value.length; index++) {
    const char = value[index]!;
    if (char !== ESCAPE) {
      out += char;
      continue;
    }
    const kind = value[index + 1];
    if (kind === '0') {
      out += '\u0000';
      index += 1;
    } else if (kind === '1') {
      out += ESCAPE;
      index += 1;
    } else if (kind === 'u') {
      out += String.fromCharCode(Number.parseInt(value.slice(index + 2, index + 6), 16));
      index += 5;
    } else {
      // Not produced by encodeText (written by something else): keep it as it is.
      out += char;
    }
  }
  return out;
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
  return createHash('sha256').update(encodeText(value), 'utf8').digest();
}

/** Size of a string in bytes once encoded and sent as UTF-8. */
export function encodedByteLength(encoded: string): number {
  return Buffer.byteLength(encoded, 'utf8');
}
