#!/usr/bin/env node
// Every statement one math turn sends through `@everruns-ts/host-pgboss` (one process submitting
// and working with one step loop, after warm-up turns): the count, and each statement's start
// (ms from the submission) and first characters. What `bench/host-pgboss.mjs` runs, one turn.
//
//   pnpm build && node bench/trace-host-turn.mjs
//   CHECKPOINT_INTERVAL_SECONDS=0 node bench/trace-host-turn.mjs   (a checkpoint before every step)
//   CONTINUE_STEPS_SECONDS=0 node bench/trace-host-turn.mjs        (every step a job of its own)
//   WARMUP=300 node bench/trace-host-turn.mjs                     (turns before the traced one)
import { randomBytes } from 'node:crypto';
// bench/package.json does not list the host; its build output is imported directly.
import { PgBossHost } from '@everruns-ts/host-pgboss';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { dropBenchSchema, MATH_HARNESS_ID, mathPlatform, mathRuntimeOn } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const WARMUP = Number(process.env.WARMUP ?? 20);
const suffix = randomBytes(4).toString('hex');
const schemas = {
  stores: `trace_host_stores_${suffix}`,
  host: `trace_host_${suffix}`,
  boss: `trace_host_boss_${suffix}`,
};

const backends = postgresBackends(
  { connectionString: DATABASE_URL, poolConfig: { max: 8 } },
  { schema: schemas.stores, secretKey: { id: 'trace', key: randomBytes(32) } },
);
let host;
try {
  await backends.migrate();
  const runtime = await mathRuntimeOn(backends);
  host = await PgBossHost.start({
    pool: backends.pool,
    backends,
    platform: mathPlatform(),
    queue: 'trace-steps',
    schema: schemas.host,
    bossSchema: schemas.boss,
    pollingIntervalSeconds: 0.5,
    ...(process.env.CHECKPOINT_INTERVAL_SECONDS === undefined
      ? {}
      : { checkpointIntervalSeconds: Number(process.env.CHECKPOINT_INTERVAL_SECONDS) }),
    ...(process.env.CONTINUE_STEPS_SECONDS === undefined
      ? {}
      : { continueStepsSeconds: Number(process.env.CONTINUE_STEPS_SECONDS) }),
  });
  await host.work({ concurrency: 1 });
  let tracing = false;
  const sent = [];
  backends.pool.on('acquire', (client) => {
    if (client.traced) return;
    client.traced = true;
    const query = client.query.bind(client);
    client.query = (config, ...rest) => {
      if (tracing) {
        const text = String(config?.text ?? config)
          .replace(/\s+/g, ' ')
          .trim();
        sent.push({ at: performance.now(), text: text.slice(0, 110) });
      }
      return query(config, ...rest);
    };
  });
  const sessionId = (await runtime.createSession({ harnessId: MATH_HARNESS_ID })).id;
  const turn = async () => {
    const handle = await host.submitTextTurn(sessionId, 'What is 2 + 2?');
    const result = await handle.result({ timeoutMs: 20_000 });
    if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
  };
  for (let index = 0; index < WARMUP; index++) await turn();
  tracing = true;
  const started = performance.now();
  await turn();
  tracing = false;
  console.log(
    `${sent.length} statements in ${(performance.now() - started).toFixed(1)} ms (the step loop's next fetch included)`,
  );
  for (const { at, text } of sent) console.log(`${(at - started).toFixed(1).padStart(6)}  ${text}`);
} finally {
  await host?.stop({ timeoutMs: 2_000 });
  await backends.close();
  for (const schema of Object.values(schemas)) await dropBenchSchema(DATABASE_URL, schema);
}
