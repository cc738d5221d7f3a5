import { newId } from '@everruns-ts/core';
import { executeTurnStep, initialTurnStep } from '@everruns-ts/runtime/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fencedStepAdapter } from './fenced-step-adapter.js';
import { StaleStepError } from './host-errors.js';
import { createTestEnvironment, type TestEnvironment } from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';
import { TurnRecords } from './turn-records.js';

let environment: TestEnvironment;
let fixture: FixtureHost;

beforeAll(async () => {
  environment = await createTestEnvironment('hostfence');
  fixture = await startFixtureHost(environment.configFor());
});

afterAll(async () => {
  await fixture?.close();
  await environment?.destroy();
});

describe('fencedStepAdapter', () => {
  it('refuses the status writes and lifecycle events of a step whose claim was taken over', async () => {
    const config = environment.configFor();
    const turns = new TurnRecords(environment.pool, config.hostSchema);
    const sessionId = await environment.createSession();
    const turnId = newId('turn');
    const step = initialTurnStep({ sessionId, turnId, input: { role: 'user', content: [] } });
    expect(await turns.insert(turnId, sessionId, step)).toBeNull();
    const first = await turns.claimStep(turnId, 0, 0);
    const retry = await turns.claimStep(turnId, 0, 0);
    expect(first && retry && retry.fence > first.fence).toBe(true);
    // A job of another generation or of a step the turn is not at claims nothing.
    expect(await turns.claimStep(turnId, 1, 0)).toBeNull();
    expect(await turns.claimStep(turnId, 0, 4)).toBeNull();

    const adapter = fixture.host.hostAdapter;
    const stale = fencedStepAdapter(adapter, turns, turnId, first?.fence ?? 0);
    const current = fencedStepAdapter(adapter, turns, turnId, retry?.fence ?? 0);
    const staleError = await stale.backends.sessions
      .updateSessionStatus(sessionId, 'active')
      .catch((error: unknown) => error);
    expect(StaleStepError.isInstance(staleError)).toBe(true);
    await expect(
      stale.backends.events.emit({ type: 'turn.started', sessionId, turnId, data: {} }),
    ).rejects.toThrow(/lost its claim/);
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('started');
    expect(await environment.backends.events.loadEvents(sessionId)).toEqual([]);
    // Events that say nothing about where the turn stands are not fenced.
    await stale.backends.events.emit({ type: 'reason.started', sessionId, turnId, data: {} });
    // The holder of the current token writes.
    await current.backends.sessions.updateSessionStatus(sessionId, 'active');
    await current.backends.events.emit({ type: 'turn.started', sessionId, turnId, data: {} });
    expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('active');
    expect(
      (await environment.backends.events.loadEvents(sessionId)).map((event) => event.type),
    ).toEqual(['reason.started', 'turn.started']);
    // A stale step cannot move the checkpoint or decide the ending either.
    const next = { activity: 'reason' as const, state: { ...step.state, iteration: 1 } };
    expect(await turns.advance(turnId, first?.fence ?? 0, next, async () => {})).toBe(false);
    expect(
      await turns.beginEnding(turnId, first?.fence ?? 0, {
        kind: 'reject',
        error: { code: 'INTERNAL', message: 'stale' },
      }),
    ).toBeNull();
    expect(await turns.get(turnId)).toMatchObject({ status: 'running', step: `${turnId}/input/0` });
  });
  it('emits session.activated and turn.started once per turn when the input step is replayed', async () => {
    const config = environment.configFor();
    const turns = new TurnRecords(environment.pool, config.hostSchema);
    const sessionId = await environment.createSession();
    const turnId = newId('turn');
    const step = initialTurnStep({
      sessionId,
      turnId,
      input: { role: 'user', content: [{ type: 'text', text: 'hello' }] },
    });
    expect(await turns.insert(turnId, sessionId, step)).toBeNull();
    const adapter = fixture.host.hostAdapter;
    const first = await turns.claimStep(turnId, 0, 0);
    expect(first?.fence).toBe(1);
    await executeTurnStep(fencedStepAdapter(adapter, turns, turnId, first?.fence ?? 0), step);
    // The worker died before moving the checkpoint: the retry claims the input step again.
    for (let attempt = 0; attempt < 2; attempt++) {
      const retry = await turns.claimStep(turnId, 0, 0);
      await executeTurnStep(
        fencedStepAdapter(adapter, turns, turnId, retry?.fence ?? 0, { replay: true }),
        step,
      );
    }
    const types = (await environment.backends.events.loadEvents(sessionId)).map(
      (event) => event.type,
    );
    expect(types.filter((type) => type === 'session.activated')).toHaveLength(1);
    expect(types.filter((type) => type === 'turn.started')).toHaveLength(1);
    expect(await environment.backends.messages.count(sessionId)).toBe(1);
  });
});
