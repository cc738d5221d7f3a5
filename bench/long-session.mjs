#!/usr/bin/env node
// Long-session benchmark (issue 17): one session for many turns with the compaction capability
// on, through the in-process runtime on the in-memory stores and on PostgreSQL. Every turn is the
// math turn (a user message, an `add` tool call, its result, the answer: 2 model calls), the
// model is simulated (llmsim) with a 2,000-token window, so the session compacts every few dozen
// turns. Per-turn wall time and, on PostgreSQL, statements per turn are compared between the
// start of the session (turns 10-59) and its end (the last 50 turns): with compaction the reason
// step reads the window, not the whole history, so both should stay flat.
//
//   node bench/long-session.mjs            (after `pnpm build`; `pnpm bench` runs it)
//   TURNS=5000 PG_TURNS=2000 DATABASE_URL=postgres://… node bench/long-session.mjs
import { randomBytes } from 'node:crypto';
import { compactionCapability } from '@everruns-ts/capabilities-compaction';
import { defineCapability, defineTool } from '@everruns-ts/core';
import {
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
  LlmSimDriver,
} from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { z } from 'zod';
import { dropBenchSchema } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const TURNS = Number(process.env.TURNS ?? 5000);
const PG_TURNS = Number(process.env.PG_TURNS ?? TURNS);
const WINDOW = 2_000;
const SAMPLE = 50;
const FILLER = 'The ledger lists receipts, transfers and balances across the quarterly accounts.';

const addTool = defineTool({
  name: 'add',
  description: 'Adds two numbers.',
  inputSchema: z.object({ a: z.number(), b: z.number() }),
  idempotent: true,
  execute: ({ a, b }) => ({ result: a + b }),
});
const calculator = defineCapability({
  id: 'calculator',
  name: 'Calculator',
  description: 'Adds numbers.',
  tools: [addTool],
});

/** The simulated model: summaries for compaction, else one `add` call and then the answer. */
function simulatedModel() {
  return LlmSimConfig.fromFunction((request) => {
    if (request.tools.length === 0) return `Summary: the user asked for sums; ${FILLER.repeat(8)}`;
    const last = request.messages.at(-1);
    if (last.role === 'user') return { toolCalls: [{ name: 'add', arguments: { a: 2, b: 2 } }] };
    return `The sum is 4. ${FILLER}`;
  });
}

async function runtimeOn(backends, driver) {
  return new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(calculator)
    .capability(compactionCapability)
    .driver(driver)
    .defaultModel({
      model: 'gpt-4o-mini',
      providerType: 'llmsim',
      apiKey: 'fake-key',
      contextWindow: WINDOW,
    })
    .harness({
      id: 'harness_long',
      name: 'long',
      systemPrompt: 'You add numbers for the user.',
      capabilities: [{ id: 'calculator' }, { id: 'compaction' }],
    })
    .options({ keepTurnContexts: 0 })
    .build();
}

function mean(values) {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function longSession(store, backends, turns, queryCount) {
  const driver = new LlmSimDriver(simulatedModel());
  const runtime = await runtimeOn(backends, driver);
  const { id: sessionId } = await runtime.createSession({ harnessId: 'harness_long' });
  const times = [];
  const statements = [];
  let summaries = 0;
  const started = performance.now();
  for (let turn = 1; turn <= turns; turn++) {
    const before = queryCount();
    const turnStarted = performance.now();
    const result = await runtime.runTextTurn(sessionId, `Turn ${turn}: what is 2 + 2? ${FILLER}`);
    times.push(performance.now() - turnStarted);
    statements.push(queryCount() - before);
    if (!result.success) throw new Error(`turn ${turn} failed: ${result.error?.message}`);
    // The simulated driver records every request: keep only the recent ones.
    if (turn % 100 === 0) {
      summaries += driver.requests.filter((request) => request.tools.length === 0).length;
      driver.reset();
    }
    if (turn % 1000 === 0) {
      process.stderr.write(
        `${store}: ${turn} turns, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
      );
    }
  }
  summaries += driver.requests.filter((request) => request.tools.length === 0).length;
  const stored = await runtime.backends.messages.count(sessionId);
  const context = await runtime.loadContext(sessionId);
  await runtime.close();
  const early = times.slice(9, 9 + SAMPLE);
  const late = times.slice(-SAMPLE);
  return {
    store,
    turns,
    stored,
    sent: context.messages.length,
    summaries,
    earlyMean: mean(early),
    lateMean: mean(late),
    earlyMedian: median(early),
    lateMedian: median(late),
    earlyStatements: mean(statements.slice(9, 9 + SAMPLE)),
    lateStatements: mean(statements.slice(-SAMPLE)),
    seconds: (performance.now() - started) / 1000,
  };
}

const rows = [];
rows.push(
  await longSession('memory', inMemoryBackends({ events: { keepEvents: false } }), TURNS, () => 0),
);

const schema = `bench_long_${randomBytes(5).toString('hex')}`;
const backends = postgresBackends(
  { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
  { schema, secretKey: { id: 'bench', key: randomBytes(32) } },
);
try {
  await backends.migrate();
  rows.push(await longSession('postgres', backends, PG_TURNS, () => backends.queryCount()));
} finally {
  await backends.close();
  await dropBenchSchema(DATABASE_URL, schema);
}

const ms = (value) => value.toFixed(1);
let table = `| store | turns | messages stored / sent at the end | compactions | ms/turn, turns 10-${9 + SAMPLE} (mean / median) | ms/turn, last ${SAMPLE} (mean / median) | last ÷ early (mean) | statements/turn early → last |\n|---|---|---|---|---|---|---|---|\n`;
for (const row of rows) {
  table += `| ${row.store} | ${row.turns} | ${row.stored} / ${row.sent} | ${row.summaries} | ${ms(row.earlyMean)} / ${ms(row.earlyMedian)} | ${ms(row.lateMean)} / ${ms(row.lateMedian)} | ${(row.lateMean / row.earlyMean).toFixed(2)} | ${row.store === 'memory' ? '-' : `${row.earlyStatements.toFixed(1)} → ${row.lateStatements.toFixed(1)}`} |\n`;
}
console.log(table);
