import {
  EverrunsError,
  type Harness,
  harnessSchema,
  newId,
  type Session,
  sessionSchema,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import {
  CollectingEventBus,
  InMemoryAgentStore,
  InMemoryHarnessStore,
  InMemoryMemoryStore,
  InMemoryProviderStore,
  InMemorySessionStorageStore,
  InMemorySessionStore,
  inMemoryBackends,
} from './index.js';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return EverrunsError.isInstance(error) ? error.code : 'NOT_AN_EVERRUNS_ERROR';
  }
  return undefined;
}

const harness = (id: string, parentHarnessId?: string): Harness =>
  harnessSchema.parse({ id, name: id, parentHarnessId });
const session = (id: string): Session => sessionSchema.parse({ id, harnessId: 'harness_x' });

describe('InMemoryHarnessStore', () => {
  it('returns the chain root first', async () => {
    const store = new InMemoryHarnessStore();
    const [root, middle, leaf] = [newId('harness'), newId('harness'), newId('harness')];
    await store.addHarness(harness(leaf, middle));
    await store.addHarness(harness(root));
    await store.addHarness(harness(middle, root));
    expect((await store.getHarnessChain(leaf)).map((item) => item.id)).toEqual([
      root,
      middle,
      leaf,
    ]);
    expect((await store.listHarnesses()).map((item) => item.id)).toEqual(
      [root, middle, leaf].sort(),
    );
  });

  it('throws HARNESS_NOT_FOUND, INVALID_INPUT on a cycle and DUPLICATE_ID', async () => {
    const store = new InMemoryHarnessStore();
    const [a, b] = [newId('harness'), newId('harness')];
    expect(await codeOf(store.getHarnessChain(a))).toBe('HARNESS_NOT_FOUND');
    await store.addHarness(harness(a, b));
    expect(await codeOf(store.getHarnessChain(a))).toBe('HARNESS_NOT_FOUND');
    await store.addHarness(harness(b, a));
    expect(await codeOf(store.getHarnessChain(a))).toBe('INVALID_INPUT');
    expect(await codeOf(store.addHarness(harness(a)))).toBe('DUPLICATE_ID');
  });

  it('stores a copy the caller cannot change', async () => {
    const store = new InMemoryHarnessStore();
    const id = newId('harness');
    const input = harness(id);
    await store.addHarness(input);
    input.name = 'changed';
    const stored = await store.getHarness(id);
    expect(stored?.name).toBe(id);
    expect(Object.isFrozen(stored)).toBe(true);
  });
});

describe('InMemoryAgentStore', () => {
  it('adds, gets, lists sorted and refuses duplicates', async () => {
    const store = new InMemoryAgentStore();
    const [b, a] = [newId('agent'), newId('agent')];
    await store.addAgent({ ...harness(b), tools: [] } as never);
    await store.addAgent({ ...harness(a), tools: [] } as never);
    expect((await store.listAgents()).map((agent) => agent.id)).toEqual([a, b].sort());
    expect((await store.getAgent(a))?.id).toBe(a);
    expect(await store.getAgent(newId('agent'))).toBeNull();
    expect(await codeOf(store.addAgent({ ...harness(a), tools: [] } as never))).toBe(
      'DUPLICATE_ID',
    );
  });
});

describe('InMemorySessionStore', () => {
  it('creates, updates and refuses unknown or duplicate sessions', async () => {
    const store = new InMemorySessionStore();
    const id = newId('session');
    const created = await store.createSession(session(id));
    expect(created.status).toBe('started');
    expect(await codeOf(store.createSession(session(id)))).toBe('DUPLICATE_ID');
    expect((await store.updateSessionTitle(id, 'Title')).title).toBe('Title');
    expect((await store.updateSessionStatus(id, 'active')).status).toBe('active');
    const updated = await store.updateSessionCapabilities(id, [{ id: 'test_math' }]);
    expect(updated).toMatchObject({ title: 'Title', status: 'active' });
    expect(updated.capabilities).toEqual([{ id: 'test_math' }]);
    expect(await codeOf(store.updateSessionTitle(newId('session'), 'x'))).toBe('SESSION_NOT_FOUND');
    expect(await codeOf(store.updateSessionStatus(newId('session'), 'idle'))).toBe(
      'SESSION_NOT_FOUND',
    );
    expect(created.title).toBeUndefined();
  });
});

describe('InMemoryProviderStore', () => {
  it('registers models and a default', async () => {
    const store = new InMemoryProviderStore();
    expect(await store.getDefaultModel()).toBeNull();
    await store.addModel('m', { model: 'llmsim-model', providerType: 'llmsim' });
    await store.setDefaultModel({ model: 'gpt', providerType: 'openai', apiKey: 'k' });
    expect(await store.getModelWithProvider('m')).toEqual({
      model: 'llmsim-model',
      providerType: 'llmsim',
    });
    expect(await store.getModelWithProvider('other')).toBeNull();
    expect((await store.getDefaultModel())?.apiKey).toBe('k');
  });
});

describe('InMemorySessionStorageStore', () => {
  it('lists keys with literal prefixes and keeps secrets apart', async () => {
    const store = new InMemorySessionStorageStore();
    const sessionId = newId('session');
    for (const key of ['session_a', 'session1_x', '50%', '50abc', 'a_b', 'axb']) {
      await store.setValue(sessionId, key, key);
    }
    await store.setSecret(sessionId, 'session_secret', 'hunter2');
    expect(await store.listKeys(sessionId, 'session_')).toEqual(['session_a']);
    expect(await store.listKeys(sessionId, '50%')).toEqual(['50%']);
    expect(await store.listKeys(sessionId, 'a_')).toEqual(['a_b']);
    expect(await store.listKeys(sessionId)).toEqual(
      ['session_a', 'session1_x', '50%', '50abc', 'a_b', 'axb'].sort(),
    );
    expect(await store.listSecretKeys(sessionId)).toEqual(['session_secret']);
    expect(await store.getSecret(sessionId, 'session_secret')).toBe('hunter2');
    expect(await store.getValue(sessionId, 'session_secret')).toBeNull();
    expect(await store.deleteValue(sessionId, 'axb')).toBe(true);
    expect(await store.deleteValue(sessionId, 'axb')).toBe(false);
    expect(await store.deleteSecret(sessionId, 'session_secret')).toBe(true);
    expect(await store.getSecret(sessionId, 'session_secret')).toBeNull();
    expect(await store.listKeys(newId('session'))).toEqual([]);
  });
});

describe('InMemoryMemoryStore', () => {
  it('remembers, recalls newest first case-insensitively and forgets', async () => {
    const store = new InMemoryMemoryStore();
    const scope = newId('agent');
    const first = await store.remember(scope, { key: 'color', content: 'Blue', tags: ['Pref'] });
    await store.remember(scope, { key: 'food', content: 'pasta' });
    expect((await store.recall(scope)).map((entry) => entry.key)).toEqual(['food', 'color']);
    expect((await store.recall(scope, 'blue')).map((entry) => entry.key)).toEqual(['color']);
    expect((await store.recall(scope, 'pref')).map((entry) => entry.key)).toEqual(['color']);
    const again = await store.remember(scope, { key: 'color', content: 'green' });
    expect(again.createdAt).toBe(first.createdAt);
    expect((await store.recall(scope, undefined, 1)).map((entry) => entry.key)).toEqual(['color']);
    expect(await store.forget(scope, 'color')).toBe(true);
    expect(await store.forget(scope, 'color')).toBe(false);
    expect(await store.recall(newId('agent'))).toEqual([]);
  });
});

describe('CollectingEventBus', () => {
  it('numbers events per session, keeps them and survives throwing listeners', async () => {
    const errors: unknown[] = [];
    const bus = new CollectingEventBus({ onListenerError: (error) => errors.push(error) });
    const [a, b] = [newId('session'), newId('session')];
    const received: string[] = [];
    bus.subscribe(() => {
      throw new Error('listener failure');
    });
    const unsubscribe = bus.subscribe((event) => received.push(event.id));
    const first = await bus.emit({ type: 'turn.started', sessionId: a, turnId: 't', data: {} });
    await bus.emit({ type: 'turn.started', sessionId: b, data: {} });
    const third = await bus.emit({ type: 'turn.completed', sessionId: a, data: { ok: true } });
    expect([first.seq, third.seq]).toEqual([1, 2]);
    expect(first.id.startsWith('evt_')).toBe(true);
    expect(new Date(first.ts).toISOString()).toBe(first.ts);
    expect(first.turnId).toBe('t');
    expect(bus.collectedEvents(a).map((event) => event.seq)).toEqual([1, 2]);
    expect(bus.collectedEvents()).toHaveLength(3);
    expect(received).toHaveLength(3);
    expect(errors).toHaveLength(3);
    unsubscribe();
    await bus.emit({ type: 'session.idled', sessionId: a, data: {} });
    expect(received).toHaveLength(3);
  });
});

describe('inMemoryBackends', () => {
  it('builds a fresh bundle each call', async () => {
    const one = inMemoryBackends();
    const two = inMemoryBackends();
    const sessionId = newId('session');
    await one.storage.setValue(sessionId, 'k', 'v');
    expect(await two.storage.getValue(sessionId, 'k')).toBeNull();
    expect(one.events.collectedEvents()).toEqual([]);
    await one.close();
  });
});
