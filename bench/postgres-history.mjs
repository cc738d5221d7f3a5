#!/usr/bin/env node
// History-length benchmark (issue 21): the math turn (2 model calls + 1 tool call) through the
// in-process runtime, without compaction, in sessions that already hold 100, 4,000 and 10,000
// messages (seeded directly through the message store), on PostgreSQL and on the in-memory stores.
// Prints ms per turn at each length, the ratios to 100 messages, and the per-turn time of the
// first and last halves of the turns measured (flat when no step re-reads the whole history).
//
//   node bench/postgres-history.mjs            (after `pnpm build`; `pnpm bench` runs it)
//   TURNS=100 DATABASE_URL=postgres://… node bench/postgres-history.mjs
//   WARMUP=50 MEMORY_WARMUP=50 node bench/postgres-history.mjs   (turns before the first length;
//                                              defaults 1,000 and 3,000; 50 before 4 December 2026)
//   LENGTHS=100,20000,30000 node bench/postgres-history.mjs   (the history lengths; the first is
//                                              the one the others are divided by)
import { randomBytes } from 'node:crypto';
import { inMemoryBackends } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { recordGoal } from './goals.mjs';
import { dropBenchSchema, MATH_HARNESS_ID, mathRuntimeOn } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TURNS = Number(process.env.TURNS ?? 100);
// A memory turn takes well under a millisecond: more of them make its medians steady.
const MEMORY_TURNS = Number(process.env.MEMORY_TURNS ?? 400);
const LENGTHS = process.env.LENGTHS?.split(',').map(Number) ?? [100, 4_000, 10_000];

const schema = `bench_${randomBytes(5).toString('hex')}`;
const postgres = postgresBackends(
  { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
  { schema, secretKey: { id: 'bench', key: randomBytes(32) } },
);

/** Stores `count` messages (user and agent text, alternating) in batches. */
async function seed(backends, sessionId, count) {
  for (let stored = 0; stored < count; ) {
    const batch = [];
    for (; batch.length < 500 && stored < count; stored++) {
      batch.push(
        stored % 2 === 0
          ? { role: 'user', content: [{ type: 'text', text: `What is ${stored} + 1?` }] }
          : { role: 'agent', content: [{ type: 'text', text: `${stored}` }] },
      );
    }
    await backends.messages.storeMessages(sessionId, batch);
  }
}

/** Runs `turns` math turns at each length on `backends`; `queryCount` counts statements sent. */
async function measureLengths(store, backends, queryCount, turns, warmup) {
  const runtime = await mathRuntimeOn(backends);
  // Warm-up on a session of its own, long enough for V8 to have optimised the turn's code (Node's
  // CPU per turn falls for about the first thousand turns of a process): measured earlier, the
  // first length ran on less optimised code and the ratios to it read low (0.94 / 0.88 on
  // PostgreSQL and 0.83 / 0.66 on memory after 50 warm-up turns, against about 1.0 after 1,000).
  const warm = await runtime.createSession({ harnessId: MATH_HARNESS_ID });
  for (let turn = 0; turn < warmup; turn++) await runtime.runTextTurn(warm.id, 'What is 2 + 2?');
  const rows = [];
  for (const length of LENGTHS) {
    const { id } = await runtime.createSession({ harnessId: MATH_HARNESS_ID });
    await seed(backends, id, length);
    for (let turn = 0; turn < 3; turn++) await runtime.runTextTurn(id, 'What is 2 + 2?'); // warm-up
    const times = [];
    const before = queryCount();
    for (let turn = 0; turn < turns; turn++) {
      const started = performance.now();
      const result = await runtime.runTextTurn(id, 'What is 2 + 2?');
      times.push(performance.now() - started);
      if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
    }
    const statements = (queryCount() - before) / turns;
    const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const half = Math.floor(turns / 2);
    rows.push({
      store,
      length,
      ms: median(times),
      first: median(times.slice(0, half)),
      last: median(times.slice(half)),
      statements,
    });
  }
  return rows;
}

const rows = [];
rows.push(
  ...(await measureLengths(
    'memory',
    inMemoryBackends({ events: { keepEvents: false } }),
    () => 0,
    MEMORY_TURNS,
    Number(process.env.MEMORY_WARMUP ?? 3000),
  )),
);
try {
  await postgres.migrate();
  rows.push(
    ...(await measureLengths(
      'postgres',
      postgres,
      () => postgres.queryCount(),
      TURNS,
      Number(process.env.WARMUP ?? 1000),
    )),
  );
} finally {
  await postgres.close();
  await dropBenchSchema(DATABASE_URL, schema);
}

let table =
  '| store | messages before | ms/turn (median) | ÷ at 100 | first half ms | last half ms | statements/turn |\n|---|---|---|---|---|---|---|\n';
for (const row of rows) {
  const base = rows.find((other) => other.store === row.store && other.length === LENGTHS[0]).ms;
  const ratio = row.ms / base;
  if (row.length !== LENGTHS[0]) recordGoal(`${row.store}_history_${row.length}_over_100`, ratio);
  table += `| ${row.store} | ${row.length} | ${row.ms.toFixed(2)} | ${ratio.toFixed(2)} | ${row.first.toFixed(2)} | ${row.last.toFixed(2)} | ${row.store === 'memory' ? '-' : row.statements.toFixed(1)} |\n`;
}
console.log(
  `Math turn, no compaction, ${MEMORY_TURNS} (memory) and ${TURNS} (PostgreSQL) turns per length\n\n${table}`,
);
