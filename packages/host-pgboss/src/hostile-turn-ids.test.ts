import { EverrunsError } from '@everruns-ts/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnvironment, type TestEnvironment } from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';

let environment: TestEnvironment;
const started: FixtureHost[] = [];

async function fixtureHost() {
  const fixture = await startFixtureHost(environment.configFor());
  started.push(fixture);
  await fixture.host.work({ concurrency: 1 });
  return fixture;
}

beforeAll(async () => {
  environment = await createTestEnvironment('hostids');
});

afterEach(async () => {
  const ending = started.splice(0);
  for (const fixture of ending) await fixture.close().catch(() => {});
});

afterAll(async () => {
  await environment?.destroy();
});

describe('turn ids a caller gives the host', () => {
  const hostile: [string, string][] = [
    ['a newline', 'turn\nforged'],
    ['a NUL', 'turn\u0000x'],
    ['9,000 characters', 't'.repeat(9_000)],
    ['only spaces and a tab', ' \t '],
    ['a lone surrogate', 'turn\ud800x'],
  ];
  for (const [what, turnId] of hostile) {
    it(`refuses a turn id with ${what} with INVALID_INPUT, writing nothing`, async () => {
      const { host } = await fixtureHost();
      const sessionId = await environment.createSession();
      const error = await host.submitTextTurn(sessionId, 'What is 2 + 2?', { turnId }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), String(error)).toBe(true);
      expect(await environment.backends.messages.load(sessionId)).toEqual([]);
      // The session is free for the next turn.
      const next = await host.submitTextTurn(sessionId, 'What is 2 + 2?');
      expect((await next.result({ timeoutMs: 20_000 })).success).toBe(true);
    });
  }

  it('answers a handle, status, resume or tool results for such an id with INVALID_INPUT, not a database error', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    for (const [, turnId] of hostile) {
      expect(() => host.turn(turnId, sessionId)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      );
      const submitted = await host
        .submitToolResults(sessionId, turnId, [{ toolCallId: 'call_1', content: 'x' }])
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(EverrunsError.hasCode(submitted, 'INVALID_INPUT'), String(submitted)).toBe(true);
      for (const call of [() => host.turnStatus(turnId), () => host.resumeTurn(turnId)]) {
        const error = await call().then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), String(error)).toBe(true);
      }
    }
  });

  it('runs a turn whose id has a colon, quotes and non-ASCII letters, and notifies its result', async () => {
    const { host } = await fixtureHost();
    const sessionId = await environment.createSession();
    const turnId = `turn:"é" ${'ü'.repeat(200)}`;
    const handle = await host.submitTextTurn(sessionId, 'What is 2 + 2?', { turnId });
    expect(handle.turnId).toBe(turnId);
    const result = await handle.result({ timeoutMs: 20_000 });
    expect(result).toMatchObject({ turnId, success: true });
  });
});
