import { randomBytes } from 'node:crypto';
import { type NewMessage, UsageTally } from '@everruns-ts/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, DATABASE_URL, destroyTestBackends } from './test-support/database.js';
import { textDigest } from './text-codec.js';

const random = () => randomBytes(8).toString('hex');

const answer = (index: number): NewMessage => ({
  role: 'agent',
  content: [{ type: 'text', text: `answer ${index}` }],
  metadata: {
    model: index % 3 === 0 ? 'gpt-4.1' : 'gpt-4.1-mini',
    usage: {
      inputTokens: 1000 + index,
      outputTokens: 10 + (index % 7),
      ...(index % 2 === 0 ? { cachedInputTokens: index } : {}),
    },
  },
});

/**
 * The plan of a statement when PostgreSQL may neither scan the table, use a bitmap nor sort: it
 * then exists only when an index hands out the session's rows in `seq` order, which is what makes
 * the read cost O(rows returned) at any history length. (Left free, the planner may prefer
 * another plan for a small test table.)
 */
async function planOf(schema: string, text: string, values: unknown[]): Promise<string> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(
      'SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off',
    );
    const result = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN ${text.replaceAll('{messages}', `"${schema}".messages`)}`,
      values,
    );
    return result.rows.map((row) => row['QUERY PLAN']).join('\n');
  } finally {
    await client.end();
  }
}

describe('postgres message store: range reads and usage sums', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('offers loadAfter, loadLatest and sumUsage, each one statement however long the history', async () => {
    const { messages } = backends;
    const sessionId = `session_${random()}`;
    const history: NewMessage[] = [];
    for (let index = 1; index <= 600; index++) {
      history.push({ role: 'user', content: [{ type: 'text', text: `question ${index}` }] });
      history.push(answer(index));
    }
    await messages.storeMessages(sessionId, history);

    let before = backends.queryCount();
    const latest = await messages.loadLatest!(sessionId, 4);
    expect(backends.queryCount() - before).toBe(1);
    expect(latest.map((message) => message.seq)).toEqual([1197, 1198, 1199, 1200]);

    before = backends.queryCount();
    const tail = await messages.loadAfter!(sessionId, 1190);
    expect(backends.queryCount() - before).toBe(1);
    expect(tail.map((message) => message.seq)).toEqual([
      1191, 1192, 1193, 1194, 1195, 1196, 1197, 1198, 1199, 1200,
    ]);

    before = backends.queryCount();
    const totals = await messages.sumUsage!(sessionId);
    expect(backends.queryCount() - before).toBe(1);
    const tally = new UsageTally();
    for (const message of await messages.load(sessionId)) tally.add(message);
    expect(totals).toEqual(tally.totals());
    expect(totals.map((total) => [total.model, total.modelCalls])).toEqual([
      ['gpt-4.1', 200],
      ['gpt-4.1-mini', 400],
    ]);
    // 600 calls: input 600 * 1000 + (1 + … + 600); cached: the even indexes summed.
    expect(totals[0]!.usage.inputTokens + totals[1]!.usage.inputTokens).toBe(600_000 + 180_300);
    expect(
      (totals[0]!.usage.cachedInputTokens ?? 0) + (totals[1]!.usage.cachedInputTokens ?? 0),
    ).toBe(90_300);
  });

  it('reads the tail of a long history through the (session, seq) primary key, never the whole session', async () => {
    const sessionId = `session_${random()}`;
    await backends.messages.storeMessages(
      sessionId,
      Array.from({ length: 2000 }, (_, index) => answer(index + 1)),
    );
    const digest = textDigest(sessionId);
    const latest = await planOf(
      backends.schema,
      'SELECT seq FROM {messages} WHERE session_hash = $1 ORDER BY seq DESC LIMIT $2',
      [digest, 5],
    );
    expect(latest).toMatch(/Index (Only )?Scan Backward using messages_session_seq/);
    const after = await planOf(
      backends.schema,
      'SELECT seq FROM {messages} WHERE session_hash = $1 AND seq > $2 ORDER BY seq',
      [digest, 1995],
    );
    expect(after).toMatch(/Index (Only )?Scan using messages_session_seq/);
  });
});
