// The second process: reads a session another process ran, straight from PostgreSQL.
// Usage: pnpm --filter @everruns-ts/example-postgres read-back <sessionId> [--json]
import { describeMessages, readSessionBack } from './example.js';
import { settingsFromEnvironment } from './settings.js';

const sessionId = process.argv[2];
if (!sessionId) {
  console.error('usage: read-back <sessionId> [--json]');
  process.exit(2);
}
const readBack = await readSessionBack(settingsFromEnvironment(), sessionId);
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(readBack));
} else {
  console.log(`process ${process.pid} read session ${sessionId}:`);
  console.log(`title: ${readBack.session?.title ?? '(no such session)'}`);
  console.log(`status: ${readBack.session?.status ?? '-'}`);
  for (const line of describeMessages(readBack.messages)) console.log(`  ${line}`);
  console.log(`events: ${readBack.eventTypes.join(', ')}`);
}
