import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresBackends } from './postgres-backends.js';
import { createPostgresPool, isValidSchemaName, openDedicatedConnection } from './postgres-pool.js';
import { assertPostgresReachable, DATABASE_URL, TEST_SECRET_KEY } from './test-support/database.js';

const pools: pg.Pool[] = [];

beforeAll(async () => {
  await assertPostgresReachable();
});

afterAll(async () => {
  for (const pool of pools) await pool.end().catch(() => {});
});

function applicationName(): string {
  return `pool_test_${randomBytes(4).toString('hex')}`;
}

async function backendApplicationName(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ name: string }>(
    "SELECT current_setting('application_name') AS name",
  );
  return rows[0]?.name ?? '';
}

describe('openDedicatedConnection', () => {
  it('opens a connection beside a pool made by createPostgresPool, with its settings', async () => {
    const name = applicationName();
    const pool = createPostgresPool({
      connectionString: DATABASE_URL,
      max: 1,
      application_name: name,
    });
    pools.push(pool);
    pool.on('error', () => {});
    const connection = await openDedicatedConnection(pool);
    expect(await backendApplicationName(connection.client)).toBe(name);
    // The pool's only connection is still free: the dedicated one is not one of the pool's.
    expect((await pool.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
    expect(pool.totalCount).toBe(1);
    await connection.close();
    await connection.close();
  });

  it('lends one of the connections of any other pool and discards it on close', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    pools.push(pool);
    pool.on('error', () => {});
    const connection = await openDedicatedConnection(pool);
    await connection.client.query('LISTEN pool_test_channel');
    expect(pool.totalCount).toBe(1);
    expect(pool.idleCount).toBe(0);
    await connection.close();
    await connection.close();
    // Discarded, not returned: its LISTEN does not reach the next borrower.
    expect(pool.totalCount).toBe(0);
  });

  it('backs the pool postgresBackends creates from a connection string', async () => {
    const name = applicationName();
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { application_name: name } },
      { schema: `pool_test_${randomBytes(4).toString('hex')}`, secretKey: TEST_SECRET_KEY },
    );
    const connection = await openDedicatedConnection(backends.pool);
    expect(await backendApplicationName(connection.client)).toBe(name);
    expect(backends.pool.totalCount).toBe(0);
    await connection.close();
    await backends.close();
  });

  it('rejects with the driver error when the server cannot be reached', async () => {
    const pool = createPostgresPool({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      connectionTimeoutMillis: 2_000,
    });
    pools.push(pool);
    await expect(openDedicatedConnection(pool)).rejects.toThrow();
  });
});

describe('isValidSchemaName', () => {
  it('accepts plain identifiers and refuses anything that would need quoting', () => {
    expect(isValidSchemaName('everruns')).toBe(true);
    expect(isValidSchemaName('_a$1')).toBe(true);
    expect(isValidSchemaName('1abc')).toBe(false);
    expect(isValidSchemaName('a"b')).toBe(false);
    expect(isValidSchemaName('a'.repeat(64))).toBe(false);
  });
});
