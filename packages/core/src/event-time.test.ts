import { describe, expect, it } from 'vitest';
import { EverrunsError, eventTimeOf } from './index.js';

describe('eventTimeOf', () => {
  it('stamps a request without ts with the current time', () => {
    const before = Date.now();
    const stamped = Date.parse(eventTimeOf({}));
    expect(stamped).toBeGreaterThanOrEqual(before);
    expect(stamped).toBeLessThanOrEqual(Date.now());
  });

  it('keeps a given time as toISOString writes it', () => {
    expect(eventTimeOf({ ts: '2026-12-02T18:00:00.123Z' })).toBe('2026-12-02T18:00:00.123Z');
    expect(eventTimeOf({ ts: '2026-12-02T19:00:00+01:00' })).toBe('2026-12-02T18:00:00.000Z');
  });

  it.each([
    'yesterday',
    '',
    '-000001-01-01T00:00:00Z',
    42,
    null,
    { toString: () => '2026-12-02T18:00:00Z' },
  ])('refuses %j with INVALID_INPUT', (ts) => {
    let thrown: unknown;
    try {
      eventTimeOf({ ts: ts as string });
    } catch (error) {
      thrown = error;
    }
    expect(EverrunsError.hasCode(thrown, 'INVALID_INPUT')).toBe(true);
  });
});
