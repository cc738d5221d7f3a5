// Prints the closing line CI reads ("vitest: N passed, N failed, N skipped") from the JSON report
// the root vitest config writes. Exits 1 when the report is missing.
import { existsSync, readFileSync } from 'node:fs';

const file = new URL('../node_modules/.vitest/results.json', import.meta.url);
if (!existsSync(file)) {
  console.error('vitest wrote no JSON report: the tests did not run');
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(
  `vitest: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`,
);
