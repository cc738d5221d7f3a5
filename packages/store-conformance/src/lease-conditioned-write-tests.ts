import {
  EverrunsError,
  type MessageWriteLease,
  type NewMessage,
  type RuntimeBackends,
  type TurnLease,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { expectErrorCode, makeSession, randomId } from './helpers.js';

/** A long lease: it never lapses during a test. */
const LONG_MS = 60_000;
/** A short lease, and a wait after which it has surely lapsed. */
const SHORT_MS = 150;
const PAST_SHORT_MS = 400;

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

const agentText = (text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  role: 'agent',
  content: [{ type: 'text', text }],
  ...extra,
});

async function leasedSession(
  backends: RuntimeBackends,
  durationMs = LONG_MS,
): Promise<{ sessionId: string; lease: MessageWriteLease; claimed: TurnLease }> {
  const session = makeSession();
  await backends.sessions.createSession(session);
  const holderId = randomId('holder');
  const claimed = await backends.sessions.claimTurnLease(session.id, holderId, durationMs);
  return { sessionId: session.id, lease: { holderId, durationMs: LONG_MS }, claimed };
}

/**
 * Tests of message writes conditioned on the session's turn lease (`MessageWriteOptions.lease`),
 * for a backend whose message store sets `leaseConditionedWrites`: the holder's writes land and
 * renew its lease; a holder that lost the lease (taken over, released) gets `TURN_IN_PROGRESS`
 * and writes nothing, also for a write its idempotency key would answer; malformed leases are
 * `INVALID_INPUT`. Skipped for a store without the flag. Registered inside the session store area.
 */
export function leaseConditionedWriteTests(backends: () => RuntimeBackends): void {
  describe('message writes conditioned on the turn lease', () => {
    const leasedIt = (name: string, body: (store: RuntimeBackends) => Promise<void>) =>
      it(name, async (context) => {
        const store = backends();
        if (store.messages.leaseConditionedWrites !== true) {
          context.skip();
          return;
        }
        await body(store);
      });

    leasedIt("stores the holder's writes and renews its lease with each", async (store) => {
      const { sessionId, lease, claimed } = await leasedSession(store, 1_000);
      await sleep(20);
      const input = await store.messages.addInputMessage(
        sessionId,
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
        'turn_1',
        { lease },
      );
      expect(input).toMatchObject({ sessionId, seq: 1, role: 'user', turnId: 'turn_1' });
      const renewed = await store.sessions.getTurnLease(sessionId);
      expect(renewed?.holderId).toBe(lease.holderId);
      expect(Date.parse(renewed!.expiresAt)).toBeGreaterThan(Date.parse(claimed.expiresAt));

      const one = await store.messages.storeMessage(sessionId, agentText('one'), { lease });
      const expected = await store.messages.storeMessage(sessionId, agentText('two'), {
        lease,
        expectedSeq: 3,
      });
      const batch = await store.messages.storeMessages(
        sessionId,
        [agentText('three'), agentText('four')],
        { lease },
      );
      expect([one.seq, expected.seq, ...batch.map((message) => message.seq)]).toEqual([2, 3, 4, 5]);
      expect(await store.messages.count(sessionId)).toBe(5);
      expect((await store.sessions.getTurnLease(sessionId))?.holderId).toBe(lease.holderId);
    });

    leasedIt('keeps the lease conditions apart from expectedSeq and idempotency', async (store) => {
      const { sessionId, lease } = await leasedSession(store);
      const first = await store.messages.storeMessage(
        sessionId,
        agentText('once', { idempotencyKey: 'k1' }),
        { lease },
      );
      const again = await store.messages.storeMessage(
        sessionId,
        agentText('twice', { idempotencyKey: 'k1' }),
        { lease },
      );
      expect(again).toEqual(first);
      const batch = await store.messages.storeMessages(
        sessionId,
        [agentText('twice', { idempotencyKey: 'k1' })],
        { lease },
      );
      expect(batch).toEqual([first]);
      await expectErrorCode(
        store.messages.storeMessage(sessionId, agentText('late'), { lease, expectedSeq: 1 }),
        'STORE_CONFLICT',
      );
      expect(await store.messages.count(sessionId)).toBe(1);
    });

    leasedIt(
      'refuses every write of a holder whose lease was taken over, writing nothing',
      async (store) => {
        const { sessionId, lease } = await leasedSession(store, SHORT_MS);
        const stored = await store.messages.storeMessage(
          sessionId,
          agentText('before', { idempotencyKey: 'k1' }),
          { lease: { ...lease, durationMs: SHORT_MS } },
        );
        await sleep(PAST_SHORT_MS);
        const next = randomId('holder');
        const taken = await store.sessions.claimTurnLease(sessionId, next, LONG_MS);
        const writes: Array<() => Promise<unknown>> = [
          () => store.messages.storeMessage(sessionId, agentText('stale'), { lease }),
          () =>
            store.messages.storeMessage(sessionId, agentText('stale'), { lease, expectedSeq: 2 }),
          // A write its idempotency key would answer is refused as well.
          () =>
            store.messages.storeMessage(sessionId, agentText('x', { idempotencyKey: 'k1' }), {
              lease,
            }),
          () =>
            store.messages.storeMessages(sessionId, [agentText('a'), agentText('b')], { lease }),
          () =>
            store.messages.storeMessages(sessionId, [agentText('x', { idempotencyKey: 'k1' })], {
              lease,
            }),
          () =>
            store.messages.addInputMessage(
              sessionId,
              { role: 'user', content: [{ type: 'text', text: 'stale' }] },
              'turn_stale',
              { lease },
            ),
        ];
        for (const write of writes) {
          const error = await expectErrorCode(write(), 'TURN_IN_PROGRESS');
          expect(error.details).toEqual({
            sessionId,
            holder: next,
            expiresAt: taken.expiresAt,
          });
        }
        expect(await store.messages.load(sessionId)).toEqual([stored]);
        expect(await store.sessions.getTurnLease(sessionId)).toEqual(taken);
        // The new holder writes.
        const own = await store.messages.storeMessage(sessionId, agentText('mine'), {
          lease: { holderId: next, durationMs: LONG_MS },
        });
        expect(own.seq).toBe(2);
      },
    );

    leasedIt(
      'refuses writes after a release and on an unknown session, naming no holder',
      async (store) => {
        const { sessionId, lease } = await leasedSession(store);
        expect(await store.sessions.releaseTurnLease(sessionId, lease.holderId)).toBe(true);
        // Without a lease the write is unconditional.
        await store.messages.storeMessage(sessionId, agentText('after'));
        const refused = await expectErrorCode(
          store.messages.storeMessage(sessionId, agentText('leased'), { lease }),
          'TURN_IN_PROGRESS',
        );
        expect(refused.details).toEqual({ sessionId });
        expect(await store.messages.count(sessionId)).toBe(1);
        expect(await store.sessions.getTurnLease(sessionId)).toBeNull();

        const unknown = randomId('session');
        const error = await expectErrorCode(
          store.messages.storeMessages(unknown, [agentText('x')], { lease }),
          'TURN_IN_PROGRESS',
        );
        expect(error.details).toEqual({ sessionId: unknown });
        expect(await store.messages.count(unknown)).toBe(0);
      },
    );

    leasedIt('renews a lapsed lease that nobody took over with a write', async (store) => {
      const { sessionId, lease } = await leasedSession(store, SHORT_MS);
      await sleep(PAST_SHORT_MS);
      expect(await store.sessions.getTurnLease(sessionId)).toBeNull();
      await store.messages.storeMessages(sessionId, [], { lease });
      expect((await store.sessions.getTurnLease(sessionId))?.holderId).toBe(lease.holderId);
      await expectErrorCode(
        store.sessions.claimTurnLease(sessionId, randomId('holder'), LONG_MS),
        'TURN_IN_PROGRESS',
      );
    });

    leasedIt('lets exactly one of a write and a racing claim win a lapsed lease', async (store) => {
      for (let round = 0; round < 5; round++) {
        const { sessionId, lease } = await leasedSession(store, 1);
        await sleep(5);
        const next = randomId('holder');
        const [write, claim] = await Promise.allSettled([
          store.messages.storeMessage(sessionId, agentText('racing'), { lease }),
          store.sessions.claimTurnLease(sessionId, next, LONG_MS),
        ]);
        const current = await store.sessions.getTurnLease(sessionId);
        if (claim.status === 'fulfilled') {
          // The claim took the lapsed lease over first: the write was refused.
          expect(current?.holderId).toBe(next);
          expect(write.status).toBe('rejected');
          if (write.status === 'rejected') {
            expect(EverrunsError.hasCode(write.reason, 'TURN_IN_PROGRESS')).toBe(true);
          }
          expect(await store.messages.count(sessionId)).toBe(0);
        } else {
          // The write renewed the lease first: the claim found it running.
          expect(write.status).toBe('fulfilled');
          expect(await store.messages.count(sessionId)).toBe(1);
          expect(EverrunsError.hasCode(claim.reason, 'TURN_IN_PROGRESS')).toBe(true);
          expect(current?.holderId).toBe(lease.holderId);
        }
      }
    });

    leasedIt('refuses a malformed lease with INVALID_INPUT, writing nothing', async (store) => {
      const { sessionId, lease } = await leasedSession(store);
      const bad: MessageWriteLease[] = [
        { holderId: '', durationMs: LONG_MS },
        { holderId: lease.holderId, durationMs: 0 },
        { holderId: lease.holderId, durationMs: 1.5 },
        { holderId: lease.holderId, durationMs: Number.NaN },
      ];
      for (const malformed of bad) {
        await expectErrorCode(
          store.messages.storeMessage(sessionId, agentText('x'), { lease: malformed }),
          'INVALID_INPUT',
        );
        await expectErrorCode(
          store.messages.storeMessages(sessionId, [agentText('x')], { lease: malformed }),
          'INVALID_INPUT',
        );
      }
      expect(await store.messages.count(sessionId)).toBe(0);
    });
  });
}
