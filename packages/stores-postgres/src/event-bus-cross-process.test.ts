import type { RuntimeEvent } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';
import { FINAL_CHUNKS, type StreamTurnReport } from './test-support/stream-turn.js';
import { go, startWorker } from './test-support/workers.js';

describe('postgres event bus: a streamed turn in another process', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('reaches a subscriber here with every event, deltas included, in order, once, large ones intact', async () => {
    const worker = startWorker(
      {
        databaseUrl: DATABASE_URL,
        schema: backends.schema,
        secretKeyHex: TEST_SECRET_KEY.key.toString('hex'),
      },
      'stream-turn-worker.ts',
    );
    await worker.ready;
    const sessionId = /session (\S+)\n/.exec(worker.output())?.[1];
    expect(sessionId).toBeDefined();
    const received: RuntimeEvent[] = [];
    const stop = backends.events.subscribe((event) => received.push(event), {
      sessionId: sessionId!,
    });
    try {
      await stop.ready;
      go(worker);
      const report = JSON.parse(await worker.done) as StreamTurnReport;
      // Everything the other process committed has reached this bus's subscribers.
      await backends.events.caughtUp();

      expect(report.result).toMatchObject({ success: true, response: FINAL_CHUNKS.join('') });
      // Exactly the events the turn's own process delivered, in the same order, none twice.
      expect(received).toEqual(report.events);
      expect(new Set(received.map((event) => event.id)).size).toBe(received.length);
      const types = new Set(received.map((event) => event.type));
      for (const type of ['output.message.delta', 'reason.thinking.delta', 'tool.call.delta']) {
        expect(types).toContain(type);
      }
      const deltas = received.filter((event) => event.type === 'output.message.delta');
      expect(deltas.map((event) => event.data.delta).join('')).toBe(
        `Let me add these numbers.${FINAL_CHUNKS.join('')}`,
      );
      expect(deltas.some((event) => event.data.delta === FINAL_CHUNKS[1])).toBe(true);
      const answer = received.filter((event) => event.type === 'output.message.completed').at(-1);
      expect(JSON.stringify(answer?.data)).toContain(FINAL_CHUNKS[1]);

      // Kept events are the stored ones; ephemeral ones carry the last kept seq and are not stored.
      const stored = await backends.events.loadEvents(sessionId!);
      expect(received.filter((event) => !event.ephemeral)).toEqual(stored);
      let lastKept = 0;
      for (const event of received) {
        if (event.ephemeral) expect(event.seq).toBe(lastKept);
        else lastKept = event.seq;
      }
      const rows = await adminQuery<{ count: string }>(
        `SELECT count(*) FROM "${backends.schema}".events
          WHERE session_id = $1 AND type LIKE '%.delta'`,
        [sessionId],
      );
      expect(rows.rows[0]?.count).toBe('0');
    } finally {
      stop();
      worker.child.kill();
    }
  }, 60_000);
});
