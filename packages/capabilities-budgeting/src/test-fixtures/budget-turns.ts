/**
 * The second process of the cross-process budget test. Started as
 * `node --conditions=@everruns-ts/source --import tsx budget-turns.ts '<json>'` with
 * `{ databaseUrl, schema, secretKeyHex, sessionId, texts, usage }`: builds its own in-process
 * runtime on the shared PostgreSQL schema (the budgeting capability registered, a simulated model
 * that reports `usage` for every call), runs one turn per text on the existing session, and
 * prints the results as one JSON line.
 */
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { budgetingCapability } from '../index.js';

interface Input {
  databaseUrl: string;
  schema: string;
  secretKeyHex: string;
  sessionId: string;
  texts: string[];
  usage: { inputTokens: number; outputTokens: number };
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  const backends = postgresBackends(
    { connectionString: input.databaseUrl, poolConfig: { max: 2 } },
    {
      schema: input.schema,
      secretKey: { id: 'k', key: Buffer.from(input.secretKeyHex, 'hex') },
    },
  );
  const runtime = await new InProcessRuntimeBuilder()
    .backends(backends)
    .capability(budgetingCapability)
    .llmSim(LlmSimConfig.fixed('from the second process').withUsage(input.usage))
    .build();
  const results = [];
  for (const text of input.texts) {
    const result = await runtime.runTextTurn(input.sessionId, text);
    results.push({
      success: result.success,
      stopReason: result.stopReason,
      error: result.error ?? null,
    });
  }
  await runtime.close();
  process.stdout.write(`${JSON.stringify({ pid: process.pid, results })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
