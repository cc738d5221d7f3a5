import type { NewMessage } from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { expectErrorCode, makeAgent, makeHarness, makeSession, randomId } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/**
 * Tests of upstream's store semantics beside ours: `upsertHarness`, `upsertAgent` and
 * `upsertSession` insert or replace (as upstream's `add_*`) while `add*`/`createSession` stay
 * strict; reads of missing things resolve `null`; `loadPage` pages by `offset` as well as by
 * `afterSeq`.
 */
export function upsertAndPagingTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'upserts, missing reads and offset paging', ({ backends }) => {
    it('upsertHarness inserts a new harness, then replaces it (chain included)', async () => {
      const { harnesses } = backends();
      const root = makeHarness({ name: 'root' });
      const otherRoot = makeHarness({ name: 'other-root' });
      await harnesses.addHarness(root);
      await harnesses.addHarness(otherRoot);
      const harness = makeHarness({ name: 'first', parentHarnessId: root.id });
      await harnesses.upsertHarness(harness);
      expect(await harnesses.getHarness(harness.id)).toEqual(harness);
      const replaced = { ...harness, name: 'second', parentHarnessId: otherRoot.id, tags: ['x'] };
      await harnesses.upsertHarness(replaced);
      expect(await harnesses.getHarness(harness.id)).toEqual(replaced);
      expect((await harnesses.getHarnessChain(harness.id)).map((h) => h.name)).toEqual([
        'other-root',
        'second',
      ]);
      expect((await harnesses.listHarnesses()).filter((h) => h.id === harness.id)).toHaveLength(1);
      // The strict insert still refuses the id.
      await expectErrorCode(harnesses.addHarness(harness), 'DUPLICATE_ID');
      expect((await harnesses.getHarness(harness.id))?.name).toBe('second');
    });

    it('upsertAgent inserts a new agent, then replaces it', async () => {
      const { agents } = backends();
      const agent = makeAgent({ name: 'first' });
      await agents.upsertAgent(agent);
      expect(await agents.getAgent(agent.id)).toEqual(agent);
      const replaced = makeAgent({
        id: agent.id,
        name: 'second',
        systemPrompt: 'new',
        tools: ['add', { type: 'builtin', name: 'subtract', description: '', parameters: {} }],
        networkAccess: { allowed: [], blocked: ['evil.example.com'] },
      });
      await agents.upsertAgent(replaced);
      expect(await agents.getAgent(agent.id)).toEqual(replaced);
      expect((await agents.listAgents()).filter((a) => a.id === agent.id)).toHaveLength(1);
      await expectErrorCode(agents.addAgent(agent), 'DUPLICATE_ID');
    });

    it('upsertSession inserts, replaces every field and keeps the turn lease', async () => {
      const { sessions } = backends();
      const session = makeSession({ title: 'first', status: 'started' });
      expect(await sessions.upsertSession(session)).toEqual(session);
      expect(await sessions.getSession(session.id)).toEqual(session);
      const lease = await sessions.claimTurnLease(session.id, 'holder-1', 60_000);
      const replaced = makeSession({
        id: session.id,
        harnessId: randomId('harness'),
        agentId: randomId('agent'),
        title: 'second',
        status: 'idle',
        capabilities: [{ id: 'test_math' }],
        tags: ['t'],
        tools: [
          {
            type: 'client_side',
            name: 'ask_user',
            description: 'asks',
            parameters: { type: 'object', properties: { q: { type: 'string' } } },
          },
        ],
        networkAccess: { allowed: ['*.example.com'], blocked: ['evil.example.com'] },
      });
      expect(await sessions.upsertSession(replaced)).toEqual(replaced);
      expect(await sessions.getSession(session.id)).toEqual(replaced);
      expect(await sessions.getTurnLease(session.id)).toMatchObject({
        holderId: 'holder-1',
        expiresAt: lease.expiresAt,
      });
      expect((await sessions.listSessions()).filter((s) => s.id === session.id)).toHaveLength(1);
      await expectErrorCode(sessions.createSession(session), 'DUPLICATE_ID');
    });

    it('resolves null, not an error, for a missing harness, agent, session, message or model', async () => {
      const { harnesses, agents, sessions, messages, providers } = backends();
      expect(await harnesses.getHarness(randomId('harness'))).toBeNull();
      expect(await agents.getAgent(randomId('agent'))).toBeNull();
      expect(await sessions.getSession(randomId('session'))).toBeNull();
      expect(await sessions.getTurnLease(randomId('session'))).toBeNull();
      expect(await messages.get(randomId('session'), randomId('message'))).toBeNull();
      expect(await messages.getByIdempotencyKey(randomId('session'), 'missing')).toBeNull();
      expect(await providers.getModelWithProvider(randomId('model'))).toBeNull();
    });

    it('pages messages by offset exactly as by afterSeq', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const batch: NewMessage[] = Array.from({ length: 7 }, (_, index) => ({
        role: 'user',
        content: [{ type: 'text', text: `m${index + 1}` }],
      }));
      await messages.storeMessages(sessionId, batch);
      const texts = (page: { messages: { content: unknown[] }[] }) =>
        page.messages.map((m) => (m.content[0] as { text: string }).text);
      const first = await messages.loadPage(sessionId, { offset: 0, limit: 3 });
      expect(texts(first)).toEqual(['m1', 'm2', 'm3']);
      expect(first.nextAfterSeq).toBe(3);
      const second = await messages.loadPage(sessionId, { offset: 3, limit: 3 });
      expect(texts(second)).toEqual(['m4', 'm5', 'm6']);
      expect(second).toEqual(await messages.loadPage(sessionId, { afterSeq: 3, limit: 3 }));
      const last = await messages.loadPage(sessionId, { offset: 6, limit: 3 });
      expect(texts(last)).toEqual(['m7']);
      expect(last.nextAfterSeq).toBeNull();
      expect(texts(await messages.loadPage(sessionId, { offset: 7, limit: 3 }))).toEqual([]);
      expect(texts(await messages.loadPage(sessionId, { offset: 100, limit: 3 }))).toEqual([]);
      // Both given and equal is fine; different, negative or fractional is INVALID_INPUT.
      expect(
        texts(await messages.loadPage(sessionId, { offset: 5, afterSeq: 5, limit: 1 })),
      ).toEqual(['m6']);
      await expectErrorCode(
        messages.loadPage(sessionId, { offset: 1, afterSeq: 2, limit: 1 }),
        'INVALID_INPUT',
      );
      await expectErrorCode(
        messages.loadPage(sessionId, { offset: -1, limit: 1 }),
        'INVALID_INPUT',
      );
      await expectErrorCode(
        messages.loadPage(sessionId, { offset: 1.5, limit: 1 }),
        'INVALID_INPUT',
      );
    });
  });
}
