import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Node's arguments for a TypeScript child process. Under `pnpm test`, which builds every package
 * first (`EVERRUNS_TEST_BUILT=1`), workspace packages load from their fresh `dist`, so the child
 * does not transpile every package's sources on start; a direct vitest run loads the sources.
 */
const TSX_ARGS =
  process.env.EVERRUNS_TEST_BUILT === '1'
    ? ['--import', 'tsx']
    : ['--conditions=@everruns-ts/source', '--import', 'tsx'];

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `everruns_durable_example_${randomBytes(5).toString('hex')}`;

async function adminQuery(text: string) {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at DATABASE_URL (${(error as Error).message}); the example's test runs against a real server and never skips.`,
    );
  }
  try {
    return await client.query(text);
  } finally {
    await client.end().catch(() => {});
  }
}

describe('durable-host example', () => {
  afterAll(async () => {
    for (const name of [schema, `${schema}_host`, `${schema}_host_boss`]) {
      await adminQuery(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    }
  });

  it('starts two workers, submits three turns as a client and prints their results', async () => {
    await adminQuery('SELECT 1');
    const run = spawnSync(
      process.execPath,
      [...TSX_ARGS, fileURLToPath(new URL('./main.ts', import.meta.url))],
      {
        cwd: fileURLToPath(new URL('../../../../', import.meta.url)),
        encoding: 'utf8',
        timeout: 90_000,
        env: {
          ...process.env,
          DATABASE_URL,
          EVERRUNS_SCHEMA: schema,
          EVERRUNS_SECRET_KEY: randomBytes(32).toString('hex'),
        },
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines.filter((line) => line.includes('is working the queue'))).toHaveLength(2);
    expect(
      lines.filter((line) => line.endsWith('success, 2 iterations, response "4"')),
    ).toHaveLength(3);
    expect(run.stdout).toContain('add({"a":2,"b":2})');
    expect(run.stdout).toMatch(/4\. agent: "4"/);
  }, 120_000);
});
