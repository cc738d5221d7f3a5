// A turn's ending, as this version records it, writes the session's status with its end events in
// one statement (one numbered effect) where the bus does so with these very stores. A worker that
// dies before or after that statement leaves the turn to another, which writes the status and the
// events once: it looks the first event up before writing them again. The same statement releases
// the turn's lease on the session; where another holder has the session, the status is written
// without touching that holder's lease.
import { type EventRequest, newId, type RuntimeBackends } from '@everruns-ts/core';
import { initialTurnState, initialTurnStep } from '@everruns-ts/runtime/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { intercept } from './fenced-step-adapter.js';
import { claimTurnLease } from './host-turn-lease.js';
import { createTestEnvironment, type TestEnvironment } from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';
import { deliverEnding } from './turn-ending.js';
import { type PendingEnding, TurnRecords } from './turn-records.js';

let environment: TestEnvironment;
let fixture: FixtureHost;

beforeAll(async () => {
  environment = await createTestEnvironment('hostend');
  fixture = await startFixtureHost(environment.configFor());
});

afterAll(async () => {
  await fixture?.close();
  await environment?.destroy();
});

class Killed extends Error {}

/** The bus's joint status write, with `around` run about it. */
function aroundJointWrite(
  events: RuntimeBackends['events'],
  around: (write: () => Promise<unknown>, requests: EventRequest[]) => Promise<unknown>,
): RuntimeBackends['events'] {
  const write = (events as unknown as { updateSessionStatusAndEmit(...a: unknown[]): unknown })
    .updateSessionStatusAndEmit;
  return intercept(events, {
    updateSessionStatusAndEmit: (...args: unknown[]) =>
      around(async () => write.apply(events, args), args[3] as EventRequest[]),
  });
}

/** The bus, with its joint status write killing the worker before or after it happens. */
function dyingBus(events: RuntimeBackends['events'], when: 'before' | 'after') {
  return aroundJointWrite(events, async (write) => {
    if (when === 'before') throw new Killed('killed before the status write');
    await write();
    throw new Killed('killed after the status write');
  });
}

/** The failure every turn here ends with. */
const failure = { code: 'INTERNAL', message: 'the turn fails' };

/**
 * A running turn on a new session whose failed ending is recorded (the first effect marked
 * begun), after `holder` claimed the session's lease: the turn's own holder as a submission does,
 * or another runtime's.
 */
async function turnWithRecordedEnding(holder: 'the turn' | 'another-runtime') {
  const config = environment.configFor();
  const turns = new TurnRecords(environment.pool, config.hostSchema);
  const sessionId = await environment.createSession();
  const turnId = newId('turn');
  const step = initialTurnStep({ sessionId, turnId, input: { role: 'user', content: [] } });
  if (holder === 'the turn') {
    await claimTurnLease(environment.backends.sessions, sessionId, turnId, 60_000);
  } else {
    await environment.backends.sessions.claimTurnLease(sessionId, holder, 60_000);
  }
  expect(await turns.insert(turnId, sessionId, step)).toBeNull();
  const claim = await turns.claimStep(turnId, 0, 0);
  const fence = claim?.fence ?? 0;
  const ending: PendingEnding = {
    kind: 'fail',
    state: initialTurnState({ sessionId, turnId }),
    outcome: { success: false, response: '', stopReason: 'error', error: failure },
    error: failure,
  };
  const recorded = await turns.beginEnding(turnId, fence, ending);
  expect(recorded).toMatchObject({ kind: 'fail', numbering: 2 });
  return { turns, sessionId, turnId, fence, recorded: recorded as PendingEnding };
}

describe('a turn ending with its status and events in one statement', () => {
  it.each(['before', 'after'] as const)(
    'is delivered once when the worker dies %s that statement',
    async (when) => {
      const { turns, sessionId, turnId, fence, recorded } =
        await turnWithRecordedEnding('the turn');
      // The stores as they are (the fixture's own wrap the session store to inject faults).
      const adapter = { ...fixture.host.hostAdapter, backends: environment.backends };
      const statements: string[] = [];
      const counting = aroundJointWrite(environment.backends.events, (write, requests) => {
        statements.push(String(requests.map((request) => request.type)));
        return write();
      });
      await expect(
        deliverEnding(
          {
            ...adapter,
            backends: { ...environment.backends, events: dyingBus(counting, when) },
          },
          turns,
          {
            turnId,
            sessionId,
            fence,
            ending: recorded,
            endingStarted: 0,
            endingDone: 0,
            // As the step job that recorded it: `beginEnding` marked the first effect begun.
            firstEffectBegun: true,
          },
        ),
      ).rejects.toThrow(Killed);
      // Another worker claims the turn and delivers the rest.
      const resumed = await turns.claimStep(turnId, 0, 0);
      expect(resumed).toMatchObject({ endingStarted: 1, endingDone: 0 });
      await deliverEnding(
        { ...adapter, backends: { ...environment.backends, events: counting } },
        turns,
        {
          ...(resumed as NonNullable<typeof resumed>),
          ending: resumed?.ending as PendingEnding,
        },
      );
      const types = (await environment.backends.events.loadEvents(sessionId)).map(
        (event) => event.type,
      );
      expect(types).toEqual(['turn.failed', 'session.idled']);
      // One joint write in all: by the second worker when the first died before it; by the first
      // when it died after it, the second finding its first event and writing nothing again.
      expect(statements).toEqual(['turn.failed,session.idled']);
      expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
      expect(await environment.backends.sessions.getTurnLease(sessionId)).toBeNull();
      expect(await turns.get(turnId)).toMatchObject({ status: 'failed', error: failure });
    },
  );

  it('writes the ending without taking the lease of another holder of the session', async () => {
    // The turn's lease lapsed and another runtime holds the session now.
    const { turns, sessionId, turnId, fence, recorded } =
      await turnWithRecordedEnding('another-runtime');
    const adapter = { ...fixture.host.hostAdapter, backends: environment.backends };
    await deliverEnding(adapter, turns, {
      turnId,
      sessionId,
      fence,
      ending: recorded,
      endingStarted: 0,
      endingDone: 0,
      firstEffectBegun: true,
    });
    const types = (await environment.backends.events.loadEvents(sessionId)).map(
      (event) => event.type,
    );
    expect(types).toEqual(['turn.failed', 'session.idled']);
    expect(await environment.backends.sessions.getTurnLease(sessionId)).toMatchObject({
      holderId: 'another-runtime',
    });
    expect(await turns.get(turnId)).toMatchObject({ status: 'failed', error: failure });
  });
});
