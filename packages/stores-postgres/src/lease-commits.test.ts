import { makeSession } from '@everruns-ts/store-conformance';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, DATABASE_URL, destroyTestBackends } from './test-support/database.js';
import { mathRuntime } from './test-support/math-runtime.js';

interface Sent {
  text: string;
  values: unknown[];
}

/** Records the statements with parameters that every `pg` client sends while `recording`. */
function recordStatements() {
  const sent: Sent[] = [];
  let recording = false;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    if (recording && typeof config === 'object' && config !== null && 'text' in config) {
      const { text, values } = config as { text: string; values?: unknown[] };
      if (values) sent.push({ text, values });
    } else if (recording && typeof config === 'string' && Array.isArray(rest[0])) {
      sent.push({ text: config, values: rest[0] as unknown[] });
    }
    return (original as (...args: unknown[]) => unknown).call(this, config, ...rest);
  } as typeof original;
  return {
    start() {
      sent.length = 0;
      recording = true;
    },
    stop(): Sent[] {
      recording = false;
      return [...sent];
    },
    restore() {
      pg.Client.prototype.query = original;
    },
  };
}

/**
 * The `synchronous_commit` a statement leaves for the rest of its own transaction: the statement
 * runs again inside a transaction that is rolled back (nothing it writes stays).
 */
async function commitSettingOf(statement: Sent): Promise<string> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(statement.text, statement.values);
    const setting = await client.query<{ value: string }>(
      "SELECT current_setting('synchronous_commit') AS value",
    );
    return setting.rows[0]!.value;
  } finally {
    await client.query('ROLLBACK').catch(() => {});
    await client.end();
  }
}

describe('lease writes commit without waiting for the disk; message writes wait', () => {
  let backends: PostgresBackends;
  let recorder: ReturnType<typeof recordStatements>;
  let serverSetting: string;

  beforeAll(async () => {
    backends = await createTestBackends();
    recorder = recordStatements();
    const setting = await backends.pool.query<{ value: string }>(
      "SELECT current_setting('synchronous_commit') AS value",
    );
    serverSetting = setting.rows[0]!.value;
  });
  afterAll(async () => {
    recorder.restore();
    await destroyTestBackends(backends);
  });

  it('the server under test waits for the flush by default', () => {
    // Otherwise the checks below could not tell the statements apart.
    expect(serverSetting).not.toBe('off');
  });

  it("a turn's lease claim turns the wait off for its own transaction only; its message writes keep it", async () => {
    const runtime = await mathRuntime(backends);
    const session = await runtime.createSession({ harnessId: 'math' });
    await runtime.runTextTurn(session.id, 'What is 2 + 2?');
    recorder.start();
    const result = await runtime.runTextTurn(session.id, 'What is 2 + 2?');
    const sent = recorder.stop();
    expect(result.response).toBe('4');
    const writesMessage = (statement: Sent) => /INSERT INTO \S+"messages"/.test(statement.text);
    const claims = sent.filter(
      (statement) => !writesMessage(statement) && /SET turn_lease_holder = \$/.test(statement.text),
    );
    expect(claims).toHaveLength(1);
    const messageWrites = sent.filter(writesMessage);
    expect(messageWrites).toHaveLength(4);
    // The turn's lease is released now: a claim runs again and claims it.
    expect(await commitSettingOf(claims[0]!)).toBe('off');
    for (const write of messageWrites) {
      expect(write.text).not.toContain('synchronous_commit');
    }
    // Every pooled connection is back to the server's setting.
    const clients = await Promise.all(Array.from({ length: 4 }, () => backends.pool.connect()));
    try {
      for (const client of clients) {
        const setting = await client.query<{ value: string }>(
          "SELECT current_setting('synchronous_commit') AS value",
        );
        expect(setting.rows[0]!.value).toBe(serverSetting);
      }
    } finally {
      for (const client of clients) client.release();
    }
  });

  it('claimTurnLease and renewTurnLease commit without the wait; a refused claim writes nothing', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    recorder.start();
    const lease = await backends.sessions.claimTurnLease(session.id, 'holder-a', 30_000);
    const renewed = await backends.sessions.renewTurnLease(session.id, 'holder-a', 60_000);
    const sent = recorder.stop();
    expect(lease.holderId).toBe('holder-a');
    expect(renewed?.holderId).toBe('holder-a');
    expect(sent).toHaveLength(2);
    for (const statement of sent) expect(await commitSettingOf(statement)).toBe('off');
    await expect(
      backends.sessions.claimTurnLease(session.id, 'holder-b', 30_000),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS' });
    expect((await backends.sessions.getTurnLease(session.id))?.holderId).toBe('holder-a');
  });
});
