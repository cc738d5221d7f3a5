import { describe, expect, it } from 'vitest';
import { isoFromMillis, isoNow } from './time.js';

describe('isoFromMillis', () => {
  it('writes what toISOString writes', () => {
    const edges = [
      0,
      1,
      9,
      10,
      99,
      100,
      999,
      Date.UTC(1000, 0, 1),
      Date.UTC(999, 11, 31, 23, 59, 59, 999),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1),
      Date.UTC(2024, 1, 29, 12, 0, 0, 5),
      Date.UTC(2026, 11, 5, 9, 7, 3, 40),
      -1,
      -62198755200000, // year 0
      -8640000000000000,
      8640000000000000,
    ];
    let state = 0x2545f491;
    const random = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 2 ** 32;
    };
    const samples = Array.from({ length: 5000 }, () => Math.floor((random() * 2 - 0.5) * 4e12));
    for (const millis of [...edges, ...samples]) {
      expect(isoFromMillis(millis)).toBe(new Date(millis).toISOString());
    }
  });

  it('throws the RangeError of toISOString for a time that is not one', () => {
    expect(() => isoFromMillis(Number.NaN)).toThrow(RangeError);
    expect(() => isoFromMillis(8640000000000001)).toThrow(RangeError);
  });
});

describe('isoNow', () => {
  it('is the current time in the ISO form', () => {
    const before = Date.now();
    const now = isoNow();
    const after = Date.now();
    expect(now).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(now)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(now)).toBeLessThanOrEqual(after);
  });
});
