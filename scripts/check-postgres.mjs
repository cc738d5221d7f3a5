// Fails the test run loudly when the PostgreSQL server the tests need is not reachable.
import net from 'node:net';

const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
const host = url.hostname || '127.0.0.1';
const port = Number(url.port || 5432);

const socket = net.connect({ host, port });
const timer = setTimeout(() => fail('timed out after 5 s'), 5000);
socket.once('connect', () => {
  clearTimeout(timer);
  socket.end();
});
socket.once('error', (error) => fail(error.message));

function fail(reason) {
  console.error(
    `PostgreSQL is not reachable at ${host}:${port} (${reason}).\n` +
      'The test command runs the PostgreSQL tests against a real server and never skips them.\n' +
      'Start it (on this machine: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n' +
      'or point DATABASE_URL at a server you own, then run the tests again.',
  );
  process.exit(1);
}

// The suite runs two test files at once, and the durable-host files start worker processes with
// pools of their own: together they hold up to about 60 connections. Connections someone else
// holds count against the server's max_connections too, so say so before a run that would fail
// halfway with "too many clients already".
socket.once('connect', async () => {
  const { createRequire } = await import('node:module');
  let pg;
  try {
    pg = createRequire(new URL('../packages/stores-postgres/package.json', import.meta.url))('pg');
  } catch {
    return; // not installed yet: the install step reports that
  }
  const client = new pg.Client({ connectionString: url.toString() });
  try {
    await client.connect();
    const { rows } = await client.query(
      `SELECT current_setting('max_connections')::int AS max,
              (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS used`,
    );
    const { max, used } = rows[0];
    if (max - used < 60) {
      console.warn(
        `PostgreSQL at ${host}:${port} has ${max - used} free connections (${used} of ${max} in use);` +
          ' the test suite needs about 60. Tests may fail with "too many clients already".',
      );
    }
  } catch (error) {
    fail(error.message);
  } finally {
    await client.end().catch(() => {});
  }
});
