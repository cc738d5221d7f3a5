import { expect, it } from 'vitest';
import {
  expectErrorCode,
  HOSTILE_STRINGS,
  isSorted,
  makeSession,
  randomId,
  TRICKY_TEXT,
  tryToMutate,
} from './helpers.js';
import { leaseConditionedWriteTests } from './lease-conditioned-write-tests.js';
import { defineRuntimeArea } from './runtime-area.js';
import { turnLeaseTests } from './turn-lease-tests.js';
import type { RuntimeStoreInitializer } from './types.js';

/**
 * Tests of `RuntimeSessionStore`: create and get, `DUPLICATE_ID`, the three updates (returning
 * and persisting the new session, `SESSION_NOT_FOUND` for unknown ids), sorted listings,
 * hostile ids, the turn lease (see `turnLeaseTests`) and message writes conditioned on it (see
 * `leaseConditionedWriteTests`).
 */
export function sessionStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'session store', ({ backends }) => {
    it('creates a session, returns it and gets it back with every field', async () => {
      const { sessions } = backends();
      const session = makeSession({
        agentId: randomId('agent'),
        title: TRICKY_TEXT,
        locale: 'uk-UA',
        tags: ['one', 'two'],
        modelId: 'model-3',
        systemPrompt: 'Be brief.',
        capabilities: [{ id: 'session', config: { nested: { deep: [1, 'two'] } } }],
        initialFiles: [{ path: '/x', content: 'x', encoding: 'text', isReadonly: false }],
        maxIterations: 9,
        status: 'idle',
      });
      expect(await sessions.createSession(session)).toEqual(session);
      expect(await sessions.getSession(session.id)).toEqual(session);
      expect(await sessions.getSession(randomId('session'))).toBeNull();
    });

    it('keeps the subagent links (parentSessionId, workspaceSessionId) through every update and listing', async () => {
      const { sessions } = backends();
      const parent = makeSession({ title: 'parent' });
      await sessions.createSession(parent);
      const child = makeSession({
        title: 'child',
        parentSessionId: parent.id,
        workspaceSessionId: parent.id,
      });
      expect(await sessions.createSession(child)).toEqual(child);
      expect(await sessions.getSession(child.id)).toEqual(child);
      await sessions.updateSessionTitle(child.id, 'renamed');
      await sessions.updateSessionStatus(child.id, 'idle');
      await sessions.updateSessionCapabilities(child.id, [{ id: 'subagents' }]);
      expect(await sessions.getSession(child.id)).toMatchObject({
        parentSessionId: parent.id,
        workspaceSessionId: parent.id,
        title: 'renamed',
      });
      const listed = await sessions.listSessions();
      expect(listed.find((session) => session.id === child.id)?.parentSessionId).toBe(parent.id);
      const top = await sessions.getSession(parent.id);
      expect(top?.parentSessionId).toBeUndefined();
      expect(top?.workspaceSessionId).toBeUndefined();
    });

    it('throws DUPLICATE_ID when creating an existing id and keeps the first', async () => {
      const { sessions } = backends();
      const session = makeSession({ title: 'first' });
      await sessions.createSession(session);
      await expectErrorCode(
        sessions.createSession(makeSession({ id: session.id, title: 'second' })),
        'DUPLICATE_ID',
      );
      expect((await sessions.getSession(session.id))?.title).toBe('first');
    });

    it('updates title, status and capabilities and keeps the other fields', async () => {
      const { sessions } = backends();
      const session = makeSession({ title: 'before', tags: ['kept'], locale: 'en' });
      await sessions.createSession(session);
      const titled = await sessions.updateSessionTitle(session.id, TRICKY_TEXT);
      expect(titled.title).toBe(TRICKY_TEXT);
      const active = await sessions.updateSessionStatus(session.id, 'waiting_for_tool_results');
      expect(active).toMatchObject({ title: TRICKY_TEXT, status: 'waiting_for_tool_results' });
      const capabilities = [
        { id: 'test_math' },
        { id: 'memory', config: { scope: 'agent' } },
        // A session switching off an inherited capability (`deactivateCapability`) stores this.
        { id: 'web_fetch', disabled: true },
      ];
      const updated = await sessions.updateSessionCapabilities(session.id, capabilities);
      expect(updated).toMatchObject({
        id: session.id,
        harnessId: session.harnessId,
        title: TRICKY_TEXT,
        status: 'waiting_for_tool_results',
        tags: ['kept'],
        locale: 'en',
        capabilities,
        createdAt: session.createdAt,
      });
      expect(typeof updated.updatedAt).toBe('string');
      expect(Number.isNaN(Date.parse(updated.updatedAt))).toBe(false);
      expect(await sessions.getSession(session.id)).toEqual(updated);
      expect((await sessions.updateSessionCapabilities(session.id, [])).capabilities).toEqual([]);
    });

    it('throws SESSION_NOT_FOUND when updating an unknown session', async () => {
      const { sessions } = backends();
      const unknown = randomId('session');
      await expectErrorCode(sessions.updateSessionTitle(unknown, 't'), 'SESSION_NOT_FOUND');
      await expectErrorCode(sessions.updateSessionStatus(unknown, 'active'), 'SESSION_NOT_FOUND');
      await expectErrorCode(sessions.updateSessionCapabilities(unknown, []), 'SESSION_NOT_FOUND');
      expect(await sessions.getSession(unknown)).toBeNull();
    });

    it('lists every session sorted by id', async () => {
      const { sessions } = backends();
      const ids = ['session_b', 'session_B', 'session_a', 'session_%'].map(
        (id) => `${id}${randomId('')}`,
      );
      for (const id of ids) await sessions.createSession(makeSession({ id }));
      const listed = (await sessions.listSessions()).map((session) => session.id);
      expect(isSorted(listed)).toBe(true);
      expect(listed.filter((id) => ids.includes(id))).toEqual([...ids].sort());
    });

    it('accepts hostile ids as opaque data', async () => {
      const { sessions } = backends();
      for (const value of HOSTILE_STRINGS) {
        const session = makeSession({ id: `${value}${randomId()}`, harnessId: `${value}h` });
        await sessions.createSession(session);
        expect(await sessions.getSession(session.id)).toEqual(session);
        expect((await sessions.updateSessionStatus(session.id, 'active')).status).toBe('active');
      }
    });

    it('keeps its copy when the caller changes what it gave or got', async () => {
      const { sessions } = backends();
      const session = makeSession({ title: 'kept' });
      const created = await sessions.createSession(session);
      tryToMutate(() => {
        session.title = 'changed';
        (created as { title: string }).title = 'changed';
      });
      const got = await sessions.getSession(session.id);
      tryToMutate(() => {
        (got as { status: string }).status = 'active';
      });
      expect(await sessions.getSession(session.id)).toMatchObject({
        title: 'kept',
        status: 'started',
      });
    });

    turnLeaseTests(backends);
    leaseConditionedWriteTests(backends);
  });
}
