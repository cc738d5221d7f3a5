/**
 * A runtime process for the cross-process event tests. Started as
 * `node --conditions=@everruns-ts/source --import tsx stream-turn-worker.ts '<json>'`; builds an
 * `InProcessRuntime` on the PostgreSQL schema with a streaming simulated model and a tool
 * add(a, b), creates a session, prints `session <id>` and `ready`, waits for a `go` line on
 * stdin, then streams one turn (a tool call, then a long final answer with one delta larger than
 * a NOTIFY payload) and prints one JSON line: every event of the session its own bus delivered
 * (kept and ephemeral, in order) and the turn's result.
 */
import { createInterface } from 'node:readline';
import type { RuntimeEvent } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { postgresBackends } from '../postgres-backends.js';
import { calculatorCapability } from './math-runtime.js';
import { FINAL_CHUNKS, type StreamTurnReport } from './stream-turn.js';

interface StreamTurnTask {
  databaseUrl: string;
  schema: string;
  secretKeyHex: string;
}

const task = JSON.parse(process.argv[2] ?? '{}') as StreamTurnTask;
const backends = postgresBackends(
  { connectionString: task.databaseUrl, poolConfig: { max: 3 } },
  { schema: task.schema, secretKey: { id: 'test', key: task.secretKeyHex } },
);

async function main(): Promise<void> {
  const model = LlmSimConfig.fromFunction((request) =>
    request.messages.at(-1)?.role === 'tool_result'
      ? { textChunks: FINAL_CHUNKS }
      : {
          text: 'Let me add these numbers.',
          reasoning: 'The user wants a sum; the add tool gives it.',
          toolCalls: [{ id: 'call_add', name: 'add', arguments: { a: 2, b: 2 } }],
        },
  ).withStreaming({ chunkSize: 5 });
  const runtime = await new InProcessRuntimeBuilder()
    .llmSim(model)
    .capability(calculatorCapability())
    .harness({ id: 'harness_adder', name: 'adder', capabilities: [{ id: 'calculator' }] })
    .backends(backends)
    .build();
  const session = await runtime.createSession({ harnessId: 'harness_adder' });
  const events: RuntimeEvent[] = [];
  const stop = backends.events.subscribe((event) => events.push(event), {
    sessionId: session.id,
  });
  process.stdout.write(`session ${session.id}\nready\n`);
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();

  const stream = runtime.streamTextTurn(session.id, 'What is 2 + 2?');
  let parts = 0;
  for await (const _part of stream) parts++;
  const result = await stream.result;
  stop();
  const report: StreamTurnReport = { events, result, parts };
  process.stdout.write(`${JSON.stringify(report)}\n`);
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
