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

/** Reads the whole file through `handle`, refusing more than `maxFileBytes` even if it grows. */
export async function readBounded(
  handle: FileHandle,
  path: string,
  maxFileBytes: number,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > maxFileBytes) throw tooLarge(path, total, maxFileBytes);
    chunks.push(Buffer.from(chunk.subarray(0, bytesRead)));
  }
  return Buffer.concat(chunks, total);
}
