import { randomBytes } from 'node:crypto';
import { subagentsCapability } from '@everruns-ts/capabilities-subagents';
import {
  LLMSIM_DEFAULT_MODEL,
  type LlmUsage,
  type Message,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { DATABASE_URL, dropSchemas, randomSchemaName } from '@everruns-ts/runtime-suites';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUDGETING_CAPABILITY_ID, budgetingCapability, type CheckBudgetResult } from './index.js';

// Subagents count against their parent's budget: what a child session spends is part of the
// parent's session usage and of the usage of the parent turn whose tool call started it.

const PARENT_USAGE: LlmUsage = { inputTokens: 10, outputTokens: 5 };
const CHILD_USAGE: LlmUsage = { inputTokens: 60, outputTokens: 40 };
const GRANDCHILD_USAGE: LlmUsage = { inputTokens: 200, outputTokens: 100 };

const schema = randomSchemaName('budget_children');
const secretKey = { id: 'k', key: randomBytes(32) };

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

const id = () => randomBytes(6).toString('hex');

function lastToolResult(message: Message | undefined) {
  return message?.content.find((part) => part.type === 'tool_result');
}

describe.each(Object.keys(backendsByName))('budgets with subagents on %s', (backendName) => {
  /**
   * One simulated model for every session, routed by the `ROLE:` marker of the system prompt:
   * the lead delegates to a worker, which delegates to a helper (two levels of children).
   */
  async function build(budget: Record<string, unknown>) {
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction((request) => {
        const role = [...request.systemPrompt.matchAll(/ROLE:([a-z]+)/g)].at(-1)?.[1];
        const last = request.messages.at(-1);
        const result = lastToolResult(last);
        if (role === 'helper') return { text: 'helped', usage: GRANDCHILD_USAGE };
        if (role === 'worker') {
          if (result) return { text: 'worked', usage: CHILD_USAGE };
          return {
            toolCalls: [
              {
                id: `call_${id()}`,
                name: 'spawn_agent',
                arguments: { name: 'Helper', instructions: 'help', agent: 'helper' },
              },
            ],
            usage: CHILD_USAGE,
          };
        }
        if (result) return { text: 'done', usage: PARENT_USAGE };
        const text = last?.content.find((part) => part.type === 'text');
        if (text?.type === 'text' && text.text === 'check') {
          return {
            toolCalls: [{ id: `call_${id()}`, name: 'check_budget', arguments: {} }],
            usage: PARENT_USAGE,
          };
        }
        return {
          toolCalls: [
            {
              id: `call_${id()}`,
              name: 'spawn_agent',
              arguments: { name: 'Worker', instructions: 'work', agent: 'worker' },
            },
          ],
          usage: PARENT_USAGE,
        };
      }),
    );
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backendsByName[backendName]!())
      .capability(subagentsCapability)
      .capability(budgetingCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .build();
    const harness = `h_${id()}`;
    const agents = [
      { name: 'worker', description: 'works', systemPrompt: 'ROLE:worker' },
      { name: 'helper', description: 'helps', systemPrompt: 'ROLE:helper' },
    ];
    await runtime.createHarness({
      id: harness,
      name: harness,
      systemPrompt: 'ROLE:lead',
      capabilities: [{ id: 'subagents', config: { agents } }],
    });
    const session = await runtime.createSession({
      harnessId: harness,
      capabilities: [{ id: BUDGETING_CAPABILITY_ID, config: budget }],
    });
    return { runtime, sessionId: session.id, driver };
  }

  const tokens = (usage: LlmUsage) => usage.inputTokens + usage.outputTokens;

  it("stops the parent's turn once its children's usage reaches the turn's token budget", async () => {
    // The lead's first call (15), the worker's two calls (200) and the helper's call (300).
    const spent = tokens(PARENT_USAGE) + 2 * tokens(CHILD_USAGE) + tokens(GRANDCHILD_USAGE);
    const { runtime, sessionId, driver } = await build({ turn: { maxTokens: spent } });
    const turn = await runtime.runTextTurn(sessionId, 'delegate');
    expect(turn.success).toBe(false);
    expect(turn.stopReason).toBe('budget_exhausted');
    expect(turn.error?.details).toMatchObject({ scope: 'turn', used: spent, limit: spent });
    // The lead was called once: its second call was refused by the budget its children used.
    const leadCalls = driver.requests.filter(
      (request) => [...request.systemPrompt.matchAll(/ROLE:([a-z]+)/g)].at(-1)?.[1] === 'lead',
    );
    expect(leadCalls).toHaveLength(1);
    await runtime.close();
  });

  it('check_budget counts the children of earlier turns in the session and not in a later turn', async () => {
    const { runtime, sessionId } = await build({
      session: { maxTokens: 10_000 },
      turn: { maxTokens: 10_000 },
    });
    const first = await runtime.runTextTurn(sessionId, 'delegate');
    expect(first.success).toBe(true);
    const second = await runtime.runTextTurn(sessionId, 'check');
    expect(second.success).toBe(true);
    const messages = await runtime.messages(sessionId);
    const checks = messages
      .flatMap((message) => message.content)
      .filter((part) => part.type === 'tool_result')
      .map((part) => (part.type === 'tool_result' ? part.content : ''))
      .filter((content) => content.includes('"budgets"'))
      .map((content) => JSON.parse(content) as CheckBudgetResult);
    const last = checks.at(-1);
    const children = 2 * tokens(CHILD_USAGE) + tokens(GRANDCHILD_USAGE);
    // The session: the first turn's two lead calls and its children, then this turn's first call.
    const sessionUsed = 3 * tokens(PARENT_USAGE) + children;
    expect(last?.budgets.find((entry) => entry.scope === 'session')?.used).toBe(sessionUsed);
    // This turn started no child: only its own call counts.
    expect(last?.budgets.find((entry) => entry.scope === 'turn')?.used).toBe(tokens(PARENT_USAGE));
    await runtime.close();
  });
});
