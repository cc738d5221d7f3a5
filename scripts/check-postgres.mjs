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
