import {
  defineCapability,
  defineTool,
  type Message,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends, LlmSimConfig } from '@everruns-ts/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

// Issue 13, invariant 6: model arguments are data. Keys such as `__proto__` and `constructor`
// round-trip as plain keys through a real turn (llmsim tool call → stored agent message → the
// tool → stored result), on memory and on PostgreSQL.

const HOSTILE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
  'isPrototypeOf',
  '',
  ' ',
  '0',
  'length',
  'a.b',
  '$ref',
  'ünïcödé',
  '日本語',
  '😀',
  '\u0000',
  '\u0001',
  '\u2028',
  '\ud800',
  'key with "quotes" and \\ backslash',
];

/** A small deterministic generator (mulberry32), so a failure names a reproducible object. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sets `key` as an own data property, even `__proto__`. */
function defineKey(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function hostileValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 2 ? 6 : 9));
  switch (pick) {
    case 0:
      return Math.floor(random() * 2_000_000) - 1_000_000;
    case 1:
      return random() * 1e6;
    case 2:
      return HOSTILE_KEYS[Math.floor(random() * HOSTILE_KEYS.length)];
    case 3:
      return random() < 0.5;
    case 4:
      return null;
    case 5:
      return `text ${Math.floor(random() * 1e9).toString(36)}`;
    case 6:
    case 7:
      return hostileObject(random, depth + 1);
    default:
      return Array.from({ length: Math.floor(random() * 4) }, () =>
        hostileValue(random, depth + 1),
      );
  }
}

function hostileObject(random: () => number, depth = 0): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const count = 1 + Math.floor(random() * 6);
  for (let index = 0; index < count; index++) {
    const key =
      random() < 0.7
        ? (HOSTILE_KEYS[Math.floor(random() * HOSTILE_KEYS.length)] as string)
        : `k${Math.floor(random() * 1e6)}`;
    defineKey(result, key, hostileValue(random, depth));
  }
  // Always at least one of the keys that objects inherit.
  if (depth === 0) defineKey(result, '__proto__', { polluted: true });
  else if (!Object.hasOwn(result, '__proto__')) defineKey(result, '__proto__', random());
  return result;
}

/**
 * A canonical text of plain JSON data: keys sorted, and a `!proto` mark on any object whose
 * prototype is not `Object.prototype` (a key that became a prototype shows up here).
 */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const prototype = Object.getPrototypeOf(value);
  const mark = prototype === Object.prototype ? '' : '!proto';
  const keys = Object.keys(value).sort();
  return `${mark}{${keys
    .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
    .join(',')}}`;
}

const echoArguments = defineTool({
  name: 'echo_arguments',
  description: 'Returns its arguments, whatever they are',
  inputSchema: z.custom<Record<string, unknown>>(
    (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  ),
  execute: (input, context) => {
    received.set(context.toolCallId, canonical(input));
    return canonical(input);
  },
});

const received = new Map<string, string>();

const echoCapability = defineCapability({
  id: 'echo_arguments',
  name: 'Echo arguments',
  description: 'A tool that returns its arguments',
  systemPrompt: 'Echo.',
  tools: [echoArguments],
});

const TURNS = 100;
const CALLS_PER_TURN = 10;

async function roundTrip(backends: RuntimeBackends, seed: number): Promise<void> {
  const random = randomSource(seed);
  const batches = Array.from({ length: TURNS }, (_, turn) =>
    Array.from({ length: CALLS_PER_TURN }, (_, index) => ({
      id: `call_${seed}_${turn}_${index}`,
      name: 'echo_arguments',
      arguments: hostileObject(random),
    })),
  );
  const expected = new Map(batches.flat().map((call) => [call.id, canonical(call.arguments)]));
  expect(expected.size).toBe(1_000);
  const runtime = await new InProcessRuntimeBuilder()
    .capability(echoCapability)
    .backends(backends)
    .llmSim(
      LlmSimConfig.fixed('done').withToolCallSequence(batches.flatMap((batch) => [batch, []])),
    )
    .singleSession((session) => session.harness('echo', 'Echo.').withCapability('echo_arguments'))
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  for (let turn = 0; turn < TURNS; turn++) {
    const result = await runtime.runTextTurn(sessionId, `turn ${turn}`);
    expect(result).toMatchObject({ success: true, toolCallsCount: CALLS_PER_TURN });
  }
  const messages: Message[] = await runtime.messages(sessionId);
  const storedCalls = new Map<string, string>();
  const storedResults = new Map<string, string>();
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_call') storedCalls.set(part.id, canonical(part.arguments));
      if (part.type === 'tool_result') {
        expect(part.isError, part.content).toBe(false);
        storedResults.set(part.toolCallId, part.content);
      }
    }
  }
  for (const [id, text] of expected) {
    expect(storedCalls.get(id), `stored call ${id}`).toBe(text);
    expect(received.get(id), `tool input ${id}`).toBe(text);
    expect(storedResults.get(id), `stored result ${id}`).toBe(text);
  }
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}

describe('hostile tool-argument keys round-trip through a real turn (issue 13, invariant 6)', () => {
  const opened: PostgresBackends[] = [];
  afterAll(async () => {
    for (const backends of opened) await destroyTestBackends(backends);
  });

  it('1,000 random argument objects with __proto__, constructor, unicode and empty keys on memory', async () => {
    await roundTrip(inMemoryBackends(), 13);
  }, 60_000);

  it('1,000 random argument objects with __proto__, constructor, unicode and empty keys on PostgreSQL', async () => {
    const backends = await createTestBackends();
    opened.push(backends);
    await roundTrip(backends, 1313);
  }, 120_000);

  it('keeps the canonical form honest: a key turned into a prototype does not compare equal', () => {
    const original = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    const mangled: Record<string, unknown> = Object.setPrototypeOf({}, { x: 1 });
    expect(canonical(mangled)).not.toBe(canonical(original));
  });
});
