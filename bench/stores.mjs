#!/usr/bin/env node
// Stores benchmark (issue 4): the math turn (2 model calls + 1 tool call) through the in-process
// runtime on the in-memory stores and on PostgreSQL, in one run: turns/s with 1 session and with
// 32 concurrent sessions, statements sent to PostgreSQL per turn, and what Node allocates per
// PostgreSQL turn (sampled, in runs of their own).
//
//   node bench/stores.mjs            (after `pnpm build`; `pnpm bench` runs it)
//   DATABASE_URL=postgres://… TURNS=200 node bench/stores.mjs
//   POOL=16 node bench/stores.mjs    (the PostgreSQL pool's size; default 4)
//   WARMUP=256 node bench/stores.mjs (turns before timing; default 1,024)
import { randomBytes } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { inMemoryBackends } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { recordGoal } from './goals.mjs';
import { dropBenchSchema, MATH_HARNESS_ID, mathRuntimeOn } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TURNS = Number(process.env.TURNS ?? 200);

async function measure(runtime, sessions, turns = TURNS) {
  const ids = [];
  for (let index = 0; index < sessions; index++) {
    ids.push((await runtime.createSession({ harnessId: MATH_HARNESS_ID })).id);
  }
  const perSession = Math.max(1, Math.floor(turns / sessions));
  const started = performance.now();
  await Promise.all(
    ids.map(async (sessionId) => {
      for (let turn = 0; turn < perSession; turn++) {
        const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
        if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { turns: perSession * sessions, turnsPerSecond: (perSession * sessions) / seconds };
}

/**
 * KB that `run` allocates per turn, by the inspector's sampling heap profiler (a sample every
 * 4 KiB, objects already collected included).
 */
async function allocatedPerTurn(run) {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const { turns } = await run();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const visit = (node) => {
      bytes += node.selfSize;
      for (const child of node.children) visit(child);
    };
    visit(profile.head);
    return bytes / 1024 / turns;
  } finally {
    session.disconnect();
  }
}

const rows = [];
const memory = await mathRuntimeOn(inMemoryBackends({ events: { keepEvents: false } }));
for (let round = 0; round < 5; round++) await measure(memory, 32); // warm-up (JIT)
for (const sessions of [1, 32]) {
  const result = await measure(memory, sessions);
  rows.push({ store: 'memory', sessions, ...result, queriesPerTurn: 0 });
}

const schema = `bench_${randomBytes(5).toString('hex')}`;
// The pool sized for this 2-core server, as the stores-postgres README advises (a few connections
// per server core): more only queue on the server. POOL=16 gives the figures recorded before
// 3 December 2026.
const POOL = Number(process.env.POOL ?? 4);
const backends = postgresBackends(
  { connectionString: DATABASE_URL, poolConfig: { max: POOL } },
  { schema, secretKey: { id: 'bench', key: randomBytes(32) } },
);
try {
  await backends.migrate();
  const postgres = await mathRuntimeOn(backends);
  // Warm-up on as many sessions as the widest measurement, so every pooled connection has
  // prepared the statements (a server plans a named statement per connection, custom plans for its
  // first five runs), and long enough for V8 to have optimised the turn's code: Node's CPU per
  // turn falls for about the first thousand turns of a process (5.3, 4.1, 3.0, 2.7 and then
  // 1.8–2.0 ms per turn in blocks of 200, one session). The figures are a long-running process's.
  // WARMUP=256 gives the warm-up used before 4 December 2026.
  await measure(postgres, 32, Number(process.env.WARMUP ?? 1024));
  for (const sessions of [1, 32]) {
    const before = backends.queryCount();
    const result = await measure(postgres, sessions);
    const queries = backends.queryCount() - before;
    rows.push({ store: 'postgres', sessions, ...result, queriesPerTurn: queries / result.turns });
  }
  // What Node allocates per turn, in runs of their own (the sampling slows them): a figure that,
  // unlike times, does not move with the machine's speed.
  for (const row of rows.filter((entry) => entry.store === 'postgres')) {
    row.allocatedKbPerTurn = await allocatedPerTurn(() => measure(postgres, row.sessions));
  }
} finally {
  await backends.close();
  await dropBenchSchema(DATABASE_URL, schema);
}

for (const row of rows) {
  if (row.store !== 'postgres') continue;
  recordGoal(`postgres_turns_per_second_${row.sessions}`, row.turnsPerSecond);
  if (row.sessions === 1) recordGoal('postgres_statements_per_turn', row.queriesPerTurn);
}

let table =
  '| store | concurrent sessions | turns | turns/s | statements/turn (incl. session creation) | Node KB allocated/turn (sampled) |\n|---|---|---|---|---|---|\n';
for (const row of rows) {
  table += `| ${row.store} | ${row.sessions} | ${row.turns} | ${row.turnsPerSecond.toFixed(0)} | ${row.store === 'memory' ? '-' : row.queriesPerTurn.toFixed(1)} | ${row.allocatedKbPerTurn === undefined ? '-' : row.allocatedKbPerTurn.toFixed(0)} |\n`;
}
console.log(table);
