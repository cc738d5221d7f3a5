#!/usr/bin/env node
// Instructions per A turn (the peer benchmark's in-memory scenario, as bench/profile-turns.mjs runs
// it), counted by valgrind's callgrind: a count, not a time, so it holds on this shared machine
// whose wall and CPU times swing by half between runs of the same build. Two runs of
// profile-turns.mjs (its 2,000 warm-up turns, then FEW or MANY timed turns) under callgrind; the
// difference of their totals, divided by MANY − FEW, is the cost of one settled turn, start-up
// and warm-up cancelled out. V8 runs `--single-threaded` (its compilers and collector on the main
// thread), so that the count does not depend on when background work happens to finish. It still
// moves between runs of one build, since V8's heap sizing and our per-millisecond caches follow
// the clock, which valgrind slows ~50 times: with 1,000 turns between the runs two runs of one
// build read 806k and 893k per turn, hence the default of 4,000. Takes ~8 minutes.
//
//   pnpm build && node bench/instructions-per-turn.mjs
//   FEW=300 MANY=1300 VARIANT=noeventlog node bench/instructions-per-turn.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const FEW = Number(process.env.FEW ?? 500);
const MANY = Number(process.env.MANY ?? 4500);
const VARIANT = process.env.VARIANT ?? 'default';
if (!(Number.isInteger(FEW) && Number.isInteger(MANY) && FEW > 0 && MANY > FEW)) {
  throw new TypeError('FEW and MANY must be integers with 0 < FEW < MANY');
}
const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'profile-turns.mjs');
const scratch = mkdtempSync(path.join(tmpdir(), 'instructions-'));

/** The instructions callgrind counted in a whole run of `turns` timed turns. */
function countRun(turns) {
  const run = spawnSync(
    'valgrind',
    [
      '--tool=callgrind',
      `--callgrind-out-file=${path.join(scratch, `callgrind.${turns}`)}`,
      process.execPath,
      '--single-threaded',
      '--expose-gc',
      script,
      String(turns),
      VARIANT,
    ],
    { encoding: 'utf8' },
  );
  if (run.error) throw new Error(`valgrind did not start: ${run.error.message}`);
  const collected = /Collected : (\d+)/.exec(run.stderr ?? '');
  if (run.status !== 0 || !collected) {
    throw new Error(`the run of ${turns} turns failed (status ${run.status}):\n${run.stderr}`);
  }
  return Number(collected[1]);
}

try {
  const few = countRun(FEW);
  const many = countRun(MANY);
  console.log(
    JSON.stringify({
      variant: VARIANT,
      turns: [FEW, MANY],
      instructions: [few, many],
      instructions_per_turn: Math.round((many - few) / (MANY - FEW)),
    }),
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
