#!/usr/bin/env node
// CPU time per turn of the peer benchmark's A scenario (a fresh conversation per turn, 2000
// turns after 2000 warm-up, as ../shared/peer-bench/common/bench.mjs runs it) for several peer
// adapters, run alternately in fresh processes. On a shared machine whose load inflates wall
// times several-fold, process CPU time (user + system, GC threads included) is the steadier
// reading of what a turn costs; medians of the runs.
//
//   node bench/profile-cpu.mjs [runs=3] <adapterDir[:variant]>...
//   node bench/profile-cpu.mjs 3 bench/results/everruns-ts bench/results/peer-bench/ai-sdk:telemetryoff
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

if (process.argv[2] === '--child') {
  const [, , , dir, variant] = process.argv;
  const { createAdapter } = await import(pathToFileURL(path.join(dir, 'adapter.mjs')).href);
  const adapter = await createAdapter(variant);
  const turn = async () => {
    const answer = await adapter.newConversation().turn('What is 2 + 2?');
    if (String(answer).trim() !== '4') throw new Error(`unexpected answer ${answer}`);
  };
  for (let index = 0; index < 2000; index++) await turn();
  const before = process.cpuUsage();
  for (let index = 0; index < 2000; index++) await turn();
  const used = process.cpuUsage(before);
  console.log(((used.user + used.system) / 2000).toFixed(1));
  process.exit(0);
}

const [runsArg, ...targets] = process.argv.slice(2);
const runs = Number(runsArg);
const self = fileURLToPath(import.meta.url);
const results = new Map(targets.map((target) => [target, []]));
for (let run = 0; run < runs; run++) {
  for (const target of targets) {
    const [dir, variant = 'default'] = target.split(':');
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', self, '--child', path.resolve(dir), variant],
      { encoding: 'utf8' },
    );
    if (child.status !== 0) throw new Error(`${target}: ${child.stderr}`);
    results.get(target).push(Number(child.stdout.trim()));
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const [target, values] of results) {
  console.log(`${target}: CPU µs/turn median ${median(values)} [${values.join(', ')}]`);
}
