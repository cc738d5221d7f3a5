// The stores send their statements by name, so the server may plan one once, generically, and
// keep that plan for the connection's life. A plan made while the tables were new and had no
// statistics (a new schema; autovacuum off or not yet run) must still read a long session's
// window through the right index, not the whole history. These tests make the worst case
// certain (`plan_cache_mode = force_generic_plan` on the only connection, the plan made on a tiny
// table) and count the buffers the same prepared statement touches once the session is long.
import { randomBytes } from 'node:crypto';
import { COMPACTION_STORAGE_KEY, InputMessage } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyHeadRange, keyPrefixParams } from './key-range.js';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';
import { textDigest } from './text-codec.js';

const random = () => randomBytes(8).toString('hex');

interface PlanNode {
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
}

describe('named statements planned on new tables', () => {
  let backends: PostgresBackends;
  beforeAll(async () => {
    backends = await createTestBackends({ poolConfig: { max: 1 } });
    await backends.pool.query('SET plan_cache_mode = force_generic_plan');
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  /** Buffers touched by the prepared statement whose text contains all of `marks`. */
  async function buffersOf(marks: string[], params: string[]): Promise<number> {
    const found = await backends.pool.query<{ name: string }>(
      `SELECT name FROM pg_prepared_statements WHERE ${marks.map((_, i) => `strpos(statement, $${i + 1}) > 0`).join(' AND ')}`,
      marks,
    );
    expect(found.rows, 'the statement was prepared on this connection').toHaveLength(1);
    const plan = await backends.pool.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE "${found.rows[0]!.name}"(${params.join(', ')})`,
    );
    const top = plan.rows[0]!['QUERY PLAN'][0]!.Plan;
    return top['Shared Hit Blocks'] + top['Shared Read Blocks'];
  }

  const bytea = (value: Buffer) => `'\\x${value.toString('hex')}'::bytea`;
  const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;

  it('the turn snapshot reads the messages after the kept history through the primary key', async () => {
    const harnessId = `harness_${random()}`;
    await backends.harnesses.addHarness({ id: harnessId, name: 'h' } as never);
    const sessionId = `session_${random()}`;
    await backends.sessions.createSession({ id: sessionId, harnessId } as never);
    for (const text of ['one', 'two']) {
      await backends.messages.addInputMessage(sessionId, InputMessage.user(text), 'turn_0');
    }
    // Planned now, on tables of a few rows.
    expect((await backends.loadTurnSnapshot(sessionId))?.messages).toHaveLength(2);
    for (let turn = 1; turn <= 1500; turn++) {
      await backends.messages.addInputMessage(
        sessionId,
        InputMessage.user(`message ${turn} ${'words '.repeat(20)}`),
        `turn_${turn}`,
      );
    }
    const snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(snapshot?.messages).toHaveLength(1502);
    const last = snapshot!.messages.at(-1)!.seq;
    const buffers = await buffersOf(
      ['snapshot_session', 'window_messages'],
      [bytea(textDigest(sessionId)), bytea(textDigest(COMPACTION_STORAGE_KEY)), String(last)],
    );
    // The 1,500 rows fill dozens of pages; the next turn's read is the last message's page and
    // the few index pages above it, with the session, harness and default model beside.
    expect(buffers).toBeLessThan(40);
    // 1,500 commits one after another: under a loaded run's parallel files each can take ~20 ms.
  }, 120_000);

  it('the turn setup lists the storage keys of one prefix through the key-head index', async () => {
    const harnessId = `harness_${random()}`;
    await backends.harnesses.addHarness({ id: harnessId, name: 'h' } as never);
    const sessionId = `session_${random()}`;
    await backends.sessions.createSession({ id: sessionId, harnessId } as never);
    const prefix = 'everruns:runtime/waiting-turn/';
    await backends.storage.setValue(sessionId, `${prefix}turn_1`, 'w');
    // Planned now, on a table of one row.
    const options = { storageKeyPrefix: prefix };
    expect((await backends.loadSessionSetup(sessionId, options))?.storageKeys).toHaveLength(1);
    // A long session's journal: written and deleted once per turn, never vacuumed here.
    for (let turn = 1; turn <= 1000; turn++) {
      const key = `everruns:runtime/tool-started/turn_${turn}/call_1`;
      await backends.storage.setValue(sessionId, key, 'started');
      await backends.storage.deleteValue(sessionId, key);
    }
    expect((await backends.loadSessionSetup(sessionId, options))?.storageKeys).toEqual([
      `${prefix}turn_1`,
    ]);
    const range = keyHeadRange(prefix)!;
    const buffers = await buffersOf(
      ['snapshot_session', "'storage_key'"],
      [bytea(textDigest(sessionId)), ...keyPrefixParams(range).map(literal)],
    );
    expect(buffers).toBeLessThan(20);
    // 2,000 commits one after another (see above).
  }, 120_000);
});
