import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

afterAll(async () => {
  for (const fixture of started) await fixture.close().catch(() => {});
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
    const { host } = await fixtureHost();
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
    // A turn running on the session (held by a host that does not work) blocks the submission.
    const { host: idle } = await fixtureHost(false);
    const blocking = await idle.submitTextTurn(sessionId, 'meanwhile');
    await expect(
      host.submitToolResults(sessionId, handle.turnId, [{ toolCallId: 'ask1', content: 'a' }]),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS' });
    expect(await environment.backends.messages.count(sessionId)).toBe(count);
    expect(await handle.status()).toMatchObject({ status: 'waiting_for_tool_results' });
    expect(await blocking.status()).toMatchObject({ status: 'running' });
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
