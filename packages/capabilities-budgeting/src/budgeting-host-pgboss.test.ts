import { randomBytes } from 'node:crypto';
import {
  CapabilityRegistry,
  DriverRegistry,
  harnessSchema,
  LLMSIM_DEFAULT_MODEL,
  type LlmUsage,
  PlatformDefinition,
  sessionSchema,
  usageCost,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { PgBossHost } from '@everruns-ts/host-pgboss';
import {
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
  storedEvents,
} from '@everruns-ts/runtime-suites';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BudgetingConfig, budgetingCapability } from './index.js';

// A budget stops a durable turn of host-pgboss exactly as an in-process one: the reason step's
// hook reads the usage from the store, the planner ends the turn with budget_exhausted, and the
// host's `prices` option reaches the hook for cost limits.

const storesSchema = randomSchemaName('budget_stores');
const hostSchema = randomSchemaName('budget_host');
const bossSchema = randomSchemaName('budget_boss');
const USAGE: LlmUsage = { inputTokens: 10, outputTokens: 5 };
const PER_CALL = USAGE.inputTokens + USAGE.outputTokens;
const PRICE = { inputPerMillion: 3000, outputPerMillion: 6000 };

let backends: PostgresBackends;
let host: PgBossHost | undefined;
let driver: LlmSimDriver;

beforeAll(async () => {
  backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema: storesSchema, secretKey: { id: 'k', key: randomBytes(32) } },
  );
  await backends.migrate();
  await backends.providers.setDefaultModel(LLMSIM_DEFAULT_MODEL);
  // Calls check_budget when the latest user message asks for it, else answers.
  driver = new LlmSimDriver(
    LlmSimConfig.fromFunction((request) => {
      const last = request.messages.at(-1);
      const asks =
        last?.role === 'user' &&
        last.content.some((part) => part.type === 'text' && part.text.includes('check_budget'));
      return asks
        ? { toolCalls: [{ id: 'budget_1', name: 'check_budget', arguments: {} }], usage: USAGE }
        : { text: 'durable ok', usage: USAGE };
    }),
  );
  const drivers = new DriverRegistry();
  drivers.register(driver);
  const platform = new PlatformDefinition(
    new CapabilityRegistry().register(budgetingCapability),
    drivers,
  );
  host = await PgBossHost.start({
    connectionString: DATABASE_URL,
    backends,
    platform,
    schema: hostSchema,
    bossSchema,
    pollingIntervalSeconds: 0.5,
    prices: { [LLMSIM_DEFAULT_MODEL.model]: PRICE },
  });
  await host.work({ concurrency: 1 });
});

afterAll(async () => {
  await host?.stop().catch(() => {});
  await backends?.close();
  await dropSchemas(storesSchema, hostSchema, bossSchema);
});

async function createSession(config: BudgetingConfig): Promise<string> {
  const now = new Date().toISOString();
  const harnessId = `harness_${randomBytes(6).toString('hex')}`;
  const sessionId = `session_${randomBytes(6).toString('hex')}`;
  await backends.harnesses.addHarness(
    harnessSchema.parse({
      id: harnessId,
      name: 'budgeted',
      systemPrompt: 'Answer.',
      capabilities: [{ id: 'budgeting', config }],
      createdAt: now,
      updatedAt: now,
    }),
  );
  await backends.sessions.createSession(
    sessionSchema.parse({
      id: sessionId,
      harnessId,
      status: 'started',
      createdAt: now,
      updatedAt: now,
    }),
  );
  return sessionId;
}

async function runDurableTurn(sessionId: string, text: string) {
  const handle = await (host as PgBossHost).submitTextTurn(sessionId, text);
  try {
    return await handle.result({ timeoutMs: 20_000 });
  } catch (error) {
    // Say where the turn stood, for a failure that is a wait.
    throw new Error(
      `turn ${handle.turnId} did not end: ${JSON.stringify(await handle.status())} (${(error as Error).message})`,
    );
  }
}

describe('budgeting in host-pgboss', () => {
  it('a session token budget stops a durable turn with budget_exhausted, persisted as turn.failed', async () => {
    const limit = 2 * PER_CALL - 1;
    const sessionId = await createSession({ session: { maxTokens: limit } });
    const calls = driver.requests.length;
    expect(await runDurableTurn(sessionId, 'one')).toMatchObject({ success: true });
    expect(await runDurableTurn(sessionId, 'two')).toMatchObject({ success: true });
    const stopped = await runDurableTurn(sessionId, 'three');
    expect(stopped).toMatchObject({
      success: false,
      stopReason: 'budget_exhausted',
      error: { code: 'BUDGET_EXHAUSTED' },
    });
    expect(stopped.error?.message).toContain(`${2 * PER_CALL} of ${limit} tokens used`);
    expect(driver.requests.length - calls).toBe(2);
    const failed = (await storedEvents(backends, sessionId)).filter(
      (event) => event.type === 'turn.failed',
    );
    expect(failed).toHaveLength(1);
    expect(failed[0]?.data).toMatchObject({
      stopReason: 'budget_exhausted',
      errorCode: 'BUDGET_EXHAUSTED',
      error: { details: { limitName: 'session.maxTokens', used: 2 * PER_CALL, limit } },
    });
    expect((await backends.sessions.getSession(sessionId))?.status).toBe('idle');
  });

  it('check_budget runs in a durable act step with the session’s usage', async () => {
    const limit = 10 * PER_CALL;
    const sessionId = await createSession({ session: { maxTokens: limit } });
    expect(await runDurableTurn(sessionId, 'warm up')).toMatchObject({ success: true });
    expect(await runDurableTurn(sessionId, 'please check_budget')).toMatchObject({
      success: true,
    });
    const result = (await backends.messages.load(sessionId))
      .flatMap((message) => message.content)
      .find((part) => part.type === 'tool_result');
    expect(result?.type === 'tool_result' && JSON.parse(result.content)).toMatchObject({
      status: 'active',
      budgets: [{ name: 'session.maxTokens', used: 2 * PER_CALL, limit }],
    });
  });

  it('a cost budget is priced with the host’s prices option', async () => {
    const perCall = usageCost(USAGE, PRICE);
    const sessionId = await createSession({ session: { maxCost: perCall } });
    expect(await runDurableTurn(sessionId, 'one')).toMatchObject({ success: true });
    const stopped = await runDurableTurn(sessionId, 'two');
    expect(stopped).toMatchObject({ success: false, stopReason: 'budget_exhausted' });
    expect(stopped.error?.message).toContain('The cost budget of the session is used up');
  });
});
