import {
  type ClaimEventBus,
  type EventRequest,
  type Message,
  type MessageEventBus,
  type NewMessage,
  type RuntimeBackends,
  type RuntimeEvent,
  type StatusEventBus,
  setValueIfAbsentAndEmit,
  storeMessageAndEmit,
  updateSessionStatusAndEmit,
} from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { expectErrorCode, makeSession, randomId, TRICKY_TEXT } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

const agentText = (text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  role: 'agent',
  content: [{ type: 'text', text }],
  ...extra,
});

/** The events announcing a message, as the reason step builds them. */
const announce =
  (sessionId: string, turnId: string) =>
  (stored: Message): EventRequest[] => [
    {
      type: 'output.message.completed',
      sessionId,
      turnId,
      data: { messageId: stored.id, seq: stored.seq, text: TRICKY_TEXT, calls: [{ a: [1, 2] }] },
    },
    { type: 'reason.completed', sessionId, turnId, data: { success: true, seq: stored.seq } },
  ];

/** The `seq` the session's next event takes (an event emitted to find out). */
async function nextEventSeq(backends: RuntimeBackends, sessionId: string): Promise<number> {
  return (await backends.events.emit({ type: 'tool.started', sessionId, data: {} })).seq;
}

/**
 * Tests of a message stored with the events announcing it (`storeMessageAndEmit` of core, through
 * the bus's own `storeMessageAndEmit` where it is a `MessageEventBus`): the same message and
 * events as `storeMessage` then `emitEvents`, in order and numbered consecutively, the stored
 * message's id and `seq` in their data; an answered write announces the stored message; a write
 * refused for a lost lease writes neither; data that uses the `seq` in other ways, and a message
 * store the bus does not own, still come out right. Likewise a session's status set with the
 * events announcing it (`updateSessionStatusAndEmit`): a refused update emits nothing.
 */
export function messageAndEventsTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'a message stored with its events', ({ backends }) => {
    it('stores the message and emits the built events after it, in order, numbered consecutively', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const turnId = randomId('turn');
      await store.messages.storeMessage(session.id, agentText('before'));
      const first = await nextEventSeq(store, session.id);
      const heard: RuntimeEvent[] = [];
      const stop = store.events.subscribe?.((event) => {
        if (event.sessionId === session.id) heard.push(event);
      });
      try {
        const { message, events } = await storeMessageAndEmit(
          store,
          session.id,
          agentText(TRICKY_TEXT, { turnId, idempotencyKey: `${turnId}/reason/1` }),
          announce(session.id, turnId),
        );
        expect(message).toMatchObject({ sessionId: session.id, seq: 2, role: 'agent', turnId });
        expect(await store.messages.load(session.id)).toEqual([
          expect.objectContaining({ seq: 1 }),
          message,
        ]);
        expect(events.map((event) => [event.type, event.seq, event.turnId])).toEqual([
          ['output.message.completed', first + 1, turnId],
          ['reason.completed', first + 2, turnId],
        ]);
        expect(events[0]!.data).toEqual({
          messageId: message.id,
          seq: 2,
          text: TRICKY_TEXT,
          calls: [{ a: [1, 2] }],
        });
        expect(events[1]!.data).toEqual({ success: true, seq: 2 });
        expect(new Set(events.map((event) => event.id)).size).toBe(2);
        for (const event of events) expect(new Date(event.ts).toISOString()).toBe(event.ts);
        if (stop !== undefined) {
          expect(heard.slice(-2).map((event) => event.id)).toEqual(events.map((e) => e.id));
        }
        if (store.events.collectedEvents !== undefined) {
          const kept = store.events.collectedEvents(session.id).slice(-2);
          if (kept.length > 0) expect(kept).toEqual(events);
        }
        expect(await nextEventSeq(store, session.id)).toBe(first + 3);
      } finally {
        stop?.();
      }
    });

    it('announces the stored message when the idempotency key answers the write', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const turnId = randomId('turn');
      const key = `${turnId}/input`;
      const stored = await store.messages.storeMessage(
        session.id,
        agentText('first', { turnId, idempotencyKey: key }),
      );
      const { message, events } = await storeMessageAndEmit(
        store,
        session.id,
        agentText('second', { turnId, idempotencyKey: key }),
        (answer) => [
          {
            type: 'input.message',
            sessionId: session.id,
            turnId,
            data: { messageId: answer.id, seq: answer.seq },
          },
        ],
      );
      expect(message).toEqual(stored);
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toEqual({ messageId: stored.id, seq: 1 });
      expect(await store.messages.count(session.id)).toBe(1);
    });

    it('puts the seq into data that uses it in other ways too', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      for (const text of ['a', 'b', 'c'])
        await store.messages.storeMessage(session.id, agentText(text));
      const { message, events } = await storeMessageAndEmit(
        store,
        session.id,
        agentText('d'),
        (stored) => [
          {
            type: 'tool.completed',
            sessionId: session.id,
            data: {
              seq: stored.seq,
              text: `at ${stored.seq}`,
              double: stored.seq * 2,
              [`key${stored.seq}`]: true,
            },
          },
        ],
      );
      expect(message.seq).toBe(4);
      expect(events[0]!.data).toEqual({ seq: 4, text: 'at 4', double: 8, key4: true });
    });

    it('stores through a message store the bus does not own, and emits the events', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const calls: string[] = [];
      const messages = new Proxy(store.messages, {
        get(target, property) {
          const value = Reflect.get(target, property, target);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(property));
            return value.apply(target, args);
          };
        },
      });
      const { message, events } = await storeMessageAndEmit(
        { messages, events: store.events },
        session.id,
        agentText('through a wrapper'),
        (stored) => [{ type: 'input.message', sessionId: session.id, data: { seq: stored.seq } }],
      );
      expect(calls).toContain('storeMessage');
      expect(message.seq).toBe(1);
      expect(events[0]!.data).toEqual({ seq: 1 });
    });

    it('writes neither the message nor its events for a holder that lost the lease', async (context) => {
      const store = backends();
      if (store.messages.leaseConditionedWrites !== true) {
        context.skip();
        return;
      }
      const session = makeSession();
      await store.sessions.createSession(session);
      const holderId = randomId('holder');
      await store.sessions.claimTurnLease(session.id, holderId, 60_000);
      const lease = { holderId, durationMs: 60_000 };
      const first = await nextEventSeq(store, session.id);
      const { events } = await storeMessageAndEmit(
        store,
        session.id,
        agentText('held'),
        announce(session.id, 'turn_1'),
        { lease },
      );
      expect(events.map((event) => event.seq)).toEqual([first + 1, first + 2]);
      const renewed = await store.sessions.getTurnLease(session.id);
      expect(renewed?.holderId).toBe(holderId);
      await store.sessions.releaseTurnLease(session.id, holderId);
      await store.sessions.claimTurnLease(session.id, randomId('other'), 60_000);
      await expectErrorCode(
        storeMessageAndEmit(store, session.id, agentText('lost'), announce(session.id, 'turn_1'), {
          lease,
        }),
        'TURN_IN_PROGRESS',
      );
      expect(await store.messages.count(session.id)).toBe(1);
      expect(await nextEventSeq(store, session.id)).toBe(first + 3);
    });

    it("is the bus's storeMessageAndEmit where the bus offers it: its own store jointly, another store not at all", async (context) => {
      const store = backends();
      const bus = store.events as Partial<MessageEventBus>;
      if (typeof bus.storeMessageAndEmit !== 'function') {
        context.skip();
        return;
      }
      const session = makeSession();
      await store.sessions.createSession(session);
      const first = await nextEventSeq(store, session.id);
      const wrapper = new Proxy(store.messages, {});
      const declined = await bus.storeMessageAndEmit(
        wrapper,
        session.id,
        agentText('not here'),
        announce(session.id, 'turn_2'),
      );
      expect(declined).toBeNull();
      expect(await store.messages.count(session.id)).toBe(0);
      const joint = await bus.storeMessageAndEmit(
        store.messages,
        session.id,
        agentText('direct'),
        announce(session.id, 'turn_2'),
      );
      expect(await store.messages.load(session.id)).toEqual([joint?.message]);
      expect(joint?.message.seq).toBe(1);
      if (joint?.events) {
        expect(joint.events.map((event) => [event.seq, event.data.seq])).toEqual([
          [first + 1, 1],
          [first + 2, 1],
        ]);
        expect(joint.events[0]!.data.messageId).toBe(joint.message.id);
        expect(await nextEventSeq(store, session.id)).toBe(first + 3);
      } else {
        expect(await nextEventSeq(store, session.id)).toBe(first + 1);
      }
    });

    it('claims a value with its events: emitted once, only by the claim that set it', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const first = await nextEventSeq(store, session.id);
      const key = `everruns:runtime/tool-started/${randomId('turn')}/call_1`;
      const started = (toolCallId: string): EventRequest[] => [
        { type: 'tool.started', sessionId: session.id, data: { toolCallId, text: TRICKY_TEXT } },
      ];
      const heard: RuntimeEvent[] = [];
      const stop = store.events.subscribe?.((event) => {
        if (event.sessionId === session.id) heard.push(event);
      });
      try {
        const claimed = await setValueIfAbsentAndEmit(store, session.id, key, 'one', started('a'));
        expect(claimed.set).toBe(true);
        expect(claimed.events.map((event) => [event.seq, event.data.toolCallId])).toEqual([
          [first + 1, 'a'],
        ]);
        expect(claimed.events[0]!.data.text).toBe(TRICKY_TEXT);
        const again = await setValueIfAbsentAndEmit(store, session.id, key, 'two', started('b'));
        expect(again).toEqual({ set: false, events: [] });
        expect(await store.storage.getValue(session.id, key)).toBe('one');
        expect(await nextEventSeq(store, session.id)).toBe(first + 2);
        if (stop) {
          expect(heard.map((event) => event.data.toolCallId)).toEqual(
            expect.arrayContaining(['a']),
          );
          expect(heard.some((event) => event.data.toolCallId === 'b')).toBe(false);
        }
      } finally {
        stop?.();
      }
    });

    it("is the bus's setValueIfAbsentAndEmit where the bus offers it: its own storage jointly, another not at all", async (context) => {
      const store = backends();
      const bus = store.events as Partial<ClaimEventBus>;
      if (typeof bus.setValueIfAbsentAndEmit !== 'function') {
        context.skip();
        return;
      }
      const session = makeSession();
      await store.sessions.createSession(session);
      const first = await nextEventSeq(store, session.id);
      const started: EventRequest[] = [
        { type: 'tool.started', sessionId: session.id, data: { toolCallId: 'call_1' } },
      ];
      const declined = await bus.setValueIfAbsentAndEmit(
        new Proxy(store.storage, {}),
        session.id,
        'claim/1',
        'v',
        started,
      );
      expect(declined).toBeNull();
      expect(await store.storage.getValue(session.id, 'claim/1')).toBeNull();
      const joint = await bus.setValueIfAbsentAndEmit(
        store.storage,
        session.id,
        'claim/1',
        'v',
        started,
      );
      expect(joint?.set).toBe(true);
      expect(await store.storage.getValue(session.id, 'claim/1')).toBe('v');
      if (joint?.events) {
        expect(joint.events.map((event) => event.seq)).toEqual([first + 1]);
        expect(await nextEventSeq(store, session.id)).toBe(first + 2);
      }
      const taken = await bus.setValueIfAbsentAndEmit(
        store.storage,
        session.id,
        'claim/1',
        'w',
        started,
      );
      expect(taken).toEqual({ set: false, events: null });
    });

    it('sets a status and emits its events after it, in order, numbered consecutively', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const first = await nextEventSeq(store, session.id);
      const turnId = randomId('turn');
      const { session: updated, events } = await updateSessionStatusAndEmit(
        store,
        session.id,
        'active',
        [
          { type: 'session.activated', sessionId: session.id, turnId, data: { turnId } },
          { type: 'turn.started', sessionId: session.id, turnId, data: { text: TRICKY_TEXT } },
        ],
      );
      expect(updated.status).toBe('active');
      expect((await store.sessions.getSession(session.id))?.status).toBe('active');
      expect(events.map((event) => [event.type, event.seq, event.turnId])).toEqual([
        ['session.activated', first + 1, turnId],
        ['turn.started', first + 2, turnId],
      ]);
      expect(events[1]!.data).toEqual({ text: TRICKY_TEXT });
      expect(await nextEventSeq(store, session.id)).toBe(first + 3);
    });

    it('changes nothing and emits nothing for a holder without the lease or an unknown session', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      await store.sessions.claimTurnLease(session.id, randomId('holder'), 60_000);
      const first = await nextEventSeq(store, session.id);
      const idled = [{ type: 'session.idled' as const, sessionId: session.id, data: {} }];
      await expectErrorCode(
        updateSessionStatusAndEmit(store, session.id, 'idle', idled, {
          leaseHolder: randomId('other'),
        }),
        'TURN_IN_PROGRESS',
      );
      expect((await store.sessions.getSession(session.id))?.status).toBe(session.status);
      expect(await nextEventSeq(store, session.id)).toBe(first + 1);
      const missing = randomId('session');
      await expectErrorCode(
        updateSessionStatusAndEmit(store, missing, 'idle', [
          { type: 'session.idled', sessionId: missing, data: {} },
        ]),
        'SESSION_NOT_FOUND',
      );
      expect(await nextEventSeq(store, missing)).toBe(1);
    });

    it("is the bus's updateSessionStatusAndEmit where the bus offers it: its own store jointly, another store not at all", async (context) => {
      const store = backends();
      const bus = store.events as Partial<StatusEventBus>;
      if (typeof bus.updateSessionStatusAndEmit !== 'function') {
        context.skip();
        return;
      }
      const session = makeSession();
      await store.sessions.createSession(session);
      const first = await nextEventSeq(store, session.id);
      const idled = [{ type: 'session.idled' as const, sessionId: session.id, data: { n: 1 } }];
      const declined = await bus.updateSessionStatusAndEmit(
        new Proxy(store.sessions, {}),
        session.id,
        'idle',
        idled,
      );
      expect(declined).toBeNull();
      expect((await store.sessions.getSession(session.id))?.status).toBe(session.status);
      const joint = await bus.updateSessionStatusAndEmit(store.sessions, session.id, 'idle', idled);
      expect(joint?.session.status).toBe('idle');
      if (joint?.events) {
        expect(joint.events.map((event) => [event.type, event.seq])).toEqual([
          ['session.idled', first + 1],
        ]);
        expect(await nextEventSeq(store, session.id)).toBe(first + 2);
      } else {
        expect(await nextEventSeq(store, session.id)).toBe(first + 1);
      }
    });

    it('ends a turn with releaseLease: released and its values deleted with the status, or left for the caller', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const holder = randomId('holder');
      await store.sessions.claimTurnLease(session.id, holder, 60_000);
      const journal = `journal/${randomId('turn')}/`;
      await store.storage.setValue(session.id, `${journal}call_1`, 'started');
      await store.storage.setValue(session.id, 'kept/value', 'kept');
      const first = await nextEventSeq(store, session.id);
      const {
        session: updated,
        events,
        leaseReleased,
      } = await updateSessionStatusAndEmit(
        store,
        session.id,
        'idle',
        [{ type: 'session.idled', sessionId: session.id, data: {} }],
        { leaseHolder: holder, releaseLease: { deleteValuesWithPrefix: journal } },
      );
      expect(updated.status).toBe('idle');
      expect(events.map((event) => event.seq)).toEqual([first + 1]);
      if (leaseReleased) {
        expect(await store.sessions.getTurnLease(session.id)).toBeNull();
        expect(await store.storage.listKeys(session.id)).toEqual(['kept/value']);
      } else {
        // Nothing of the release happened: the caller still holds the lease and its values.
        expect((await store.sessions.getTurnLease(session.id))?.holderId).toBe(holder);
        expect(await store.storage.listKeys(session.id)).toEqual([
          `${journal}call_1`,
          'kept/value',
        ]);
      }
    });

    it('ends a turn with a message write (sessionStatus + releaseLease): all of the end with the message, or none of it', async (context) => {
      const store = backends();
      if (store.messages.leaseConditionedWrites !== true) {
        context.skip();
        return;
      }
      const session = makeSession();
      await store.sessions.createSession(session);
      const holderId = randomId('holder');
      await store.sessions.claimTurnLease(session.id, holderId, 60_000);
      const journal = `journal/${randomId('turn')}/`;
      await store.storage.setValue(session.id, `${journal}call_1`, 'started');
      await store.storage.setValue(session.id, 'kept/value', 'kept');
      const first = await nextEventSeq(store, session.id);
      const lease = { holderId, durationMs: 60_000 };
      const end = {
        lease,
        sessionStatus: 'idle' as const,
        releaseLease: { deleteValuesWithPrefix: journal },
      };
      const written = await storeMessageAndEmit(
        store,
        session.id,
        agentText('the answer', { idempotencyKey: `${randomId('turn')}/reason/1` }),
        announce(session.id, 'turn_1'),
        end,
      );
      expect(written.events.map((event) => event.seq)).toEqual([first + 1, first + 2]);
      if (written.leaseReleased === true) {
        expect(written.statusSet).toBe(true);
        expect((await store.sessions.getSession(session.id))?.status).toBe('idle');
        expect(await store.sessions.getTurnLease(session.id)).toBeNull();
        expect(await store.storage.listKeys(session.id)).toEqual(['kept/value']);
        // The released holder writes nothing more.
        await expectErrorCode(
          storeMessageAndEmit(
            store,
            session.id,
            agentText('late'),
            announce(session.id, 'turn_1'),
            end,
          ),
          'TURN_IN_PROGRESS',
        );
        expect(await store.messages.count(session.id)).toBe(1);
      } else {
        // Nothing of the release happened: the caller still holds the lease and its values.
        expect((await store.sessions.getTurnLease(session.id))?.holderId).toBe(holderId);
        expect(await store.storage.listKeys(session.id)).toEqual([
          `${journal}call_1`,
          'kept/value',
        ]);
        if (written.statusSet !== true) {
          expect((await store.sessions.getSession(session.id))?.status).toBe(session.status);
        }
      }
      // Without the status nothing is released: the lease is renewed as by any leased write.
      const other = makeSession();
      await store.sessions.createSession(other);
      await store.sessions.claimTurnLease(other.id, holderId, 60_000);
      await storeMessageAndEmit(store, other.id, agentText('kept'), announce(other.id, 'turn_2'), {
        lease,
        releaseLease: {},
      });
      expect((await store.sessions.getTurnLease(other.id))?.holderId).toBe(holderId);
    });

    it('claims a value with a message write (claimValue): set with it, or left for the caller; a set key is kept', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const key = `journal/${randomId('turn')}/call_1`;
      const written = await storeMessageAndEmit(
        store,
        session.id,
        agentText('calls a tool', { idempotencyKey: `${randomId('turn')}/reason/1` }),
        announce(session.id, 'turn_1'),
        { claimValue: { storage: store.storage, key, value: 'first' } },
      );
      expect(written.events).toHaveLength(2);
      if (written.valueClaimed === true) {
        expect(await store.storage.getValue(session.id, key)).toBe('first');
        // A key that holds a value keeps it: the write stands, the claim says it did not set it.
        const again = await storeMessageAndEmit(
          store,
          session.id,
          agentText('again', { idempotencyKey: `${randomId('turn')}/reason/1` }),
          announce(session.id, 'turn_1'),
          { claimValue: { storage: store.storage, key, value: 'second' } },
        );
        expect(again.valueClaimed).not.toBe(true);
        expect(again.events).toHaveLength(2);
        expect(await store.storage.getValue(session.id, key)).toBe('first');
        expect(await store.messages.count(session.id)).toBe(2);
      } else {
        // Nothing was claimed: the caller claims it apart.
        expect(await store.storage.getValue(session.id, key)).toBeNull();
      }
    });

    it('starts a turn with sessionStatus: the status is set with the message and its events, or left for the caller', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      const turnId = randomId('turn');
      const bus = store.events as Partial<MessageEventBus>;
      const message = agentText('hi', { role: 'user', turnId, idempotencyKey: `${turnId}/input` });
      const written =
        typeof bus.storeMessageAndEmit === 'function'
          ? await bus.storeMessageAndEmit(
              store.messages,
              session.id,
              message,
              announce(session.id, turnId),
              { sessionStatus: 'active' },
            )
          : null;
      const stored = await store.messages.getByIdempotencyKey(session.id, `${turnId}/input`);
      if (written === null) {
        expect(stored).toBeNull();
      } else {
        expect(written.message).toEqual(stored);
        // The events are written only with the status.
        expect(written.events === null || written.statusSet === true).toBe(true);
      }
      expect((await store.sessions.getSession(session.id))?.status).toBe(
        written?.statusSet === true ? 'active' : session.status,
      );
      // Through core's helper: the status is never set without the bus saying so.
      const other = randomId('turn');
      const helped = await storeMessageAndEmit(
        store,
        session.id,
        agentText('again', { turnId: other, idempotencyKey: `${other}/input` }),
        announce(session.id, other),
        { sessionStatus: 'active' },
      );
      expect(helped.events).toHaveLength(2);
      if (helped.statusSet !== true && written?.statusSet !== true) {
        expect((await store.sessions.getSession(session.id))?.status).toBe(session.status);
      }
    });

    it('reads the turn snapshot with the write when asked: what loadTurnSnapshot loads right after, or none', async () => {
      const store = backends();
      const session = makeSession();
      await store.sessions.createSession(session);
      await store.messages.storeMessage(session.id, agentText('before'));
      const turnId = randomId('turn');
      const written = await storeMessageAndEmit(
        store,
        session.id,
        agentText('hi', { role: 'user', turnId, idempotencyKey: `${turnId}/input` }),
        announce(session.id, turnId),
        { sessionStatus: 'active', loadTurnSnapshot: true },
      );
      expect(written.events).toHaveLength(2);
      if (written.turnSnapshot !== undefined) {
        // Only a backend that loads snapshots can read one with a write.
        expect(store.loadTurnSnapshot).toBeTypeOf('function');
        expect(written.statusSet).toBe(true);
        expect(written.turnSnapshot.session.status).toBe('active');
        expect(written.turnSnapshot.messages.at(-1)).toEqual(written.message);
        expect(written.turnSnapshot).toEqual(await store.loadTurnSnapshot!(session.id));
      }
      // An answered write (the same idempotency key) reads none: its caller loads one if needed.
      const again = await storeMessageAndEmit(
        store,
        session.id,
        agentText('hi', { role: 'user', turnId, idempotencyKey: `${turnId}/input` }),
        announce(session.id, turnId),
        { loadTurnSnapshot: true },
      );
      expect(again.message.id).toBe(written.message.id);
      expect(again.turnSnapshot).toBeUndefined();
    });
  });
}
