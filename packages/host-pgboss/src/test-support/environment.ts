import { randomBytes } from 'node:crypto';
import { type Message, newId } from '@everruns-ts/core';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { DATABASE_URL, dropSchemas, randomSchemaName } from './database.js';
import { createFixtureTables, type FixtureConfig, SCRIPTED_MODEL } from './fixture.js';

/** The schemas, stores and session factory of one test file. */
export interface TestEnvironment {
  /** A fixture config for this environment (one queue per call of {@link configFor}). */
  configFor(overrides?: Partial<FixtureConfig>): FixtureConfig;
  backends: PostgresBackends;
  pool: pg.Pool;
  harnessId: string;
  /** A new session on the test harness. */
  createSession(options?: { maxIterations?: number }): Promise<string>;
  modelCalls(
    sessionId: string,
  ): Promise<Array<{ iteration: number; answerAlreadyStored: boolean }>>;
  effects(sessionId: string): Promise<Array<{ toolCallId: string; tool: string }>>;
  destroy(): Promise<void>;
}

/** Creates schemas, migrates the stores and registers the scripted model and the harness. */
export async function createTestEnvironment(name: string): Promise<TestEnvironment> {
  const storesSchema = randomSchemaName(`${name}_stores`);
  const bossSchema = randomSchemaName(`${name}_boss`);
  const hostSchema = randomSchemaName(`${name}_host`);
  const testSchema = randomSchemaName(`${name}_test`);
  const secretKeyHex = randomBytes(32).toString('hex');
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  pool.on('error', () => {});
  const backends = postgresBackends(
    { pool },
    { schema: storesSchema, secretKey: { id: 'test', key: secretKeyHex } },
  );
  await backends.migrate();
  await createFixtureTables(pool, testSchema);
  await backends.providers.setDefaultModel({ ...SCRIPTED_MODEL });
  const harnessId = newId('harness');
  await backends.harnesses.addHarness({
    id: harnessId,
    name: 'durable',
    systemPrompt: 'You run tools.',
    tags: [],
    capabilities: [{ id: 'effects' }],
    initialFiles: [],
    status: 'active',
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  });
  let queues = 0;
  return {
    backends,
    pool,
    harnessId,
    configFor(overrides = {}) {
      queues += 1;
      return {
        databaseUrl: DATABASE_URL,
        storesSchema,
        bossSchema,
        hostSchema,
        testSchema,
        queue: `steps-${queues}-${randomBytes(3).toString('hex')}`,
        secretKeyHex,
        ...overrides,
      };
    },
    async createSession(options = {}) {
      const now = new Date().toISOString();
      const session = await backends.sessions.createSession({
        id: newId('session'),
        harnessId,
        tags: [],
        capabilities: [],
        initialFiles: [],
        status: 'started',
        createdAt: now,
        updatedAt: now,
        ...(options.maxIterations ? { maxIterations: options.maxIterations } : {}),
      });
      return session.id;
    },
    async modelCalls(sessionId) {
      const { rows } = await pool.query<{ iteration: number; answer_already_stored: boolean }>(
        `SELECT iteration, answer_already_stored FROM "${testSchema}".model_calls WHERE session_id = $1 ORDER BY id`,
        [sessionId],
      );
      return rows.map((row) => ({
        iteration: row.iteration,
        answerAlreadyStored: row.answer_already_stored,
      }));
    },
    async effects(sessionId) {
      const { rows } = await pool.query<{ tool_call_id: string; tool: string }>(
        `SELECT tool_call_id, tool FROM "${testSchema}".effects WHERE session_id = $1 ORDER BY id`,
        [sessionId],
      );
      return rows.map((row) => ({ toolCallId: row.tool_call_id, tool: row.tool }));
    },
    async destroy() {
      await backends.close();
      await pool.end().catch(() => {});
      await dropSchemas(storesSchema, bossSchema, hostSchema, testSchema);
    },
  };
}

/** The invariants of every finished turn's history: contiguous seq, keys once, one result per call. */
export function historyProblems(messages: Message[]): string[] {
  const problems: string[] = [];
  messages.forEach((message, index) => {
    if (message.seq !== index + 1) problems.push(`seq ${message.seq} at position ${index + 1}`);
  });
  const keys = new Set<string>();
  for (const message of messages) {
    if (!message.idempotencyKey) continue;
    if (keys.has(message.idempotencyKey)) problems.push(`duplicate key ${message.idempotencyKey}`);
    keys.add(message.idempotencyKey);
  }
  const calls = new Map<string, number>();
  const results = new Map<string, number>();
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_call') calls.set(part.id, (calls.get(part.id) ?? 0) + 1);
      if (part.type === 'tool_result') {
        results.set(part.toolCallId, (results.get(part.toolCallId) ?? 0) + 1);
      }
    }
  }
  for (const [id, count] of calls) {
    if (count !== 1) problems.push(`tool call ${id} appears ${count} times`);
    if (results.get(id) !== 1) problems.push(`tool call ${id} has ${results.get(id) ?? 0} results`);
  }
  for (const id of results.keys()) if (!calls.has(id)) problems.push(`orphan result ${id}`);
  return problems;
}

/** The result part of a tool call. */
export function toolResult(messages: Message[], toolCallId: string) {
  for (const message of messages) {
    for (const part of message.content) {
      if (part.type === 'tool_result' && part.toolCallId === toolCallId) return part;
    }
  }
  return undefined;
}
