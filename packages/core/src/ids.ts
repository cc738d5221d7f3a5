import { z } from 'zod';

/** The prefixes of everruns-ts ids. */
export const ID_PREFIXES = ['harness', 'agent', 'session', 'msg', 'turn', 'evt', 'appr'] as const;
/** One id prefix. */
export type IdPrefix = (typeof ID_PREFIXES)[number];

/** A harness id, `harness_` + 32 hex digits when generated. */
export type HarnessId = string;
/** An agent id, `agent_` + 32 hex digits when generated. */
export type AgentId = string;
/** A session id, `session_` + 32 hex digits when generated. */
export type SessionId = string;
/** A message id, `msg_` + 32 hex digits when generated. */
export type MessageId = string;
/** A turn id, `turn_` + 32 hex digits when generated. */
export type TurnId = string;
/** An event id, `evt_` + 32 hex digits when generated. */
export type EventId = string;

let lastMillis = 0;
let sequence = 0;
/** The two lowercase hex digit codes of each byte value, high digit first. */
const HEX_CODES = new Uint8Array(512);
for (let byte = 0; byte < 256; byte++) {
  const hex = byte.toString(16).padStart(2, '0');
  HEX_CODES[byte * 2] = hex.charCodeAt(0);
  HEX_CODES[byte * 2 + 1] = hex.charCodeAt(1);
}
// Random bytes are drawn in blocks: one getRandomValues call per 512 ids instead of one per id.
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;
/** The character codes of the id being built (the longest prefix, `_` and 32 digits fit). */
const codes: number[] = [];

/** Appends the two hex digit codes of `byte` to {@link codes} at `at`; returns the next index. */
function putHex(at: number, byte: number): number {
  codes[at] = HEX_CODES[byte * 2] as number;
  codes[at + 1] = HEX_CODES[byte * 2 + 1] as number;
  return at + 2;
}

/**
 * Writes the 32 hex digits of a new UUID v7 into {@link codes} from `at`; returns the end.
 * Within one millisecond a 12-bit counter keeps ids increasing.
 */
function putUuidV7(at: number): number {
  let now = Date.now();
  if (now <= lastMillis) {
    sequence += 1;
    if (sequence > 0xfff) {
      lastMillis += 1;
      sequence = 0;
    }
    now = lastMillis;
  } else {
    lastMillis = now;
    sequence = 0;
  }
  if (poolOffset + 8 > POOL_SIZE) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const high = Math.floor(now / 0x100000000);
  const low = now >>> 0;
  let index = putHex(at, (high >>> 8) & 0xff);
  index = putHex(index, high & 0xff);
  index = putHex(index, (low >>> 24) & 0xff);
  index = putHex(index, (low >>> 16) & 0xff);
  index = putHex(index, (low >>> 8) & 0xff);
  index = putHex(index, low & 0xff);
  index = putHex(index, 0x70 | ((sequence >>> 8) & 0x0f));
  index = putHex(index, sequence & 0xff);
  index = putHex(index, 0x80 | ((pool[poolOffset] as number) & 0x3f));
  for (let offset = 1; offset < 8; offset++) {
    index = putHex(index, pool[poolOffset + offset] as number);
  }
  lastHigh = high;
  lastLow = low;
  lastPoolOffset = poolOffset;
  poolOffset += 8;
  return index;
}

/** What the last {@link putUuidV7} was made of, for {@link newIdWithWords}. */
let lastHigh = 0;
let lastLow = 0;
let lastPoolOffset = 0;

/**
 * The string of the first `length` codes of {@link codes}, made in one piece: a flat string of
 * one byte per character (about 56 bytes for an id) where joining 17 pieces with `+` would leave
 * V8 a rope of them (about 385 bytes) for as long as the id is kept.
 */
function codesToString(length: number): string {
  codes.length = length;
  return String.fromCharCode.apply(null, codes);
}

/**
 * A UUID v7 as 32 lowercase hex digits (no dashes). Ids made in one process sort in creation
 * order: within one millisecond a 12-bit counter keeps them increasing.
 */
export function uuidV7Hex(): string {
  return codesToString(putUuidV7(0));
}

/** A new sortable id with the given prefix, for example `session_0193…`. */
export function newId(prefix: IdPrefix): string {
  const length = prefix.length;
  for (let index = 0; index < length; index++) codes[index] = prefix.charCodeAt(index);
  codes[length] = 0x5f; // '_'
  return codesToString(putUuidV7(length + 1));
}

/**
 * {@link newId}, also writing the id's 32 hex digits as four 32-bit words (the first eight digits
 * in the first word) into `words` from `offset`, so a store can keep the id in 16 bytes and make
 * it again with {@link idFromWords}.
 */
export function newIdWithWords(prefix: IdPrefix, words: Uint32Array, offset: number): string {
  const id = newId(prefix);
  const random = lastPoolOffset;
  words[offset] = ((lastHigh & 0xffff) * 0x10000 + (lastLow >>> 16)) >>> 0;
  words[offset + 1] = ((lastLow & 0xffff) * 0x10000 + 0x7000 + (sequence & 0xfff)) >>> 0;
  words[offset + 2] =
    (0x80 | ((pool[random] as number) & 0x3f)) * 0x1000000 +
    (pool[random + 1] as number) * 0x10000 +
    (pool[random + 2] as number) * 0x100 +
    (pool[random + 3] as number);
  words[offset + 3] =
    (pool[random + 4] as number) * 0x1000000 +
    (pool[random + 5] as number) * 0x10000 +
    (pool[random + 6] as number) * 0x100 +
    (pool[random + 7] as number);
  return id;
}

/** The id `prefix_` and the 32 hex digits of the four words of `words` from `offset`. */
export function idFromWords(prefix: IdPrefix, words: Uint32Array, offset: number): string {
  const length = prefix.length;
  for (let index = 0; index < length; index++) codes[index] = prefix.charCodeAt(index);
  codes[length] = 0x5f; // '_'
  let at = length + 1;
  for (let word = 0; word < 4; word++) {
    const value = words[offset + word] as number;
    at = putHex(at, value >>> 24);
    at = putHex(at, (value >>> 16) & 0xff);
    at = putHex(at, (value >>> 8) & 0xff);
    at = putHex(at, value & 0xff);
  }
  return codesToString(at);
}

/** True when `value` is a well-formed generated id with the given prefix. */
export function isIdWithPrefix(value: string, prefix: IdPrefix): boolean {
  return (
    value.length === prefix.length + 33 &&
    /^[a-z]+_[0-9a-f]{32}$/.test(value) &&
    value.startsWith(`${prefix}_`)
  );
}

/**
 * Schema of an id given by a user: any non-empty string without control characters, at most
 * 256 characters. Stores treat ids as opaque data.
 */
export const idSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(256, 'must be at most 256 characters')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  .refine((value) => !/[\u0000-\u001f]/.test(value), 'must not contain control characters');
