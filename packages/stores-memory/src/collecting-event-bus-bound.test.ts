import { describe, expect, it } from 'vitest';
import { CollectingEventBus, DEFAULT_MAX_EVENTS_PER_SESSION } from './index.js';

const emitMany = async (bus: CollectingEventBus, sessionId: string, count: number) => {
  for (let index = 0; index < count; index++) {
    await bus.emit({ type: 'turn.started', sessionId, data: { index } });
  }
};

describe('CollectingEventBus bound per session', () => {
  it('keeps the latest maxEventsPerSession events of each session, numbered on', async () => {
    const bus = new CollectingEventBus({ maxEventsPerSession: 4 });
    await emitMany(bus, 'session_a', 11);
    await emitMany(bus, 'session_b', 2);
    const kept = bus.collectedEvents('session_a');
    expect(kept.map((event) => event.seq)).toEqual([8, 9, 10, 11]);
    expect(kept.map((event) => event.data.index)).toEqual([7, 8, 9, 10]);
    expect(bus.collectedEvents('session_b').map((event) => event.seq)).toEqual([1, 2]);
    await emitMany(bus, 'session_a', 1);
    expect(bus.collectedEvents('session_a').map((event) => event.seq)).toEqual([9, 10, 11, 12]);
  });

  it('merges the sessions in emission order for collectedEvents()', async () => {
    const bus = new CollectingEventBus({ maxEventsPerSession: 2 });
    await bus.emit({ type: 'turn.started', sessionId: 'session_a', data: {} });
    await bus.emit({ type: 'turn.started', sessionId: 'session_b', data: {} });
    await bus.emit({ type: 'turn.started', sessionId: 'session_a', data: {} });
    await bus.emit({ type: 'turn.started', sessionId: 'session_a', data: {} });
    await bus.emit({ type: 'turn.started', sessionId: 'session_b', data: {} });
    expect(bus.collectedEvents().map((event) => `${event.sessionId}:${event.seq}`)).toEqual([
      'session_b:1',
      'session_a:2',
      'session_a:3',
      'session_b:2',
    ]);
  });

  it('merges in emission order when a second session follows a long single one', async () => {
    // A single session's log keeps no emission numbers until a second session appears.
    const bus = new CollectingEventBus({ maxEventsPerSession: 3 });
    await emitMany(bus, 'session_a', 5);
    expect(bus.collectedEvents().map((event) => event.seq)).toEqual([3, 4, 5]);
    await emitMany(bus, 'session_b', 1);
    await emitMany(bus, 'session_a', 1);
    expect(bus.collectedEvents().map((event) => `${event.sessionId}:${event.seq}`)).toEqual([
      'session_a:4',
      'session_a:5',
      'session_b:1',
      'session_a:6',
    ]);
    bus.clear();
    await emitMany(bus, 'session_b', 2);
    await emitMany(bus, 'session_c', 1);
    await emitMany(bus, 'session_b', 1);
    expect(bus.collectedEvents().map((event) => `${event.sessionId}:${event.seq}`)).toEqual([
      'session_b:2',
      'session_b:3',
      'session_c:1',
      'session_b:4',
    ]);
  });

  it('keeps 1,000 events per session by default and every event with Infinity', async () => {
    expect(DEFAULT_MAX_EVENTS_PER_SESSION).toBe(1000);
    const bounded = new CollectingEventBus();
    const unbounded = new CollectingEventBus({ maxEventsPerSession: Number.POSITIVE_INFINITY });
    await emitMany(bounded, 'session_a', 1600);
    await emitMany(unbounded, 'session_a', 1600);
    const kept = bounded.collectedEvents('session_a');
    expect(kept).toHaveLength(1000);
    expect(kept[0]?.seq).toBe(601);
    expect(unbounded.collectedEvents('session_a')).toHaveLength(1600);
  });

  it('rejects a bound that is not a positive integer', () => {
    for (const maxEventsPerSession of [0, -1, 1.5, Number.NaN]) {
      expect(() => new CollectingEventBus({ maxEventsPerSession })).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      );
    }
  });

  it('reads back every kept event as it was emitted (ids, times, seqs, turn ids, data)', async () => {
    const bus = new CollectingEventBus({ maxEventsPerSession: 5 });
    const emitted = [];
    for (let index = 0; index < 12; index++) {
      emitted.push(
        await bus.emit({
          type: index % 2 === 0 ? 'turn.started' : 'tool.completed',
          sessionId: 'session_a',
          ...(index % 3 === 0 ? {} : { turnId: `turn_${index}` }),
          data: { index, nested: { list: [index, 'x'] } },
        }),
      );
      // Events a few milliseconds apart as well as many in one millisecond.
      if (index % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const kept = bus.collectedEvents('session_a');
    expect(kept).toEqual(emitted.slice(-5));
    expect(kept.map((event) => Object.keys(event))).toEqual(
      emitted.slice(-5).map((event) => Object.keys(event)),
    );
    for (const [index, event] of kept.entries()) {
      expect(Object.isFrozen(event)).toBe(true);
      expect(event.data).toBe(emitted[7 + index]?.data);
    }
    expect(bus.collectedEvents()).toEqual(emitted.slice(-5));
  });

  it('keeps the seq of each event when an emit that failed used up a number', async () => {
    const bus = new CollectingEventBus();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await bus.emit({ type: 'turn.started', sessionId: 'session_a', data: {} });
    await expect(
      bus.emit({ type: 'turn.started', sessionId: 'session_a', data: { cyclic } }),
    ).rejects.toThrow(TypeError);
    const after = await bus.emit({ type: 'turn.started', sessionId: 'session_a', data: {} });
    expect(bus.collectedEvents('session_a').map((event) => event.seq)).toEqual([1, after.seq]);
  });

  it('reads back turn ids and types across many turns past the bound', async () => {
    const bus = new CollectingEventBus({ maxEventsPerSession: 4 });
    const emitted = [];
    for (let index = 0; index < 40; index++) {
      const request = {
        // A type outside EVENT_TYPES (a JavaScript caller may send one) is kept as it is.
        type: (index % 7 === 3 ? 'custom.kind' : 'tool.started') as 'tool.started',
        sessionId: 'session_a',
        ...(index % 5 === 4 ? {} : { turnId: `turn_${Math.floor(index / 3)}` }),
        data: { index },
      };
      emitted.push(await bus.emit(request));
      expect(bus.collectedEvents('session_a')).toEqual(emitted.slice(-4));
    }
  });
});
