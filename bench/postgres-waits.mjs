#!/usr/bin/env node
// Where PostgreSQL math turns wait (issue 21): 32 concurrent sessions of the math turn through the
// in-process runtime on the PostgreSQL stores, in four configurations run in turn (ROUNDS times,
// interleaved): a pool of 16 (as bench/stores.mjs) or of 4, with the event bus publishing to other
// processes (the default) or not (`events: { publish: false }`). For each: turns/s, Node's CPU per
// turn, the server's CPU per turn (its processes' time from /proc, Linux only), and what the
// pool's backends were doing, sampled from `pg_stat_activity` every 50 ms (`Lock:object` is the
// lock PostgreSQL takes to commit a transaction that ran NOTIFY; `Client:ClientRead` idle is a
// backend waiting for Node).
//
//   pnpm build && node bench/postgres-waits.mjs
//   ROUNDS=4 TURNS=3000 node bench/postgres-waits.mjs
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { dropBenchSchema, MATH_HARNESS_ID, mathRuntimeOn } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TURNS = Number(process.env.TURNS ?? 1500);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const SESSIONS = 32;
const APPLICATION = 'everruns_bench_waits';
const CONFIGURATIONS = [
  { pool: 16, publish: true },
  { pool: 16, publish: false },
  { pool: 4, publish: true },
  { pool: 4, publish: false },
];

/** The CPU time (ms) of every PostgreSQL server process so far, or NaN without /proc. */
function serverCpuMs() {
  if (!existsSync('/proc/self/stat')) return Number.NaN;
  const ticksPerMs = 100 / 1000; // USER_HZ is 100 on Linux
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / ticksPerMs;
}

async function run(configuration, schema) {
  const backends = postgresBackends(
    {
      connectionString: DATABASE_URL,
      poolConfig: { max: configuration.pool, application_name: APPLICATION },
    },
    {
      schema,
      secretKey: { id: 'bench', key: randomBytes(32) },
      events: { publish: configuration.publish },
    },
  );
  const watcher = new pg.Client({ connectionString: DATABASE_URL });
  await watcher.connect();
  try {
    const runtime = await mathRuntimeOn(backends);
    const turns = async (count) => {
      const ids = [];
      for (let index = 0; index < SESSIONS; index++) {
        ids.push((await runtime.createSession({ harnessId: MATH_HARNESS_ID })).id);
      }
      const perSession = Math.max(1, Math.floor(count / SESSIONS));
      await Promise.all(
        ids.map(async (sessionId) => {
          for (let turn = 0; turn < perSession; turn++) {
            const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
            if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
          }
        }),
      );
      return perSession * SESSIONS;
    };
    // Warm-up: every pooled connection prepares its statements.
    await turns(SESSIONS * 8);
    const waits = new Map();
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await watcher.query(
          `SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU') || ' ' || state AS what
             FROM pg_stat_activity WHERE application_name = $1`,
          [APPLICATION],
        );
        for (const { what } of rows) {
          waits.set(what, (waits.get(what) ?? 0) + 1);
          samples++;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const cpu = process.cpuUsage();
    const server = serverCpuMs();
    const started = performance.now();
    const done = await turns(TURNS);
    const seconds = (performance.now() - started) / 1000;
    const node = process.cpuUsage(cpu);
    const serverMs = serverCpuMs() - server;
    sampling = false;
    await sampler;
    const top = [...waits]
      .sort((left, right) => right[1] - left[1])
      .slice(0, 3)
      .map(([what, count]) => `${what} ${((count / samples) * 100).toFixed(0)} %`)
      .join(', ');
    return {
      turnsPerSecond: done / seconds,
      nodeMs: (node.user + node.system) / 1000 / done,
      serverMs: serverMs / done,
      top,
    };
  } finally {
    await watcher.end();
    await backends.close();
  }
}

const schema = `bench_${randomBytes(5).toString('hex')}`;
const migrator = postgresBackends(
  { connectionString: DATABASE_URL },
  { schema, secretKey: { id: 'bench', key: randomBytes(32) } },
);
const results = CONFIGURATIONS.map(() => []);
try {
  await migrator.migrate();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, configuration] of CONFIGURATIONS.entries()) {
      results[index].push(await run(configuration, schema));
    }
  }
} finally {
  await migrator.close();
  await dropBenchSchema(DATABASE_URL, schema);
}

let table =
  '| pool | publish | turns/s (each round) | Node CPU ms/turn | server CPU ms/turn | backends most of the time |\n|---|---|---|---|---|---|\n';
for (const [index, configuration] of CONFIGURATIONS.entries()) {
  const rounds = results[index];
  const list = (key, digits) => rounds.map((entry) => entry[key].toFixed(digits)).join(', ');
  table += `| ${configuration.pool} | ${configuration.publish ? 'yes' : 'no'} | ${list('turnsPerSecond', 0)} | ${list('nodeMs', 2)} | ${list('serverMs', 2)} | ${rounds.at(-1).top} |\n`;
}
console.log(table);
