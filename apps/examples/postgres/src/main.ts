// Runs the math session on PostgreSQL, then starts a second process that reads it back.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runPostgresMathSession } from './example.js';
import { settingsFromEnvironment } from './settings.js';

const settings = settingsFromEnvironment();
const { sessionId, result } = await runPostgresMathSession(settings);
console.log(`process ${process.pid} ran session ${sessionId} in schema ${settings.schema}`);
console.log(`success: ${result.success}`);
console.log(`iterations: ${result.iterations}`);
console.log(`tool calls: ${result.toolCallsCount}`);
console.log(`response: ${result.response}`);
console.log('');

const readBack = spawnSync(
  process.execPath,
  [
    '--conditions=@everruns-ts/source',
    '--import',
    'tsx',
    fileURLToPath(new URL('./read-back.ts', import.meta.url)),
    sessionId,
  ],
  { stdio: 'inherit' },
);
process.exitCode = readBack.status ?? 1;
