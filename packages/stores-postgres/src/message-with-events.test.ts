// A message and the events announcing it stored in one statement (`storeMessageAndEmit` of the
// bus): the stored rows and the notifications other processes' buses read carry the message's
// `seq`, large events included; likewise a session's status with its events.
import {
  type Message,
  type RuntimeEvent,
  storeMessageAndEmit,
  updateSessionStatusAndEmit,
} from '@everruns-ts/core';
import { expectErrorCode, makeSession } from '@everruns-ts/store-conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

describe('postgres: a message stored with its events', () => {
  let backends: PostgresBackends;
  let other: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
    other = postgresBackends(
      { connectionString: DATABASE_URL },
      { schema: backends.schema, secretKey: TEST_SECRET_KEY },
    );
  });
  afterAll(async () => {
    await other?.close();
    await destroyTestBackends(backends);
  });

  const announce = (sessionId: string, large: string) => (stored: Message) => [
    {
      type: 'output.message.completed' as const,
      sessionId,
      turnId: 'turn_1',
      data: { messageId: stored.id, seq: stored.seq, text: large },
    },
    {
      type: 'reason.completed' as const,
      sessionId,
      turnId: 'turn_1',
      data: { seq: stored.seq, note: `seq ${stored.seq}` },
    },
  ];

  /**
   * Runs `write` on a new session holding one user message while another process listens to it;
   * checks that the events it resolves with are stored and heard there as they are, and returns
   * them with the statements the write sent.
   */
  async function writtenAndHeard(
    write: (sessionId: string) => Promise<{ message: Message; events: RuntimeEvent[] }>,
  ) {
    const session = makeSession();
    await backends.sessions.createSession(session);
    await backends.messages.storeMessage(session.id, {
      role: 'user',
      content: [{ type: 'text', text: 'hi' }],
    });
    const heard: RuntimeEvent[] = [];
    const stop = other.events.subscribe((event) => heard.push(event), { sessionId: session.id });
    try {
      await stop.ready;
      const before = backends.queryCount();
      const written = await write(session.id);
      const statements = backends.queryCount() - before;
      expect(await backends.events.loadEvents(session.id)).toEqual(written.events);
      await other.events.caughtUp();
      expect(heard).toEqual(written.events);
      return { ...written, statements };
    } finally {
      stop();
    }
  }

  for (const [name, size] of [
    ['small', 10],
    ['large (notified by reference)', 20_000],
  ] as const) {
    it(`writes both in one statement and other processes hear them with the seq: ${name}`, async () => {
      const { message, events, statements } = await writtenAndHeard((sessionId) =>
        storeMessageAndEmit(
          backends,
          sessionId,
          { role: 'agent', content: [{ type: 'text', text: 'answer' }], idempotencyKey: 'k' },
          announce(sessionId, 'x'.repeat(size)),
        ),
      );
      expect(statements).toBe(1);
      expect(message.seq).toBe(2);
      expect(events[0]!.data).toEqual({ messageId: message.id, seq: 2, text: 'x'.repeat(size) });
      expect(events[1]!.data).toEqual({ seq: 2, note: 'seq 2' });
    });
  }

  for (const [name, build, joint] of [
    [
      'the seq beside escaped characters: one statement',
      (stored: Message) => ({
        note: `№${stored.seq}é ${stored.seq}😀 "q" \\ \u0000 \ud800`,
        seq: stored.seq,
      }),
      true,
    ],
    [
      'data computed from the seq: the events written after the message',
      (stored: Message) => ({ next: stored.seq + 1, label: `after ${stored.seq * 10}` }),
      false,
    ],
  ] as const) {
    it(`stores and announces event data that holds the seq: ${name}`, async () => {
      const { message, events, statements } = await writtenAndHeard((sessionId) =>
        storeMessageAndEmit(
          backends,
          sessionId,
          { role: 'agent', content: [{ type: 'text', text: 'answer ü' }] },
          (stored) => [
            {
              type: 'reason.completed',
              sessionId,
              // A turn id no PostgreSQL text holds as it is (U+0000, a lone surrogate).
              turnId: 'turn_\u0000\ud800é',
              data: build(stored),
            },
          ],
        ),
      );
      expect(statements).toBe(joint ? 1 : 2);
      expect(message.seq).toBe(2);
      expect(events[0]!.data).toEqual(build(message));
      expect(events[0]!.turnId).toBe('turn_\u0000\ud800é');
    });
  }

  it('answers a repeated write with the stored message and announces it again', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    const write = () =>
      storeMessageAndEmit(
        backends,
        session.id,
        { role: 'agent', content: [{ type: 'text', text: 'once' }], idempotencyKey: 'same' },
        announce(session.id, 'y'),
      );
    const first = await write();
    const again = await write();
    expect(again.message).toEqual(first.message);
    expect(again.events.map((event) => event.seq)).toEqual([3, 4]);
    expect(again.events[1]!.data).toEqual({ seq: 1, note: 'seq 1' });
    expect(await backends.messages.count(session.id)).toBe(1);
  });

  it('sets a status and stores its events in one statement, heard by other processes; a refused holder writes neither', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    await backends.sessions.claimTurnLease(session.id, 'holder_1', 60_000);
    const heard: RuntimeEvent[] = [];
    const stop = other.events.subscribe((event) => heard.push(event), { sessionId: session.id });
    try {
      await stop.ready;
      const started = (turnId: string) => [
        { type: 'session.activated' as const, sessionId: session.id, turnId, data: { turnId } },
        { type: 'turn.started' as const, sessionId: session.id, turnId, data: { turnId } },
      ];
      const before = backends.queryCount();
      const { session: updated, events } = await updateSessionStatusAndEmit(
        backends,
        session.id,
        'active',
        started('turn_1'),
        { leaseHolder: 'holder_1' },
      );
      expect(backends.queryCount() - before).toBe(1);
      expect(updated.status).toBe('active');
      expect(events.map((event) => event.seq)).toEqual([1, 2]);
      await expectErrorCode(
        updateSessionStatusAndEmit(backends, session.id, 'idle', started('turn_2'), {
          leaseHolder: 'holder_2',
        }),
        'TURN_IN_PROGRESS',
      );
      expect((await backends.sessions.getSession(session.id))?.status).toBe('active');
      expect(await backends.events.loadEvents(session.id)).toEqual(events);
      await other.events.caughtUp();
      expect(heard).toEqual(events);
    } finally {
      stop();
    }
  });

  it('ends a turn in one statement: status, its events, the lease released and the journal deleted', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    const journal = 'everruns:runtime/tool-started/turn_1/';
    for (const key of [
      `${journal}call_1`,
      `${journal}call_2`,
      'keep/me',
      'everruns:runtime/tool-started/turn_2/call_1',
    ]) {
      await backends.storage.setValue(session.id, key, 'x');
    }
    const ended = (turnId: string) => [
      { type: 'turn.completed' as const, sessionId: session.id, turnId, data: { turnId } },
      { type: 'session.idled' as const, sessionId: session.id, turnId, data: { turnId } },
    ];
    await backends.sessions.claimTurnLease(session.id, 'holder_1', 60_000);
    // Another holder's end is refused: nothing changes.
    await expectErrorCode(
      updateSessionStatusAndEmit(backends, session.id, 'idle', ended('turn_1'), {
        leaseHolder: 'holder_2',
        releaseLease: { deleteValuesWithPrefix: journal },
      }),
      'TURN_IN_PROGRESS',
    );
    expect((await backends.sessions.getTurnLease(session.id))?.holderId).toBe('holder_1');
    expect(await backends.storage.listKeys(session.id)).toHaveLength(4);
    expect(await backends.events.loadEvents(session.id)).toEqual([]);

    const before = backends.queryCount();
    const result = await updateSessionStatusAndEmit(backends, session.id, 'idle', ended('turn_1'), {
      leaseHolder: 'holder_1',
      releaseLease: { deleteValuesWithPrefix: journal },
    });
    expect(backends.queryCount() - before).toBe(1);
    expect(result.leaseReleased).toBe(true);
    expect(result.session.status).toBe('idle');
    expect(result.events.map((event) => event.type)).toEqual(['turn.completed', 'session.idled']);
    expect(await backends.sessions.getTurnLease(session.id)).toBeNull();
    expect(await backends.storage.listKeys(session.id)).toEqual([
      'everruns:runtime/tool-started/turn_2/call_1',
      'keep/me',
    ]);
    // The session is free: another runtime claims it at once.
    expect((await other.sessions.claimTurnLease(session.id, 'holder_3', 60_000)).holderId).toBe(
      'holder_3',
    );

    // Without a holder there is no lease to release: the status and events are written, the
    // lease and the values are left alone.
    const plain = await updateSessionStatusAndEmit(
      backends,
      session.id,
      'active',
      ended('turn_3'),
      {
        releaseLease: { deleteValuesWithPrefix: 'keep/' },
      },
    );
    expect(plain.leaseReleased).toBe(false);
    expect((await backends.sessions.getTurnLease(session.id))?.holderId).toBe('holder_3');
    expect(await backends.storage.listKeys(session.id, 'keep/')).toEqual(['keep/me']);
  });

  it('a bus of another backend leaves the lease to the caller, who still holds it', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    await backends.sessions.claimTurnLease(session.id, 'holder_1', 60_000);
    // The status store is not the bus's own: the helper writes the two apart and releases nothing.
    const split = { sessions: other.sessions, events: backends.events };
    const result = await updateSessionStatusAndEmit(split, session.id, 'idle', [], {
      leaseHolder: 'holder_1',
      releaseLease: {},
    });
    expect(result.leaseReleased).toBe(false);
    expect(result.session.status).toBe('idle');
    expect((await backends.sessions.getTurnLease(session.id))?.holderId).toBe('holder_1');
  });

  it('starts a turn with its message in one statement: status, the message and its events; a refused lease writes nothing', async () => {
    const session = makeSession();
    await backends.sessions.createSession(session);
    await backends.sessions.claimTurnLease(session.id, 'holder_1', 60_000);
    const start = (stored: Message) => [
      {
        type: 'input.message' as const,
        sessionId: session.id,
        turnId: 'turn_1',
        data: { messageId: stored.id, seq: stored.seq },
      },
      {
        type: 'turn.started' as const,
        sessionId: session.id,
        turnId: 'turn_1',
        data: { inputMessageId: stored.id },
      },
    ];
    const input = (key: string) => ({
      role: 'user' as const,
      turnId: 'turn_1',
      content: [{ type: 'text' as const, text: 'hi' }],
      idempotencyKey: key,
    });
    const lease = (holderId: string) => ({ holderId, durationMs: 60_000 });
    // Another holder: nothing is written, the status stays.
    await expectErrorCode(
      backends.events.storeMessageAndEmit(
        backends.messages,
        session.id,
        input('turn_1/input'),
        start,
        {
          lease: lease('holder_2'),
          sessionStatus: 'active',
        },
      ),
      'TURN_IN_PROGRESS',
    );
    expect((await backends.sessions.getSession(session.id))?.status).toBe(session.status);
    expect(await backends.messages.count(session.id)).toBe(0);

    const before = backends.queryCount();
    const written = await backends.events.storeMessageAndEmit(
      backends.messages,
      session.id,
      input('turn_1/input'),
      start,
      { lease: lease('holder_1'), sessionStatus: 'active' },
    );
    expect(backends.queryCount() - before).toBe(1);
    expect(written?.statusSet).toBe(true);
    expect(written?.events?.map((event) => event.type)).toEqual(['input.message', 'turn.started']);
    expect((await backends.sessions.getSession(session.id))?.status).toBe('active');

    // An answered write (the same key): no events, no status.
    await backends.sessions.updateSessionStatus(session.id, 'idle');
    const again = await backends.events.storeMessageAndEmit(
      backends.messages,
      session.id,
      input('turn_1/input'),
      start,
      { lease: lease('holder_1'), sessionStatus: 'active' },
    );
    expect(again?.events).toBeNull();
    expect(again?.statusSet).toBeUndefined();
    expect((await backends.sessions.getSession(session.id))?.status).toBe('idle');

    // Without a lease the status is set in a statement part of its own, still one statement.
    const plain = await backends.events.storeMessageAndEmit(
      backends.messages,
      session.id,
      input('turn_2/input'),
      start,
      { sessionStatus: 'active' },
    );
    expect(plain?.statusSet).toBe(true);
    expect((await backends.sessions.getSession(session.id))?.status).toBe('active');
    expect(await backends.events.loadEvents(session.id)).toEqual([
      ...(written?.events ?? []),
      ...(plain?.events ?? []),
    ]);
  });
});
