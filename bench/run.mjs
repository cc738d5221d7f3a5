#!/usr/bin/env node
// `pnpm bench`: builds the packages, then runs the peer benchmark (../shared/peer-bench) with
// everruns-ts, ai-sdk (telemetry off) and the hand-written baseline in ONE run-all.sh invocation,
// and prints our ratios against both. ../shared is read-only, so the harness is copied to
// bench/results/peer-bench first (its installed peers are kept between runs).
//
//   pnpm bench                      # REPS=1, measures A B C and cold start D
//   REPS=3 pnpm bench               # what RESULTS.md used
//   BENCH_CONFIGS="x:y ..." pnpm bench
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.resolve(root, '../shared/peer-bench');
const harness = path.join(root, 'bench/results/peer-bench');
if (!existsSync(source)) {
  console.error(`The peer benchmark harness is missing: expected it at ${source}`);
  process.exit(1);
}

execFileSync(
  'pnpm',
  [
    'turbo',
    'run',
    'build',
    '--filter=@everruns-ts/bench...',
    '--filter=@everruns-ts/peer-adapter...',
  ],
  {
    cwd: root,
    stdio: 'inherit',
  },
);

mkdirSync(harness, { recursive: true });
for (const entry of readdirSync(source)) {
  if (entry === 'results' || entry === 'node_modules') continue;
  cpSync(path.join(source, entry), path.join(harness, entry), {
    recursive: true,
    filter: (from) => !from.includes(`${path.sep}node_modules`),
  });
}

const ours = `${path.join(root, 'bench/peer-adapter')}:default`;
const configs = process.env.BENCH_CONFIGS?.split(/\s+/).filter(Boolean) ?? [
  ours,
  'ai-sdk:telemetryoff',
  'baseline:default',
];
const env = { ...process.env, REPS: process.env.REPS ?? '1' };
const run = spawnSync('bash', [path.join(harness, 'run-all.sh'), ...configs], {
  cwd: harness,
  env,
  stdio: ['ignore', 'inherit', 'pipe'],
  encoding: 'utf8',
});
process.stderr.write(run.stderr ?? '');
if (run.status !== 0) process.exit(run.status ?? 1);
const resultDir = /results in (.*)$/m.exec(run.stderr ?? '')?.[1]?.trim();
if (!resultDir) process.exit(1);

const median = (values) => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : Number.NaN;
};
const lines = (file) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    : [];
const abc = lines(path.join(resultDir, 'abc.jsonl'));
const cold = lines(path.join(resultDir, 'coldstart.jsonl'));
const pick = (peer, measure, key) =>
  median(abc.filter((row) => row.peer === peer && row.measure === measure).map((row) => row[key]));
const pickCold = (peer) =>
  median(cold.filter((row) => row.peer === peer).map((row) => row.wall_s * 1000));
const rows = [
  ['A median µs/turn', (peer) => pick(peer, 'A', 'median_us')],
  ['A p99 µs/turn', (peer) => pick(peer, 'A', 'p99_us')],
  ['A heap KB kept/turn', (peer) => pick(peer, 'A', 'heap_growth_kb_per_turn')],
  ['B turn 10 µs', (peer) => pick(peer, 'B', 'w10_us')],
  ['B turn 500 µs', (peer) => pick(peer, 'B', 'w500_us')],
  ['C wall ms', (peer) => pick(peer, 'C', 'wall_ms')],
  ['C peak RSS MB', (peer) => pick(peer, 'C', 'rss_peak_mb')],
  ['D cold start ms', (peer) => pickCold(peer)],
];
const fmt = (value) =>
  Number.isFinite(value) ? (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)) : '-';
let table =
  '| measure | everruns-ts | ai-sdk (telemetry off) | baseline | ÷ ai-sdk | ÷ baseline |\n|---|---|---|---|---|---|\n';
for (const [label, get] of rows) {
  const ours = get('everruns-ts');
  const ai = get('ai-sdk');
  const base = get('baseline');
  table += `| ${label} | ${fmt(ours)} | ${fmt(ai)} | ${fmt(base)} | ${fmt(ours / ai)} | ${fmt(ours / base)} |\n`;
}
table += `\nB growth turn 500 ÷ turn 10 (everruns-ts): ${fmt(pick('everruns-ts', 'B', 'w500_us') / pick('everruns-ts', 'B', 'w10_us'))}\n`;
writeFileSync(path.join(resultDir, 'ratios.md'), table);
console.log(`\n${table}\nwritten to ${path.join(resultDir, 'ratios.md')}`);

// The stores (memory vs PostgreSQL) and, when present, the durable host, in the same run.
for (const script of ['stores.mjs', 'host-pgboss.mjs']) {
  const file = path.join(root, 'bench', script);
  if (!existsSync(file)) continue;
  console.log(`\n## ${script}\n`);
  const result = spawnSync(process.execPath, [file], {
    cwd: root,
    stdio: 'inherit',
    env: process.env,
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
