import { randomBytes } from 'node:crypto';
import { emitEvents, type RuntimeEvent } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

const random = () => randomBytes(8).toString('hex');

describe('postgres emitMany', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('stores several events in one statement with consecutive seq, delivered in order', async () => {
    const sessionId = `session_${random()}`;
    const delivered: RuntimeEvent[] = [];
    const unsubscribe = backends.events.subscribe((event) => delivered.push(event));
    try {
      await backends.events.emit({ type: 'input.message', sessionId, data: { n: 0 } });
      const before = backends.queryCount();
      const events = await emitEvents(backends.events, [
        { type: 'session.activated', sessionId, turnId: 'turn_1', data: { n: 1 } },
        { type: 'turn.started', sessionId, turnId: 'turn_1', data: { text: 'nul \u0000 ok' } },
        { type: 'reason.started', sessionId, data: {} },
      ]);
      expect(backends.queryCount() - before).toBe(1);
      await backends.events.emit({ type: 'turn.completed', sessionId, data: {} });
      expect(events.map((event) => event.seq)).toEqual([2, 3, 4]);
      const stored = await backends.events.loadEvents(sessionId);
      expect(stored.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(stored.slice(1, 4)).toEqual(events);
      expect(delivered.map((event) => event.type)).toEqual([
        'input.message',
        'session.activated',
        'turn.started',
        'reason.started',
        'turn.completed',
      ]);
      expect(events[2]).not.toHaveProperty('turnId');
      expect(events[1]?.data).toEqual({ text: 'nul \u0000 ok' });
    } finally {
      unsubscribe();
    }
  });

  it('keeps seq contiguous when batches and single emits race on one session', async () => {
    const sessionId = `session_${random()}`;
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        index % 2 === 0
          ? backends.events.emitMany([
              { type: 'tool.started', sessionId, data: { index, part: 1 } },
              { type: 'tool.completed', sessionId, data: { index, part: 2 } },
            ])
          : backends.events.emit({ type: 'reason.started', sessionId, data: { index } }),
      ),
    );
    const stored = await backends.events.loadEvents(sessionId);
    expect(stored.map((event) => event.seq)).toEqual(
      Array.from({ length: 30 }, (_, index) => index + 1),
    );
    for (const [position, event] of stored.entries()) {
      if (event.data.part === 1)
        expect(stored[position + 1]?.data).toEqual({ ...event.data, part: 2 });
    }
  });

  it('emits requests of different sessions one by one', async () => {
    const [first, second] = [`session_${random()}`, `session_${random()}`];
    const events = await backends.events.emitMany([
      { type: 'reason.started', sessionId: first, data: {} },
      { type: 'reason.started', sessionId: second, data: {} },
    ]);
    expect(events.map((event) => [event.sessionId, event.seq])).toEqual([
      [first, 1],
      [second, 1],
    ]);
    expect(await backends.events.emitMany([])).toEqual([]);
  });
});
