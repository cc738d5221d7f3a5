import {
  type Agent,
  agentSchema,
  type ErrorCode,
  EverrunsError,
  type Harness,
  harnessSchema,
  type Session,
  sessionSchema,
} from '@everruns-ts/core';
import { expect } from 'vitest';

/** A random id with a prefix, unique per call: tests never share data. */
export function randomId(prefix = 'id'): string {
  return `${prefix}_${crypto.randomUUID().replaceAll('-', '')}`;
}

/**
 * Ids and keys that break stores building SQL, paths or patterns by hand. Each gets a random
 * suffix where used. The last one is 10 kB long (and compressible, as a database index needs).
 */
export const HOSTILE_STRINGS: readonly string[] = Object.freeze([
  "'; DROP TABLE x; --",
  `"double" 'single' \`back\` quotes`,
  'back\\slash\\\\ and \\n not a newline',
  '%_*?[]{}()^$.|+ like-and-regex characters',
  'emoji 🧪🚀👩‍👩‍👧 and 日本語 and עברית and e\u0301',
  '   spaces   ',
  '/slashes/../and/./dots',
  `${'k'.repeat(10 * 1024)}`,
]);

/**
 * Text that must round-trip exactly: NUL and other control characters, astral-plane characters,
 * combining marks, right-to-left text.
 */
export const TRICKY_TEXT =
  "nul:\u0000 ctl:\u0001\u001f\u007f crlf:\r\n tab:\t emoji:🧪🚀👩‍👩‍👧 cjk:日本語 rtl:עברית combining:e\u0301 quote:'\" backslash:\\ sql:'; DROP TABLE x; --";

/** Asserts that `promise` rejects with an `EverrunsError` of `code`; returns the error. */
export async function expectErrorCode(
  promise: Promise<unknown> | (() => Promise<unknown>),
  code: ErrorCode,
): Promise<EverrunsError> {
  let caught: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    caught = error;
  }
  if (caught === undefined) {
    expect.fail(`expected an EverrunsError with code ${code}, but nothing was thrown`);
  }
  if (!EverrunsError.isInstance(caught)) {
    expect.fail(`expected an EverrunsError with code ${code}, got ${String(caught)}`);
  }
  expect(caught.code, `error code (message: ${caught.message})`).toBe(code);
  return caught;
}

/**
 * A valid harness with defaults filled in. Ids are set after schema validation, so tests can use
 * ids longer than `idSchema` allows: stores treat ids as opaque data.
 */
export function makeHarness(overrides: Partial<Harness> = {}): Harness {
  const { id = randomId('harness'), parentHarnessId, ...rest } = overrides;
  const harness = harnessSchema.parse({ name: 'harness', ...rest, id: 'placeholder' });
  return { ...harness, id, ...(parentHarnessId === undefined ? {} : { parentHarnessId }) };
}

/** A valid agent with defaults filled in (ids as {@link makeHarness}). */
export function makeAgent(overrides: Partial<Agent> = {}): Agent {
  const { id = randomId('agent'), ...rest } = overrides;
  return { ...agentSchema.parse({ name: 'agent', ...rest, id: 'placeholder' }), id };
}

/** A valid session with defaults filled in (ids as {@link makeHarness}). */
export function makeSession(overrides: Partial<Session> = {}): Session {
  const { id = randomId('session'), harnessId = randomId('harness'), agentId, ...rest } = overrides;
  const session = sessionSchema.parse({ ...rest, id: 'placeholder', harnessId: 'placeholder' });
  return { ...session, id, harnessId, ...(agentId === undefined ? {} : { agentId }) };
}

/** Tries to change an object a store returned; frozen objects may throw, which is fine. */
export function tryToMutate(mutate: () => void): void {
  try {
    mutate();
  } catch {
    // Frozen results are one correct way to protect a store's copy.
  }
}

/** True when the array is sorted by UTF-16 code units (byte order for ASCII). */
export function isSorted(values: readonly string[]): boolean {
  for (let index = 1; index < values.length; index++) {
    if ((values[index - 1] as string) > (values[index] as string)) return false;
  }
  return true;
}
