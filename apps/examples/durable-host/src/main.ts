// Starts two worker processes, then acts as a client: submits turns on three sessions, waits for
// their results and prints one session's history. The workers share the steps between them.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InputMessage, newId, sessionSchema } from '@everruns-ts/core';
import {
  describeMessage,
  EXAMPLE_HARNESS_ID,
  openBackends,
  prepareDatabase,
  startHost,
} from './durable-host.js';
import { settingsFromEnvironment } from './settings.js';

const settings = settingsFromEnvironment();
const backends = openBackends(settings);
await prepareDatabase(backends);

const workers = [1, 2].map(() =>
  spawn(
    process.execPath,
    [
      '--conditions=@everruns-ts/source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./worker.ts', import.meta.url)),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: process.env },
  ),
);
await Promise.all(
  workers.map(
    (child) =>
      new Promise<void>((resolve, reject) => {
        child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
          process.stdout.write(chunk);
          if (chunk.includes('is working the queue')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`a worker exited with ${code}`)));
      }),
  ),
);

// The client only submits turns and reads results; it runs no steps itself.
const client = await startHost(settings, backends, { supervise: false });
try {
  const sessions = [];
  for (let index = 0; index < 3; index++) {
    const session = await backends.sessions.createSession(
      sessionSchema.parse({ id: newId('session'), harnessId: EXAMPLE_HARNESS_ID }),
    );
    sessions.push(session.id);
  }
  const handles = await Promise.all(
    sessions.map((sessionId) => client.submitTurn(sessionId, InputMessage.user('What is 2 + 2?'))),
  );
  console.log(`submitted ${handles.length} turns`);
  for (const handle of handles) {
    const result = await handle.result({ timeoutMs: 60_000 });
    console.log(
      `${handle.sessionId}: ${result.success ? 'success' : 'failure'}, ${result.iterations} iterations, response ${JSON.stringify(result.response)}`,
    );
  }
  const first = sessions[0] as string;
  console.log(`\n${first}:`);
  for (const message of await backends.messages.load(first))
    console.log(`  ${describeMessage(message)}`);
} finally {
  await client.stop();
  for (const child of workers) child.kill('SIGTERM');
  await Promise.all(workers.map((child) => new Promise((resolve) => child.once('exit', resolve))));
  await backends.close();
}
