import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { LLMSIM_DEFAULT_MODEL, type LlmUsage, messageText } from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import {
  HarnessBuilder,
  InProcessRuntimeBuilder,
  SessionBuilder,
  type TurnResult,
} from '@everruns-ts/runtime';
import {
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
  storedEvents,
} from '@everruns-ts/runtime-suites';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { nodeArgsFor } from '@everruns-ts/test-processes';
import { afterAll, describe, expect, it } from 'vitest';
import { budgetingCapability } from './index.js';

// Issue 17: budgets are enforced across two processes sharing PostgreSQL. The budget lives in the
// store (the usage stored with each agent message), so a second Node process, with its own
// runtime and nothing in memory, sees what the first one used, and the other way round.

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = new URL('./test-fixtures/budget-turns.ts', import.meta.url);
const USAGE: LlmUsage = { inputTokens: 10, outputTokens: 5 };
const PER_CALL = USAGE.inputTokens + USAGE.outputTokens;

const schema = randomSchemaName('budget_xproc');
afterAll(async () => {
  await dropSchemas(schema);
});

interface ChildResult {
  pid: number;
  results: Array<Pick<TurnResult, 'success' | 'stopReason'> & { error: TurnResult['error'] }>;
}

/** Runs the turns in a new Node process and returns what it printed. */
function runInSecondProcess(input: Record<string, unknown>): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgsFor(SCRIPT), JSON.stringify(input)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`the second process exited with ${code}: ${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as ChildResult);
      } catch {
        reject(new Error(`the second process printed no result: ${stdout} ${stderr}`));
      }
    });
  });
}

describe('budgets across two processes sharing PostgreSQL', () => {
  it('the second process’s turn is stopped by what the first used, and the first by what the second used', async () => {
    const secretKey = randomBytes(32);
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
      { schema, secretKey: { id: 'k', key: secretKey } },
    );
    await backends.migrate();
    // 40 tokens: reached only by the two processes' calls together.
    const limit = 3 * PER_CALL - 5;
    const harness = new HarnessBuilder(`h_${randomBytes(6).toString('hex')}`, 'Answer.').capability(
      'budgeting',
      { session: { maxTokens: limit } },
    );
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(budgetingCapability)
      .llmSim(LlmSimConfig.fixed('from the first process').withUsage(USAGE))
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .harness(harness.build())
      .session(session.build())
      .build();
    const sessionId = session.sessionId();

    // Process 1 uses 15 of the 40 tokens.
    expect((await runtime.runTextTurn(sessionId, 'first process, turn 1')).success).toBe(true);

    // Process 2: two turns pass (15 and 30 used before them); the third starts at 45 ≥ 40 and is
    // stopped, although process 2 itself used only 30: it counted process 1's call.
    const child = await runInSecondProcess({
      databaseUrl: DATABASE_URL,
      schema,
      secretKeyHex: secretKey.toString('hex'),
      sessionId,
      texts: ['second process, turn 1', 'second process, turn 2', 'second process, turn 3'],
      usage: USAGE,
    });
    expect(child.pid).not.toBe(process.pid);
    expect(child.results.map((result) => [result.success, result.stopReason])).toEqual([
      [true, 'end_turn'],
      [true, 'end_turn'],
      [false, 'budget_exhausted'],
    ]);
    expect(child.results[2]?.error).toMatchObject({
      code: 'BUDGET_EXHAUSTED',
      details: { limitName: 'session.maxTokens', used: 3 * PER_CALL, limit },
    });

    // Process 1 again: its own calls used 15, yet the session's 45 stop it.
    const stopped = await runtime.runTextTurn(sessionId, 'first process, turn 2');
    expect(stopped.success).toBe(false);
    expect(stopped.stopReason).toBe('budget_exhausted');
    expect(stopped.error?.details).toMatchObject({ used: 3 * PER_CALL, limit });

    const answers = (await runtime.messages(sessionId))
      .filter((message) => message.role === 'agent')
      .map(messageText);
    expect(answers).toEqual([
      'from the first process',
      'from the second process',
      'from the second process',
    ]);
    const failed = (await storedEvents(runtime.backends, sessionId)).filter(
      (event) => event.type === 'turn.failed',
    );
    expect(failed.map((event) => (event.data as { stopReason?: string }).stopReason)).toEqual([
      'budget_exhausted',
      'budget_exhausted',
    ]);
    await runtime.close();
  });
});
