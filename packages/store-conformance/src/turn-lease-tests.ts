import type { RuntimeBackends, TurnLease } from '@everruns-ts/core';
import { EverrunsError } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { expectErrorCode, HOSTILE_STRINGS, makeSession, randomId } from './helpers.js';

/** A long lease: it never lapses during a test. */
const LONG_MS = 60_000;
/** A short lease, and a wait after which it has surely lapsed. */
const SHORT_MS = 150;
const PAST_SHORT_MS = 400;

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function newSession(backends: RuntimeBackends): Promise<string> {
  const session = makeSession();
  await backends.sessions.createSession(session);
  return session.id;
}

function expiry(lease: TurnLease | null): number {
  if (lease === null) throw new Error('expected a lease');
  const time = Date.parse(lease.expiresAt);
  expect(Number.isNaN(time), `expiresAt ${lease.expiresAt} is a date`).toBe(false);
  return time;
}

/**
 * Tests of the session store's turn lease (`claimTurnLease`, `renewTurnLease`,
 * `releaseTurnLease`, `getTurnLease`): one holder at a time, typed `TURN_IN_PROGRESS` for the
 * others, release only by the holder, take-over after the lease lapses, exactly one winner among
 * parallel claims, renewal that extends. Registered inside the session store area.
 */
export function turnLeaseTests(backends: () => RuntimeBackends): void {
  describe('turn lease', () => {
    it('claims a free lease once; another holder gets a typed TURN_IN_PROGRESS', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const first = randomId('holder');
      const started = Date.now();
      const lease = await store.sessions.claimTurnLease(sessionId, first, LONG_MS);
      expect(lease).toMatchObject({ sessionId, holderId: first });
      // The store's clock may differ a little from the test's: half the duration is slack enough.
      expect(expiry(lease)).toBeGreaterThan(started + LONG_MS / 2);
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(lease);

      const second = randomId('holder');
      const error = await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, second, LONG_MS),
        'TURN_IN_PROGRESS',
      );
      expect(error.details).toEqual({ sessionId, holder: first, expiresAt: lease.expiresAt });
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(lease);
    });

    it('answers a repeated claim of the same holder by extending its lease', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      const first = await store.sessions.claimTurnLease(sessionId, holder, 1_000);
      await sleep(20);
      const again = await store.sessions.claimTurnLease(sessionId, holder, LONG_MS);
      expect(again.holderId).toBe(holder);
      expect(expiry(again)).toBeGreaterThan(expiry(first));
    });

    it('ignores a release by anyone but the holder', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      const other = randomId('holder');
      const lease = await store.sessions.claimTurnLease(sessionId, holder, LONG_MS);
      expect(await store.sessions.releaseTurnLease(sessionId, other)).toBe(false);
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(lease);
      await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, other, LONG_MS),
        'TURN_IN_PROGRESS',
      );

      expect(await store.sessions.releaseTurnLease(sessionId, holder)).toBe(true);
      expect(await store.sessions.getTurnLease(sessionId)).toBeNull();
      expect(await store.sessions.releaseTurnLease(sessionId, holder)).toBe(false);
      expect(await store.sessions.renewTurnLease(sessionId, holder, LONG_MS)).toBeNull();
      expect((await store.sessions.claimTurnLease(sessionId, other, LONG_MS)).holderId).toBe(other);
    });

    it('lets another holder take a lapsed lease over; the old holder can then neither renew nor release', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const stale = randomId('holder');
      const next = randomId('holder');
      await store.sessions.claimTurnLease(sessionId, stale, SHORT_MS);
      await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, next, LONG_MS),
        'TURN_IN_PROGRESS',
      );
      await sleep(PAST_SHORT_MS);
      expect(await store.sessions.getTurnLease(sessionId)).toBeNull();

      const taken = await store.sessions.claimTurnLease(sessionId, next, LONG_MS);
      expect(taken.holderId).toBe(next);
      expect(await store.sessions.renewTurnLease(sessionId, stale, LONG_MS)).toBeNull();
      expect(await store.sessions.releaseTurnLease(sessionId, stale)).toBe(false);
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(taken);
    });

    it('gives a free lease to exactly one of many parallel claims', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holders = Array.from({ length: 24 }, () => randomId('holder'));
      const outcomes = await Promise.allSettled(
        holders.map((holder) => store.sessions.claimTurnLease(sessionId, holder, LONG_MS)),
      );
      const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      const winner = (winners[0] as PromiseFulfilledResult<TurnLease>).value;
      expect(holders).toContain(winner.holderId);
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') continue;
        const error: unknown = outcome.reason;
        expect(EverrunsError.hasCode(error, 'TURN_IN_PROGRESS'), String(error)).toBe(true);
        expect((error as EverrunsError).details).toMatchObject({
          sessionId,
          holder: winner.holderId,
        });
      }
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(winner);
    });

    it('renews a lease: the new expiry is later and holds past the first one', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      const other = randomId('holder');
      const first = await store.sessions.claimTurnLease(sessionId, holder, SHORT_MS * 2);
      expect(await store.sessions.renewTurnLease(sessionId, other, LONG_MS)).toBeNull();
      await sleep(50);
      const renewed = await store.sessions.renewTurnLease(sessionId, holder, LONG_MS);
      expect(renewed).toMatchObject({ sessionId, holderId: holder });
      expect(expiry(renewed)).toBeGreaterThan(expiry(first));
      await sleep(PAST_SHORT_MS);
      await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, other, LONG_MS),
        'TURN_IN_PROGRESS',
      );
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(renewed);
    });

    it('renews a lapsed lease that nobody took over', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      await store.sessions.claimTurnLease(sessionId, holder, SHORT_MS);
      await sleep(PAST_SHORT_MS);
      const renewed = await store.sessions.renewTurnLease(sessionId, holder, LONG_MS);
      expect(renewed?.holderId).toBe(holder);
      await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, randomId('holder'), LONG_MS),
        'TURN_IN_PROGRESS',
      );
    });

    it('keeps leases per session and leaves the session itself unchanged', async () => {
      const store = backends();
      const one = await newSession(store);
      const two = await newSession(store);
      const before = await store.sessions.getSession(one);
      const holder = randomId('holder');
      await store.sessions.claimTurnLease(one, holder, LONG_MS);
      expect(
        (await store.sessions.claimTurnLease(two, randomId('holder'), LONG_MS)).sessionId,
      ).toBe(two);
      expect(await store.sessions.getSession(one)).toEqual(before);
      expect(await store.sessions.releaseTurnLease(one, holder)).toBe(true);
      expect(await store.sessions.getSession(one)).toEqual(before);
      expect(await store.sessions.getTurnLease(two)).not.toBeNull();
    });

    it('refuses a claim on an unknown session; the other lease methods treat it as unleased', async () => {
      const store = backends();
      const unknown = randomId('session');
      const holder = randomId('holder');
      await expectErrorCode(
        store.sessions.claimTurnLease(unknown, holder, LONG_MS),
        'SESSION_NOT_FOUND',
      );
      expect(await store.sessions.renewTurnLease(unknown, holder, LONG_MS)).toBeNull();
      expect(await store.sessions.releaseTurnLease(unknown, holder)).toBe(false);
      expect(await store.sessions.getTurnLease(unknown)).toBeNull();
    });

    it('refuses an empty holder id and a duration that is not a positive integer', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      for (const duration of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expectErrorCode(
          store.sessions.claimTurnLease(sessionId, holder, duration),
          'INVALID_INPUT',
        );
      }
      await expectErrorCode(store.sessions.claimTurnLease(sessionId, '', LONG_MS), 'INVALID_INPUT');
      expect(await store.sessions.getTurnLease(sessionId)).toBeNull();
      await store.sessions.claimTurnLease(sessionId, holder, LONG_MS);
      await expectErrorCode(store.sessions.renewTurnLease(sessionId, holder, 0), 'INVALID_INPUT');
    });

    it('takes hostile holder ids as opaque data', async () => {
      const store = backends();
      for (const value of HOSTILE_STRINGS) {
        const sessionId = await newSession(store);
        const holder = `${value}${randomId()}`;
        const lease = await store.sessions.claimTurnLease(sessionId, holder, LONG_MS);
        expect(lease.holderId).toBe(holder);
        expect(await store.sessions.getTurnLease(sessionId)).toEqual(lease);
        const error = await expectErrorCode(
          store.sessions.claimTurnLease(sessionId, `${holder}x`, LONG_MS),
          'TURN_IN_PROGRESS',
        );
        expect(error.details.holder).toBe(holder);
        expect(await store.sessions.releaseTurnLease(sessionId, holder)).toBe(true);
      }
    });

    it('writes a status conditionally on the lease: only while the holder holds it, lapsed or not', async () => {
      const store = backends();
      const sessionId = await newSession(store);
      const holder = randomId('holder');
      const other = randomId('holder');
      const statusOf = async () => (await store.sessions.getSession(sessionId))?.status;
      const before = await statusOf();

      // Nobody holds the lease: refused, nothing changed.
      const unleased = await expectErrorCode(
        store.sessions.updateSessionStatus(sessionId, 'active', { leaseHolder: holder }),
        'TURN_IN_PROGRESS',
      );
      expect(unleased.details).toEqual({ sessionId });
      expect(await statusOf()).toBe(before);

      await store.sessions.claimTurnLease(sessionId, holder, SHORT_MS);
      const written = await store.sessions.updateSessionStatus(sessionId, 'active', {
        leaseHolder: holder,
      });
      expect(written.status).toBe('active');
      expect(await statusOf()).toBe('active');
      await expectErrorCode(
        store.sessions.updateSessionStatus(sessionId, 'idle', { leaseHolder: other }),
        'TURN_IN_PROGRESS',
      );
      expect(await statusOf()).toBe('active');

      // Lapsed but not taken over: the holder still writes.
      await sleep(PAST_SHORT_MS);
      await store.sessions.updateSessionStatus(sessionId, 'waiting_for_tool_results', {
        leaseHolder: holder,
      });
      expect(await statusOf()).toBe('waiting_for_tool_results');

      // Taken over: the old holder's write is refused and names the new holder.
      const taken = await store.sessions.claimTurnLease(sessionId, other, LONG_MS);
      await store.sessions.updateSessionStatus(sessionId, 'active', { leaseHolder: other });
      const stale = await expectErrorCode(
        store.sessions.updateSessionStatus(sessionId, 'idle', { leaseHolder: holder }),
        'TURN_IN_PROGRESS',
      );
      expect(stale.details).toEqual({ sessionId, holder: other, expiresAt: taken.expiresAt });
      expect(await statusOf()).toBe('active');

      // Released: refused for the former holder; an unconditional write still works.
      expect(await store.sessions.releaseTurnLease(sessionId, other)).toBe(true);
      await expectErrorCode(
        store.sessions.updateSessionStatus(sessionId, 'idle', { leaseHolder: other }),
        'TURN_IN_PROGRESS',
      );
      expect(await statusOf()).toBe('active');
      expect((await store.sessions.updateSessionStatus(sessionId, 'idle')).status).toBe('idle');
    });

    it('refuses a conditional status write on an unknown session with SESSION_NOT_FOUND', async () => {
      const store = backends();
      await expectErrorCode(
        store.sessions.updateSessionStatus(randomId('session'), 'idle', {
          leaseHolder: randomId('holder'),
        }),
        'SESSION_NOT_FOUND',
      );
    });

    it('claimTurnLeaseAndLoadSetup, where the bundle offers it, claims as claimTurnLease does and loads the setup', async (context) => {
      const store = backends();
      if (typeof store.claimTurnLeaseAndLoadSetup !== 'function') {
        context.skip();
        return;
      }
      const sessionId = await newSession(store);
      await store.storage.setValue(sessionId, 'wait/a', 'x');
      const holder = randomId('holder');
      const claimed = await store.claimTurnLeaseAndLoadSetup(sessionId, holder, LONG_MS, {
        storageKeyPrefix: 'wait/',
      });
      expect(claimed.lease).toMatchObject({ sessionId, holderId: holder });
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(claimed.lease);
      expect(claimed.setup?.session.id).toBe(sessionId);
      // A bundle may leave the keys out (callers then list them); when it reads them they are right.
      if (claimed.setup?.storageKeys !== undefined) {
        expect(claimed.setup.storageKeys).toEqual(['wait/a']);
      }
      const error = await expectErrorCode(
        store.claimTurnLeaseAndLoadSetup(sessionId, randomId('holder'), LONG_MS),
        'TURN_IN_PROGRESS',
      );
      expect(error.details).toMatchObject({ sessionId, holder });
      expect(await store.sessions.getTurnLease(sessionId)).toEqual(claimed.lease);
      await expectErrorCode(
        store.claimTurnLeaseAndLoadSetup(randomId('session'), holder, LONG_MS),
        'SESSION_NOT_FOUND',
      );
    });
  });
}
