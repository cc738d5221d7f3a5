// Moving a turn's checkpoint and enqueueing its next step's job: one statement (the host's UPDATE
// with pg-boss's own job INSERT, which runs only when the UPDATE found the turn under the caller's
// fencing token), atomic either way; the transaction path stays for a statement it does not know.
import { newId } from '@everruns-ts/core';
import { initialTurnStep, type RuntimeTurnStep } from '@everruns-ts/runtime/host';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoss } from './host-setup.js';
import { stepJobId } from './step-jobs.js';
import { StepQueue } from './step-queue.js';
import { adminQuery } from './test-support/database.js';
import { createTestEnvironment, type TestEnvironment } from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';
import { guardedJobInsert, TurnRecords } from './turn-records.js';

let environment: TestEnvironment;
let fixture: FixtureHost;
let config: ReturnType<TestEnvironment['configFor']>;
let boss: PgBoss;
let steps: StepQueue;
let turns: TurnRecords;

/** The statements sent through `pool.query` while `run` runs. */
async function sentDuring(pool: pg.Pool, run: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((statement: unknown, ...rest: unknown[]) => {
    sent.push(String((statement as { text?: unknown })?.text ?? statement));
    return query(statement, ...rest);
  }) as typeof pool.query;
  try {
    await run();
  } finally {
    pool.query = query as typeof pool.query;
  }
  return sent;
}

async function jobIds(): Promise<string[]> {
  const { rows } = await adminQuery<{ id: string }>(
    `SELECT id::text AS id FROM "${config.bossSchema}".job WHERE name = $1 ORDER BY id`,
    [config.queue],
  );
  return rows.map((row) => row.id);
}

async function runningTurn(): Promise<{ turnId: string; step: RuntimeTurnStep; fence: number }> {
  const sessionId = await environment.createSession();
  const turnId = newId('turn');
  const step = initialTurnStep({ sessionId, turnId, input: { role: 'user', content: [] } });
  expect(await turns.insert(turnId, sessionId, step)).toBeNull();
  const claim = await turns.claimStep(turnId, 0, 0);
  return { turnId, step, fence: claim?.fence ?? 0 };
}

beforeAll(async () => {
  environment = await createTestEnvironment('hostadv');
  config = environment.configFor();
  // The host creates the queue; this test sends jobs to it with a pg-boss of its own.
  fixture = await startFixtureHost(config);
  boss = createBoss(
    environment.pool,
    { backends: fixture.backends, platform: fixture.platform, supervise: false },
    config.bossSchema,
  );
  await boss.start();
  steps = new StepQueue({
    boss,
    queue: config.queue,
    pool: environment.pool,
    stepPayload: 'test',
    onError: () => {},
  });
  turns = new TurnRecords(environment.pool, config.hostSchema);
});

afterAll(async () => {
  await boss?.stop({ graceful: false, wait: true });
  await fixture?.close();
  await environment?.destroy();
});

describe('TurnRecords.advance with pg-boss', () => {
  it("moves the checkpoint and inserts the next step's job in one statement", async () => {
    const { turnId, step, fence } = await runningTurn();
    const next = { activity: 'reason' as const, state: { ...step.state, iteration: 1 } };
    let advanced = false;
    const sent = await sentDuring(environment.pool, async () => {
      advanced = await turns.advance(turnId, fence, next, (db) => steps.enqueue(next, 0, db));
    });
    expect(advanced).toBe(true);
    expect(sent).toHaveLength(1);
    expect(await turns.get(turnId)).toMatchObject({ step: `${turnId}/reason/1` });
    expect(await jobIds()).toContain(stepJobId(config.queue, next, 0));
    // The same move again (a retried step): the checkpoint stays, the job is not doubled.
    const before = await jobIds();
    expect(await turns.advance(turnId, fence, next, (db) => steps.enqueue(next, 0, db))).toBe(true);
    expect(await jobIds()).toEqual(before);
  });

  it('inserts no job when the fencing token was taken over, and moves nothing', async () => {
    const { turnId, step, fence } = await runningTurn();
    const retry = await turns.claimStep(turnId, 0, 0);
    expect(retry?.fence).toBeGreaterThan(fence);
    const next = { activity: 'reason' as const, state: { ...step.state, iteration: 1 } };
    const before = await jobIds();
    expect(await turns.advance(turnId, fence, next, (db) => steps.enqueue(next, 0, db))).toBe(
      false,
    );
    expect(await jobIds()).toEqual(before);
    expect(await turns.get(turnId)).toMatchObject({ step: `${turnId}/input/0` });
  });

  it('runs a statement it does not know in a transaction with the update', async () => {
    const { turnId, step, fence } = await runningTurn();
    const next = { activity: 'reason' as const, state: { ...step.state, iteration: 1 } };
    let seen: unknown;
    const advanced = await turns.advance(turnId, fence, next, async (db) => {
      const result = (await db.executeSql('SELECT $1::integer + 1 AS two', [1])) as {
        rows: { two: number }[];
      };
      seen = result.rows[0]?.two;
    });
    expect(advanced).toBe(true);
    expect(seen).toBe(2);
    expect(await turns.get(turnId)).toMatchObject({ step: `${turnId}/reason/1` });
  });

  it("recognizes pg-boss's job INSERT and nothing else", async () => {
    let insert = '';
    await boss.send(
      config.queue,
      {},
      {
        db: {
          executeSql: (text: string, values: unknown[]) => {
            insert = text;
            return environment.pool.query(text, values);
          },
        },
      },
    );
    const guarded = guardedJobInsert(insert);
    expect(guarded).toContain('WHERE EXISTS (SELECT 1 FROM moved)');
    expect(guarded?.indexOf('WHERE EXISTS')).toBeLessThan(
      guarded?.indexOf('ON CONFLICT DO NOTHING') ?? 0,
    );
    expect(guardedJobInsert('SELECT 1')).toBeUndefined();
    expect(guardedJobInsert(`INSERT INTO x.job (id) VALUES ($1) RETURNING id`)).toBeUndefined();
  });
});
