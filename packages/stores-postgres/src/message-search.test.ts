import { randomBytes } from 'node:crypto';
import { type NewMessage, searchSessionMessages } from '@everruns-ts/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate } from './migrations.js';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import { PostgresDatabase } from './postgres-database.js';
import { searchCandidatesSql, searchPattern } from './postgres-message-store.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  dropSchema,
  randomSchemaName,
  TEST_SECRET_KEY,
} from './test-support/database.js';
import { textDigest } from './text-codec.js';

// searchMessages on PostgreSQL: an indexed query on the lower-cased search_text column (pg_trgm
// GIN), rows from before the column filled on a session's first search, and a database where the
// role may not install pg_trgm still migrates and searches.

const text = (role: NewMessage['role'], value: string): NewMessage => ({
  role,
  content: [{ type: 'text', text: value }],
});

async function explain(schema: string, sessionId: string, query: string): Promise<string> {
  const sessionHash = textDigest(sessionId);
  const { pattern, verifyAll } = searchPattern(query.toLowerCase());
  const result = await adminQuery<{ 'QUERY PLAN': unknown }>(
    `EXPLAIN (FORMAT JSON) ${searchCandidatesSql(`"${schema}".messages`)}`,
    [sessionHash, 0, pattern, null, verifyAll, 100],
  );
  return JSON.stringify(result.rows[0]?.['QUERY PLAN']);
}

describe('message search on PostgreSQL', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('answers from the trigram index on a big session (EXPLAIN), not by reading every message', async () => {
    const sessionId = `big_${randomBytes(4).toString('hex')}`;
    const total = 6000;
    const needles = new Set([777, 3100, 5999]);
    for (let start = 1; start <= total; start += 1000) {
      const batch: NewMessage[] = [];
      for (let index = start; index < start + 1000; index++) {
        const filler = `log line ${index} checksum ${randomBytes(6).toString('hex')}`;
        batch.push(
          text(
            index % 2 === 0 ? 'agent' : 'user',
            needles.has(index) ? `${filler} Zebra-Quartz found` : filler,
          ),
        );
      }
      await backends.messages.storeMessages(sessionId, batch);
    }
    // Another session on the same table, so the session filter matters.
    await backends.messages.storeMessages(`other_${sessionId}`, [text('user', 'zebra-quartz too')]);
    await adminQuery(`ANALYZE "${backends.schema}".messages`);

    const plan = await explain(backends.schema, sessionId, 'ZEBRA-quartz');
    expect(plan).toContain('messages_search_trgm');
    expect(plan).toContain('Bitmap Index Scan');

    const page = await backends.messages.searchMessages(sessionId, { query: 'zebra-QUARTZ' });
    expect(page.messages.map((message) => message.seq)).toEqual([777, 3100, 5999]);
    expect(page.hasMore).toBe(false);
    const second = await backends.messages.searchMessages(sessionId, {
      query: 'zebra-quartz',
      offset: 1,
      limit: 1,
    });
    expect(second.messages.map((message) => message.seq)).toEqual([3100]);
    expect(second.hasMore).toBe(true);
  });

  it('fills search_text of rows written without it (older code, rows from before version 3) on the first search', async () => {
    const sessionId = `legacy_${randomBytes(4).toString('hex')}`;
    await backends.messages.storeMessages(sessionId, [
      text('user', 'Ünïcode LEGACY row'),
      {
        role: 'agent',
        content: [{ type: 'tool_call', id: 'c1', name: 'Lookup', arguments: { Key: 'LegacyArg' } }],
      },
      text('user', 'unrelated'),
    ]);
    const digest = textDigest(sessionId);
    await adminQuery(
      `UPDATE "${backends.schema}".messages SET search_text = NULL WHERE session_hash = $1`,
      [digest],
    );
    const page = await backends.messages.searchMessages(sessionId, { query: 'legacy' });
    expect(page.messages.map((message) => message.seq)).toEqual([1, 2]);
    expect(
      (await backends.messages.searchMessages(sessionId, { query: 'üNÏCODE' })).messages,
    ).toHaveLength(1);
    const rows = await adminQuery<{ seq: number; search_text: string | null }>(
      `SELECT seq, search_text FROM "${backends.schema}".messages WHERE session_hash = $1 ORDER BY seq`,
      [digest],
    );
    expect(rows.rows).toEqual([
      { seq: 1, search_text: 'ünïcode legacy row' },
      { seq: 2, search_text: 'lookup\n{"key":"legacyarg"}' },
      { seq: 3, search_text: 'unrelated' },
    ]);
  });

  it('upgrades a version-2 schema with messages; they are found after the upgrade', async () => {
    const schema = randomSchemaName('everruns_search_upgrade');
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    try {
      const database = new PostgresDatabase(pool, schema);
      await migrate(database, MIGRATIONS.slice(0, 2));
      const digest = textDigest('s1');
      await pool.query(
        `INSERT INTO "${schema}".messages (session_hash, seq, id_hash, id, role, content, created_at)
         VALUES ($1, 1, $2, 'm1', 'user', $3, '2024-01-01T00:00:00.000Z')`,
        [
          digest,
          textDigest('m1'),
          JSON.stringify([{ type: 'text', text: 'Written Before The Upgrade' }]),
        ],
      );
      const upgraded = postgresBackends(
        { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
        { schema, secretKey: TEST_SECRET_KEY },
      );
      try {
        expect((await upgraded.migrate()).applied).toContain(3);
        const page = await upgraded.messages.searchMessages('s1', { query: 'before the UPGRADE' });
        expect(page.messages.map((message) => message.id)).toEqual(['m1']);
        expect(await searchSessionMessages(upgraded.messages, 's1', { query: 'x' })).toEqual({
          messages: [],
          hasMore: false,
        });
      } finally {
        await upgraded.close();
      }
    } finally {
      await pool.end();
      await dropSchema(schema);
    }
  });
});

describe('message search without pg_trgm', () => {
  const suffix = randomBytes(4).toString('hex');
  const databaseName = `everruns_notrgm_${suffix}`;
  const role = `everruns_notrgm_${suffix}`;

  afterAll(async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
    await adminQuery(`DROP ROLE IF EXISTS ${role}`);
  });

  it('migrates and searches when the role may not install the extension (no index, same answers)', async () => {
    // A fresh database where pg_trgm is not installed, and a role without CREATE on it (so it
    // may not install even a trusted extension) that owns the schema the stores use.
    await adminQuery(`CREATE ROLE ${role} LOGIN`);
    await adminQuery(`CREATE DATABASE ${databaseName}`);
    await adminQuery(`REVOKE CREATE ON DATABASE ${databaseName} FROM PUBLIC`);
    const url = new URL(DATABASE_URL);
    url.pathname = `/${databaseName}`;
    const superuser = new pg.Client({ connectionString: url.toString() });
    await superuser.connect();
    try {
      await superuser.query(`CREATE SCHEMA app AUTHORIZATION ${role}`);
    } finally {
      await superuser.end();
    }
    url.username = role;
    const stores = postgresBackends(
      { connectionString: url.toString(), poolConfig: { max: 2 } },
      { schema: 'app', secretKey: TEST_SECRET_KEY },
    );
    try {
      const result = await stores.migrate();
      expect(result.applied).toContain(3);
      await stores.messages.storeMessages('s', [text('user', 'Hello Index'), text('agent', 'no')]);
      const page = await stores.messages.searchMessages('s', { query: 'index' });
      expect(page.messages.map((message) => message.seq)).toEqual([1]);
      const check = new pg.Client({ connectionString: url.toString() });
      await check.connect();
      try {
        const extension = await check.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'`);
        expect(extension.rowCount).toBe(0);
        const index = await check.query(
          `SELECT 1 FROM pg_indexes WHERE schemaname = 'app' AND indexname = 'messages_search_trgm'`,
        );
        expect(index.rowCount).toBe(0);
      } finally {
        await check.end();
      }
    } finally {
      await stores.close();
    }
  });
});
