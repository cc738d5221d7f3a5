import { InProcessRuntimeBuilder, LlmSimConfig, SessionBuilder } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

// runtime.sessionUsage over PostgreSQL: the sum of every turn stored by any process sharing the
// database, read with one aggregate statement however long the session is.

describe('sessionUsage on PostgreSQL', () => {
  let first: PostgresBackends;
  let second: PostgresBackends;

  beforeAll(async () => {
    first = await createTestBackends();
    // A second process: its own pool on the same schema.
    second = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 2 } },
      { schema: first.schema, secretKey: TEST_SECRET_KEY },
    );
  });
  afterAll(async () => {
    await second.close();
    await destroyTestBackends(first);
  });

  it('sums the turns of two runtimes sharing the database, priced per model, in one statement', async () => {
    const answers = (model: string, base: number) =>
      LlmSimConfig.fromFunction((_request, { index }) => ({
        text: `answer ${index}`,
        model,
        usage: { inputTokens: base + index, outputTokens: 10, cachedInputTokens: 100 },
      }));
    const prices = {
      'model-a': { inputPerMillion: 1, outputPerMillion: 2, cachedInputPerMillion: 0.5 },
      'model-b': { inputPerMillion: 3, outputPerMillion: 4 },
    };
    const harness = { id: 'usage-harness', name: 'Usage', systemPrompt: 'Answer.' };
    const session = new SessionBuilder(harness.id);
    const one = await new InProcessRuntimeBuilder()
      .backends(first)
      .llmSim(answers('model-a', 1000))
      .prices(prices)
      .harness(harness)
      .session(session.build())
      .build();
    const two = await new InProcessRuntimeBuilder()
      .backends(second)
      .llmSim(answers('model-b', 5000))
      .prices(prices)
      .build();
    const sessionId = session.sessionId();

    const costs: number[] = [];
    for (let turn = 0; turn < 3; turn++) {
      costs.push((await one.runTextTurn(sessionId, `one ${turn}`)).cost ?? Number.NaN);
      costs.push((await two.runTextTurn(sessionId, `two ${turn}`)).cost ?? Number.NaN);
    }

    const before = first.queryCount();
    const usage = await one.sessionUsage(sessionId);
    // The session lookup and the aggregate: never the messages.
    expect(first.queryCount() - before).toBe(2);
    expect(usage.modelCalls).toBe(6);
    expect(usage.byModel).toEqual([
      {
        model: 'model-a',
        modelCalls: 3,
        usage: { inputTokens: 3003, outputTokens: 30, cachedInputTokens: 300 },
        cost: (2703 * 1 + 300 * 0.5 + 30 * 2) / 1e6,
      },
      {
        model: 'model-b',
        modelCalls: 3,
        usage: { inputTokens: 15003, outputTokens: 30, cachedInputTokens: 300 },
        cost: (15003 * 3 + 30 * 4) / 1e6,
      },
    ]);
    expect(usage.usage).toEqual({ inputTokens: 18006, outputTokens: 60, cachedInputTokens: 600 });
    expect(usage.cost).toBeCloseTo(
      costs.reduce((sum, cost) => sum + cost, 0),
      12,
    );
    expect(await two.sessionUsage(sessionId)).toEqual(usage);
  });
});
