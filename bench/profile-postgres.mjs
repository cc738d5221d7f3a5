#!/usr/bin/env node
// Node's CPU per math turn on the PostgreSQL stores (in process, the stores benchmark's runtime),
// with an optional CPU profile of the timed turns. On this shared machine wall times move a lot;
// CPU per turn and the profile's shares are the steadier readings.
//
//   pnpm build && node bench/profile-postgres.mjs
//   SESSIONS=1 TURNS=1000 node bench/profile-postgres.mjs       (one session: its history grows)
//   PROFILE=/tmp/pg.cpuprofile node bench/profile-postgres.mjs  (write a CPU profile of the timed turns)
//   POOL=8 DATABASE_URL=postgres://… node bench/profile-postgres.mjs
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { dropBenchSchema, MATH_HARNESS_ID, mathRuntimeOn } from './math-runtime.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SESSIONS = Number(process.env.SESSIONS ?? 32);
const TURNS = Number(process.env.TURNS ?? 1024);
const WARMUP = Number(process.env.WARMUP ?? 2048);

const schema = `bench_profile_${randomBytes(4).toString('hex')}`;
const backends = postgresBackends(
  { connectionString: DATABASE_URL, poolConfig: { max: Number(process.env.POOL ?? 4) } },
  { schema, secretKey: { id: 'bench', key: randomBytes(32).toString('hex') } },
);
await backends.migrate();
const runtime = await mathRuntimeOn(backends);
const sessionIds = [];
for (let index = 0; index < SESSIONS; index++) {
  sessionIds.push((await runtime.createSession({ harnessId: MATH_HARNESS_ID })).id);
}

/** Runs about `total` turns spread over the sessions; turns/s and Node's CPU per turn. */
async function run(total) {
  const perSession = Math.max(1, Math.floor(total / SESSIONS));
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(
    sessionIds.map(async (sessionId) => {
      for (let turn = 0; turn < perSession; turn++) {
        const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
        if (result.response !== '4') throw new Error(`unexpected answer ${result.response}`);
      }
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const turns = perSession * SESSIONS;
  return {
    sessions: SESSIONS,
    turns,
    turns_per_s: Math.round(turns / ((performance.now() - started) / 1000)),
    cpu_ms_per_turn: +((cpu.user + cpu.system) / 1000 / turns).toFixed(3),
  };
}

try {
  // Node's CPU per turn falls for about the first thousand turns of a process (the JIT settles).
  await run(WARMUP);
  let inspector;
  if (process.env.PROFILE) {
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
    await inspector.post('Profiler.start');
  }
  console.log(JSON.stringify(await run(TURNS)));
  if (inspector) {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(process.env.PROFILE, JSON.stringify(profile));
  }
} finally {
  await runtime.close();
  await backends.close();
  await dropBenchSchema(DATABASE_URL, schema);
}
