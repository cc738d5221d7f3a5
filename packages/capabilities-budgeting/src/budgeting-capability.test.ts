import { randomBytes } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  LLMSIM_DEFAULT_MODEL,
  type LlmUsage,
  type Message,
  type ModelPrices,
  messageText,
  type RuntimeBackends,
  usageCost,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import {
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
  storedEvents,
} from '@everruns-ts/runtime-suites';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUDGETING_CAPABILITY_ID,
  type BudgetingConfig,
  budgetingCapability,
  budgetingConfigSchema,
  type CheckBudgetResult,
} from './index.js';

// The budgeting capability through real turns, on the in-memory stores and on PostgreSQL: the
// budget is read from the store before every model call.

const USAGE: LlmUsage = { inputTokens: 10, outputTokens: 5 };
const PER_CALL = USAGE.inputTokens + USAGE.outputTokens;

const schema = randomSchemaName('budgeting');
const secretKey = { id: 'k', key: randomBytes(32) };

/** A new connection pool on the shared schema (each runtime closes its own on `close()`). */
function openPostgres(): PostgresBackends {
  return postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema, secretKey },
  );
}

beforeAll(async () => {
  const backends = openPostgres();
  await backends.migrate();
  await backends.close();
});

afterAll(async () => {
  await dropSchemas(schema);
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

describe.each(Object.keys(backendsByName))('budgeting on %s', (backendName) => {
  async function build(
    config: BudgetingConfig,
    sim: LlmSimConfig,
    prices?: ModelPrices,
  ): Promise<{ runtime: InProcessRuntime; sessionId: string; driver: LlmSimDriver }> {
    const driver = new LlmSimDriver(sim);
    let builder = new InProcessRuntimeBuilder()
      .backends(backendsByName[backendName]!())
      .capability(testMathCapability)
      .capability(budgetingCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL);
    if (prices) builder = builder.prices(prices);
    const runtime = await builder
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'Answer briefly.')
          .withCapability('test_math')
          .withCapability(BUDGETING_CAPABILITY_ID, config),
      )
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string, driver };
  }

  it('a session token budget stops the turn that would start over it; the failure is persisted and later turns stay stopped', async () => {
    const limit = 3 * PER_CALL - 5; // reached during the third turn's model call
    const { runtime, sessionId, driver } = await build(
      { session: { maxTokens: limit } },
      LlmSimConfig.fixed('ok').withUsage(USAGE),
    );
    for (const text of ['one', 'two', 'three']) {
      const result = await runtime.runTextTurn(sessionId, text);
      expect(result.success).toBe(true);
    }
    expect(driver.requests).toHaveLength(3);
    // The model is told its budget in the system prompt.
    expect(driver.requests[0]?.systemPrompt).toContain(
      `<capability id="budgeting">\nThis session has enforced budgets: ${limit} tokens per session.`,
    );

    const stopped = await runtime.runTextTurn(sessionId, 'four');
    expect(stopped.success).toBe(false);
    expect(stopped.stopReason).toBe('budget_exhausted');
    const used = 3 * PER_CALL;
    expect(stopped.error).toEqual({
      code: 'BUDGET_EXHAUSTED',
      message: `The token budget of the session is used up: ${used} of ${limit} tokens used (budgeting session.maxTokens); the model was not called.`,
      details: {
        limitName: 'session.maxTokens',
        scope: 'session',
        unit: 'tokens',
        used,
        limit,
        capabilityId: 'budgeting',
      },
    });
    expect(driver.requests).toHaveLength(3);
    const stored = await runtime.backends.messages.load(sessionId);
    expect(stored.map(messageText)).toEqual(['one', 'ok', 'two', 'ok', 'three', 'ok', 'four']);

    // Persisted: turn.failed with the stop reason and the error, then session.idled, status idle.
    const events = await storedEvents(runtime.backends, sessionId);
    const failed = events.filter((event) => event.type === 'turn.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.turnId).toBe(stopped.turnId);
    expect(failed[0]?.data).toMatchObject({
      stopReason: 'budget_exhausted',
      errorCode: 'BUDGET_EXHAUSTED',
      error: { code: 'BUDGET_EXHAUSTED', details: { used, limit } },
    });
    expect(events.at(-1)?.type).toBe('session.idled');
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');

    // The session window does not reset: the next turn is stopped too.
    const again = await runtime.runTextTurn(sessionId, 'five');
    expect(again.stopReason).toBe('budget_exhausted');
    expect(driver.requests).toHaveLength(3);
    await runtime.close();
  });

  it('a per-turn token budget stops a tool loop mid-turn, keeps its tool results, and the next turn starts a fresh window', async () => {
    const add = (id: string) => [{ id, name: 'add', arguments: { a: 1, b: 2 } }];
    const { runtime, sessionId, driver } = await build(
      { turn: { maxTokens: 2 * PER_CALL - 1 } },
      LlmSimConfig.fixed('done')
        .withUsage(USAGE)
        .withToolCallSequence([add('c1'), add('c2'), add('c3'), [], []]),
    );
    const first = await runtime.runTextTurn(sessionId, 'keep adding');
    expect(first.success).toBe(false);
    expect(first.stopReason).toBe('budget_exhausted');
    expect(first.error?.details).toMatchObject({
      limitName: 'turn.maxTokens',
      used: 2 * PER_CALL,
      limit: 2 * PER_CALL - 1,
    });
    expect(first.usage).toEqual({
      inputTokens: 2 * USAGE.inputTokens,
      outputTokens: 2 * USAGE.outputTokens,
    });
    expect(driver.requests).toHaveLength(2);
    const results = toolResults(await runtime.backends.messages.load(sessionId));
    expect(results.map((part) => [part.toolCallId, part.isError])).toEqual([
      ['c1', false],
      ['c2', false],
    ]);

    // A fresh turn window: the third scripted call (another add) and the answer both run.
    const second = await runtime.runTextTurn(sessionId, 'once more');
    expect(second.success).toBe(true);
    expect(second.stopReason).not.toBe('budget_exhausted');
    expect(second.response).toBe('done');
    expect(driver.requests).toHaveLength(4);
    await runtime.close();
  });

  it('check_budget reports used, limit and remaining for every limit, priced with the runtime prices', async () => {
    const price = { inputPerMillion: 1000, outputPerMillion: 4000 };
    const prices = { [LLMSIM_DEFAULT_MODEL.model]: price };
    const config = {
      session: { maxTokens: 10 * PER_CALL, maxCost: 1 },
      turn: { maxTokens: 4 * PER_CALL },
    };
    const { runtime, sessionId } = await build(
      config,
      LlmSimConfig.fixed('noted')
        .withUsage(USAGE)
        .withToolCallSequence([[], [{ id: 'b1', name: 'check_budget', arguments: {} }], []]),
      prices,
    );
    expect((await runtime.runTextTurn(sessionId, 'warm up')).success).toBe(true);
    const turn = await runtime.runTextTurn(sessionId, 'how much is left?');
    expect(turn.success).toBe(true);
    const [result] = toolResults(await runtime.backends.messages.load(sessionId));
    expect(result?.isError).toBe(false);
    const report = JSON.parse(result?.content ?? '{}') as CheckBudgetResult;
    // When the tool ran: two calls stored for the session, one for this turn.
    const sessionCost = usageCost(
      { inputTokens: 2 * USAGE.inputTokens, outputTokens: 2 * USAGE.outputTokens },
      price,
    );
    expect(report.status).toBe('active');
    expect(report.budgets.map((entry) => [entry.name, entry.used, entry.limit])).toEqual([
      ['session.maxTokens', 2 * PER_CALL, 10 * PER_CALL],
      ['session.maxCost', expect.closeTo(sessionCost, 12), 1],
      ['turn.maxTokens', PER_CALL, 4 * PER_CALL],
    ]);
    expect(report.budgets[0]).toMatchObject({
      scope: 'session',
      unit: 'tokens',
      remaining: 8 * PER_CALL,
      percentRemaining: 80,
      status: 'active',
    });
    expect(report.budgets[1]?.remaining).toBeCloseTo(1 - sessionCost, 12);
    expect(report.budgets[2]).toMatchObject({ remaining: 3 * PER_CALL, percentRemaining: 75 });
    expect(report.hint).toContain('75%');
    await runtime.close();
  });

  it('check_budget says warning when little of a limit is left, and exhausted when the next call will be refused', async () => {
    const check = (id: string) => [{ id, name: 'check_budget', arguments: {} }];
    // 15 of 18 tokens per turn after the first call: 16.7% left, under the warning threshold.
    const low = await build(
      { turn: { maxTokens: PER_CALL + 3 } },
      LlmSimConfig.fixed('ok')
        .withUsage(USAGE)
        .withToolCallSequence([check('w1'), []]),
    );
    expect((await low.runtime.runTextTurn(low.sessionId, 'check')).success).toBe(true);
    const [warning] = toolResults(await low.runtime.backends.messages.load(low.sessionId));
    const warned = JSON.parse(warning?.content ?? '{}') as CheckBudgetResult;
    expect(warned.status).toBe('warning');
    expect(warned.budgets[0]).toMatchObject({
      used: PER_CALL,
      remaining: 3,
      percentRemaining: Math.round((3 / (PER_CALL + 3)) * 1000) / 10,
      status: 'active',
    });
    expect(warned.hint).toContain('finish the core task');
    await low.runtime.close();

    // The first call uses the whole session budget: the tool says so, and the next call is refused.
    const spent = await build(
      { session: { maxTokens: PER_CALL } },
      LlmSimConfig.fixed('ok')
        .withUsage(USAGE)
        .withToolCallSequence([check('x1'), []]),
    );
    const stopped = await spent.runtime.runTextTurn(spent.sessionId, 'check');
    expect(stopped.stopReason).toBe('budget_exhausted');
    const [exhausted] = toolResults(await spent.runtime.backends.messages.load(spent.sessionId));
    expect(JSON.parse(exhausted?.content ?? '{}')).toMatchObject({
      status: 'exhausted',
      budgets: [{ name: 'session.maxTokens', used: PER_CALL, remaining: 0, status: 'exhausted' }],
    });
    expect(spent.driver.requests).toHaveLength(1);
    await spent.runtime.close();
  });

  it('a cost budget stops the turn once the priced usage reaches it', async () => {
    const price = { inputPerMillion: 2000, outputPerMillion: 8000 };
    const perCall = usageCost(USAGE, price);
    const { runtime, sessionId, driver } = await build(
      { session: { maxCost: perCall * 1.5 } },
      LlmSimConfig.fixed('ok').withUsage(USAGE),
      { [LLMSIM_DEFAULT_MODEL.model]: price },
    );
    expect((await runtime.runTextTurn(sessionId, 'one')).success).toBe(true);
    expect((await runtime.runTextTurn(sessionId, 'two')).success).toBe(true);
    const stopped = await runtime.runTextTurn(sessionId, 'three');
    expect(stopped.stopReason).toBe('budget_exhausted');
    expect(stopped.error?.message).toContain('The cost budget of the session is used up');
    expect(stopped.error?.details).toMatchObject({ limitName: 'session.maxCost', unit: 'cost' });
    expect(stopped.error?.details?.used).toBeCloseTo(2 * perCall, 12);
    expect(driver.requests).toHaveLength(2);
    await runtime.close();
  });

  it('a cost budget without a price for the model refuses the model call with CONFIGURATION instead of passing unmetered', async () => {
    const { runtime, sessionId, driver } = await build(
      { session: { maxCost: 5 } },
      LlmSimConfig.fixed('ok').withUsage(USAGE),
      { 'some-other-model': { inputPerMillion: 1, outputPerMillion: 1 } },
    );
    const refused = await runtime.runTextTurn(sessionId, 'hello');
    expect(refused.success).toBe(false);
    expect(refused.stopReason).toBe('error');
    expect(refused.error?.code).toBe('CONFIGURATION');
    expect(refused.error?.message).toContain(`no price for ${LLMSIM_DEFAULT_MODEL.model}`);
    expect(refused.error?.details).toMatchObject({
      limitName: 'session.maxCost',
      unpricedModels: [LLMSIM_DEFAULT_MODEL.model],
      capabilityId: 'budgeting',
    });
    expect(driver.requests).toHaveLength(0);
    await runtime.close();
  });

  it('without limits the capability stops nothing and check_budget says no_budgets', async () => {
    const { runtime, sessionId, driver } = await build(
      {},
      LlmSimConfig.fixed('fine')
        .withUsage({ inputTokens: 1_000_000, outputTokens: 1_000_000 })
        .withToolCallSequence([[{ id: 'b1', name: 'check_budget', arguments: {} }], [], []]),
    );
    expect((await runtime.runTextTurn(sessionId, 'one')).success).toBe(true);
    expect((await runtime.runTextTurn(sessionId, 'two')).success).toBe(true);
    const [result] = toolResults(await runtime.backends.messages.load(sessionId));
    expect(JSON.parse(result?.content ?? '{}')).toMatchObject({
      status: 'no_budgets',
      budgets: [],
    });
    expect(driver.requests[0]?.systemPrompt ?? '').not.toContain('capability id="budgeting"');
    await runtime.close();
  });
});

describe('budgeting configuration', () => {
  it('rejects unknown fields, non-positive and fractional token limits', () => {
    expect(budgetingConfigSchema.safeParse({ session: { maxTokens: 10 } }).success).toBe(true);
    expect(budgetingConfigSchema.safeParse(undefined).success).toBe(true);
    expect(budgetingConfigSchema.safeParse({ session: { tokens: 10 } }).success).toBe(false);
    expect(budgetingConfigSchema.safeParse({ turn: { maxTokens: 0 } }).success).toBe(false);
    expect(budgetingConfigSchema.safeParse({ turn: { maxTokens: 1.5 } }).success).toBe(false);
    expect(budgetingConfigSchema.safeParse({ turn: { maxCost: -1 } }).success).toBe(false);
  });

  it('a bad configuration fails the turn naming the field, before any model call', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const runtime = await new InProcessRuntimeBuilder()
      .capability(budgetingCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session.harness('h', '').withCapability('budgeting', { session: { maxTokens: -3 } }),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const outcome = await runtime.runTextTurn(sessionId, 'hi').then(
      (result) => result.error,
      (error: unknown) => error as { code?: string; message?: string },
    );
    expect(outcome?.message).toContain('maxTokens');
    expect(driver.requests).toHaveLength(0);
    await runtime.close();
  });
});
