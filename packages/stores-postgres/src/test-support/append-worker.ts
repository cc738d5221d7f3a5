/**
 * A writer process for the concurrency tests. Started as
 * `node --conditions=@everruns-ts/source --import tsx append-worker.ts '<json>'`; prints `ready`
 * once connected, waits for a `go` line on stdin, appends `count` messages to one session and
 * prints one JSON line with what happened. Any error other than the expected typed conflict makes
 * it exit with status 1.
 */
import { createInterface } from 'node:readline';
import { EverrunsError } from '@everruns-ts/core';
import { postgresBackends } from '../postgres-backends.js';

interface WorkerTask {
  databaseUrl: string;
  schema: string;
  sessionId: string;
  writer: string;
  count: number;
  /** `expected`: pass expectedSeq and retry on STORE_CONFLICT; `auto`: let the store place it. */
  mode: 'expected' | 'auto';
  secretKeyHex: string;
}

const task = JSON.parse(process.argv[2] ?? '{}') as WorkerTask;
const backends = postgresBackends(
  { connectionString: task.databaseUrl, poolConfig: { max: 2 } },
  { schema: task.schema, secretKey: { id: 'test', key: task.secretKeyHex } },
);

async function main(): Promise<void> {
  await backends.messages.count(task.sessionId);
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
  let conflicts = 0;
  for (let index = 0; index < task.count; index++) {
    const message = {
      role: 'agent' as const,
      content: [{ type: 'text' as const, text: `${task.writer}:${index}` }],
    };
    if (task.mode === 'auto') {
      await backends.messages.storeMessage(task.sessionId, message);
      continue;
    }
    for (;;) {
      const expectedSeq = (await backends.messages.count(task.sessionId)) + 1;
      try {
        await backends.messages.storeMessage(task.sessionId, message, { expectedSeq });
        break;
      } catch (error) {
        if (!EverrunsError.hasCode(error, 'STORE_CONFLICT') || !error.retryable) throw error;
        conflicts++;
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ writer: task.writer, conflicts })}\n`);
}

main()
  .then(() => backends.close())
  .catch(async (error) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    await backends.close();
    process.exit(1);
  });
