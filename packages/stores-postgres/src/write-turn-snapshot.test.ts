// The turn snapshot a message write reads in its own statement (`loadTurnSnapshot` of
// `JointMessageOptions`): the same snapshot a read of its own returns right after the write, on a
// warm and on a cold history cache, with the status the write set, a harness chain, an agent and
// a compaction record; none where the write does not append with its events.
import {
  COMPACTION_STORAGE_KEY,
  type EventRequest,
  type Message,
  type NewMessage,
  type TurnSnapshot,
} from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

describe('the turn snapshot read with a message write', () => {
  let backends: PostgresBackends;
  /** Another process's backends on the same schema: its history cache is cold. */
  let other: PostgresBackends;
  const lease = { holderId: 'holder_1', durationMs: 60_000 };
  let counter = 0;

  beforeAll(async () => {
    backends = await createTestBackends();
    other = await createTestBackends({ schema: backends.schema, skipMigrate: true });
  });
  afterAll(async () => {
    await other.close();
    await destroyTestBackends(backends);
  });

  async function newSession(): Promise<string> {
    const suffix = `${++counter}_${Date.now()}`;
    await backends.harnesses.addHarness({
      id: `parent_${suffix}`,
      name: 'parent',
      systemPrompt: 'You are the parent.',
    } as never);
    await backends.harnesses.addHarness({
      id: `child_${suffix}`,
      name: 'child',
      parentHarnessId: `parent_${suffix}`,
      systemPrompt: 'You are the child.',
    } as never);
    await backends.agents.addAgent({
      id: `agent_${suffix}`,
      name: 'agent',
      systemPrompt: 'Agent prompt.',
    } as never);
    const sessionId = `session_${suffix}`;
    await backends.sessions.createSession({
      id: sessionId,
      harnessId: `child_${suffix}`,
      agentId: `agent_${suffix}`,
    } as never);
    return sessionId;
  }

  const announce =
    (sessionId: string) =>
    (stored: Message): EventRequest[] => [
      {
        type: 'input.message',
        sessionId,
        ...(stored.turnId ? { turnId: stored.turnId } : {}),
        data: { messageId: stored.id },
      },
    ];

  function write(
    on: PostgresBackends,
    sessionId: string,
    message: NewMessage,
    options: Record<string, unknown>,
  ) {
    return on.events.storeMessageAndEmit(
      on.messages,
      sessionId,
      message,
      announce(sessionId),
      options,
    );
  }

  function userMessage(turnId: string, text: string): NewMessage {
    return {
      role: 'user',
      turnId,
      idempotencyKey: `${turnId}/input`,
      content: [{ type: 'text', text }],
    };
  }

  /** What a read of its own returns now, from a cold cache and from the writer's. */
  async function expectReadBack(sessionId: string, snapshot: TurnSnapshot | undefined) {
    expect(snapshot).toBeDefined();
    expect(snapshot).toEqual(await other.loadTurnSnapshot(sessionId));
    expect(snapshot).toEqual(await backends.loadTurnSnapshot(sessionId));
  }

  it('equals a read right after the write: the status it set, the message it appended, chain and agent', async () => {
    const sessionId = await newSession();
    await backends.messages.storeMessage(sessionId, userMessage('turn_0', 'earlier'));
    await backends.sessions.claimTurnLease(sessionId, lease.holderId, lease.durationMs);
    // A cold cache: the writer has never read this session's history.
    const first = await write(backends, sessionId, userMessage('turn_1', 'hello'), {
      lease,
      sessionStatus: 'active',
      loadTurnSnapshot: true,
    });
    expect(first?.statusSet).toBe(true);
    expect(first?.events).toHaveLength(1);
    const snapshot = first?.turnSnapshot;
    expect(snapshot?.session.status).toBe('active');
    expect(snapshot?.messages.map((message) => message.seq)).toEqual([1, 2]);
    expect(snapshot?.messages.at(-1)).toEqual(first?.message);
    expect(snapshot?.harnessChain?.map((harness) => harness.name)).toEqual(['parent', 'child']);
    expect(snapshot?.agent?.name).toBe('agent');
    await expectReadBack(sessionId, snapshot);

    // A warm cache, another writer's message in between: read as well.
    await other.messages.storeMessage(sessionId, userMessage('turn_x', 'from elsewhere'));
    const second = await write(
      backends,
      sessionId,
      { role: 'agent', turnId: 'turn_1', content: [{ type: 'text', text: 'hi' }] },
      { lease, loadTurnSnapshot: true },
    );
    expect(second?.turnSnapshot?.messages.map((message) => message.seq)).toEqual([1, 2, 3, 4]);
    await expectReadBack(sessionId, second?.turnSnapshot);
    // The snapshot's history array is its own: emptying it leaves the kept history whole.
    const kept = second!.turnSnapshot!.messages as Message[];
    kept.length = 0;
    expect((await backends.loadTurnSnapshot(sessionId))?.messages).toHaveLength(4);
    // The message the write returned is not the one its snapshot (and the history cache) holds:
    // what the caller does to it reaches neither.
    const returned = second!.message as Message & { content: { text?: string }[] };
    expect(Object.isFrozen(returned)).toBe(false);
    returned.content[0]!.text = 'changed by the caller';
    returned.content.push({ type: 'text', text: 'added by the caller' } as never);
    const after = await backends.loadTurnSnapshot(sessionId);
    expect(after?.messages.at(-1)?.content).toEqual([{ type: 'text', text: 'hi' }]);
    expect(Object.isFrozen(after?.messages.at(-1)?.content)).toBe(true);
    await expectReadBack(sessionId, after!);
  });

  it('reads the window after a compaction record', async () => {
    const sessionId = await newSession();
    for (let turn = 1; turn <= 3; turn++) {
      await backends.messages.storeMessage(sessionId, userMessage(`turn_${turn}`, `m${turn}`));
    }
    await backends.storage.setValue(
      sessionId,
      COMPACTION_STORAGE_KEY,
      JSON.stringify({
        version: 1,
        throughSeq: 2,
        summary: 'The first two messages.',
        createdAt: new Date().toISOString(),
      }),
    );
    const written = await write(backends, sessionId, userMessage('turn_4', 'm4'), {
      loadTurnSnapshot: true,
    });
    expect(written?.turnSnapshot?.compaction?.throughSeq).toBe(2);
    expect(written?.turnSnapshot?.messages.map((message) => message.seq)).toEqual([3, 4]);
    await expectReadBack(sessionId, written?.turnSnapshot);
  });

  it('reads none for a write that does not append with its events, or that was not asked', async () => {
    const sessionId = await newSession();
    const asked = { loadTurnSnapshot: true };
    const first = await write(backends, sessionId, userMessage('turn_1', 'hello'), asked);
    expect(first?.turnSnapshot).toBeDefined();
    // The same idempotency key again: answered with the stored message, nothing written.
    const again = await write(backends, sessionId, userMessage('turn_1', 'hello'), asked);
    expect(again?.message.id).toBe(first?.message.id);
    expect(again?.turnSnapshot).toBeUndefined();
    // An expected position is written without joint reads.
    const placed = await write(backends, sessionId, userMessage('turn_2', 'there'), {
      ...asked,
      expectedSeq: 2,
    });
    expect(placed?.message.seq).toBe(2);
    expect(placed?.turnSnapshot).toBeUndefined();
    const plain = await write(backends, sessionId, userMessage('turn_3', 'plain'), {});
    expect(plain?.turnSnapshot).toBeUndefined();
    // A lease this holder does not hold refuses the write, snapshot and all.
    await expect(
      write(backends, sessionId, userMessage('turn_4', 'late'), { ...asked, lease }),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS' });
    expect((await backends.loadTurnSnapshot(sessionId))?.messages).toHaveLength(3);
  });
});
