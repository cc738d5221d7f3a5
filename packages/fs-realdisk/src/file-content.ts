import type { FileHandle } from 'node:fs/promises';
import type { FileEncoding } from '@everruns-ts/core';
import { fileError, tooLarge } from './errors.js';

/** Canonical, padded base64: what a `base64` write or compare-and-set accepts. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The bytes `content` stands for in `encoding`; throws `INVALID_INPUT` (bad base64, unknown
 * encoding), `FILE_TOO_LARGE` (over `maxFileBytes`), or `TypeError` when `content` is no string.
 */
export function encodeContent(
  path: string,
  content: string,
  encoding: FileEncoding,
  maxFileBytes: number,
): Buffer {
  if (typeof content !== 'string') throw new TypeError('content must be a string');
  let bytes: Buffer;
  if (encoding === 'text') bytes = Buffer.from(content, 'utf8');
  else if (encoding === 'base64') {
    if (!BASE64.test(content)) {
      throw fileError('INVALID_INPUT', path, `Content for ${path} is not valid base64`);
    }
    bytes = Buffer.from(content, 'base64');
  } else {
    throw fileError('INVALID_INPUT', path, `Unknown encoding ${JSON.stringify(encoding)}`);
  }
  if (bytes.length > maxFileBytes) throw tooLarge(path, bytes.length, maxFileBytes);
  return bytes;
}

/**
 * The bytes a compare-and-set expects, or null when `expected` cannot be the content of any file
 * in `encoding` (invalid base64 never matches).
 */
export function expectedBytes(expected: string, encoding: FileEncoding): Buffer | null {
  return encoding === 'base64' && !BASE64.test(expected)
    ? null
    : Buffer.from(expected, encoding === 'text' ? 'utf8' : 'base64');
}

/** Bytes one read asks for: large enough that a big file takes few reads, small enough to share the loop. */
const READ_SLICE_BYTES = 1024 * 1024;

/**
 * Reads the whole file through `handle`, refusing more than `maxFileBytes` even if it grows.
 * `sizeHint` (the size a stat just gave) sizes the buffer up front, so a large file is read
 * straight into one buffer in a few reads, with no chunk copies and no concatenation at the end
 * (both are synchronous work on the event loop). A file that grows past the hint still reads whole.
 */
export async function readBounded(
  handle: FileHandle,
  path: string,
  maxFileBytes: number,
  sizeHint = 0,
): Promise<Buffer> {
  // One byte over the hint, so that reaching the end needs no second buffer.
  let buffer = Buffer.allocUnsafe(
    Math.min(Math.max(sizeHint, 64 * 1024 - 1) + 1, maxFileBytes + 1),
  );
  let total = 0;
  for (;;) {
    if (total === buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxFileBytes + 1));
      buffer.copy(grown, 0, 0, total);
      buffer = grown;
    }
    const length = Math.min(buffer.length - total, READ_SLICE_BYTES);
    const { bytesRead } = await handle.read(buffer, total, length, null);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > maxFileBytes) throw tooLarge(path, total, maxFileBytes);
  }
  // A small file gets a buffer of its own size rather than keeping a 64 KiB one alive.
  return total < buffer.length / 2
    ? Buffer.from(buffer.subarray(0, total))
    : buffer.subarray(0, total);
}
