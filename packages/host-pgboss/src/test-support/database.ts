import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server the tests use: `DATABASE_URL`, default the machine's local PostgreSQL. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh schema name nobody else uses. */
export function randomSchemaName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Runs statements on one short-lived connection; fails loudly when the server is unreachable. */
export async function adminQuery<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<Row>> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${DATABASE_URL.replace(/\/\/[^@]*@/, '//…@')} (${(error as Error).message}); the host-pgboss tests need a real server and never skip.`,
    );
  }
  try {
    return await client.query<Row>(text, values);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Drops schemas and everything in them; tries every one before reporting a failure. */
export async function dropSchemas(...schemas: string[]): Promise<void> {
  const failures: unknown[] = [];
  for (const schema of schemas) {
    await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch((error: unknown) =>
      failures.push(error),
    );
  }
  if (failures.length > 0) throw failures[0];
}
