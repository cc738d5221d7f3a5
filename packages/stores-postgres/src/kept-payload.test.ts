import { createHash } from 'node:crypto';
import type { RuntimeEvent } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { asciiJson, asciiText, keptEventJson } from './event-notifications.js';
import { encodeText, textDigest } from './text-codec.js';

/** Data of the shapes events carry, with what JSON makes hard: escapes, odd keys, deep nesting. */
const datas: unknown[] = [
  {},
  { messageId: 'msg_1', seq: 3 },
  { text: 'héllo 😀 wörld \u0000 \u0001 "quoted" \\ back\nslash', toolCalls: 0, iteration: 1 },
  { lone: '\ud800 and \udfff', emoji: '\ud83d\ude00' },
  { ['__proto__']: { polluted: true }, constructor: 'x', nested: [1, [2, [3, { deep: null }]]] },
  { numbers: [0, -0, 1e21, 1.5e-7, -12.25, Number.MAX_SAFE_INTEGER], flags: [true, false, null] },
  { calls: [{ id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } }], text: '' },
];

/** An event as a kept payload carries it: everything but `seq`. */
function keptPayloadEvent(event: RuntimeEvent): Omit<RuntimeEvent, 'seq'> {
  const { seq: _seq, ...rest } = event;
  return rest;
}

/** The event a stored row stands for, as the bus builds it (`data` parsed from its JSON). */
function eventOf(data: string, turnId: string | undefined): RuntimeEvent {
  const event: RuntimeEvent = {
    id: 'evt_0193',
    type: 'tool.completed',
    sessionId: 'ses_ü_1',
    seq: 0,
    ts: '2026-12-03T14:00:00.000Z',
    data: JSON.parse(data) as Record<string, unknown>,
  };
  if (turnId !== undefined) event.turnId = turnId;
  return event;
}

describe('kept event payloads built from stored JSON', () => {
  it('equal the JSON of the parsed event without seq, for every kind of data', () => {
    for (const value of datas) {
      const data = JSON.stringify(value);
      for (const turnId of [undefined, 'turn_1', 'turn_\u00e9\ud800']) {
        const built = keptEventJson(
          'evt_0193',
          'tool.completed',
          'ses_ü_1',
          '2026-12-03T14:00:00.000Z',
          data,
          turnId,
        );
        expect(built).toBe(JSON.stringify(keptPayloadEvent(eventOf(data, turnId))));
      }
    }
  });

  it('escape to the same ASCII text as the events themselves', () => {
    const rows = datas.map((value, index) => ({
      data: JSON.stringify(value),
      turnId: index % 2 === 0 ? 'turn_ü' : undefined,
    }));
    const built = asciiText(
      `[${rows
        .map((row) =>
          keptEventJson(
            'evt_0193',
            'tool.completed',
            'ses_ü_1',
            '2026-12-03T14:00:00.000Z',
            row.data,
            row.turnId,
          ),
        )
        .join(',')}]`,
    );
    const expected = asciiJson(rows.map((row) => keptPayloadEvent(eventOf(row.data, row.turnId))));
    expect(built).toBe(expected);
    // Byte length equals length: nothing outside ASCII is left.
    expect(Buffer.byteLength(built, 'utf8')).toBe(built.length);
    expect(JSON.parse(built)).toEqual(JSON.parse(expected));
  });
});

describe('textDigest', () => {
  const reference = (value: string) =>
    createHash('sha256').update(encodeText(value), 'utf8').digest();

  it('is the SHA-256 of the encoded string, asked once or many times', () => {
    const values = [
      '',
      'ses_1',
      'a\u0000b\u0001c',
      'lone \ud800',
      '😀',
      'x'.repeat(256),
      'y'.repeat(5_000),
    ];
    for (let round = 0; round < 3; round++) {
      for (const value of values) expect(textDigest(value).equals(reference(value))).toBe(true);
    }
  });

  it('stays right after more distinct strings than it remembers', () => {
    const values = Array.from({ length: 3_000 }, (_, index) => `msg_${index}`);
    for (const value of values) textDigest(value);
    for (const value of [...values].reverse()) {
      expect(textDigest(value).equals(reference(value))).toBe(true);
    }
  });
});
