import { EverrunsError } from '@everruns-ts/core';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate, POSTGRES_SCHEMA_VERSION } from './migrations.js';
import { postgresBackends } from './postgres-backends.js';
import { PostgresDatabase } from './postgres-database.js';
import {
  adminQuery,
  assertPostgresReachable,
  DATABASE_URL,
  dropSchema,
  randomSchemaName,
  TEST_SECRET_KEY,
} from './test-support/database.js';

const schemas: string[] = [];

function freshSchema(): string {
  const schema = randomSchemaName('everruns_migrate');
  schemas.push(schema);
  return schema;
}

afterEach(async () => {
  for (const schema of schemas.splice(0)) await dropSchema(schema);
});

async function appliedVersions(schema: string): Promise<number[]> {
  const result = await adminQuery<{ version: number }>(
    `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
  );
  return result.rows.map((row) => row.version);
}

describe('postgres migrations', () => {
  it('creates the schema and applies every migration once; a second call applies nothing', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema, secretKey: TEST_SECRET_KEY },
    );
    try {
      const first = await backends.migrate();
      expect(first).toEqual({
        applied: MIGRATIONS.map((migration) => migration.version),
        version: POSTGRES_SCHEMA_VERSION,
      });
      expect(await backends.migrate()).toEqual({ applied: [], version: POSTGRES_SCHEMA_VERSION });
      expect(await appliedVersions(schema)).toEqual(
        MIGRATIONS.map((migration) => migration.version),
      );
    } finally {
      await backends.close();
    }
  });

  it('20 concurrent migrate() calls from separate pools on an empty schema all succeed and apply each migration once', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const all = Array.from({ length: 20 }, () =>
      postgresBackends(
        { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
        { schema, secretKey: TEST_SECRET_KEY },
      ),
    );
    try {
      const results = await Promise.all(all.map((backends) => backends.migrate()));
      for (const result of results) expect(result.version).toBe(POSTGRES_SCHEMA_VERSION);
      const appliedByAll = results.flatMap((result) => result.applied).sort((a, b) => a - b);
      expect(appliedByAll).toEqual(MIGRATIONS.map((migration) => migration.version));
      expect(await appliedVersions(schema)).toEqual(
        MIGRATIONS.map((migration) => migration.version),
      );
      // And every one of them can use the stores.
      await Promise.all(
        all.map((backends, index) => backends.storage.setValue('s', `k${index}`, `${index}`)),
      );
      expect((await all[0]!.storage.listKeys('s')).length).toBe(20);
    } finally {
      await Promise.all(all.map((backends) => backends.close()));
    }
  }, 60_000);

  it('refuses a database with a newer breaking migration with SCHEMA_TOO_NEW naming both versions', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
      { schema, secretKey: TEST_SECRET_KEY },
    );
    try {
      await backends.migrate();
      const newer = POSTGRES_SCHEMA_VERSION + 41;
      await adminQuery(
        `INSERT INTO "${schema}".schema_migrations (version, name, breaking) VALUES ($1, 'from the future', true)`,
        [newer],
      );
      let caught: unknown;
      try {
        await backends.migrate();
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.hasCode(caught, 'SCHEMA_TOO_NEW')).toBe(true);
      const error = caught as EverrunsError;
      expect(error.message).toContain(`version ${newer}`);
      expect(error.message).toContain(`version ${POSTGRES_SCHEMA_VERSION}`);
      expect(error.details).toMatchObject({
        databaseVersion: newer,
        codeVersion: POSTGRES_SCHEMA_VERSION,
      });
    } finally {
      await backends.close();
    }
  });

  it('accepts a database with a newer non-breaking migration', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
      { schema, secretKey: TEST_SECRET_KEY },
    );
    try {
      await backends.migrate();
      await adminQuery(
        `INSERT INTO "${schema}".schema_migrations (version, name, breaking) VALUES ($1, 'additive index', false)`,
        [POSTGRES_SCHEMA_VERSION + 1],
      );
      expect(await backends.migrate()).toEqual({
        applied: [],
        version: POSTGRES_SCHEMA_VERSION + 1,
      });
      await backends.storage.setValue('s', 'k', 'v');
    } finally {
      await backends.close();
    }
  });

  it('runs each migration in its own transaction: a failing one leaves the earlier ones applied and nothing of itself', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const database = new PostgresDatabase(pool, schema, { maxAttempts: 1 });
    try {
      const broken = {
        version: POSTGRES_SCHEMA_VERSION + 1,
        name: 'half done',
        breaking: true,
        statements: [
          'CREATE TABLE {schema}.half_done (id integer)',
          'SELECT * FROM {schema}.no_such_table',
        ],
      };
      let caught: unknown;
      try {
        await migrate(database, [...MIGRATIONS, broken]);
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.isInstance(caught)).toBe(true);
      expect(await appliedVersions(schema)).toEqual(
        MIGRATIONS.map((migration) => migration.version),
      );
      const table = await adminQuery(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'half_done'",
        [schema],
      );
      expect(table.rowCount).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it('upgrades a version-1 database with sessions to turn leases (version 2) without touching them', async () => {
    await assertPostgresReachable();
    const schema = freshSchema();
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema, secretKey: TEST_SECRET_KEY },
    );
    try {
      const version1 = MIGRATIONS.filter((migration) => migration.version === 1);
      expect(await migrate(new PostgresDatabase(pool, schema), version1)).toEqual({
        applied: [1],
        version: 1,
      });
      const session = {
        id: 'session_from_version_1',
        harnessId: 'harness_x',
        title: 'kept',
        locale: 'en',
        tags: [],
        capabilities: [],
        initialFiles: [],
        status: 'idle' as const,
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
      };
      await backends.sessions.createSession(session);
      expect(await backends.migrate()).toEqual({
        applied: MIGRATIONS.slice(1).map((migration) => migration.version),
        version: POSTGRES_SCHEMA_VERSION,
      });
      expect(await backends.sessions.getSession(session.id)).toEqual(session);
      expect(await backends.sessions.getTurnLease(session.id)).toBeNull();
      const lease = await backends.sessions.claimTurnLease(session.id, 'holder', 60_000);
      expect(lease.holderId).toBe('holder');
      expect(await backends.sessions.getSession(session.id)).toEqual(session);
    } finally {
      await backends.close();
      await pool.end();
    }
  });

  it('keeps schemas apart: two bundles on two schemas of one database share nothing', async () => {
    await assertPostgresReachable();
    const [one, two] = [freshSchema(), freshSchema()].map((schema) =>
      postgresBackends(
        { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
        { schema, secretKey: TEST_SECRET_KEY },
      ),
    );
    try {
      await Promise.all([one!.migrate(), two!.migrate()]);
      await one!.messages.storeMessage('session_shared', {
        role: 'agent',
        content: [{ type: 'text', text: 'only in one' }],
      });
      expect(await one!.messages.count('session_shared')).toBe(1);
      expect(await two!.messages.count('session_shared')).toBe(0);
    } finally {
      await Promise.all([one!.close(), two!.close()]);
    }
  });
});
