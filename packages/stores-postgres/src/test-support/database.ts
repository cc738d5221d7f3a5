import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  type PostgresBackends,
  type PostgresBackendsOptions,
  postgresBackends,
} from '../postgres-backends.js';

/** The server the tests use: `DATABASE_URL`, default the machine's local PostgreSQL. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A key for tests; each test file gets its own. */
export const TEST_SECRET_KEY = { id: 'test-key-1', key: randomBytes(32) };

/** A fresh schema name nobody else uses. */
export function randomSchemaName(prefix = 'everruns_test'): string {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

let reachable: Promise<void> | undefined;

/**
 * Fails (never skips) with instructions when the server is not reachable: the PostgreSQL tests
 * must run against a real server.
 */
export function assertPostgresReachable(): Promise<void> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
    } catch (error) {
      throw new Error(
        `PostgreSQL is not reachable at ${DATABASE_URL.replace(/\/\/[^@]*@/, '//…@')} (${(error as Error).message}).\n` +
          'The stores-postgres tests run against a real server and never skip.\n' +
          'Start it (on this machine: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n' +
          'or set DATABASE_URL to a server you own (the user needs CREATE on the database), then run the tests again.',
      );
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

/** Runs one statement on its own connection (outside any store), for setup and inspection. */
export async function adminQuery<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<Row>> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    return await client.query<Row>(text, values);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Options of {@link createTestBackends}. */
export type TestBackendsOptions = Partial<PostgresBackendsOptions> & {
  poolConfig?: pg.PoolConfig;
  /** Leave the schema un-migrated. */
  skipMigrate?: boolean;
};

/** Backends on a fresh schema (migrated unless told otherwise). */
export async function createTestBackends(
  options: TestBackendsOptions = {},
): Promise<PostgresBackends> {
  await assertPostgresReachable();
  const { poolConfig, skipMigrate, ...rest } = options;
  const backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4, ...poolConfig } },
    { schema: randomSchemaName(), secretKey: TEST_SECRET_KEY, ...rest },
  );
  if (!skipMigrate) await backends.migrate();
  return backends;
}

/** Closes backends made by {@link createTestBackends} and drops their schema. */
export async function destroyTestBackends(backends: PostgresBackends): Promise<void> {
  await backends.close();
  await dropSchema(backends.schema);
}
