#!/usr/bin/env node
// Durable host benchmark (issue 7): the math turn (2 model calls + 1 tool call) through
// `@everruns-ts/host-pgboss` with 2 worker processes, against the in-process runtime on the same
// PostgreSQL stores, in one run: turns/s with 1 session and with 32 concurrent sessions.
//
//   pnpm build && node bench/host-pgboss.mjs
//   DATABASE_URL=postgres://… TURNS=400 WORKER_CONCURRENCY=16 node bench/host-pgboss.mjs
//   NO_PUBLISH=1 node bench/host-pgboss.mjs   (the stores' bus sends no NOTIFY with its events)
//   CONTINUE_STEPS_SECONDS=0 node bench/host-pgboss.mjs   (every step a job of its own)
//   CHECKPOINT_INTERVAL_SECONDS=0 node bench/host-pgboss.mjs   (a checkpoint before every step)
//   WORKER_PROF=/tmp/prof node bench/host-pgboss.mjs   (CPU profiles of the worker processes)
//   WARMUP=16 HOST_WARMUP=16 node bench/host-pgboss.mjs   (turns before timing, in process and through
//                                              the host, on 32 sessions; defaults 1,024 and 512)
//
// The same file is the worker process (`node bench/host-pgboss.mjs worker '<json>'`).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
// bench/package.json does not list the host; its build output is imported directly.
import { PgBossHost } from '@everruns-ts/host-pgboss';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { recordGoal } from './goals.mjs';
import { mathPlatform } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TURNS = Number(process.env.TURNS ?? 200);
// Turns before timing, on 32 sessions: every pooled connection prepares its statements and V8
// optimises the turn's code (Node's CPU per turn falls for about the first thousand turns of a
// process), in this process and in the workers. 16 turns on 8 sessions before 4 December 2026.
const WARMUP = Number(process.env.WARMUP ?? 1024);
const HOST_WARMUP = Number(process.env.HOST_WARMUP ?? 512);
const WORKERS = 2;
// Step loops per worker process. The fake model answers at once, so a step is all database work:
// loops beyond what PostgreSQL (two cores here) commits only queue on its NOTIFY commit lock and
// poll while idle (see the host README's "Throughput"); 16 per worker was the default before.
const WORKER_CONCURRENCY = Number(process.env.WORKER_CONCURRENCY ?? 4);
const HARNESS_ID = 'harness_bench_host';

function openBackends(settings, poolSize) {
  return postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: poolSize } },
    {
      schema: settings.storesSchema,
      secretKey: { id: 'bench', key: settings.secretKeyHex },
      ...(process.env.NO_PUBLISH ? { events: { publish: false } } : {}),
    },
  );
}

function startHost(settings, backends, extra = {}) {
  return PgBossHost.start({
    pool: backends.pool,
    backends,
    platform: mathPlatform(),
    queue: 'bench-steps',
    schema: settings.hostSchema,
    bossSchema: settings.bossSchema,
    pollingIntervalSeconds: 0.5,
    maintenanceIntervalSeconds: 5,
    // CONTINUE_STEPS_SECONDS=0 enqueues every step as a job of its own (the host before 0.2).
    ...(process.env.CONTINUE_STEPS_SECONDS === undefined
      ? {}
      : { continueStepsSeconds: Number(process.env.CONTINUE_STEPS_SECONDS) }),
    ...(process.env.CHECKPOINT_INTERVAL_SECONDS === undefined
      ? {}
      : { checkpointIntervalSeconds: Number(process.env.CHECKPOINT_INTERVAL_SECONDS) }),
    ...extra,
  });
}

async function worker(settings) {
  const backends = openBackends(settings, WORKER_CONCURRENCY + 4);
  const host = await startHost(settings, backends);
  await host.work({ concurrency: WORKER_CONCURRENCY });
  process.stdout.write('ready\n');
  process.once('SIGTERM', async () => {
    await host.stop({ timeoutMs: 2_000 });
    await backends.close();
    process.exit(0);
  });
}

function spawnWorker(settings) {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.WORKER_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WORKER_PROF}`]
        : []),
      fileURLToPath(import.meta.url),
      'worker',
      JSON.stringify(settings),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      if (out.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  return { child, ready };
}

async function createSessions(runtime, count) {
  const ids = [];
  for (let index = 0; index < count; index++) {
    ids.push((await runtime.createSession({ harnessId: HARNESS_ID })).id);
  }
  return ids;
}

/** Runs `perSession` turns one after another in each session, all sessions at once. */
async function measure(sessions, turns, runOne) {
  const perSession = Math.max(1, Math.floor(turns / sessions.length));
  const started = performance.now();
  await Promise.all(
    sessions.map(async (sessionId) => {
      for (let turn = 0; turn < perSession; turn++) {
        const result = await runOne(sessionId);
        if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const count = perSession * sessions.length;
  return {
    turns: count,
    turnsPerSecond: count / seconds,
    msPerTurn: (seconds * 1000) / perSession,
  };
}

async function main() {
  const suffix = randomBytes(4).toString('hex');
  const settings = {
    storesSchema: `bench_host_stores_${suffix}`,
    hostSchema: `bench_host_${suffix}`,
    bossSchema: `bench_host_boss_${suffix}`,
    secretKeyHex: randomBytes(32).toString('hex'),
  };
  const backends = openBackends(settings, 40);
  const rows = [];
  const workers = [];
  let client;
  try {
    await backends.migrate();
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(mathPlatform())
      .defaultModel({ model: 'fake-model', providerType: 'fake' })
      .backends(backends)
      .harness({ id: HARNESS_ID, name: 'bench', capabilities: [{ id: 'calculator' }] })
      .options({ keepTurnContexts: 0 })
      .build();

    await measure(await createSessions(runtime, 32), WARMUP, (id) =>
      runtime.runTextTurn(id, '2 + 2?'),
    );
    for (const count of [1, 32]) {
      const sessions = await createSessions(runtime, count);
      const result = await measure(sessions, count === 1 ? Math.min(TURNS, 50) : TURNS, (id) =>
        runtime.runTextTurn(id, 'What is 2 + 2?'),
      );
      rows.push({ mode: 'in-process, stores-postgres', sessions: count, ...result });
    }

    client = await startHost(settings, backends, { supervise: false });
    for (let index = 0; index < WORKERS; index++) workers.push(spawnWorker(settings));
    await Promise.all(workers.map((entry) => entry.ready));
    const viaHost = async (sessionId) => {
      const handle = await client.submitTextTurn(sessionId, 'What is 2 + 2?');
      return handle.result({ timeoutMs: 120_000 });
    };
    await measure(await createSessions(runtime, 32), HOST_WARMUP, viaHost);
    for (const count of [1, 32]) {
      const sessions = await createSessions(runtime, count);
      const result = await measure(sessions, count === 1 ? Math.min(TURNS, 50) : TURNS, viaHost);
      rows.push({ mode: `host-pgboss, ${WORKERS} worker processes`, sessions: count, ...result });
      if (count === 32) recordGoal('host_pgboss_turns_per_second_32', result.turnsPerSecond);
    }
  } finally {
    for (const entry of workers) entry.child.kill('SIGTERM');
    await Promise.all(
      workers.map((entry) => new Promise((resolve) => entry.child.once('exit', resolve))),
    );
    await client?.stop({ timeoutMs: 2_000 });
    await backends.close();
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    for (const schema of [settings.storesSchema, settings.hostSchema, settings.bossSchema]) {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
    await admin.end();
  }

  let table = '| mode | concurrent sessions | turns | turns/s | ms per turn (one session) |\n';
  table += '|---|---|---|---|---|\n';
  for (const row of rows) {
    table += `| ${row.mode} | ${row.sessions} | ${row.turns} | ${row.turnsPerSecond.toFixed(1)} | ${row.msPerTurn.toFixed(1)} |\n`;
  }
  console.log(table);
}

if (process.argv[2] === 'worker') await worker(JSON.parse(process.argv[3]));
else await main();
