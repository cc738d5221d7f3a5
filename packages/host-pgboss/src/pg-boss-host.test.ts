import {
  InputMessage,
  MISSING_TOOL_RESULT_TEXT,
  newId,
  PlatformDefinition,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { initialTurnState, initialTurnStep, rememberWaitingTurn } from '@everruns-ts/runtime/host';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgBossHost, type PgBossHostOptions, stepJobId } from './index.js';
import { adminQuery } from './test-support/database.js';
import {
  createTestEnvironment,
  historyProblems,
  type TestEnvironment,
  toolResult,
} from './test-support/environment.js';
import {
  type FixtureHost,
  SCRIPTED_MODEL,
  STREAMED_ANSWER,
  startFixtureHost,
  UNICODE_ANSWER,
} from './test-support/fixture.js';

let environment: TestEnvironment;
const started: FixtureHost[] = [];

async function fixtureHost(overrides: Parameters<TestEnvironment['configFor']>[0] = {}) {
  const fixture = await startFixtureHost(environment.configFor(overrides));
  started.push(fixture);
  return fixture;
}

beforeAll(async () => {
  environment = await createTestEnvironment('hostpgb');
});

// Each test's hosts close when it ends: one pool of a few connections per host, so keeping them
// to the end of the file held dozens of connections while another file ran beside it.
afterEach(async () => {
  const ending = started.splice(0);
  for (const fixture of ending) await fixture.close().catch(() => {});
});

afterAll(async () => {
  await environment?.destroy();
});

/**
 * Calls `record` once with every statement sent through `pool`: each goes through a client the
 * pool hands out (`pool.query` checks one out too).
 */
function onEveryStatement(pool: pg.Pool, record: (config: unknown, values: unknown) => void) {
  pool.on('acquire', (client) => {
    const marked = client as typeof client & { recorded?: boolean };
    if (marked.recorded) return;
    marked.recorded = true;
    const clientQuery = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((config: unknown, ...rest: unknown[]) => {
      record(config, rest[0]);
      return clientQuery(config, ...rest);
    }) as typeof client.query;
  });
}

/**
 * A host on the fixture's platform and the stores as they are (the fixture's own wrap the message
 * store to inject faults, which leaves the bus no joint writes), with `options` added.
 */
function plainStoresHost(
  fixture: FixtureHost,
  config: ReturnType<TestEnvironment['configFor']>,
  options: Partial<PgBossHostOptions> = {},
): Promise<PgBossHost> {
  const stores = postgresBackends(
    { pool: fixture.pool },
    { schema: config.storesSchema, secretKey: { id: 'test', key: config.secretKeyHex } },
  );
  return PgBossHost.start({
    pool: fixture.pool,
    backends: stores,
    platform: fixture.platform,
    queue: config.queue,
    schema: config.hostSchema,
    bossSchema: config.bossSchema,
    stepTimeoutSeconds: 60,
    pollingIntervalSeconds: 0.5,
    ...options,
  });
}

/**
 * A fixture host working with one step loop and listening (a first turn's wait opened the
 * `LISTEN` connection), and a count of its reads of a turn's row from then on.
 */
async function listeningHostCountingRowReads() {
  const { host, pool } = await fixtureHost();
  await host.work({ concurrency: 1 });
  const rowReads = { count: 0 };
  onEveryStatement(pool, (statement) => {
    const text = String((statement as { text?: unknown })?.text ?? statement);
    if (/^\s*SELECT turn_id, session_id, status\b/.test(text)) rowReads.count++;
  });
  // The host listens from the first wait on: that submission's wait reads the row first.
  const warm = await host.submitTextTurn(await environment.createSession(), 'work');
  await warm.result({ timeoutMs: 20_000 });
  rowReads.count = 0;
  return { host, rowReads };
}

describe('PgBossHost', () => {
  it('runs a turn as jobs and resolves the handle with the result', async () => {
    const { host } = await fixtureHost();
    await host.work({ concurrency: 2 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'append and flag');
    const result = await handle.result({ timeoutMs: 20_000 });
    expect(result).toMatchObject({
      turnId: handle.turnId,
      success: true,
      response: 'done',
      iterations: 2,
      toolCallsCount: 2,
      stopReason: 'end_turn',
    });
    const messages = await environment.backends.messages.load(sessionId);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
      'agent',
    ]);
    expect(historyProblems(messages)).toEqual([]);
    expect(await handle.status()).toMatchObject({
      status: 'completed',
      sessionId,
      step: `${handle.turnId}/reason/2`,
      result,
    });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
  });

  it("sends every statement with parameters of a turn by name, the host's and pg-boss's", async () => {
    const { host, pool } = await fixtureHost();
    const sent: { text: string; named: boolean }[] = [];
    const record = (config: unknown, values: unknown) => {
      const named = typeof config === 'object' && config !== null && 'name' in config;
      const parameters = named ? (config as { values?: unknown[] }).values : values;
      if (!Array.isArray(parameters) || parameters.length === 0) return;
      sent.push({ text: String((config as { text?: unknown })?.text ?? config), named });
    };
    onEveryStatement(pool, record);
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'append and flag');
    expect((await handle.result({ timeoutMs: 20_000 })).success).toBe(true);
    // The job's fetch, insert and completion of pg-boss, the host's turn records and the stores.
    expect(sent.some((statement) => /\bjob\b/.test(statement.text))).toBe(true);
    expect(sent.some((statement) => /\.turns\b/.test(statement.text))).toBe(true);
    // The fixture's scripted model and tools record their calls in tables of the test's own.
    const fixtureOwn = /"\.(model_calls|effects)\b/;
    expect(
      sent
        .filter((statement) => !statement.named && !fixtureOwn.test(statement.text))
        .map((statement) => statement.text),
    ).toEqual([]);
    expect(sent.some((statement) => fixtureOwn.test(statement.text))).toBe(true);
  });

  it("runs a turn's later steps in its first job while continueStepsSeconds lasts, moving its checkpoint only after checkpointIntervalSeconds; with 0 each step is a job", async () => {
    const jobsOf = async (queue: string, turnId: string) => {
      const { rows } = await environment.pool.query<{ step: string }>(
        `SELECT data->'step'->>'activity' || '/' || (data->'step'->'state'->>'iteration') AS step
           FROM "${environment.configFor().bossSchema}".job
          WHERE name = $1 AND data->'step'->'state'->>'turnId' = $2
          ORDER BY created_on`,
        [queue, turnId],
      );
      return rows.map((row) => row.step);
    };
    const outcomes = [];
    // A generous window: a loaded machine must not split the turn into more jobs.
    const configurations = [
      { continueStepsSeconds: 50 },
      { continueStepsSeconds: 0 },
      { continueStepsSeconds: 50, checkpointIntervalSeconds: 0 },
    ];
    for (const { continueStepsSeconds, checkpointIntervalSeconds } of configurations) {
      const config = environment.configFor();
      const fixture = await startFixtureHost(config);
      started.push(fixture);
      const host = await plainStoresHost(fixture, config, {
        continueStepsSeconds,
        ...(checkpointIntervalSeconds === undefined ? {} : { checkpointIntervalSeconds }),
      });
      // The statements that read a session's turn snapshot on their own (not with a write).
      let snapshotReads = 0;
      // The ending's effects marked on their own (its record marks the first, its only one here:
      // the status with the end events in one statement).
      let effectMarks = 0;
      // Statements that renew or release the session's lease on their own (not with a write).
      let leaseStatements = 0;
      // The turn's row written apart from its first job.
      let turnRowsApart = 0;
      // The checkpoint moved on its own by a job that runs the next step itself.
      let checkpointMoves = 0;
      onEveryStatement(fixture.pool, (statement) => {
        const text = String((statement as { text?: unknown })?.text ?? statement);
        if (/^\s*WITH\s+RECURSIVE\s+snapshot_session\b/.test(text)) snapshotReads++;
        if (/SET ending_done = \$3, ending_started = \$3 \+ 1/.test(text)) effectMarks++;
        if (/^\s*UPDATE\s+\S*sessions"?\s+SET\s+turn_lease_/.test(text)) leaseStatements++;
        if (/^\s*INSERT\s+INTO\s+\S+\.turns\b/.test(text)) turnRowsApart++;
        if (
          /^\s*UPDATE\s+\S+\.turns\s+SET step = \$3, step_order = \$4, job_order = COALESCE/.test(
            text,
          )
        ) {
          checkpointMoves++;
        }
      });
      let handle: Awaited<ReturnType<PgBossHost['submitTextTurn']>>;
      let result: Awaited<ReturnType<typeof handle.result>>;
      const sessionId = await environment.createSession();
      try {
        await host.work({ concurrency: 1 });
        handle = await host.submitTextTurn(sessionId, 'append and flag');
        result = await handle.result({ timeoutMs: 20_000 });
      } finally {
        await host.stop({ timeoutMs: 2_000 });
      }
      const messages = await environment.backends.messages.load(sessionId);
      expect(historyProblems(messages)).toEqual([]);
      outcomes.push({
        continueStepsSeconds,
        jobs: await jobsOf(config.queue, handle.turnId),
        snapshotReads,
        effectMarks,
        leaseStatements,
        turnRowsApart,
        checkpointMoves,
        result: { ...result, turnId: undefined },
        roles: messages.map((message) => message.role),
        // The checkpoint ends at the last step: moved before it, or recorded with the ending.
        step: (await handle.status())?.step,
      });
    }
    expect(outcomes.map((outcome) => outcome.jobs)).toEqual([
      ['input/0'],
      ['input/0', 'reason/1', 'act/1', 'reason/2'],
      ['input/0'],
    ]);
    // Steps of milliseconds within the default second move no checkpoint of their own; with an
    // interval of 0 it moves before each of the three later steps; jobs of their own move it
    // with the next job.
    expect(outcomes.map((outcome) => outcome.checkpointMoves)).toEqual([0, 0, 3]);
    // A step run after another in one job uses the snapshot that one read with its last write,
    // and the job's setup: only the input step reads the snapshot on its own.
    expect(outcomes.map((outcome) => outcome.snapshotReads)).toEqual([1, 4, 1]);
    expect(outcomes.map((outcome) => outcome.effectMarks)).toEqual([0, 0, 0]);
    // The submission claimed the lease just before the turn's first job: that job leaves its
    // renewal to the timer, each later job renews it once, and the ending's status write releases
    // it. The turn's row goes with its first job.
    expect(outcomes.map((outcome) => outcome.leaseStatements)).toEqual([0, 3, 0]);
    expect(outcomes.map((outcome) => outcome.turnRowsApart)).toEqual([0, 0, 0]);
    for (const outcome of outcomes.slice(1)) {
      expect(outcome.result).toEqual(outcomes[0]?.result);
      expect(outcome.roles).toEqual(outcomes[0]?.roles);
    }
    for (const outcome of outcomes) expect(outcome.step).toMatch(/\/reason\/2$/);
  });

  it("starts an idempotent first call with the model's answer, and its act job does not start it again", async () => {
    const outcomes = [];
    for (const continueStepsSeconds of [50, 0]) {
      const config = environment.configFor();
      const fixture = await startFixtureHost(config);
      started.push(fixture);
      const host = await plainStoresHost(fixture, config, { continueStepsSeconds });
      // `tool.started` written on its own (its event sequence taken apart from a message).
      let startsApart = 0;
      onEveryStatement(fixture.pool, (statement) => {
        const text = String((statement as { text?: unknown })?.text ?? statement);
        if (/^\s*WITH next AS \( INSERT INTO \S+event_sequences/.test(text.replace(/\s+/g, ' '))) {
          startsApart++;
        }
      });
      const sessionId = await environment.createSession();
      let handle: Awaited<ReturnType<PgBossHost['submitTextTurn']>>;
      let result: Awaited<ReturnType<typeof handle.result>>;
      try {
        await host.work({ concurrency: 1 });
        handle = await host.submitTextTurn(sessionId, 'flag only');
        result = await handle.result({ timeoutMs: 20_000 });
      } finally {
        await host.stop({ timeoutMs: 2_000 });
      }
      const events = await environment.backends.events.loadEvents(sessionId);
      const { rows } = await environment.pool.query<{ started: unknown }>(
        `SELECT data->'startedCalls' AS started FROM "${config.bossSchema}".job
          WHERE name = $1 AND data->'step'->'state'->>'turnId' = $2
            AND data->'step'->>'activity' = 'act'`,
        [config.queue, handle.turnId],
      );
      outcomes.push({
        result: { ...result, turnId: undefined },
        starts: events.filter((event) => event.type === 'tool.started').length,
        runs: (await environment.effects(sessionId)).map((effect) => effect.tool),
        actJobs: rows.map((row) => row.started),
        startsApart,
      });
    }
    expect(outcomes[0]?.result).toMatchObject({ success: true, response: 'done' });
    expect(outcomes[1]?.result).toEqual(outcomes[0]?.result);
    for (const outcome of outcomes) {
      expect(outcome.starts).toBe(1);
      expect(outcome.runs).toEqual(['set_flag']);
      // Started with the answer, never on its own.
      expect(outcome.startsApart).toBe(0);
    }
    // With each step a job of its own, the act step's job carries the call started with the answer.
    expect(outcomes.map((outcome) => outcome.actJobs)).toEqual([[], [['flag']]]);
  });

  it('refuses a continueStepsSeconds that is not from 0 to under stepTimeoutSeconds', async () => {
    for (const continueStepsSeconds of [-1, Number.NaN, Number.POSITIVE_INFINITY, 3, 4]) {
      await expect(fixtureHost({ continueStepsSeconds })).rejects.toMatchObject({
        code: 'CONFIGURATION',
      });
    }
  });

  it("awaits a turn it submitted itself without reading the turn's row: the turn's notification carries its result", async () => {
    const { host, rowReads } = await listeningHostCountingRowReads();
    const sessionId = await environment.createSession();
    const started = Date.now();
    const handle = await host.submitTextTurn(sessionId, 'work');
    const result = await handle.result({ timeoutMs: 20_000 });
    // No read after the notification; the wait reads once a second only as a fallback for a lost
    // notification, which a loaded machine may reach before the turn ends.
    expect(rowReads.count).toBeLessThanOrEqual(Math.floor((Date.now() - started) / 1000));
    expect(result).toMatchObject({ response: 'done', success: true, turnId: handle.turnId });
    // What the notification carried is what the row holds.
    expect((await host.turnStatus(handle.turnId))?.result).toEqual(result);
    rowReads.count = 0;
    // Asked again, the handle answers from the notification too: a completed turn never changes.
    // Each call gets its own object.
    const again = await handle.result({ timeoutMs: 20_000 });
    expect(again).toEqual(result);
    expect(again).not.toBe(result);
    expect(rowReads.count).toBe(0);
    // A handle on a turn this process did not just submit reads the row before waiting.
    const other = host.turn(handle.turnId, sessionId);
    expect(await other.result({ timeoutMs: 20_000 })).toEqual(result);
    expect(rowReads.count).toBe(1);
  });

  it('keeps a NUL and the private-use characters in the input and the answer, with every step a job of its own', async () => {
    const { host } = await fixtureHost({ continueStepsSeconds: 0, checkpointIntervalSeconds: 0 });
    await host.work({ concurrency: 2 });
    const sessionId = await environment.createSession();
    const text = 'unicode \u0000 input \uE000 and \uE000\uE001';
    const handle = await host.submitTextTurn(sessionId, text);
    const result = await handle.result({ timeoutMs: 20_000 });
    expect(result).toMatchObject({ success: true, response: UNICODE_ANSWER });
    expect((await host.turnStatus(handle.turnId))?.result).toEqual(result);
    const messages = await environment.backends.messages.load(sessionId);
    expect(messages[0]?.content).toEqual([{ type: 'text', text }]);
    expect(messages.at(-1)?.content).toEqual([{ type: 'text', text: UNICODE_ANSWER }]);
  });

  it('carries a result with characters outside ASCII, quotes, a newline and a NUL through the notification as stored', async () => {
    const { host, rowReads } = await listeningHostCountingRowReads();
    const started = Date.now();
    const handle = await host.submitTextTurn(await environment.createSession(), 'unicode');
    const result = await handle.result({ timeoutMs: 20_000 });
    expect(rowReads.count).toBeLessThanOrEqual(Math.floor((Date.now() - started) / 1000));
    expect(result.response).toBe(UNICODE_ANSWER);
    expect((await host.turnStatus(handle.turnId))?.result).toEqual(result);
  });

  it("reads the turn's row once when the result is too large for the turn's notification", async () => {
    const { host, rowReads } = await listeningHostCountingRowReads();
    const started = Date.now();
    const handle = await host.submitTextTurn(await environment.createSession(), 'stream big');
    const result = await handle.result({ timeoutMs: 20_000 });
    expect(result.response).toBe(STREAMED_ANSWER);
    // Once, after the turn's notification (plus the once-a-second fallback reads, see above).
    expect(rowReads.count).toBeGreaterThanOrEqual(1);
    expect(rowReads.count).toBeLessThanOrEqual(1 + Math.floor((Date.now() - started) / 1000));
  });

  it('refuses a checkpointIntervalSeconds that is not a finite number of at least 0', async () => {
    for (const checkpointIntervalSeconds of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(fixtureHost({ checkpointIntervalSeconds })).rejects.toMatchObject({
        code: 'CONFIGURATION',
      });
    }
  });

  it('shares the steps of many turns between two worker hosts', async () => {
    const config = environment.configFor();
    const first = await startFixtureHost(config);
    const second = await startFixtureHost(config);
    started.push(first, second);
    await first.host.work({ concurrency: 2 });
    await second.host.work({ concurrency: 2 });
    const sessions = await Promise.all(
      Array.from({ length: 12 }, () => environment.createSession()),
    );
    const handles = await Promise.all(
      sessions.map((sessionId) => first.host.submitTextTurn(sessionId, 'work')),
    );
    const results = await Promise.all(
      handles.map((handle) => handle.result({ timeoutMs: 30_000 })),
    );
    expect(results.every((result) => result.success && result.response === 'done')).toBe(true);
    for (const sessionId of sessions) {
      expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
    }
  });

  it("claims a submitted turn's lease and reads the setup its checks need in one statement", async () => {
    const { host, backends } = await fixtureHost();
    const sessionId = await environment.createSession();
    const sent: string[] = [];
    const query = backends.pool.query.bind(backends.pool) as (...args: unknown[]) => unknown;
    backends.pool.query = ((config: unknown, ...rest: unknown[]) => {
      sent.push(String((config as { text?: unknown })?.text ?? config));
      return query(config, ...rest);
    }) as typeof backends.pool.query;
    let handle: Awaited<ReturnType<PgBossHost['submitTextTurn']>>;
    try {
      handle = await host.submitTextTurn(sessionId, 'counted');
    } finally {
      backends.pool.query = query as typeof backends.pool.query;
    }
    // The claim and the session's setup (harness chain, default model) are one statement; no
    // statement reads the setup or the default model again.
    expect(sent[0]).toMatch(/claimed AS \(\s*UPDATE \S+"sessions"/);
    expect(sent[0]).toContain('snapshot_session');
    expect(
      sent.filter((text) => /turn_lease_holder|snapshot_session|default_model/.test(text)),
    ).toEqual([sent[0]]);
    expect(await environment.backends.sessions.getTurnLease(sessionId)).toMatchObject({
      holderId: expect.stringContaining(handle.turnId),
    });
  });

  it('refuses bad input, an unknown session and a second running turn before running anything', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    await expect(host.submitTurn(sessionId, { role: 'user', content: [] })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(host.submitTextTurn('session_missing', 'hi')).rejects.toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
    const handle = await host.submitTextTurn(sessionId, 'first');
    await expect(host.submitTextTurn(sessionId, 'second')).rejects.toMatchObject({
      code: 'TURN_IN_PROGRESS',
    });
    const other = await environment.createSession();
    await expect(
      host.submitTextTurn(other, 'again', { turnId: handle.turnId }),
    ).rejects.toMatchObject({ code: 'DUPLICATE_ID' });
    // The refused submission claimed the other session's lease before its turn record failed:
    // it released it.
    expect(await environment.backends.sessions.getTurnLease(other)).toBeNull();
    expect(await handle.status()).toMatchObject({
      status: 'running',
      step: `${handle.turnId}/input/0`,
    });
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
    await expect(host.turn('turn_unknown').status()).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
  });

  it('derives one job id per step, queue and generation', () => {
    const step = initialTurnStep({ sessionId: 's', turnId: 't', input: InputMessage.user('x') });
    const id = stepJobId('q', step, 0);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(stepJobId('q', step, 0)).toBe(id);
    expect(new Set([id, stepJobId('q', step, 1), stepJobId('r', step, 0)]).size).toBe(3);
  });

  it('retries a step whose store failed and finishes the turn', async () => {
    const { host } = await fixtureHost({ failAgentStores: 2 });
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'flaky store');
    expect(await handle.result({ timeoutMs: 30_000 })).toMatchObject({
      success: true,
      response: 'done',
    });
    const messages = await environment.backends.messages.load(sessionId);
    expect(historyProblems(messages)).toEqual([]);
    // The model answered each time the store failed: its answer had not been stored.
    const calls = await environment.modelCalls(sessionId);
    expect(calls.map((call) => call.iteration)).toEqual([1, 1, 1, 2]);
    expect(calls.every((call) => !call.answerAlreadyStored)).toBe(true);
  });

  it('fails the turn when a step fails every retry, and says why', async () => {
    const { host } = await fixtureHost({
      failAgentStores: 100,
      retry: { limit: 1, delaySeconds: 0, backoff: false },
    });
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'doomed');
    await expect(handle.result({ timeoutMs: 30_000 })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(await handle.status()).toMatchObject({
      status: 'failed',
      error: { code: 'STORE_UNAVAILABLE', message: 'injected store outage' },
    });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    const events = await environment.backends.events.loadEvents(sessionId);
    expect(
      ['turn.completed', 'turn.failed', 'session.idled'].map(
        (type) => events.filter((event) => event.type === type).length,
      ),
    ).toEqual([0, 1, 1]);
    // A new turn may start on the session.
    const { host: healthy } = await fixtureHost();
    await healthy.work({ concurrency: 1 });
    const next = await healthy.submitTextTurn(sessionId, 'after the outage');
    expect(await next.result({ timeoutMs: 30_000 })).toMatchObject({ success: true });
  });

  it('fails a turn whose act step fails every retry: every tool call keeps one result, the turn ends once', async () => {
    const { host } = await fixtureHost({
      failToolResultStores: 2,
      retry: { limit: 1, delaySeconds: 0, backoff: false },
    });
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'store outage mid-act');
    await expect(handle.result({ timeoutMs: 30_000 })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    const messages = await environment.backends.messages.load(sessionId);
    expect(historyProblems(messages)).toEqual([]);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
    ]);
    for (const id of ['append', 'flag']) {
      expect(toolResult(messages, id)).toMatchObject({
        content: MISSING_TOOL_RESULT_TEXT,
        isError: true,
      });
    }
    const events = await environment.backends.events.loadEvents(sessionId);
    const count = (type: string) => events.filter((event) => event.type === type).length;
    expect([count('turn.completed'), count('turn.failed'), count('session.idled')]).toEqual([
      0, 1, 1,
    ]);
    expect(events.at(-1)?.type).toBe('session.idled');
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    expect(await handle.status()).toMatchObject({ status: 'failed' });
  });

  it('refuses a turn whose session waits for client tool results of another runtime: nothing written, no events', async () => {
    const { host } = await fixtureHost();
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    // A turn run by an in-process runtime on the same stores waits for client tool results.
    await rememberWaitingTurn(host.hostAdapter, {
      ...initialTurnState({ sessionId, turnId: newId('turn') }),
      iteration: 2,
    });
    const handle = await host.submitTextTurn(sessionId, 'meanwhile');
    await expect(handle.result({ timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'TURN_WAITING_FOR_TOOL_RESULTS',
    });
    expect(await handle.status()).toMatchObject({ status: 'failed' });
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
    expect(await environment.backends.events.loadEvents(sessionId)).toEqual([]);
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('started');
  });

  it('ends a turn whose driver fails with turn.failed and session.idled, once, and status idle', async () => {
    const { host } = await fixtureHost();
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'driver error please');
    expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({
      success: false,
      stopReason: 'llm_error',
      error: { code: 'llm_error' },
    });
    expect(await endCounts(sessionId)).toEqual([0, 1, 1]);
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
  });

  it('refuses a turn whose capability is not registered at submission: nothing recorded or written', async () => {
    const { host } = await fixtureHost();
    await host.work({ concurrency: 1 });
    const now = new Date().toISOString();
    const session = await environment.backends.sessions.createSession({
      id: newId('session'),
      harnessId: environment.harnessId,
      tags: [],
      capabilities: [{ id: 'not_registered' }],
      initialFiles: [],
      status: 'started',
      createdAt: now,
      updatedAt: now,
    });
    const turnId = newId('turn');
    await expect(host.submitTextTurn(session.id, 'work', { turnId })).rejects.toMatchObject({
      code: 'CAPABILITY_NOT_FOUND',
    });
    expect(await host.turnStatus(turnId)).toBeNull();
    expect(await environment.backends.messages.count(session.id)).toBe(0);
    expect(await endCounts(session.id)).toEqual([0, 0, 0]);
    expect((await environment.backends.sessions.getSession(session.id))?.status).toBe('started');
    expect(await environment.backends.sessions.getTurnLease(session.id)).toBeNull();
  });

  it('fails a turn its input step refuses without a trace: nothing written, no events, lease released', async () => {
    const config = environment.configFor({ retry: { limit: 1, delaySeconds: 0, backoff: false } });
    const client = await fixtureHost(config);
    const sessionId = await environment.createSession();
    const handle = await client.host.submitTextTurn(sessionId, 'work');
    // The session's capabilities change before a worker runs the input step.
    await environment.backends.sessions.updateSessionCapabilities(sessionId, [
      { id: 'not_registered' },
    ]);
    const worker = await startFixtureHost(config);
    started.push(worker);
    await worker.host.work({ concurrency: 1 });
    await expect(handle.result({ timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'CAPABILITY_NOT_FOUND',
    });
    expect(await handle.status()).toMatchObject({ status: 'failed' });
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
    expect(await endCounts(sessionId)).toEqual([0, 0, 0]);
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('started');
    expect(await environment.backends.sessions.getTurnLease(sessionId)).toBeNull();
  });

  it('fails a turn whose persisted step does not parse with STATE_INVALID, never guessing', async () => {
    const config = environment.configFor();
    const fixture = await startFixtureHost(config);
    started.push(fixture);
    const sessionId = await environment.createSession();
    const handle = await fixture.host.submitTextTurn(sessionId, 'corrupted');
    await adminQuery(
      `UPDATE "${config.bossSchema}".job SET data = jsonb_set(data, '{step,state,iteration}', '"one"')
        WHERE name = $1`,
      [config.queue],
    );
    await fixture.host.work({ concurrency: 1 });
    await expect(handle.result({ timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'STATE_INVALID',
    });
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
    expect(await environment.modelCalls(sessionId)).toEqual([]);
  });

  it('resumes a turn as a new generation while the first still runs, storing everything once', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'resume me');
    await host.resumeTurn(handle.turnId);
    await host.resumeTurn(handle.turnId);
    expect((await handle.status()).generation).toBe(2);
    await host.work({ concurrency: 4 });
    expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({
      success: true,
      response: 'done',
    });
    const messages = await environment.backends.messages.load(sessionId);
    expect(historyProblems(messages)).toEqual([]);
    expect(
      (await environment.effects(sessionId)).filter((e) => e.tool === 'append_line'),
    ).toHaveLength(1);
    expect(toolResult(messages, 'append')?.content).toMatch(/appended x|interrupted/);
    // Resuming a completed turn does nothing; an unknown one is an error.
    await host.resumeTurn(handle.turnId);
    expect((await handle.status()).generation).toBe(2);
    await expect(host.resumeTurn(newId('turn'))).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('runs turns on a pool of its own from connectionString, listening beside that pool', async () => {
    const config = environment.configFor();
    // The fixture host gives the platform and the stores; the host under test brings its pool.
    const { host: fixture } = await fixtureHost();
    const host = await PgBossHost.start({
      connectionString: config.databaseUrl,
      poolSize: 1,
      backends: fixture.hostAdapter.backends,
      platform: new PlatformDefinition(
        fixture.hostAdapter.capabilities,
        fixture.hostAdapter.drivers,
      ),
      queue: config.queue,
      schema: config.hostSchema,
      bossSchema: config.bossSchema,
      pollingIntervalSeconds: 0.5,
    });
    try {
      // One pooled connection is enough: the start lock and LISTEN use connections of their own.
      await host.work({ concurrency: 1 });
      const sessionId = await environment.createSession();
      const handle = await host.submitTextTurn(sessionId, 'own pool');
      expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({
        success: true,
        response: 'done',
      });
    } finally {
      await host.stop({ timeoutMs: 2_000 });
    }
  });

  it('refuses work once stopped, and bad queue names at start', async () => {
    const config = environment.configFor();
    const fixture = await startFixtureHost(config);
    await fixture.close();
    await expect(fixture.host.submitTextTurn('x', 'y')).rejects.toMatchObject({
      code: 'CONFIGURATION',
    });
    await expect(
      PgBossHost.start({ connectionString: 'x', queue: 'bad name!' } as PgBossHostOptions),
    ).rejects.toMatchObject({ code: 'CONFIGURATION' });
  });
});

describe('the session turn lease', () => {
  it('is held from submission to the end of the turn: another runtime cannot start a turn meanwhile', async () => {
    const config = environment.configFor();
    const { host } = await fixtureHost(config);
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'append and flag');
    expect(await environment.backends.sessions.getTurnLease(sessionId)).toMatchObject({
      holderId: `pgboss/${handle.turnId}`,
    });
    await expect(
      environment.backends.sessions.claimTurnLease(sessionId, 'another-runtime/turn', 10_000),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS' });
    await host.work({ concurrency: 1 });
    expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({ response: 'done' });
    expect(await environment.backends.sessions.getTurnLease(sessionId)).toBeNull();
  });

  it('refuses a turn while another runtime holds the lease, writing nothing', async () => {
    const { host } = await fixtureHost();
    await host.work({ concurrency: 1 });
    const sessionId = await environment.createSession();
    await environment.backends.sessions.claimTurnLease(sessionId, 'another-runtime/turn', 30_000);
    const turnId = newId('turn');
    await expect(host.submitTextTurn(sessionId, 'meanwhile', { turnId })).rejects.toMatchObject({
      code: 'TURN_IN_PROGRESS',
      details: { sessionId, holder: 'another-runtime/turn' },
    });
    expect(await host.turnStatus(turnId)).toBeNull();
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
    expect(await environment.backends.events.loadEvents(sessionId)).toEqual([]);
    await environment.backends.sessions.releaseTurnLease(sessionId, 'another-runtime/turn');
    const handle = await host.submitTextTurn(sessionId, 'now', { turnId });
    expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({ response: 'done' });
  });

  it('never runs a host turn and an in-process turn on one session at once: 20 races, no interleaving', async () => {
    const fixture = await fixtureHost();
    await fixture.host.work({ concurrency: 2 });
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(fixture.platform)
      .backends(fixture.backends)
      .defaultModel({ ...SCRIPTED_MODEL })
      .build();
    const problems: string[] = [];
    let refused = 0;
    for (let trial = 0; trial < 20; trial++) {
      const sessionId = await environment.createSession();
      const outcomes = await Promise.allSettled([
        fixture.host
          .submitTextTurn(sessionId, `host ${trial}`)
          .then((handle) => handle.result({ timeoutMs: 20_000 })),
        runtime.runTextTurn(sessionId, `runtime ${trial}`),
      ]);
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') continue;
        refused += 1;
        const code = (outcome.reason as { code?: string }).code;
        if (code !== 'TURN_IN_PROGRESS') problems.push(`${sessionId}: refused with ${code}`);
      }
      const messages = await environment.backends.messages.load(sessionId);
      // The turns' messages form one block per turn: no interleaving.
      const blocks = messages
        .map((message) => message.turnId)
        .filter((turnId, index, all) => index === 0 || all[index - 1] !== turnId);
      if (new Set(blocks).size !== blocks.length) problems.push(`${sessionId}: interleaved`);
      problems.push(...historyProblems(messages).map((problem) => `${sessionId}: ${problem}`));
      const status = (await environment.backends.sessions.getSession(sessionId))?.status;
      if (status !== 'idle') problems.push(`${sessionId}: left ${status}`);
    }
    expect(problems).toEqual([]);
    expect(refused).toBeGreaterThan(0);
  }, 120_000);
});

/** How many `turn.completed`, `turn.failed` and `session.idled` events a session has. */
async function endCounts(sessionId: string): Promise<number[]> {
  const events = await environment.backends.events.loadEvents(sessionId);
  return ['turn.completed', 'turn.failed', 'session.idled'].map(
    (type) => events.filter((event) => event.type === type).length,
  );
}
