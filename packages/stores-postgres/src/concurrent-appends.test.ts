import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, DATABASE_URL, destroyTestBackends } from './test-support/database.js';
import { go, startWorker } from './test-support/workers.js';

const range = (count: number) => Array.from({ length: count }, (_, index) => index + 1);
const secretKeyHex = randomBytes(32).toString('hex');

/** Checks the session holds exactly `writers × count` messages at positions 1..n, each once. */
async function expectExactHistory(
  backends: PostgresBackends,
  sessionId: string,
  writers: string[],
  count: number,
): Promise<void> {
  const total = writers.length * count;
  const loaded = await backends.messages.load(sessionId);
  expect(loaded.length).toBe(total);
  expect(loaded.map((message) => message.seq)).toEqual(range(total));
  expect(new Set(loaded.map((message) => message.id)).size).toBe(total);
  const texts = loaded.map((message) =>
    message.content[0]?.type === 'text' ? message.content[0].text : '',
  );
  const expected = writers.flatMap((writer) =>
    Array.from({ length: count }, (_, index) => `${writer}:${index}`),
  );
  expect([...texts].sort()).toEqual([...expected].sort());
  // Each writer's own messages keep their order.
  for (const writer of writers) {
    const own = texts.filter((text) => text.startsWith(`${writer}:`));
    expect(own).toEqual(expected.filter((text) => text.startsWith(`${writer}:`)));
  }
  expect(await backends.messages.count(sessionId)).toBe(total);
}

describe('postgres message store: concurrent writers in separate processes', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('2 processes × 1,000 appends with expectedSeq: 2,000 contiguous rows, losers get STORE_CONFLICT and succeed on retry', async () => {
    const sessionId = `session_${randomBytes(8).toString('hex')}`;
    const writers = ['a', 'b'];
    const workers = writers.map((writer) =>
      startWorker({
        databaseUrl: DATABASE_URL,
        schema: backends.schema,
        sessionId,
        writer,
        count: 1000,
        mode: 'expected',
        secretKeyHex,
      }),
    );
    await Promise.all(workers.map((worker) => worker.ready));
    for (const worker of workers) go(worker);
    const results = (await Promise.all(workers.map((worker) => worker.done))).map(
      (line) => JSON.parse(line) as { writer: string; conflicts: number },
    );
    await expectExactHistory(backends, sessionId, writers, 1000);
    const conflicts = results.reduce((sum, result) => sum + result.conflicts, 0);
    // Two writers racing for the same positions: some appends must have lost and retried.
    expect(conflicts).toBeGreaterThan(0);
  }, 180_000);

  it('10 processes × 100 appends without expectedSeq: 1,000 contiguous rows, the store retries internally', async () => {
    const sessionId = `session_${randomBytes(8).toString('hex')}`;
    const writers = range(10).map((index) => `w${index}`);
    const workers = writers.map((writer) =>
      startWorker({
        databaseUrl: DATABASE_URL,
        schema: backends.schema,
        sessionId,
        writer,
        count: 100,
        mode: 'auto',
        secretKeyHex,
      }),
    );
    await Promise.all(workers.map((worker) => worker.ready));
    for (const worker of workers) go(worker);
    await Promise.all(workers.map((worker) => worker.done));
    await expectExactHistory(backends, sessionId, writers, 100);
  }, 180_000);
});

describe('postgres message store: concurrent writers in one process', () => {
  const pools: PostgresBackends[] = [];

  afterAll(async () => {
    const [first, ...rest] = pools;
    for (const backends of rest) await backends.close();
    if (first) await destroyTestBackends(first);
  });

  it('10 writers × 100 appends, each on its own pool, mixing expectedSeq, plain appends and batches', async () => {
    const first = await createTestBackends({ poolConfig: { max: 1 } });
    pools.push(first);
    const { postgresBackends } = await import('./postgres-backends.js');
    for (let index = 1; index < 10; index++) {
      pools.push(
        postgresBackends(
          { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
          { schema: first.schema, secretKey: { id: 'k', key: randomBytes(32) } },
        ),
      );
    }
    const sessionId = `session_${randomBytes(8).toString('hex')}`;
    const writers = range(10).map((index) => `w${index}`);
    await Promise.all(
      writers.map(async (writer, writerIndex) => {
        const { messages } = pools[writerIndex]!;
        for (let index = 0; index < 100; index++) {
          const message = {
            role: 'agent' as const,
            content: [{ type: 'text' as const, text: `${writer}:${index}` }],
          };
          if (writerIndex % 3 === 0) {
            for (;;) {
              try {
                const expectedSeq = (await messages.count(sessionId)) + 1;
                await messages.storeMessage(sessionId, message, { expectedSeq });
                break;
              } catch (error) {
                if ((error as { code?: string }).code !== 'STORE_CONFLICT') throw error;
              }
            }
          } else if (writerIndex % 3 === 1 && index % 2 === 0) {
            await messages.storeMessages(sessionId, [
              message,
              {
                role: 'agent',
                content: [{ type: 'text', text: `${writer}:${index + 1}` }],
              },
            ]);
            index++;
          } else {
            await messages.storeMessage(sessionId, message);
          }
        }
      }),
    );
    await expectExactHistory(first, sessionId, writers, 100);
  }, 120_000);
});
