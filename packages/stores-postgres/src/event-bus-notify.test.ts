import { randomBytes } from 'node:crypto';
import type { EventRequest, EverrunsError, RuntimeEvent } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

// Two bundles on one schema stand for two processes: each has its own pool and its own bus, so
// what one bus emits reaches the other only through LISTEN/NOTIFY (the child-process test in
// event-bus-cross-process.test.ts runs a real turn in another process).

const random = () => randomBytes(8).toString('hex');
const WAIT = { timeout: 15_000, interval: 20 };

/** Text with multi-byte characters, NUL and a lone surrogate, `size` characters long. */
function trickyText(size: number): string {
  const unit = 'é😀\u0000\ud800 ok ';
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

describe('postgres event bus: events of other buses (LISTEN/NOTIFY)', () => {
  const applicationName = `everruns_listen_${random()}`;
  let listening: PostgresBackends;
  let emitting: PostgresBackends;
  const errors: unknown[] = [];

  beforeAll(async () => {
    listening = await createTestBackends({
      poolConfig: { application_name: applicationName },
      events: { onError: (error) => errors.push(error) },
    });
    emitting = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
      { schema: listening.schema, secretKey: TEST_SECRET_KEY },
    );
  });
  afterAll(async () => {
    await emitting.close();
    await destroyTestBackends(listening);
  });

  async function listenConnections(): Promise<number[]> {
    const result = await adminQuery<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`,
      [applicationName],
    );
    return result.rows.map((row) => row.pid);
  }

  it('delivers kept and ephemeral events of another bus in emission order, with their seq', async () => {
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => {
      if (event.sessionId === sessionId) received.push(event);
    });
    try {
      await stop.ready;
      const turnId = 'turn_1';
      const emitted: RuntimeEvent[] = [];
      const emit = async (request: Omit<EventRequest, 'sessionId'>) => {
        emitted.push(await emitting.events.emit({ ...request, sessionId }));
      };
      await emit({ type: 'output.message.delta', turnId, data: { delta: 'before' } });
      await emit({ type: 'reason.started', turnId, data: {} });
      // Many deltas between kept events: their NOTIFYs go out in the background, and each kept
      // event waits for them, so the order holds.
      for (let index = 0; index < 300; index++) {
        await emit({
          type: index % 3 === 0 ? 'reason.thinking.delta' : 'output.message.delta',
          turnId,
          data: { delta: `piece ${index}`, offset: index },
        });
        if (index % 50 === 49) await emit({ type: 'tool.started', turnId, data: { index } });
      }
      emitted.push(
        ...(await emitting.events.emitMany([
          { type: 'reason.completed', sessionId, turnId, data: { text: 'done' } },
          { type: 'turn.completed', sessionId, turnId, data: {} },
        ])),
      );
      await vi.waitFor(() => expect(received).toHaveLength(emitted.length), WAIT);
      expect(received).toEqual(emitted);
      expect(received[0]).toMatchObject({ seq: 0, ephemeral: true });
      expect(received.at(-1)?.seq).toBe(9);
      expect(errors).toEqual([]);
    } finally {
      stop();
    }
  });

  it('carries events larger than a NOTIFY payload intact: kept by reference, ephemeral in fragments', async () => {
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => {
      if (event.sessionId === sessionId) received.push(event);
    });
    try {
      await stop.ready;
      const big = trickyText(30_000);
      const emitted = [
        await emitting.events.emit({
          type: 'output.message.completed',
          sessionId,
          turnId: 'turn_big',
          data: { text: big },
        }),
        await emitting.events.emit({
          type: 'output.message.delta',
          sessionId,
          turnId: 'turn_big',
          data: { delta: trickyText(50_000) },
        }),
        // Just under and just over the limit once escaped.
        await emitting.events.emit({
          type: 'output.message.delta',
          sessionId,
          data: { delta: 'x'.repeat(7800) },
        }),
        await emitting.events.emit({
          type: 'tool.call.delta',
          sessionId,
          data: { argumentsDelta: 'é'.repeat(1400) },
        }),
        ...(await emitting.events.emitMany([
          { type: 'tool.completed', sessionId, data: { result: big } },
          { type: 'tool.completed', sessionId, data: { result: 'small' } },
        ])),
      ];
      await vi.waitFor(() => expect(received).toHaveLength(emitted.length), WAIT);
      expect(received).toEqual(emitted);
      expect(String(received[1]?.data.delta).length).toBe(50_000);
    } finally {
      stop();
    }
  });

  it('caughtUp resolves once the events other processes committed before it were delivered', async () => {
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => received.push(event), { sessionId });
    try {
      await stop.ready;
      const emitted: RuntimeEvent[] = [];
      for (let index = 0; index < 5; index++) {
        // Large kept events: each is read back from the table by the listening bus.
        emitted.push(
          await emitting.events.emit({
            type: 'tool.completed',
            sessionId,
            data: { result: trickyText(20_000), index },
          }),
          await emitting.events.emit({
            type: 'output.message.delta',
            sessionId,
            data: { delta: `d${index}` },
          }),
        );
      }
      // A turn's last event is a kept one, and its NOTIFY waits for the ephemeral ones of the
      // session emitted before it; an ephemeral event's own emit resolves before its NOTIFY is
      // sent (they go out in batches), so it is not "committed" when emit resolves.
      emitted.push(
        await emitting.events.emit({ type: 'turn.completed', sessionId, data: { index: 5 } }),
      );
      await listening.events.caughtUp();
      expect(received).toEqual(emitted);
    } finally {
      stop();
    }
  });

  it('never writes ephemeral events to the events table; kept ones stay numbered without gaps', async () => {
    const sessionId = `session_${random()}`;
    await emitting.events.emit({ type: 'reason.started', sessionId, data: {} });
    const delta = await emitting.events.emit({
      type: 'output.message.delta',
      sessionId,
      data: { delta: 'a' },
    });
    await emitting.events.emit({
      type: 'tool.call.delta',
      sessionId,
      data: { argumentsDelta: '{' },
    });
    await emitting.events.emit({ type: 'reason.completed', sessionId, data: {} });
    expect(delta).toMatchObject({ seq: 1, ephemeral: true });
    const stored = await adminQuery<{ type: string; seq: number }>(
      `SELECT type, seq FROM "${listening.schema}".events WHERE session_id = $1 ORDER BY seq`,
      [sessionId],
    );
    expect(stored.rows).toEqual([
      { type: 'reason.started', seq: 1 },
      { type: 'reason.completed', seq: 2 },
    ]);
    expect((await listening.events.loadEvents(sessionId)).map((event) => event.type)).toEqual([
      'reason.started',
      'reason.completed',
    ]);
  });

  it('stores ephemeral events as kept ones only with persistEphemeral', async () => {
    const persisting = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema: listening.schema, secretKey: TEST_SECRET_KEY, events: { persistEphemeral: true } },
    );
    try {
      const sessionId = `session_${random()}`;
      const delta = await persisting.events.emit({
        type: 'output.message.delta',
        sessionId,
        data: { delta: 'kept' },
      });
      expect(delta.seq).toBe(1);
      expect(delta.ephemeral).toBeUndefined();
      expect(await persisting.events.loadEvents(sessionId)).toEqual([delta]);
    } finally {
      await persisting.close();
    }
  });

  it('delivers its own events to its subscribers once, not again through NOTIFY', async () => {
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => {
      if (event.sessionId === sessionId) received.push(event);
    });
    try {
      await stop.ready;
      const own = [
        await listening.events.emit({ type: 'reason.started', sessionId, data: {} }),
        await listening.events.emit({ type: 'output.message.delta', sessionId, data: { d: 1 } }),
      ];
      // An event of the other bus, emitted after ours: once it arrived, our own NOTIFYs (sent
      // before it) would have arrived too.
      const marker = await emitting.events.emit({ type: 'reason.completed', sessionId, data: {} });
      await vi.waitFor(() => expect(received.at(-1)).toEqual(marker), WAIT);
      expect(received).toEqual([...own, marker]);
    } finally {
      stop();
    }
  });

  it('opens the LISTEN connection on the first subscriber and releases it after the last one', async () => {
    await vi.waitFor(async () => expect(await listenConnections()).toEqual([]), WAIT);
    const first = listening.events.subscribe(() => {});
    const second = listening.events.subscribe(() => {});
    await Promise.all([first.ready, second.ready]);
    expect(await listenConnections()).toHaveLength(1);
    first();
    expect(await listenConnections()).toHaveLength(1);
    second();
    await vi.waitFor(async () => expect(await listenConnections()).toEqual([]), WAIT);
  });

  it('listens again after the last subscriber left and a new one came at once, many times', async () => {
    const sessionId = `session_${random()}`;
    for (let round = 0; round < 5; round++) {
      const leaving = listening.events.subscribe(() => {});
      await leaving.ready;
      const before = await listenConnections();
      leaving();
      const received: RuntimeEvent[] = [];
      const stop = listening.events.subscribe((event) => received.push(event), { sessionId });
      try {
        await stop.ready;
        // Ready means a new connection holds LISTEN, not the one being closed.
        const after = await listenConnections();
        expect(after.some((pid) => !before.includes(pid))).toBe(true);
        const event = await emitting.events.emit({ type: 'tool.started', sessionId, data: {} });
        await vi.waitFor(() => expect(received).toEqual([event]), WAIT);
      } finally {
        stop();
      }
    }
  });

  it('keeps a subscriber going after its LISTEN connection is killed, with the kept events it missed', async () => {
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => received.push(event), { sessionId });
    try {
      await stop.ready;
      const emitted = [await emitting.events.emit({ type: 'turn.started', sessionId, data: {} })];
      await vi.waitFor(() => expect(received).toHaveLength(1), WAIT);
      const [pid] = await listenConnections();
      await adminQuery('SELECT pg_terminate_backend($1)', [pid]);
      // Emitted while the connection may be down: the reconnect's catch-up read delivers it.
      emitted.push(await emitting.events.emit({ type: 'reason.started', sessionId, data: {} }));
      await vi.waitFor(async () => {
        const pids = await listenConnections();
        expect(pids).toHaveLength(1);
        expect(pids).not.toContain(pid);
      }, WAIT);
      await vi.waitFor(() => expect(received).toHaveLength(2), WAIT);
      emitted.push(
        await emitting.events.emit({ type: 'output.message.delta', sessionId, data: { d: 'x' } }),
        await emitting.events.emit({ type: 'reason.completed', sessionId, data: {} }),
      );
      await vi.waitFor(() => expect(received).toHaveLength(4), WAIT);
      expect(received).toEqual(emitted);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      stop();
    }
  });

  it('sends nothing with publish: false, and hears only buses of its own channel', async () => {
    const silent = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema: listening.schema, secretKey: TEST_SECRET_KEY, events: { publish: false } },
    );
    const elsewhere = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema: listening.schema, secretKey: TEST_SECRET_KEY, events: { channel: 'readme other' } },
    );
    const sessionId = `session_${random()}`;
    const received: RuntimeEvent[] = [];
    const stop = listening.events.subscribe((event) => received.push(event), { sessionId });
    const heardElsewhere: RuntimeEvent[] = [];
    const stopElsewhere = elsewhere.events.subscribe((event) => heardElsewhere.push(event));
    try {
      await Promise.all([stop.ready, stopElsewhere.ready]);
      expect(listening.events.channel).toBe(`everruns_events_${listening.schema}`);
      expect(elsewhere.events.channel).toBe('readme other');
      await silent.events.emit({ type: 'reason.started', sessionId, data: {} });
      await silent.events.emit({ type: 'output.message.delta', sessionId, data: { d: 1 } });
      const heard = await emitting.events.emit({ type: 'reason.completed', sessionId, data: {} });
      await listening.events.caughtUp();
      await elsewhere.events.caughtUp();
      expect(received).toEqual([heard]);
      expect(heardElsewhere).toEqual([]);
      // Stored all the same.
      expect(await listening.events.loadEvents(sessionId)).toHaveLength(2);
    } finally {
      stop();
      stopElsewhere();
      await silent.close();
      await elsewhere.close();
    }
  });

  it('refuses invalid options with a typed error', () => {
    for (const events of [{ channel: '' }, { channel: 'x'.repeat(64) }, { publish: 'yes' }]) {
      expect(() =>
        postgresBackends(
          { connectionString: DATABASE_URL },
          { secretKey: TEST_SECRET_KEY, events: events as never },
        ),
      ).toThrowError(
        expect.objectContaining({ code: 'CONFIGURATION' }) as unknown as EverrunsError,
      );
    }
  });
});
