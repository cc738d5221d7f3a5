import { randomBytes } from 'node:crypto';
import { EverrunsError } from '@everruns-ts/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

const agentText = (text: string) => ({
  role: 'agent' as const,
  content: [{ type: 'text' as const, text }],
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<EverrunsError> {
  const error = await promise.then(
    () => expect.fail(`expected ${code}, nothing was thrown`),
    (caught: unknown) => caught,
  );
  expect(EverrunsError.isInstance(error), `an EverrunsError, got ${String(error)}`).toBe(true);
  expect((error as EverrunsError).code, (error as EverrunsError).message).toBe(code);
  return error as EverrunsError;
}

/**
 * Installs a trigger that makes the next `times` writes to `table` fail with `sqlState`. The
 * count lives in a sequence, which a rollback does not undo; `attempts()` reports how many writes
 * reached the trigger.
 */
async function injectFaults(schema: string, table: string, sqlState: string, times: number) {
  const name = `fault_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE SEQUENCE "${schema}".${name}_seq`);
  await adminQuery(
    `CREATE FUNCTION "${schema}".${name}() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF nextval('"${schema}".${name}_seq') <= ${times} THEN
         RAISE EXCEPTION 'injected fault' USING ERRCODE = '${sqlState}';
       END IF;
       RETURN NEW;
     END $$`,
  );
  await adminQuery(
    `CREATE TRIGGER ${name} BEFORE INSERT OR UPDATE ON "${schema}".${table}
     FOR EACH ROW EXECUTE FUNCTION "${schema}".${name}()`,
  );
  return {
    async attempts(): Promise<number> {
      const result = await adminQuery<{ last_value: string; is_called: boolean }>(
        `SELECT last_value, is_called FROM "${schema}".${name}_seq`,
      );
      const row = result.rows[0]!;
      return row.is_called ? Number(row.last_value) : 0;
    },
    async remove(): Promise<void> {
      await adminQuery(`DROP TRIGGER ${name} ON "${schema}".${table}`);
    },
  };
}

describe('postgres stores: retries of serialization failures and deadlocks', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends({
      retry: { maxAttempts: 5, initialDelayMs: 1, maxDelayMs: 4 },
    });
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  for (const sqlState of ['40001', '40P01']) {
    it(`retries an append that fails with ${sqlState} and stores it exactly once`, async () => {
      const fault = await injectFaults(backends.schema, 'messages', sqlState, 3);
      try {
        const sessionId = `session_${randomBytes(8).toString('hex')}`;
        const stored = await backends.messages.storeMessage(sessionId, agentText('survives'));
        expect(stored.seq).toBe(1);
        expect(await fault.attempts()).toBe(4);
        expect(await backends.messages.load(sessionId)).toEqual([stored]);
      } finally {
        await fault.remove();
      }
    });

    it(`gives up on ${sqlState} after the last attempt with a retryable STORE_CONFLICT and writes nothing`, async () => {
      const fault = await injectFaults(backends.schema, 'messages', sqlState, 1000);
      try {
        const sessionId = `session_${randomBytes(8).toString('hex')}`;
        const error = await expectCode(
          backends.messages.storeMessage(sessionId, agentText('never')),
          'STORE_CONFLICT',
        );
        expect(error.retryable).toBe(true);
        expect(error.details).toMatchObject({ sqlState, attempts: 5 });
        expect((error.cause as { code?: string }).code).toBe(sqlState);
        expect(await fault.attempts()).toBe(5);
        expect(await backends.messages.count(sessionId)).toBe(0);
      } finally {
        await fault.remove();
      }
    });
  }

  it('retries a batch, a value write, an event and a session update the same way', async () => {
    const sessionId = `session_${randomBytes(8).toString('hex')}`;
    const faults = [
      await injectFaults(backends.schema, 'messages', '40001', 2),
      await injectFaults(backends.schema, 'session_values', '40P01', 2),
      await injectFaults(backends.schema, 'events', '40001', 2),
      await injectFaults(backends.schema, 'sessions', '40P01', 2),
    ];
    try {
      const batch = await backends.messages.storeMessages(sessionId, [
        agentText('1'),
        agentText('2'),
      ]);
      expect(batch.map((message) => message.seq)).toEqual([1, 2]);
      await backends.storage.setValue(sessionId, 'k', 'v');
      expect(await backends.storage.getValue(sessionId, 'k')).toBe('v');
      const event = await backends.events.emit({ type: 'turn.started', sessionId, data: {} });
      expect(event.seq).toBe(1);
      await backends.sessions.createSession({
        id: sessionId,
        harnessId: 'harness_x',
        tags: [],
        capabilities: [],
        initialFiles: [],
        status: 'started',
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
      });
      expect((await backends.sessions.getSession(sessionId))?.id).toBe(sessionId);
      // Two failed attempts each; the trigger fires per row, so the batch's third attempt counts twice.
      expect(await Promise.all(faults.map((fault) => fault.attempts()))).toEqual([4, 3, 3, 3]);
    } finally {
      for (const fault of faults) await fault.remove();
    }
  });

  it('does not retry an error that is not retryable, and wraps it', async () => {
    const fault = await injectFaults(backends.schema, 'messages', '22023', 1);
    try {
      const error = await expectCode(
        backends.messages.storeMessage(`session_${randomBytes(8).toString('hex')}`, agentText('x')),
        'INTERNAL',
      );
      expect((error.cause as { code?: string }).code).toBe('22023');
      expect(await fault.attempts()).toBe(1);
    } finally {
      await fault.remove();
    }
  });
});

describe('postgres stores: unreachable and misconfigured databases', () => {
  it('reports an unreachable server as STORE_UNAVAILABLE after bounded retries, never a raw driver error', async () => {
    const backends = postgresBackends(
      // Port 1 on the loopback interface refuses connections.
      { connectionString: 'postgres://postgres@127.0.0.1:1/test' },
      { secretKey: TEST_SECRET_KEY, retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 } },
    );
    try {
      const error = await expectCode(backends.messages.count('session_x'), 'STORE_UNAVAILABLE');
      expect(error.retryable).toBe(true);
      expect(error.details.attempts).toBe(3);
      expect(error.cause).toBeInstanceOf(Error);
      await expectCode(backends.migrate(), 'STORE_UNAVAILABLE');
    } finally {
      await backends.close();
    }
  });

  it('reports a database that does not exist as CONFIGURATION', async () => {
    const url = new URL(DATABASE_URL);
    url.pathname = `/no_such_database_${randomBytes(4).toString('hex')}`;
    const backends = postgresBackends(
      { connectionString: url.toString() },
      { secretKey: TEST_SECRET_KEY, retry: { maxAttempts: 2, initialDelayMs: 1 } },
    );
    try {
      await expectCode(backends.sessions.listSessions(), 'CONFIGURATION');
    } finally {
      await backends.close();
    }
  });

  it('reports stores used before migrate() as CONFIGURATION naming migrate()', async () => {
    const backends = await createTestBackends({ skipMigrate: true });
    try {
      const error = await expectCode(backends.messages.load('session_x'), 'CONFIGURATION');
      expect(error.message).toContain('migrate()');
    } finally {
      await destroyTestBackends(backends);
    }
  });

  it('refuses a bad schema name, a bad limit and a short secret key with CONFIGURATION', () => {
    const connection = { connectionString: DATABASE_URL };
    for (const options of [
      { schema: 'x"; DROP SCHEMA public; --', secretKey: TEST_SECRET_KEY },
      { schema: '1abc', secretKey: TEST_SECRET_KEY },
      { maxValueBytes: 0, secretKey: TEST_SECRET_KEY },
      { secretKey: { id: 'short', key: randomBytes(16) } },
    ]) {
      let caught: unknown;
      try {
        postgresBackends(connection, options);
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.hasCode(caught, 'CONFIGURATION'), String(caught)).toBe(true);
    }
  });

  it('fails every call after close() with STORE_UNAVAILABLE', async () => {
    const backends = await createTestBackends();
    await destroyTestBackends(backends);
    await expectCode(backends.messages.count('session_x'), 'STORE_UNAVAILABLE');
    await backends.close();
  });

  it('leaves a pool it does not own open on close()', async () => {
    const owned = await createTestBackends();
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    try {
      const borrowed = postgresBackends(
        { pool },
        { schema: owned.schema, secretKey: TEST_SECRET_KEY },
      );
      await borrowed.storage.setValue('s', 'k', 'v');
      await borrowed.close();
      expect((await pool.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
      expect(pool.listenerCount('error')).toBe(0);
    } finally {
      await pool.end();
      await destroyTestBackends(owned);
    }
  });
});
