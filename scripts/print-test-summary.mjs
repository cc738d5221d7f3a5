// Prints the closing line CI reads ("vitest: N passed, N failed, N skipped") from the JSON reports
// the test command writes: the main run (node_modules/.vitest/results.json) and the latency run of
// the attack suites, alone and one file at a time (results-latency.json; see the root
// package.json). Exits 1 when the main report is missing.
import { existsSync, readFileSync } from 'node:fs';

const main = new URL('../node_modules/.vitest/results.json', import.meta.url);
const latency = new URL('../node_modules/.vitest/results-latency.json', import.meta.url);
if (!existsSync(main)) {
  console.error('vitest wrote no JSON report: the tests did not run');
  process.exit(1);
}
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const file of [main, latency]) {
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  totals.passed += report.numPassedTests ?? 0;
  totals.failed += report.numFailedTests ?? 0;
  totals.skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
console.log(`vitest: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
