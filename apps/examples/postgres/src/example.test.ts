import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { messageText } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type PostgresExampleOptions,
  runPostgresMathSession,
  type SessionReadBack,
} from './example.js';

/**
 * Node's arguments for a TypeScript child process. Under `pnpm test`, which builds every package
 * first (`EVERRUNS_TEST_BUILT=1`), workspace packages load from their fresh `dist`, so the child
 * does not transpile every package's sources on start; a direct vitest run loads the sources.
 */
const TSX_ARGS =
  process.env.EVERRUNS_TEST_BUILT === '1'
    ? ['--import', 'tsx']
    : ['--conditions=@everruns-ts/source', '--import', 'tsx'];

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const range = (count: number) => Array.from({ length: count }, (_, index) => index + 1);

async function adminQuery(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at DATABASE_URL (${(error as Error).message}). The example's tests run against a real server and never skip: start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set DATABASE_URL.`,
    );
  }
  try {
    return await client.query(text, values);
  } finally {
    await client.end().catch(() => {});
  }
}

describe('postgres example', () => {
  const options: PostgresExampleOptions = {
    connectionString: DATABASE_URL,
    schema: `everruns_example_${randomBytes(6).toString('hex')}`,
    secretKeyHex: randomBytes(32).toString('hex'),
  };

  beforeAll(async () => {
    await adminQuery('SELECT 1');
  });
  afterAll(async () => {
    await adminQuery(`DROP SCHEMA IF EXISTS "${options.schema}" CASCADE`);
  });

  it('runs the math session on PostgreSQL and a second process reads it back', async () => {
    const { sessionId, result } = await runPostgresMathSession(options);
    expect(result).toMatchObject({
      success: true,
      response: '4',
      toolCallsCount: 1,
      iterations: 2,
    });

    const child = spawnSync(
      process.execPath,
      [...TSX_ARGS, fileURLToPath(new URL('./read-back.ts', import.meta.url)), sessionId, '--json'],
      {
        cwd: fileURLToPath(new URL('../../../../', import.meta.url)),
        encoding: 'utf8',
        env: {
          ...process.env,
          DATABASE_URL,
          EVERRUNS_SCHEMA: options.schema,
          EVERRUNS_SECRET_KEY: options.secretKeyHex,
        },
      },
    );
    expect(child.status, child.stderr).toBe(0);
    const readBack = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '') as SessionReadBack;
    expect(readBack.session).toMatchObject({
      id: sessionId,
      title: 'Math on PostgreSQL',
      status: 'idle',
    });
    expect(readBack.messages.map((message) => [message.seq, message.role])).toEqual([
      [1, 'user'],
      [2, 'agent'],
      [3, 'tool_result'],
      [4, 'agent'],
    ]);
    expect(messageText(readBack.messages[3]!)).toBe('4');
    expect(readBack.eventTypes[0]).toBe('input.message');
    expect(readBack.eventTypes.at(-1)).toBe('session.idled');
  }, 60_000);

  it('runs 100 runtime turns while the store connections are terminated every 200 ms, losing and duplicating nothing', async () => {
    const applicationName = `everruns_example_${randomBytes(6).toString('hex')}`;
    const backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 4, application_name: applicationName } },
      {
        schema: options.schema,
        secretKey: { id: 'example-key', key: options.secretKeyHex },
        retry: { maxAttempts: 12, initialDelayMs: 10, maxDelayMs: 250 },
      },
    );
    await backends.migrate();
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(testMathCapability)
      // Each turn: add(n, 1) as a tool call, then the tool's result as the answer.
      .llmSim(
        LlmSimConfig.fromFunction((request) => {
          const last = request.messages.at(-1);
          if (last?.role === 'tool_result') {
            const part = last.content[0];
            const result = part?.type === 'tool_result' ? JSON.parse(part.content).result : '?';
            return { text: String(result), toolCalls: [] };
          }
          const number = Number(messageText(last ?? { content: [] }));
          return { text: '', toolCalls: [{ name: 'add', arguments: { a: number, b: 1 } }] };
        }),
      )
      .singleSession((session) => {
        session.withCapability('test_math');
      })
      .build();
    const sessionId = runtime.defaultSessionId()!;

    const admin = new pg.Client({ connectionString: DATABASE_URL });
    admin.on('error', () => {});
    await admin.connect();
    let terminated = 0;
    let running = true;
    const terminator = (async () => {
      while (running) {
        const result = await admin.query(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
            WHERE application_name = $1 AND pid <> pg_backend_pid()`,
          [applicationName],
        );
        terminated += result.rows.filter((row) => row.killed).length;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();

    try {
      for (const turn of range(100)) {
        const result = await runtime.runTextTurn(sessionId, String(turn));
        expect(result, `turn ${turn}`).toMatchObject({ success: true, response: String(turn + 1) });
      }
    } finally {
      running = false;
      await terminator;
      await admin.end();
    }
    expect(terminated).toBeGreaterThan(0);

    const messages = await backends.messages.load(sessionId);
    expect(messages.map((message) => message.seq)).toEqual(range(400));
    expect(new Set(messages.map((message) => message.id)).size).toBe(400);
    for (const turn of range(100)) {
      const inTurn = messages.slice((turn - 1) * 4, turn * 4);
      expect(inTurn.map((message) => message.role)).toEqual([
        'user',
        'agent',
        'tool_result',
        'agent',
      ]);
      expect(new Set(inTurn.map((message) => message.turnId)).size).toBe(1);
      expect(messageText(inTurn[0]!)).toBe(String(turn));
      expect(messageText(inTurn[3]!)).toBe(String(turn + 1));
    }
    const events = await backends.events.loadEvents(sessionId, { limit: 10_000 });
    expect(events.map((event) => event.seq)).toEqual(range(events.length));
    expect(events.filter((event) => event.type === 'turn.completed').length).toBe(100);
    await runtime.close();
  }, 240_000);
});
