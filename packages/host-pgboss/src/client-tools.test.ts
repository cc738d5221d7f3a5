import { newId } from '@everruns-ts/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestEnvironment,
  historyProblems,
  type TestEnvironment,
  toolResult,
} from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';

let environment: TestEnvironment;
const started: FixtureHost[] = [];

async function fixtureHost(work = true, config = environment.configFor()) {
  const fixture = await startFixtureHost(config);
  started.push(fixture);
  if (work) await fixture.host.work({ concurrency: 2 });
  return fixture;
}

beforeAll(async () => {
  environment = await createTestEnvironment('hostclient');
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

describe('PgBossHost.submitToolResults', () => {
  it('pauses a turn on a client-side call and finishes it as jobs once the result is in', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'ask the client');
    const paused = await handle.result({ timeoutMs: 20_000 });
    expect(paused).toMatchObject({
      turnId: handle.turnId,
      success: true,
      stopReason: 'waiting_for_tool_results',
      iterations: 1,
      toolCallsCount: 2,
    });
    expect(await handle.status()).toMatchObject({ status: 'waiting_for_tool_results' });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe(
      'waiting_for_tool_results',
    );
    // The server-side call ran, the client-side one did not.
    const before = await environment.backends.messages.load(sessionId);
    expect(toolResult(before, 'append')).toMatchObject({ isError: false });
    expect(toolResult(before, 'ask1')).toBeUndefined();

    const resumed = await host.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask1', content: 'blue' },
    ]);
    expect(resumed.turnId).toBe(handle.turnId);
    const done = await resumed.result({ timeoutMs: 20_000 });
    expect(done).toMatchObject({
      turnId: handle.turnId,
      success: true,
      response: 'answered blue',
      stopReason: 'end_turn',
      iterations: 2,
      toolCallsCount: 2,
    });
    const messages = await environment.backends.messages.load(sessionId);
    expect(historyProblems(messages)).toEqual([]);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'tool_result',
      'agent',
    ]);
    expect(messages[3]).toMatchObject({ idempotencyKey: `${handle.turnId}/tool/ask1` });
    expect((await environment.modelCalls(sessionId)).map((call) => call.iteration)).toEqual([1, 2]);
    expect(await handle.status()).toMatchObject({ status: 'completed', result: done });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    // Nothing waits any more.
    await expect(
      host.submitToolResults(sessionId, handle.turnId, [{ toolCallId: 'ask1', content: 'x' }]),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('can pause twice in one turn, and a client in another process may answer', async () => {
    const config = environment.configFor();
    const { host } = await fixtureHost(true, config);
    // A client process on the same queue that runs no steps.
    const { host: client } = await fixtureHost(false, config);
    const sessionId = await environment.createSession();
    const handle = await client.submitTextTurn(sessionId, 'ask twice');
    expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({
      stopReason: 'waiting_for_tool_results',
      iterations: 1,
    });
    const second = await client.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask1', content: 'red' },
    ]);
    expect(await second.result({ timeoutMs: 20_000 })).toMatchObject({
      stopReason: 'waiting_for_tool_results',
      iterations: 2,
    });
    const third = await host.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask2', content: 'green', isError: false },
    ]);
    expect(await third.result({ timeoutMs: 20_000 })).toMatchObject({
      response: 'answered red,green',
      iterations: 3,
      stopReason: 'end_turn',
    });
    expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
  });

  it('completes with max_iterations when the pause used the last iteration', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession({ maxIterations: 1 });
    const handle = await host.submitTextTurn(sessionId, 'ask once');
    await handle.result({ timeoutMs: 20_000 });
    const done = await host.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask1', content: 'ok' },
    ]);
    expect(await done.result({ timeoutMs: 20_000 })).toMatchObject({
      success: true,
      stopReason: 'max_iterations',
      iterations: 1,
    });
    expect(await done.status()).toMatchObject({ status: 'completed' });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    expect(await environment.modelCalls(sessionId)).toHaveLength(1);
  });

  it('refuses bad submissions without writing anything', async () => {
    const config = environment.configFor();
    const { host } = await fixtureHost(true, config);
    const sessionId = await environment.createSession();
    const otherSession = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'ask the client');
    await handle.result({ timeoutMs: 20_000 });
    const count = await environment.backends.messages.count(sessionId);
    const refusals: Array<[() => Promise<unknown>, string]> = [
      [
        () =>
          host.submitToolResults('session_missing', handle.turnId, [
            { toolCallId: 'ask1', content: '' },
          ]),
        'SESSION_NOT_FOUND',
      ],
      [
        () =>
          host.submitToolResults(otherSession, handle.turnId, [
            { toolCallId: 'ask1', content: '' },
          ]),
        'INVALID_INPUT',
      ],
      [
        () =>
          host.submitToolResults(sessionId, 'turn_unknown', [{ toolCallId: 'ask1', content: '' }]),
        'INVALID_INPUT',
      ],
      [() => host.submitToolResults(sessionId, handle.turnId, []), 'INVALID_INPUT'],
      [
        () =>
          host.submitToolResults(sessionId, handle.turnId, [
            { toolCallId: 'ask1', content: 'a' },
            { toolCallId: 'append', content: 'b' },
          ]),
        'INVALID_INPUT',
      ],
    ];
    for (const [attempt, code] of refusals) {
      await expect(attempt()).rejects.toMatchObject({ code });
    }
    // A new turn cannot start while this one waits (see the test below); a turn running on the
    // session all the same (a failed turn another process resumed) blocks the submission.
    const blockingTurnId = newId('turn');
    await environment.pool.query(
      `INSERT INTO "${config.hostSchema}".turns (turn_id, session_id, status, step)
       VALUES ($1, $2, 'running', '{}')`,
      [blockingTurnId, sessionId],
    );
    await expect(
      host.submitToolResults(sessionId, handle.turnId, [{ toolCallId: 'ask1', content: 'a' }]),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS' });
    expect(await environment.backends.messages.count(sessionId)).toBe(count);
    expect(await handle.status()).toMatchObject({ status: 'waiting_for_tool_results' });
    expect(await host.turnStatus(blockingTurnId)).toMatchObject({ status: 'running' });
    await environment.pool.query(`DELETE FROM "${config.hostSchema}".turns WHERE turn_id = $1`, [
      blockingTurnId,
    ]);
  });
});

describe('a new turn while one waits for client tool results', () => {
  it('is refused with TURN_WAITING_FOR_TOOL_RESULTS, writing nothing, and runs once the results are in', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    const handle = await host.submitTextTurn(sessionId, 'ask the client');
    await handle.result({ timeoutMs: 20_000 });
    const messages = await environment.backends.messages.count(sessionId);
    const events = (await environment.backends.events.loadEvents(sessionId)).length;
    const error = await host.submitTextTurn(sessionId, 'meanwhile').then(
      () => null,
      (reason: unknown) => reason,
    );
    expect(error).toMatchObject({
      code: 'TURN_WAITING_FOR_TOOL_RESULTS',
      details: { sessionId, turnId: handle.turnId, pendingToolCallIds: ['ask1'] },
    });
    expect(await environment.backends.messages.count(sessionId)).toBe(messages);
    expect((await environment.backends.events.loadEvents(sessionId)).length).toBe(events);
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe(
      'waiting_for_tool_results',
    );
    expect(await handle.status()).toMatchObject({ status: 'waiting_for_tool_results' });
    // Every stored call keeps its one result once the client answers; then the next turn runs.
    await host.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask1', content: 'blue' },
    ]);
    await handle.result({ timeoutMs: 20_000 });
    const next = await host.submitTextTurn(sessionId, 'append and flag');
    expect(await next.result({ timeoutMs: 20_000 })).toMatchObject({ response: 'done' });
    expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
  });
});

describe('PgBossHost.submitToolResults races', () => {
  it('continues a turn once when two processes submit the same results at once', async () => {
    const config = environment.configFor();
    const { host } = await fixtureHost(true, config);
    const { host: other } = await fixtureHost(true, config);
    for (let trial = 0; trial < 5; trial++) {
      const sessionId = await environment.createSession();
      const handle = await host.submitTextTurn(sessionId, 'ask the client');
      await handle.result({ timeoutMs: 20_000 });
      const outcomes = await Promise.allSettled(
        [host, other].map((submitter) =>
          submitter.submitToolResults(sessionId, handle.turnId, [
            { toolCallId: 'ask1', content: 'blue' },
          ]),
        ),
      );
      expect(outcomes.some((outcome) => outcome.status === 'fulfilled')).toBe(true);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          expect(['INVALID_INPUT', 'TURN_IN_PROGRESS']).toContain(
            (outcome.reason as { code?: string }).code,
          );
        }
      }
      expect(await handle.result({ timeoutMs: 20_000 })).toMatchObject({
        response: 'answered blue',
        stopReason: 'end_turn',
      });
      const messages = await environment.backends.messages.load(sessionId);
      expect(historyProblems(messages)).toEqual([]);
      expect(messages).toHaveLength(5);
      expect((await environment.modelCalls(sessionId)).map((call) => call.iteration)).toEqual([
        1, 2,
      ]);
      const events = await environment.backends.events.loadEvents(sessionId);
      expect(events.filter((event) => event.type === 'turn.completed')).toHaveLength(1);
    }
  });
});

describe('a step that outlives stepTimeoutSeconds', () => {
  it('cannot pause a turn again after its retry paused it and the client resumed it', async () => {
    const config = environment.configFor({ stepTimeoutSeconds: 3 });
    const { host } = await fixtureHost(true, config);
    const sessionId = await environment.createSession();
    const open = (gate: string) =>
      environment.pool.query(`INSERT INTO "${config.testSchema}".gates (name) VALUES ($1)`, [gate]);
    const slowEffects = async (tool: string) =>
      (await environment.effects(sessionId)).filter((effect) => effect.tool === tool).length;
    const handle = await host.submitTextTurn(sessionId, 'slow ask');
    // The act step's first run blocks in `slow_flag`; pg-boss expires it and its retry pauses
    // the turn for the client's answer.
    const paused = await handle.result({ timeoutMs: 30_000 });
    expect(paused).toMatchObject({ stopReason: 'waiting_for_tool_results', iterations: 1 });
    expect(await slowEffects('slow_flag')).toBe(2);
    expect(await slowEffects('slow_flag_woke')).toBe(0);

    await host.submitToolResults(sessionId, handle.turnId, [
      { toolCallId: 'ask1', content: 'blue' },
    ]);
    // The turn moved on: its second model call waits for the gate finish-<turnId>.
    await poll(async () =>
      (await environment.modelCalls(sessionId)).some((call) => call.iteration === 2)
        ? true
        : undefined,
    );
    // Now the first run of the act step wakes up and tries to pause the turn again.
    await open(`release-${handle.turnId}`);
    await poll(async () => ((await slowEffects('slow_flag_woke')) === 1 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await handle.status()).toMatchObject({ status: 'running' });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('active');

    await open(`finish-${handle.turnId}`);
    const done = await handle.result({ timeoutMs: 30_000 });
    expect(done).toMatchObject({
      success: true,
      response: 'slowly answered blue',
      stopReason: 'end_turn',
      iterations: 2,
    });
    expect(await handle.status()).toMatchObject({ status: 'completed', result: done });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
    const events = await environment.backends.events.loadEvents(sessionId);
    const count = (type: string) => events.filter((event) => event.type === type).length;
    expect([count('turn.completed'), count('turn.failed'), count('session.idled')]).toEqual([
      1, 0, 1,
    ]);
    const messages = await environment.backends.messages.load(sessionId);
    expect(historyProblems(messages)).toEqual([]);
    expect(toolResult(messages, 'ask1')).toMatchObject({ content: 'blue' });
    // Nothing waits and nothing is stuck: resuming does nothing, a second submission is refused.
    await host.resumeTurn(handle.turnId);
    expect(await handle.status()).toMatchObject({ status: 'completed', result: done });
    await expect(
      host.submitToolResults(sessionId, handle.turnId, [{ toolCallId: 'ask1', content: 'x' }]),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    // The session takes the next turn.
    const next = await host.submitTextTurn(sessionId, 'append and flag');
    expect(await next.result({ timeoutMs: 20_000 })).toMatchObject({ response: 'done' });
  }, 60_000);
});

async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
