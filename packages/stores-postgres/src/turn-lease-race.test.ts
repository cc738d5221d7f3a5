import { type Message, messageText } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import {
  assertPostgresReachable,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';
import type { TurnWorkerReport } from './test-support/turn-worker.js';
import { go, startWorker } from './test-support/workers.js';

/**
 * The user messages of a history that are not followed by their own answer before the next user
 * message: 0 when every turn ran alone.
 */
function interleavings(messages: Message[]): string[] {
  const problems: string[] = [];
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index] as Message;
    if (message.role !== 'user') continue;
    const question = messageText(message);
    const next = messages[index + 1];
    if (next?.role !== 'agent' || messageText(next) !== `answer to ${question}`) {
      problems.push(
        `seq ${message.seq} ${JSON.stringify(question)} is followed by ${next ? `${next.role} ${JSON.stringify(messageText(next))}` : 'nothing'}`,
      );
    }
  }
  return problems;
}

/** Creates a session on the schema and races two runtime processes on it. */
async function race(
  backends: PostgresBackends,
  options: { turnsPerProcess: number; modelLatencyMs: number; bypassLease?: boolean },
): Promise<{ sessionId: string; reports: TurnWorkerReport[] }> {
  const setup = await new InProcessRuntimeBuilder()
    .llmSim(LlmSimConfig.fixed('unused'))
    .backends(backends)
    .singleSession((session) => session.harness('race', 'Answer.'))
    .build();
  const sessionId = setup.defaultSessionId() as string;
  const workers = ['one', 'two'].map((writer) =>
    startWorker(
      {
        databaseUrl: DATABASE_URL,
        schema: backends.schema,
        sessionId,
        writer,
        count: options.turnsPerProcess,
        secretKeyHex: TEST_SECRET_KEY.key.toString('hex'),
        modelLatencyMs: options.modelLatencyMs,
        bypassLease: options.bypassLease ?? false,
      },
      'turn-worker.ts',
    ),
  );
  await Promise.all(workers.map((worker) => worker.ready));
  for (const worker of workers) go(worker);
  const reports = (await Promise.all(workers.map((worker) => worker.done))).map(
    (line) => JSON.parse(line) as TurnWorkerReport,
  );
  return { sessionId, reports };
}

describe('turn lease on PostgreSQL: two runtime processes on one session', () => {
  let backends: PostgresBackends;
  beforeAll(async () => {
    await assertPostgresReachable();
    backends = await createTestBackends();
  });
  afterAll(async () => {
    if (backends) await destroyTestBackends(backends);
  });

  it('runs 100 racing turns one at a time: 0 interleavings, every loser a typed TURN_IN_PROGRESS that stored nothing', async () => {
    const { sessionId, reports } = await race(backends, {
      turnsPerProcess: 50,
      modelLatencyMs: 5,
    });
    const completed = reports.flatMap((report) => report.completed);
    const refused = reports.flatMap((report) => report.refused);
    expect(completed).toHaveLength(100);
    // The processes did race: some attempts were refused (each worker checked that every refusal
    // was a TURN_IN_PROGRESS naming the session, the holder and the lease's expiry).
    expect(refused.length).toBeGreaterThan(0);

    const messages = await backends.messages.load(sessionId);
    expect(interleavings(messages)).toEqual([]);
    expect(messages).toHaveLength(200);
    const stored = messages
      .filter((message) => message.role === 'user')
      .map((message) => messageText(message));
    // Exactly the questions of the turns that ran, in some order; no refused attempt left a trace.
    expect([...stored].sort()).toEqual([...completed].sort());
    for (const question of refused) expect(stored).not.toContain(question);
    // The stored events of the two processes do not interleave either: each turn's events form
    // one contiguous run.
    const events = await backends.events.loadEvents(sessionId, { limit: 10_000 });
    expect(events.filter((event) => event.type === 'turn.started')).toHaveLength(100);
    expect(events.filter((event) => event.type === 'turn.completed')).toHaveLength(100);
    const runs = events
      .flatMap((event) => (event.turnId === undefined ? [] : [event.turnId]))
      .filter((turnId, index, turnIds) => index === 0 || turnIds[index - 1] !== turnId);
    expect(runs).toHaveLength(new Set(runs).size);
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();
    expect((await backends.sessions.getSession(sessionId))?.status).toBe('idle');
  }, 120_000);

  it('control: the same race with a lease that always grants interleaves the history', async () => {
    const { sessionId } = await race(backends, {
      turnsPerProcess: 10,
      modelLatencyMs: 40,
      bypassLease: true,
    });
    expect(interleavings(await backends.messages.load(sessionId)).length).toBeGreaterThan(0);
  }, 120_000);
});
