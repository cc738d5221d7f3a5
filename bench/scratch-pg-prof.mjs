import { randomBytes } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { dropBenchSchema, MATH_HARNESS_ID, mathRuntimeOn } from './math-runtime.mjs';
const URL_ = 'postgres://postgres@127.0.0.1:5432/test';
const SESSIONS = Number(process.env.SESSIONS ?? 32);
const schema = `prof_${randomBytes(4).toString('hex')}`;
const backends = postgresBackends({ connectionString: URL_, poolConfig: { max: Number(process.env.POOL ?? 4) } }, { schema, secretKey: { id: 'b', key: randomBytes(32).toString('hex') } });
await backends.migrate();
const runtime = await mathRuntimeOn(backends);
const ids = [];
for (let i = 0; i < SESSIONS; i++) ids.push((await runtime.createSession({ harnessId: MATH_HARNESS_ID })).id);
async function run(total) {
  const per = Math.floor(total / SESSIONS);
  const t = performance.now(); const c = process.cpuUsage();
  await Promise.all(ids.map(async (id) => { for (let k = 0; k < per; k++) { const r = await runtime.runTextTurn(id, 'What is 2 + 2?'); if (r.response !== '4') throw new Error('bad'); } }));
  const cpu = process.cpuUsage(c); const wall = performance.now() - t; const n = per * SESSIONS;
  return { tps: (n / wall * 1000).toFixed(0), cpuMsPerTurn: ((cpu.user + cpu.system) / 1000 / n).toFixed(3), userMs: (cpu.user/1000/n).toFixed(3) };
}
await run(1024);
console.log('warm2', await run(1024));
let session;
if (process.env.PROF) { session = new Session(); session.connect(); await session.post('Profiler.enable'); await session.post('Profiler.setSamplingInterval', { interval: 100 }); await session.post('Profiler.start'); }
globalThis.__wf = undefined; console.log('measure', await run(Number(process.env.TURNS ?? 1024))); console.log(globalThis.__wf);
if (session) { const { profile } = await session.post('Profiler.stop'); writeFileSync('/tmp/prof/pg.cpuprofile', JSON.stringify(profile)); }
await runtime.close?.();
await backends.close?.();
await dropBenchSchema(URL_, schema);
process.exit(0);
