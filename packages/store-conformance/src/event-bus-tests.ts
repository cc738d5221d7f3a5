import { emitEvents, type RuntimeEvent } from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { randomId, TRICKY_TEXT } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

const range = (count: number) => Array.from({ length: count }, (_, index) => index + 1);

/**
 * Tests of `EventBus`: ids, per-session `seq` 1, 2, 3 … (also under concurrent emits), ISO
 * timestamps, data round-trip; and, where the bus has them, `collectedEvents` and `subscribe`
 * (a throwing listener never breaks `emit`).
 */
export function eventBusTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'event bus', ({ backends }) => {
    it('stamps events with an id, a per-session seq and an ISO timestamp', async () => {
      const { events } = backends();
      const [one, two] = [randomId('session'), randomId('session')];
      const turnId = randomId('turn');
      const first = await events.emit({
        type: 'turn.started',
        sessionId: one,
        turnId,
        data: { text: TRICKY_TEXT, nested: { list: [1, null, 'x'] } },
      });
      const other = await events.emit({ type: 'turn.started', sessionId: two, data: {} });
      const second = await events.emit({ type: 'turn.completed', sessionId: one, data: {} });
      expect(first).toMatchObject({
        type: 'turn.started',
        sessionId: one,
        turnId,
        seq: 1,
        data: { text: TRICKY_TEXT, nested: { list: [1, null, 'x'] } },
      });
      expect(typeof first.id).toBe('string');
      expect(first.id.length).toBeGreaterThan(0);
      expect(new Set([first.id, other.id, second.id]).size).toBe(3);
      expect(new Date(first.ts).toISOString()).toBe(first.ts);
      expect(other.seq).toBe(1);
      expect(second.seq).toBe(2);
      expect(second.turnId).toBeUndefined();
    });

    it("keeps a request's own ts (an event stored after the fact) and refuses one that is not a time", async () => {
      const { events } = backends();
      const sessionId = randomId('session');
      const earlier = new Date(Date.now() - 60_000).toISOString();
      const kept = await events.emit({ type: 'reason.started', sessionId, data: {}, ts: earlier });
      expect(kept.ts).toBe(earlier);
      // Another way of writing the same time is kept as `toISOString` writes it.
      const offset = '2026-01-02T03:04:05.678+01:00';
      const [batched] = await emitEvents(events, [
        { type: 'reason.completed', sessionId, data: {}, ts: offset },
        { type: 'turn.completed', sessionId, data: {} },
      ]);
      expect(batched?.ts).toBe('2026-01-02T02:04:05.678Z');
      const unstamped = await events.emit({ type: 'turn.completed', sessionId, data: {} });
      expect(Date.parse(unstamped.ts)).toBeGreaterThan(Date.parse(earlier));
      await expect(
        events.emit({ type: 'turn.started', sessionId, data: {}, ts: 'yesterday' }),
      ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      if (events.collectedEvents) {
        const collected = events.collectedEvents(sessionId);
        expect(collected.map((event) => event.ts).slice(0, 2)).toEqual([
          earlier,
          '2026-01-02T02:04:05.678Z',
        ]);
        // The refused request stored nothing.
        expect(collected).toHaveLength(4);
      }
    });

    it('numbers concurrent emits of one session contiguously', async () => {
      const { events } = backends();
      const sessionId = randomId('session');
      const emitted = await Promise.all(
        range(30).map(() => events.emit({ type: 'tool.started', sessionId, data: {} })),
      );
      expect(emitted.map((event) => event.seq).sort((a, b) => a - b)).toEqual(range(30));
    });

    it('emitEvents (emitMany where offered) numbers a batch consecutively, in order, among concurrent emits', async () => {
      const { events } = backends();
      const sessionId = randomId('session');
      const turnId = randomId('turn');
      await events.emit({ type: 'input.message', sessionId, data: {} });
      const batch = await emitEvents(events, [
        { type: 'session.activated', sessionId, turnId, data: { n: 1 } },
        { type: 'turn.started', sessionId, turnId, data: { text: TRICKY_TEXT } },
      ]);
      expect(batch.map((event) => [event.type, event.seq])).toEqual([
        ['session.activated', 2],
        ['turn.started', 3],
      ]);
      expect(batch[1]).toMatchObject({ turnId, data: { text: TRICKY_TEXT } });
      const racing = await Promise.all(
        range(10).map((index) =>
          index % 2 === 0
            ? emitEvents(events, [
                { type: 'tool.started', sessionId, data: { index } },
                { type: 'tool.completed', sessionId, data: { index } },
              ])
            : emitEvents(events, [{ type: 'reason.started', sessionId, data: { index } }]),
        ),
      );
      const seqs = racing.flat().map((event) => event.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(range(15).map((seq) => seq + 3));
      for (const pair of racing.filter((entry) => entry.length === 2)) {
        expect(pair[1]!.seq).toBeGreaterThan(pair[0]!.seq);
      }
      expect(await emitEvents(events, [])).toEqual([]);
    });

    it('keeps emitted events in order where collectedEvents is implemented', async () => {
      const { events } = backends();
      if (events.collectedEvents === undefined) return;
      const [one, two] = [randomId('session'), randomId('session')];
      const emitted: RuntimeEvent[] = [];
      emitted.push(await events.emit({ type: 'input.message', sessionId: one, data: {} }));
      emitted.push(await events.emit({ type: 'input.message', sessionId: two, data: {} }));
      emitted.push(await events.emit({ type: 'turn.started', sessionId: one, data: {} }));
      expect(events.collectedEvents(one)).toEqual([emitted[0], emitted[2]]);
      expect(events.collectedEvents(two)).toEqual([emitted[1]]);
      const all = events.collectedEvents().filter((event) => [one, two].includes(event.sessionId));
      expect(all).toEqual(emitted);
    });

    it('delivers to subscribers until unsubscribed, despite a throwing listener, where subscribe is implemented', async () => {
      const { events } = backends();
      if (events.subscribe === undefined) return;
      const sessionId = randomId('session');
      const received: RuntimeEvent[] = [];
      const stopThrowing = events.subscribe(() => {
        throw new Error('listener failure');
      });
      const stop = events.subscribe((event) => {
        if (event.sessionId === sessionId) received.push(event);
      });
      try {
        const first = await events.emit({ type: 'reason.started', sessionId, data: {} });
        expect(received).toEqual([first]);
        stop();
        await events.emit({ type: 'reason.completed', sessionId, data: {} });
        expect(received).toEqual([first]);
      } finally {
        stop();
        stopThrowing();
      }
    });
  });
}

/**
 * Tests of ephemeral events (`EPHEMERAL_EVENT_TYPES`, the streamed deltas) on an `EventBus`:
 * `emit` returns them with `ephemeral: true` and the `seq` of the session's last kept event (0
 * before the first), kept events stay numbered without gaps, `collectedEvents` (where
 * implemented) never lists them and subscribers (where `subscribe` is implemented) receive them.
 * Registered by {@link runtimeStoreConformance} when the initializer sets `ephemeralEvents`;
 * callable on its own as well.
 */
export function ephemeralEventTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'event bus: ephemeral events', ({ backends }) => {
    it('stamps an ephemeral event with the seq of the last kept one and numbers kept events without gaps', async () => {
      const { events } = backends();
      const sessionId = randomId('session');
      const turnId = randomId('turn');
      const before = await events.emit({
        type: 'output.message.delta',
        sessionId,
        turnId,
        data: { iteration: 1, delta: TRICKY_TEXT },
      });
      expect(before).toMatchObject({
        type: 'output.message.delta',
        sessionId,
        turnId,
        seq: 0,
        ephemeral: true,
        data: { iteration: 1, delta: TRICKY_TEXT },
      });
      const first = await events.emit({ type: 'reason.started', sessionId, turnId, data: {} });
      const deltas = [];
      for (const type of [
        'output.message.delta',
        'reason.thinking.delta',
        'tool.call.delta',
      ] as const) {
        deltas.push(await events.emit({ type, sessionId, turnId, data: { delta: type } }));
      }
      const second = await events.emit({ type: 'reason.completed', sessionId, turnId, data: {} });
      expect(first.seq).toBe(1);
      expect(first.ephemeral).toBeUndefined();
      expect(deltas.map((event) => [event.type, event.seq, event.ephemeral])).toEqual([
        ['output.message.delta', 1, true],
        ['reason.thinking.delta', 1, true],
        ['tool.call.delta', 1, true],
      ]);
      expect(second.seq).toBe(2);
      expect(second.ephemeral).toBeUndefined();
      expect(new Set([before.id, ...deltas.map((event) => event.id)]).size).toBe(4);
    });

    it('never keeps ephemeral events where collectedEvents is implemented', async () => {
      const { events } = backends();
      if (events.collectedEvents === undefined) return;
      const sessionId = randomId('session');
      const kept = await events.emit({ type: 'reason.started', sessionId, data: {} });
      await events.emit({ type: 'output.message.delta', sessionId, data: { delta: 'x' } });
      await events.emit({ type: 'tool.call.delta', sessionId, data: { argumentsDelta: '{' } });
      expect(events.collectedEvents(sessionId)).toEqual([kept]);
      expect(events.collectedEvents().filter((event) => event.sessionId === sessionId)).toEqual([
        kept,
      ]);
    });

    it('delivers ephemeral events to subscribers, in order with kept ones, where subscribe is implemented', async () => {
      const { events } = backends();
      if (events.subscribe === undefined) return;
      const sessionId = randomId('session');
      const received: RuntimeEvent[] = [];
      const stop = events.subscribe((event) => {
        if (event.sessionId === sessionId) received.push(event);
      });
      try {
        const emitted = [
          await events.emit({ type: 'reason.started', sessionId, data: {} }),
          await events.emit({ type: 'output.message.delta', sessionId, data: { delta: 'a' } }),
          await events.emit({ type: 'reason.thinking.delta', sessionId, data: { delta: 'b' } }),
          await events.emit({ type: 'reason.completed', sessionId, data: {} }),
        ];
        expect(received).toEqual(emitted);
        expect(received.map((event) => [event.seq, event.ephemeral === true])).toEqual([
          [1, false],
          [1, true],
          [1, true],
          [2, false],
        ]);
      } finally {
        stop();
      }
    });
  });
}
