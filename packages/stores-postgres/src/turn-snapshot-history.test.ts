// loadTurnSnapshot keeps the history it read per session: a later snapshot reads only the
// messages stored since (whoever stored them), follows a compaction cut that moves forward, and
// reads the whole history again when the kept one no longer matches the store.
import { randomBytes } from 'node:crypto';
import { COMPACTION_STORAGE_KEY, InputMessage, type Message } from '@everruns-ts/core';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

const random = () => randomBytes(8).toString('hex');

/** The message rows each snapshot statement sent back (counted from its result). */
function countMessageRows(pool: pg.Pool): number[] {
  const counts: number[] = [];
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<pg.QueryResult>;
  pool.query = (async (...args: unknown[]) => {
    const result = await query(...args);
    const rows = (result?.rows ?? []) as { kind?: string }[];
    if (rows.some((row) => row.kind === 'session')) {
      counts.push(rows.filter((row) => row.kind === 'message').length);
    }
    return result;
  }) as typeof pool.query;
  return counts;
}

const texts = (messages: Message[]) =>
  messages.map((message) =>
    message.content.map((part) => (part.type === 'text' ? part.text : part.type)).join(''),
  );

describe('postgres loadTurnSnapshot: the kept history', () => {
  let backends: PostgresBackends;
  let other: PostgresBackends;
  let counts: number[];

  beforeAll(async () => {
    backends = await createTestBackends();
    // Another process on the same schema.
    other = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema: backends.schema, secretKey: TEST_SECRET_KEY },
    );
    counts = countMessageRows(backends.pool);
  });
  afterAll(async () => {
    await other.close();
    await destroyTestBackends(backends);
  });

  async function newSession(): Promise<string> {
    const harnessId = `harness_${random()}`;
    await backends.harnesses.addHarness({ id: harnessId, name: 'h' } as never);
    const sessionId = `session_${random()}`;
    await backends.sessions.createSession({ id: sessionId, harnessId } as never);
    return sessionId;
  }

  it('reads only the messages stored since the last snapshot, also those another process stored', async () => {
    const sessionId = await newSession();
    for (const text of ['one', 'two', 'three']) {
      await backends.messages.addInputMessage(sessionId, InputMessage.user(text), 'turn_1');
    }
    counts.length = 0;
    const first = await backends.loadTurnSnapshot(sessionId);
    expect(texts(first!.messages)).toEqual(['one', 'two', 'three']);
    await other.messages.addInputMessage(sessionId, InputMessage.user('four'), 'turn_2');
    const second = await backends.loadTurnSnapshot(sessionId);
    expect(texts(second!.messages)).toEqual(['one', 'two', 'three', 'four']);
    const third = await backends.loadTurnSnapshot(sessionId);
    expect(texts(third!.messages)).toEqual(['one', 'two', 'three', 'four']);
    expect(counts).toEqual([3, 1, 0]);
    // Equal to what a fresh process reads; the messages frozen (shared between snapshots).
    const fresh = await other.loadTurnSnapshot(sessionId);
    expect(third!.messages).toEqual(fresh!.messages);
    expect(Object.isFrozen(third!.messages[0])).toBe(true);
    expect(Object.isFrozen(third!.messages[0]!.content)).toBe(true);
    // Each snapshot's array is its own: an earlier one stays as it was read, and what a caller
    // does to its array reaches neither the kept history nor the next snapshot.
    expect(third!.messages).not.toBe(second!.messages);
    expect(texts(first!.messages)).toEqual(['one', 'two', 'three']);
    expect(texts(second!.messages)).toEqual(['one', 'two', 'three', 'four']);
    third!.messages.reverse();
    third!.messages.push(third!.messages[0]!);
    second!.messages.length = 0;
    const fourth = await backends.loadTurnSnapshot(sessionId);
    expect(texts(fourth!.messages)).toEqual(['one', 'two', 'three', 'four']);
    expect(counts).toEqual([3, 1, 0, 0]);
    // One list that only grew: one source, which another session's history does not share.
    expect(first!.messagesSource).toBeDefined();
    expect(second!.messagesSource).toBe(first!.messagesSource);
    expect(third!.messagesSource).toBe(first!.messagesSource);
    const elsewhere = await newSession();
    await backends.messages.addInputMessage(elsewhere, InputMessage.user('x'), 'turn_1');
    const another = await backends.loadTurnSnapshot(elsewhere);
    expect(another!.messagesSource).toBeDefined();
    expect(another!.messagesSource).not.toBe(first!.messagesSource);
  });

  it('keeps each of two snapshots read from the same kept history to its own messages', async () => {
    const sessionId = await newSession();
    await backends.messages.addInputMessage(sessionId, InputMessage.user('one'), 'turn_1');
    expect(texts((await backends.loadTurnSnapshot(sessionId))!.messages)).toEqual(['one']);
    // Two snapshots in flight at once, each planned against the kept history ['one'], with a
    // message stored before each is read: the first grows the kept history, the second must not
    // see the first one's message in its place, nor lose its own.
    await other.messages.addInputMessage(sessionId, InputMessage.user('two'), 'turn_2');
    const [a, b] = await Promise.all([
      backends.loadTurnSnapshot(sessionId),
      backends.loadTurnSnapshot(sessionId),
    ]);
    expect(texts(a!.messages)).toEqual(['one', 'two']);
    expect(texts(b!.messages)).toEqual(['one', 'two']);
    await other.messages.addInputMessage(sessionId, InputMessage.user('three'), 'turn_3');
    const c = await backends.loadTurnSnapshot(sessionId);
    expect(texts(c!.messages)).toEqual(['one', 'two', 'three']);
    expect(texts(a!.messages)).toEqual(['one', 'two']);
    const fresh = await other.loadTurnSnapshot(sessionId);
    expect(c!.messages).toEqual(fresh!.messages);
  });

  it('follows a compaction cut that moves forward and reads again after one that moves back', async () => {
    const sessionId = await newSession();
    for (const text of ['a', 'b', 'c', 'd']) {
      await backends.messages.addInputMessage(sessionId, InputMessage.user(text), 'turn_1');
    }
    const before = await backends.loadTurnSnapshot(sessionId);
    const record = (throughSeq: number) =>
      JSON.stringify({ version: 1, throughSeq, summary: 's', createdAt: new Date().toISOString() });
    await other.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, record(2));
    counts.length = 0;
    const compacted = await backends.loadTurnSnapshot(sessionId);
    expect(compacted!.compaction?.throughSeq).toBe(2);
    expect(texts(compacted!.messages)).toEqual(['c', 'd']);
    await other.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, record(1));
    const back = await backends.loadTurnSnapshot(sessionId);
    expect(texts(back!.messages)).toEqual(['b', 'c', 'd']);
    await other.storage.deleteValue(sessionId, COMPACTION_STORAGE_KEY);
    const whole = await backends.loadTurnSnapshot(sessionId);
    expect(texts(whole!.messages)).toEqual(['a', 'b', 'c', 'd']);
    expect(counts[0]).toBe(0);
    // Each cut is a list of its own: no two of these snapshots share a source.
    const sources = [before, compacted, back, whole].map((snapshot) => snapshot!.messagesSource);
    expect(new Set(sources).size).toBe(4);
  });

  it('reads the whole history again when the kept last message is no longer stored', async () => {
    const sessionId = await newSession();
    for (const text of ['x', 'y']) {
      await backends.messages.addInputMessage(sessionId, InputMessage.user(text), 'turn_1');
    }
    const before = await backends.loadTurnSnapshot(sessionId);
    // Outside the store: the history is replaced under the same seqs.
    await adminQuery(`DELETE FROM "${backends.schema}".messages`);
    for (const text of ['p', 'q', 'r']) {
      await other.messages.addInputMessage(sessionId, InputMessage.user(text), 'turn_2');
    }
    const snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(texts(snapshot!.messages)).toEqual(['p', 'q', 'r']);
    expect(snapshot!.messagesSource).not.toBe(before!.messagesSource);
  });
});
