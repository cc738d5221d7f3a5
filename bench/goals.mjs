// The figures of issue 21's goals table that the scripts beside the peer benchmark measure. Each
// script records its figures with `recordGoal`; `pnpm bench` (run.mjs) points
// BENCH_GOALS_FILE at a file of its result folder and prints every goal in one table at the end.
// Run alone, a script records nothing.
import { appendFileSync } from 'node:fs';

/** Appends `{ key, value }` to BENCH_GOALS_FILE when it is set and `value` is a finite number. */
export function recordGoal(key, value) {
  const file = process.env.BENCH_GOALS_FILE;
  if (file && Number.isFinite(value)) appendFileSync(file, `${JSON.stringify({ key, value })}\n`);
}
