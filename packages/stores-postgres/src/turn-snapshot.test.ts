import { randomBytes } from 'node:crypto';
import {
  type Agent,
  agentSchema,
  EverrunsError,
  type Harness,
  harnessSchema,
  InputMessage,
  type Session,
  sessionSchema,
} from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
  TEST_SECRET_KEY,
} from './test-support/database.js';

const random = () => randomBytes(8).toString('hex');

const harness = (overrides: Partial<Harness> = {}): Harness =>
  harnessSchema.parse({ id: `harness_${random()}`, name: 'h', ...overrides });
const agent = (overrides: Partial<Agent> = {}): Agent =>
  agentSchema.parse({ id: `agent_${random()}`, name: 'a', ...overrides });
const session = (overrides: Partial<Session> & { harnessId: string }): Session =>
  sessionSchema.parse({ id: `session_${random()}`, ...overrides });

describe('postgres loadTurnSnapshot', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('loads session, harness chain (root first), agent and messages in one round trip', async () => {
    const root = harness({ systemPrompt: 'root' });
    const middle = harness({ parentHarnessId: root.id });
    const leaf = harness({ parentHarnessId: middle.id, defaultModelId: 'm' });
    for (const entry of [root, middle, leaf]) await backends.harnesses.addHarness(entry);
    const theAgent = agent({ systemPrompt: 'agent' });
    await backends.agents.addAgent(theAgent);
    const theSession = session({ harnessId: leaf.id, agentId: theAgent.id, title: 't' });
    await backends.sessions.createSession(theSession);
    await backends.sessions.updateSessionStatus(theSession.id, 'active');
    await backends.messages.addInputMessage(theSession.id, InputMessage.user('hi'), 'turn_1');
    await backends.messages.storeMessage(theSession.id, {
      role: 'agent',
      content: [{ type: 'text', text: 'hello' }],
      turnId: 'turn_1',
      metadata: { usage: 1 },
    });

    const before = backends.queryCount();
    const snapshot = await backends.loadTurnSnapshot(theSession.id);
    expect(backends.queryCount() - before).toBe(1);

    expect(snapshot).toEqual({
      session: await backends.sessions.getSession(theSession.id),
      harnessChain: await backends.harnesses.getHarnessChain(leaf.id),
      agent: await backends.agents.getAgent(theAgent.id),
      messages: await backends.messages.load(theSession.id),
      messagesSource: expect.any(Object),
      compaction: null,
      defaultModel: await backends.providers.getDefaultModel(),
    });
    expect(snapshot?.harnessChain?.map((entry) => entry.id)).toEqual([root.id, middle.id, leaf.id]);
    expect(snapshot?.session.status).toBe('active');
    expect(snapshot?.messages.map((message) => message.seq)).toEqual([1, 2]);
  });

  it('brings the default model, its API key decrypted; leaves it out when the key cannot be opened', async () => {
    const theHarness = harness();
    await backends.harnesses.addHarness(theHarness);
    const theSession = session({ harnessId: theHarness.id });
    await backends.sessions.createSession(theSession);
    const model = { model: 'snapshot-model', providerType: 'openai', apiKey: `sk-${random()}` };
    await backends.providers.setDefaultModel(model);
    const snapshot = await backends.loadTurnSnapshot(theSession.id);
    expect(snapshot?.defaultModel).toEqual(await backends.providers.getDefaultModel());
    expect(snapshot?.defaultModel?.apiKey).toBe(model.apiKey);

    const wrongKey = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
      { schema: backends.schema, secretKey: { id: TEST_SECRET_KEY.id, key: randomBytes(32) } },
    );
    try {
      const other = await wrongKey.loadTurnSnapshot(theSession.id);
      expect(other?.session.id).toBe(theSession.id);
      expect(other && 'defaultModel' in other).toBe(false);
      await expect(wrongKey.providers.getDefaultModel()).rejects.toMatchObject({
        code: 'SECRET_KEY_MISMATCH',
      });
    } finally {
      await wrongKey.close();
    }
  });

  it('returns null for an unknown session', async () => {
    expect(await backends.loadTurnSnapshot(`session_${random()}`)).toBeNull();
    expect(await backends.loadSessionSetup(`session_${random()}`)).toBeNull();
  });

  it('loadSessionSetup gives session, harness chain, agent and default model without the history, in one statement', async () => {
    const root = harness({ systemPrompt: 'root' });
    const leaf = harness({ parentHarnessId: root.id });
    for (const entry of [root, leaf]) await backends.harnesses.addHarness(entry);
    const theAgent = agent();
    await backends.agents.addAgent(theAgent);
    const theSession = session({ harnessId: leaf.id, agentId: theAgent.id });
    await backends.sessions.createSession(theSession);
    await backends.messages.addInputMessage(theSession.id, InputMessage.user('hi'), 'turn_1');
    const before = backends.queryCount();
    const setup = await backends.loadSessionSetup(theSession.id);
    expect(backends.queryCount() - before).toBe(1);
    expect(setup).toStrictEqual({
      session: await backends.sessions.getSession(theSession.id),
      harnessChain: await backends.harnesses.getHarnessChain(leaf.id),
      agent: await backends.agents.getAgent(theAgent.id),
      defaultModel: await backends.providers.getDefaultModel(),
    });

    // Storage keys under a prefix come in the same statement, sorted, only when asked for.
    for (const key of ['wait/b', 'wait/a', 'waiting', 'other/wait/c']) {
      await backends.storage.setValue(theSession.id, key, 'x');
    }
    const withKeys = backends.queryCount();
    const keyed = await backends.loadSessionSetup(theSession.id, { storageKeyPrefix: 'wait/' });
    expect(backends.queryCount() - withKeys).toBe(1);
    expect(keyed?.storageKeys).toEqual(await backends.storage.listKeys(theSession.id, 'wait/'));
    expect(keyed?.storageKeys).toEqual(['wait/a', 'wait/b']);
    expect(
      (await backends.loadSessionSetup(theSession.id, { storageKeyPrefix: 'none/' }))?.storageKeys,
    ).toEqual([]);

    const orphan = session({ harnessId: `harness_${random()}` });
    await backends.sessions.createSession(orphan);
    expect(await backends.loadSessionSetup(orphan.id)).toMatchObject({
      harnessChain: null,
      agent: null,
    });
  });

  it('gives a null chain when a harness of the chain is missing and a null agent when it is missing', async () => {
    const orphan = harness({ parentHarnessId: `harness_${random()}` });
    await backends.harnesses.addHarness(orphan);
    const withMissingParent = session({ harnessId: orphan.id, agentId: `agent_${random()}` });
    await backends.sessions.createSession(withMissingParent);
    const snapshot = await backends.loadTurnSnapshot(withMissingParent.id);
    expect(snapshot).toMatchObject({ harnessChain: null, agent: null, messages: [] });

    const withMissingHarness = session({ harnessId: `harness_${random()}` });
    await backends.sessions.createSession(withMissingHarness);
    expect((await backends.loadTurnSnapshot(withMissingHarness.id))?.harnessChain).toBeNull();
  });

  it('refuses a harness cycle with INVALID_INPUT, as getHarnessChain does', async () => {
    const [first, second] = [`harness_${random()}`, `harness_${random()}`];
    await backends.harnesses.addHarness(harness({ id: first, parentHarnessId: second }));
    await backends.harnesses.addHarness(harness({ id: second, parentHarnessId: first }));
    const cyclic = session({ harnessId: first });
    await backends.sessions.createSession(cyclic);
    for (const attempt of [
      () => backends.loadTurnSnapshot(cyclic.id),
      () => backends.harnesses.getHarnessChain(first),
    ]) {
      const error = await attempt().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), String(error)).toBe(true);
    }
  });

  it('reads a long chain in one statement', async () => {
    let parent: string | undefined;
    const ids: string[] = [];
    for (let index = 0; index < 50; index++) {
      const entry = harness(parent === undefined ? {} : { parentHarnessId: parent });
      await backends.harnesses.addHarness(entry);
      ids.push(entry.id);
      parent = entry.id;
    }
    const before = backends.queryCount();
    const chain = await backends.harnesses.getHarnessChain(parent!);
    expect(backends.queryCount() - before).toBe(1);
    expect(chain.map((entry) => entry.id)).toEqual(ids);
  });

  it('releaseTurnLeaseAndDeleteValues releases the lease and deletes the values under a prefix in one statement', async () => {
    const root = harness();
    await backends.harnesses.addHarness(root);
    const theSession = session({ harnessId: root.id });
    await backends.sessions.createSession(theSession);
    for (const key of ['journal/turn_1/a', 'journal/turn_1/b', 'journal/turn_2/a']) {
      await backends.storage.setValue(theSession.id, key, 'x');
    }
    await backends.sessions.claimTurnLease(theSession.id, 'holder_1', 60_000);
    const before = backends.queryCount();
    expect(
      await backends.releaseTurnLeaseAndDeleteValues(theSession.id, 'holder_1', 'journal/turn_1/'),
    ).toBe(true);
    expect(backends.queryCount() - before).toBe(1);
    expect(await backends.sessions.getTurnLease(theSession.id)).toBeNull();
    expect(await backends.storage.listKeys(theSession.id, 'journal/')).toEqual([
      'journal/turn_2/a',
    ]);
    // Not the holder (any more): nothing released, the values go all the same.
    await backends.sessions.claimTurnLease(theSession.id, 'holder_2', 60_000);
    expect(
      await backends.releaseTurnLeaseAndDeleteValues(theSession.id, 'holder_1', 'journal/'),
    ).toBe(false);
    expect((await backends.sessions.getTurnLease(theSession.id))?.holderId).toBe('holder_2');
    expect(await backends.storage.listKeys(theSession.id, 'journal/')).toEqual([]);
    await expect(
      backends.releaseTurnLeaseAndDeleteValues(theSession.id, 'holder_2', ''),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('claimTurnLeaseAndLoadSetup claims the lease and loads the setup in one statement, or says why not', async () => {
    const theHarness = harness();
    await backends.harnesses.addHarness(theHarness);
    const theSession = session({ harnessId: theHarness.id });
    await backends.sessions.createSession(theSession);
    await backends.storage.setValue(theSession.id, 'wait/a', 'x');
    const options = { storageKeyPrefix: 'wait/' };
    const before = backends.queryCount();
    const claimed = await backends.claimTurnLeaseAndLoadSetup(
      theSession.id,
      'holder_1',
      60_000,
      options,
    );
    expect(backends.queryCount() - before).toBe(1);
    expect(claimed.lease).toEqual(await backends.sessions.getTurnLease(theSession.id));
    expect(claimed.lease.holderId).toBe('holder_1');
    expect(claimed.setup).toEqual(await backends.loadSessionSetup(theSession.id, options));
    expect(claimed.setup?.storageKeys).toEqual(['wait/a']);

    // The same holder renews; another is refused while the lease lives, changing nothing.
    const again = await backends.claimTurnLeaseAndLoadSetup(theSession.id, 'holder_1', 60_000);
    expect(again.lease.holderId).toBe('holder_1');
    await expect(
      backends.claimTurnLeaseAndLoadSetup(theSession.id, 'holder_2', 60_000, options),
    ).rejects.toMatchObject({ code: 'TURN_IN_PROGRESS', details: { holder: 'holder_1' } });
    expect((await backends.sessions.getTurnLease(theSession.id))?.holderId).toBe('holder_1');

    // A lapsed lease is taken over.
    await backends.sessions.releaseTurnLease(theSession.id, 'holder_1');
    await backends.sessions.claimTurnLease(theSession.id, 'holder_3', 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const taken = await backends.claimTurnLeaseAndLoadSetup(theSession.id, 'holder_4', 60_000);
    expect(taken.lease.holderId).toBe('holder_4');

    await expect(
      backends.claimTurnLeaseAndLoadSetup(`session_${random()}`, 'holder_1', 60_000),
    ).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    await expect(
      backends.claimTurnLeaseAndLoadSetup(theSession.id, '', 60_000),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('claimTurnLeaseAndLoadSetup keeps the lease it claimed when the setup cannot be read (a harness cycle)', async () => {
    const [first, second] = [`harness_${random()}`, `harness_${random()}`];
    await backends.harnesses.addHarness(harness({ id: first, parentHarnessId: second }));
    await backends.harnesses.addHarness(harness({ id: second, parentHarnessId: first }));
    const cyclic = session({ harnessId: first });
    await backends.sessions.createSession(cyclic);
    const claimed = await backends.claimTurnLeaseAndLoadSetup(cyclic.id, 'holder_1', 60_000);
    expect(claimed.setup).toBeNull();
    expect(claimed.lease.holderId).toBe('holder_1');
    expect((await backends.sessions.getTurnLease(cyclic.id))?.holderId).toBe('holder_1');
  });
});
