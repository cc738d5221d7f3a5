import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';
import { mathRuntime } from './test-support/math-runtime.js';

/** The statements sent on `pool` while recording: text and whether it went by name. */
function recordStatements(pool: pg.Pool) {
  const sent: { text: string; named: boolean }[] = [];
  let recording = false;
  const record = (config: unknown) => {
    if (!recording) return;
    const named = typeof config === 'object' && config !== null && 'name' in config;
    const text = named ? (config as unknown as { text: string }).text : String(config);
    sent.push({ text: text.replace(/\s+/g, ' ').trim(), named });
  };
  const poolQuery = pool.query.bind(pool);
  let inPoolQuery = false;
  pool.query = ((config: unknown, ...rest: unknown[]) => {
    record(config);
    inPoolQuery = true;
    try {
      return (poolQuery as (...args: unknown[]) => unknown)(config, ...rest);
    } finally {
      inPoolQuery = false;
    }
  }) as typeof pool.query;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  pool.connect = ((...args: unknown[]) => {
    // pool.query checks a client out with a callback: its statement is recorded above.
    if (inPoolQuery || args.length > 0) return connect(...args);
    return wrapClient(connect() as Promise<pg.PoolClient>);
  }) as typeof pool.connect;
  const wrapClient = async (checkout: Promise<pg.PoolClient>) => {
    const client = await checkout;
    const clientQuery = client.query.bind(client);
    client.query = ((config: unknown, ...rest: unknown[]) => {
      record(config);
      return (clientQuery as (...args: unknown[]) => unknown)(config, ...rest);
    }) as typeof client.query;
    return client;
  };
  return {
    sent,
    start() {
      sent.length = 0;
      recording = true;
    },
    stop() {
      recording = false;
      return [...sent];
    },
  };
}

describe('statements of a math turn on PostgreSQL', () => {
  let backends: PostgresBackends;
  let recorder: ReturnType<typeof recordStatements>;

  beforeAll(async () => {
    backends = await createTestBackends();
    recorder = recordStatements(backends.pool);
  });
  afterAll(() => destroyTestBackends(backends));

  for (const idempotent of [false, true]) {
    it(`counts the statements of a turn with ${idempotent ? 'an idempotent' : 'a non-idempotent'} tool, each with parameters sent by name`, async () => {
      const runtime = await mathRuntime(backends, { idempotent });
      const session = await runtime.createSession({ harnessId: 'math' });
      // The first turn also sets up the session's event sequence; the second is the steady state.
      await runtime.runTextTurn(session.id, 'What is 2 + 2?');
      const before = backends.queryCount();
      recorder.start();
      const result = await runtime.runTextTurn(session.id, 'What is 2 + 2?');
      const sent = recorder.stop();
      if (process.env.SHOW_SQL)
        console.log(
          sent.map((s, i) => `${i} ${s.named ? 'N' : '-'} ${s.text.slice(0, 160)}`).join('\n'),
        );
      expect(result.response).toBe('4');
      const statements = backends.queryCount() - before;
      expect(sent).toHaveLength(statements);
      // An idempotent tool is not claimed in the journal (it may run again after a crash); another
      // is claimed in the statement that stores the answer making the call, with its
      // `tool.started`: the same count either way.
      expect(statements).toBe(STATEMENTS_PER_MATH_TURN);
      const claimsWithAnswer = sent.filter(
        (statement) =>
          statement.text.includes('value_claimed AS ( INSERT INTO') &&
          /INSERT INTO \S+"messages"/.test(statement.text),
      );
      expect(claimsWithAnswer).toHaveLength(idempotent ? 0 : 1);
      expect(
        sent.filter((statement) => /claimed AS \(\s*INSERT INTO/.test(statement.text)),
      ).toEqual(claimsWithAnswer);
      // The answer's write ends the turn: it releases the lease and forgets the turn's journal.
      const last = sent[sent.length - 1]!.text;
      expect(last).toMatch(/INSERT INTO \S+"messages"/);
      expect(last).toContain('turn_lease_holder = NULL');
      expect(last).toContain('forgotten AS ( DELETE FROM');
      expect((await backends.sessions.getSession(session.id))?.status).toBe('idle');
      expect(await backends.sessions.getTurnLease(session.id)).toBeNull();
      expect(await backends.storage.listKeys(session.id)).toEqual([]);
      expect(
        sent.filter((statement) => !statement.named).map((statement) => statement.text),
      ).toEqual(
        sent
          .filter((statement) => /^(BEGIN|COMMIT|ROLLBACK)/.test(statement.text))
          .map((statement) => statement.text),
      );
    });
  }

  it('sends two statements more for a streamed turn: each reason.started goes before its pieces', async () => {
    const runtime = await mathRuntime(backends, { idempotent: false });
    const session = await runtime.createSession({ harnessId: 'math' });
    await runtime.runTextTurn(session.id, 'What is 2 + 2?');
    recorder.start();
    const stream = runtime.streamTextTurn(session.id, 'What is 2 + 2?');
    for await (const _part of stream) {
      // drained
    }
    const result = await stream.result;
    const sent = recorder.stop();
    expect(result.response).toBe('4');
    // The answer's text piece goes to other processes in a background NOTIFY of its own.
    const turn = sent.filter((statement) => !statement.text.startsWith('SELECT pg_notify('));
    expect(turn).toHaveLength(STATEMENTS_PER_MATH_TURN + 2);
    // The two extra ones store an event on its own (the `reason.started` of each model call).
    expect(
      turn.filter((statement) => statement.text.startsWith('WITH next AS ( INSERT INTO')),
    ).toHaveLength(2);
    expect((await backends.sessions.getSession(session.id))?.status).toBe('idle');
    expect(await backends.sessions.getTurnLease(session.id)).toBeNull();
  });

  it('sends the same statement texts whatever its process sent before (texts are kept by shape)', async () => {
    // This process has sent every kind of turn above; another one on the same schema has not.
    const fresh = await createTestBackends({ schema: backends.schema, skipMigrate: true });
    const freshRecorder = recordStatements(fresh.pool);
    try {
      const turnTexts = async (
        on: PostgresBackends,
        onRecorder: ReturnType<typeof recordStatements>,
        idempotent: boolean,
      ) => {
        const runtime = await mathRuntime(on, { idempotent });
        const session = await runtime.createSession({ harnessId: 'math' });
        await runtime.runTextTurn(session.id, 'What is 2 + 2?');
        onRecorder.start();
        expect((await runtime.runTextTurn(session.id, 'What is 2 + 2?')).response).toBe('4');
        return onRecorder.stop().map((statement) => statement.text);
      };
      for (const idempotent of [true, false]) {
        const warm = await turnTexts(backends, recorder, idempotent);
        const cold = await turnTexts(fresh, freshRecorder, idempotent);
        expect(warm).toHaveLength(STATEMENTS_PER_MATH_TURN);
        expect(warm).toEqual(cold);
      }
    } finally {
      await fresh.close();
    }
  });
});

/**
 * Statements a math turn sends, in order: the lease claim with the session's setup (the default
 * model and the keys of waiting turns) in one statement; the user message with status active,
 * `input.message`, `session.activated` and `turn.started`, reading the turn snapshot for the first
 * reason step in the same statement (its write renews the lease, as every message write below,
 * and stores the events announcing the message with it); the agent message with
 * `reason.started` (stamped when the model was called) + `output.message.completed` +
 * `reason.completed` + the call's `tool.started` (for a tool that is not idempotent, with the
 * call's claim in the tool-call journal); the tool result with `tool.completed`, reading the
 * snapshot for the second reason step; the answer with its three events and the turn's end:
 * status idle, `turn.completed` + `session.idled`, the lease released and the journal deleted
 * (one statement). The act step does not look for stored results of calls the reason step just
 * stored.
 */
const STATEMENTS_PER_MATH_TURN = 5;
