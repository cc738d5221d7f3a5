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
const HEX: string[] = Array.from({ length: 256 }, (_, index) =>
  index.toString(16).padStart(2, '0'),
);
// Random bytes are drawn in blocks: one getRandomValues call per 512 ids instead of one per id.
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

/**
 * A UUID v7 as 32 lowercase hex digits (no dashes). Ids made in one process sort in creation
 * order: within one millisecond a 12-bit counter keeps them increasing.
 */
export function uuidV7Hex(): string {
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
  let out =
    (HEX[(high >>> 8) & 0xff] as string) +
    HEX[high & 0xff] +
    HEX[(low >>> 24) & 0xff] +
    HEX[(low >>> 16) & 0xff] +
    HEX[(low >>> 8) & 0xff] +
    HEX[low & 0xff] +
    HEX[0x70 | ((sequence >>> 8) & 0x0f)] +
    HEX[sequence & 0xff] +
    HEX[0x80 | ((pool[poolOffset] as number) & 0x3f)];
  for (let index = 1; index < 8; index++) out += HEX[pool[poolOffset + index] as number];
  poolOffset += 8;
  return out;
}

/** A new sortable id with the given prefix, for example `session_0193…`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${uuidV7Hex()}`;
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
