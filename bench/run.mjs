#!/usr/bin/env node
// `pnpm bench`: builds the packages, then runs the peer benchmark (../shared/peer-bench) with
// everruns-ts, ai-sdk (telemetry off) and the hand-written baseline in ONE run-all.sh invocation,
// and prints our ratios against both. ../shared is read-only, so the harness is copied to
// bench/results/peer-bench first (its installed peers are kept between runs).
//
//   pnpm bench                      # REPS=1, measures A B C and cold start D
//   REPS=3 pnpm bench               # what RESULTS.md used
//   BENCH_CONFIGS="x:y ..." pnpm bench
//   BENCH_SCRIPTS="stores.mjs ..." pnpm bench   # only these of the scripts run after the peers
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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

// The AI SDK's streaming loop (`ToolLoopAgent.stream`) beside its `generate`: our adapter file in
// a copy of the harness's ai-sdk folder, so it installs the very same `ai` version from the same
// lockfile.
const aiSdkStream = path.join(harness, 'ai-sdk-stream');
mkdirSync(aiSdkStream, { recursive: true });
for (const file of ['package.json', 'package-lock.json']) {
  cpSync(path.join(source, 'ai-sdk', file), path.join(aiSdkStream, file));
}
cpSync(
  path.join(root, 'bench/peer-ai-sdk-stream/adapter.mjs'),
  path.join(aiSdkStream, 'adapter.mjs'),
);

// Our adapter runs from an npm install of the packed packages, as an npm user would have it, so
// the harness can measure its installed size and cold start like the peers' (`npm ls` does not
// understand a pnpm workspace folder).
const tarballs = path.join(root, 'bench/results/tarballs');
const installed = path.join(root, 'bench/results/everruns-ts');
rmSync(tarballs, { recursive: true, force: true });
rmSync(installed, { recursive: true, force: true });
mkdirSync(tarballs, { recursive: true });
mkdirSync(installed, { recursive: true });
execFileSync(
  'pnpm',
  ['-r', '--filter', './packages/*', 'exec', 'pnpm', 'pack', '--pack-destination', tarballs],
  {
    cwd: root,
    stdio: 'ignore',
  },
);
const packed = Object.fromEntries(
  readdirSync(tarballs).map((file) => [
    `@everruns-ts/${file.replace(/^everruns-ts-/, '').replace(/-\d+\.\d+\.\d+\.tgz$/, '')}`,
    `file:../tarballs/${file}`,
  ]),
);
const zodVersion = JSON.parse(readFileSync(path.join(root, 'packages/core/package.json'), 'utf8'))
  .devDependencies.zod;
writeFileSync(
  path.join(installed, 'package.json'),
  `${JSON.stringify(
    {
      name: 'everruns-ts-peer-adapter',
      private: true,
      type: 'module',
      dependencies: {
        '@everruns-ts/core': packed['@everruns-ts/core'],
        '@everruns-ts/runtime': packed['@everruns-ts/runtime'],
        zod: zodVersion,
      },
      overrides: packed,
    },
    null,
    2,
  )}\n`,
);
for (const file of ['adapter.mjs', 'scenario.mjs']) {
  cpSync(path.join(root, 'bench/peer-adapter', file), path.join(installed, file));
}
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: installed,
  stdio: 'inherit',
});

const ours = `${installed}:default`;
const oursNoEventLog = `${installed}:noeventlog`;
const oursStream = `${installed}:stream`;
const configs = process.env.BENCH_CONFIGS?.split(/\s+/).filter(Boolean) ?? [
  ours,
  oursNoEventLog,
  oursStream,
  'ai-sdk:telemetryoff',
  'ai-sdk-stream:default',
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
// A column is one (peer, variant) pair; the everruns-ts variants are told apart by their label.
const columns = [
  { label: 'everruns-ts', peer: 'everruns-ts', variant: 'a runtime per conversation' },
  {
    label: 'everruns-ts, no event log',
    peer: 'everruns-ts',
    variant: 'a runtime per conversation, no in-memory event log',
  },
  {
    label: 'ai-sdk (telemetry off)',
    peer: 'ai-sdk',
    variant: 'ToolLoopAgent.generate, telemetry: { isEnabled: false }',
  },
  { label: 'baseline', peer: 'baseline' },
];
const streamColumns = [
  {
    label: 'everruns-ts, streamTextTurn',
    peer: 'everruns-ts',
    variant: 'a runtime per conversation, streamTextTurn (every part consumed)',
  },
  {
    label: 'ai-sdk, ToolLoopAgent.stream',
    peer: 'ai-sdk',
    variant: 'ToolLoopAgent.stream, telemetry: { isEnabled: false }, fullStream consumed',
  },
];
const matches = (row, column) =>
  row.peer === column.peer && (column.variant === undefined || row.variant === column.variant);
const pick = (column, measure, key) =>
  median(
    abc.filter((row) => matches(row, column) && row.measure === measure).map((row) => row[key]),
  );
const pickCold = (column) =>
  median(cold.filter((row) => matches(row, column)).map((row) => row.wall_s * 1000));
const rows = [
  ['A median µs/turn', (column) => pick(column, 'A', 'median_us')],
  ['A p99 µs/turn', (column) => pick(column, 'A', 'p99_us')],
  ['A p99 ÷ median', (column) => pick(column, 'A', 'p99_us') / pick(column, 'A', 'median_us')],
  ['A heap KB kept/turn', (column) => pick(column, 'A', 'heap_growth_kb_per_turn')],
  ['B turn 10 µs (10-turn median)', (column) => pick(column, 'B', 'w10_us')],
  ['B turn 500 µs (10-turn median)', (column) => pick(column, 'B', 'w500_us')],
  ['C wall ms', (column) => pick(column, 'C', 'wall_ms')],
  ['C peak RSS MB', (column) => pick(column, 'C', 'rss_peak_mb')],
  ['C heap KB retained/conversation', (column) => pick(column, 'C', 'retained_kb_per_conv')],
  ['D cold start ms', (column) => pickCold(column)],
];
const fmt = (value) =>
  Number.isFinite(value) ? (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)) : '-';
const [oursColumn, noLogColumn, aiSdkColumn, baselineColumn] = columns;
let table = `| measure | ${columns.map((column) => column.label).join(' | ')} | ours ÷ ai-sdk | ours ÷ baseline | no-log ÷ ai-sdk |\n`;
table += `|${'---|'.repeat(columns.length + 4)}\n`;
for (const [label, get] of rows) {
  const values = columns.map(get);
  const [a, b, c, d] = [get(oursColumn), get(noLogColumn), get(aiSdkColumn), get(baselineColumn)];
  table += `| ${label} | ${values.map(fmt).join(' | ')} | ${fmt(a / c)} | ${fmt(a / d)} | ${fmt(b / c)} |\n`;
}
table += `\nB turn 500 ÷ turn 10 (everruns-ts): ${fmt(pick(oursColumn, 'B', 'w500_us') / pick(oursColumn, 'B', 'w10_us'))}\n`;
// Streaming: our streamed turn against our plain turn (the bound is 1.2) and against the
// AI SDK's streaming loop, from the same run.
const [oursStreamColumn, aiSdkStreamColumn] = streamColumns;
table += `\n| measure | ${streamColumns.map((column) => column.label).join(' | ')} | streaming ÷ our plain turn | ours ÷ ai-sdk streaming |\n`;
table += `|${'---|'.repeat(streamColumns.length + 3)}\n`;
for (const [label, get] of rows) {
  const [a, b] = [get(oursStreamColumn), get(aiSdkStreamColumn)];
  table += `| ${label} | ${fmt(a)} | ${fmt(b)} | ${fmt(a / get(oursColumn))} | ${fmt(a / b)} |\n`;
}
writeFileSync(path.join(resultDir, 'ratios.md'), table);
console.log(`\n${table}\nwritten to ${path.join(resultDir, 'ratios.md')}`);

// The stores (memory vs PostgreSQL), the memory of open streams and, when present, the durable
// host, in the same run.
const goalsFile = path.join(resultDir, 'goals.jsonl');
rmSync(goalsFile, { force: true });
const scripts = process.env.BENCH_SCRIPTS?.split(/\s+/).filter(Boolean) ?? [
  'stores.mjs',
  'postgres-history.mjs',
  'streams-memory.mjs',
  'host-pgboss.mjs',
  'long-session.mjs',
];
for (const script of scripts) {
  const file = path.join(root, 'bench', script);
  if (!existsSync(file)) continue;
  console.log(`\n## ${script}\n`);
  const flags = script === 'streams-memory.mjs' ? ['--expose-gc'] : [];
  const result = spawnSync(process.execPath, [...flags, file], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, BENCH_GOALS_FILE: goalsFile },
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

// Every row of issue 21's goals table from this one run: the peer measures against the AI SDK
// (ratios), the stores' figures as measured.
const measured = new Map(lines(goalsFile).map((entry) => [entry.key, entry.value]));
const figure = (key) => measured.get(key) ?? Number.NaN;
const ratioOf = (get) => get(oursColumn) / get(aiSdkColumn);
const rowGetter = (label) => rows.find(([rowLabel]) => rowLabel === label)[1];
const aMedian = rowGetter('A median µs/turn');
const aP99OverMedian = rowGetter('A p99 ÷ median');
const cHeap = rowGetter('C heap KB retained/conversation');
const dCold = rowGetter('D cold start ms');
// [label, value, direction, bound]: met when the value is at most (≤) or at least (≥) the bound.
const history = ([store, name, messages]) => [
  `${name} turn time at ${messages.toLocaleString('en')} messages ÷ at 100`,
  figure(`${store}_history_${messages}_over_100`),
  '≤',
  1.2,
];
const goals = [
  ['A µs/turn, in-memory, as shipped (÷ AI SDK)', ratioOf(aMedian), '≤', 0.15],
  ['A p99 ÷ median (ours)', aP99OverMedian(oursColumn), '≤', 5],
  ['C heap per live conversation (÷ AI SDK)', ratioOf(cHeap), '≤', 1],
  ['D cold start (÷ AI SDK)', ratioOf(dCold), '≤', 0.7],
  // One decimal: session creation's statements, spread over the run's turns, add a few hundredths.
  [
    'PostgreSQL statements per math turn',
    Math.round(figure('postgres_statements_per_turn') * 10) / 10,
    '≤',
    5,
  ],
  ['PostgreSQL turns/s, 1 session', figure('postgres_turns_per_second_1'), '≥', 300],
  ['PostgreSQL turns/s, 32 sessions', figure('postgres_turns_per_second_32'), '≥', 1000],
  ...[
    ['postgres', 'PostgreSQL', 4000],
    ['postgres', 'PostgreSQL', 10000],
    ['memory', 'memory', 10000],
  ].map(history),
  [
    'host-pgboss turns/s, 32 sessions, 2 workers',
    figure('host_pgboss_turns_per_second_32'),
    '≥',
    300,
  ],
];
let goalTable = '| measure (issue 21) | this run | goal | met |\n|---|---|---|---|\n';
for (const [label, value, direction, bound] of goals) {
  const met = direction === '≤' ? value <= bound : value >= bound;
  goalTable += `| ${label} | ${fmt(value)} | ${direction} ${bound.toLocaleString('en')} | ${Number.isFinite(value) ? (met ? 'yes' : 'no') : '-'} |\n`;
}
writeFileSync(path.join(resultDir, 'goals.md'), goalTable);
console.log(
  `\n## Goals of issue 21, this run\n\n${goalTable}\nwritten to ${path.join(resultDir, 'goals.md')}`,
);
