/**
 * A runtime process for the turn-lease race tests. Started as
 * `node --conditions=@everruns-ts/source --import tsx turn-worker.ts '<json>'`; builds an
 * `InProcessRuntime` on the PostgreSQL schema, prints `ready`, waits for a `go` line on stdin,
 * then runs `count` turns on one session, retrying each after a refusal, and prints one JSON line:
 * the questions of its turns and of its refused attempts. A refusal other than a typed
 * `TURN_IN_PROGRESS` naming the session and the lease's holder makes it exit with status 1.
 */
import { createInterface } from 'node:readline';
import {
  EverrunsError,
  type Message,
  messageText,
  type RuntimeMessageStore,
  type RuntimeSessionStore,
  type TurnLease,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { postgresBackends } from '../postgres-backends.js';

interface TurnWorkerTask {
  databaseUrl: string;
  schema: string;
  sessionId: string;
  writer: string;
  count: number;
  secretKeyHex: string;
  /** Milliseconds the simulated model takes per answer. */
  modelLatencyMs: number;
  /**
   * Replace the lease by one that always grants (the control that shows the race is real); any
   * failure of a turn then moves on to the next one.
   */
  bypassLease?: boolean;
}

/** What the worker prints when done. */
export interface TurnWorkerReport {
  writer: string;
  /** The questions of the turns this worker ran, in order. */
  completed: string[];
  /** The questions of the attempts that were refused. */
  refused: string[];
}

const task = JSON.parse(process.argv[2] ?? '{}') as TurnWorkerTask;
const backends = postgresBackends(
  { connectionString: task.databaseUrl, poolConfig: { max: 3 } },
  { schema: task.schema, secretKey: { id: 'test', key: task.secretKeyHex } },
);

/** A session store whose lease always grants: what the runtime did before the lease existed. */
function grantingLease(sessions: RuntimeSessionStore): RuntimeSessionStore {
  const grant = (sessionId: string, holderId: string): TurnLease => ({
    sessionId,
    holderId,
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
  });
  return new Proxy(sessions, {
    get(target, property) {
      if (property === 'claimTurnLease' || property === 'renewTurnLease') {
        return async (sessionId: string, holderId: string) => grant(sessionId, holderId);
      }
      if (property === 'releaseTurnLease') return async () => true;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The message store without its lease-conditioned writes, so the runtime renews through the
 * granting session store before each write instead of asking the database's lease.
 */
function unconditionedWrites(messages: RuntimeMessageStore): RuntimeMessageStore {
  return new Proxy(messages, {
    get(target, property) {
      if (property === 'leaseConditionedWrites') return false;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function main(): Promise<void> {
  const model = LlmSimConfig.fromFunction(async (request) => {
    await sleep(task.modelLatencyMs);
    const questions = request.messages.filter((message) => message.role === 'user');
    return `answer to ${messageText(questions.at(-1) as Message)}`;
  });
  const runtime = await new InProcessRuntimeBuilder()
    .llmSim(model)
    .backends(
      task.bypassLease
        ? {
            ...backends,
            sessions: grantingLease(backends.sessions),
            messages: unconditionedWrites(backends.messages),
            // The database's own claim would hold the lease the control goes around.
            claimTurnLeaseAndLoadSetup: undefined,
          }
        : backends,
    )
    .build();
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();

  const report: TurnWorkerReport = { writer: task.writer, completed: [], refused: [] };
  for (let index = 0; index < task.count; index++) {
    for (let attempt = 1; ; attempt++) {
      const question = `${task.writer} turn ${index} attempt ${attempt}`;
      try {
        const result = await runtime.runTextTurn(task.sessionId, question);
        if (!result.success && !task.bypassLease) {
          throw new Error(`turn failed: ${JSON.stringify(result.error)}`);
        }
        report.completed.push(question);
        break;
      } catch (error) {
        const typed =
          EverrunsError.hasCode(error, 'TURN_IN_PROGRESS') &&
          error.details.sessionId === task.sessionId &&
          typeof error.details.holder === 'string' &&
          typeof error.details.expiresAt === 'string';
        if (task.bypassLease) break;
        if (!typed) throw error;
        report.refused.push(question);
        await sleep(Math.random() * 3);
      }
    }
  }
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
