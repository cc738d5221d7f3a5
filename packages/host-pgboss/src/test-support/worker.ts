/**
 * A worker process of the host-pgboss tests. Started as
 * `node --conditions=@everruns-ts/source --import tsx worker.ts '<FixtureConfig json>'`; prints
 * `ready` once it works the queue and stops cleanly on SIGTERM. A kill point in the config ends it
 * with SIGKILL at that moment.
 */
import { type FixtureConfig, startFixtureHost } from './fixture.js';

const config = JSON.parse(process.argv[2] ?? '{}') as FixtureConfig;

async function main(): Promise<void> {
  const fixture = await startFixtureHost(config);
  await fixture.host.work({ concurrency: config.concurrency ?? 4 });
  process.stdout.write('ready\n');
  if (config.killAfterMs !== undefined) {
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), config.killAfterMs);
  }
  process.once('SIGTERM', () => {
    fixture.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
