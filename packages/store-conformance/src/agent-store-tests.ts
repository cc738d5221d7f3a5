import { expect, it } from 'vitest';
import {
  expectErrorCode,
  HOSTILE_STRINGS,
  isSorted,
  makeAgent,
  randomId,
  TRICKY_TEXT,
  tryToMutate,
} from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/** Tests of `RuntimeAgentStore`: round-trips, `DUPLICATE_ID`, sorted listings, hostile ids. */
export function agentStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'agent store', ({ backends }) => {
    it('round-trips an agent with every field', async () => {
      const { agents } = backends();
      const agent = makeAgent({
        name: 'full',
        displayName: 'Full agent',
        description: TRICKY_TEXT,
        systemPrompt: TRICKY_TEXT,
        defaultModelId: 'model-2',
        tags: ['x'],
        capabilities: [{ id: 'test_math', config: { precision: 2 } }],
        tools: ['add', 'subtract'],
        initialFiles: [{ path: '/a.bin', content: 'AAEC', encoding: 'base64', isReadonly: false }],
        maxIterations: 3,
        status: 'archived',
      });
      await agents.addAgent(agent);
      expect(await agents.getAgent(agent.id)).toEqual(agent);
      expect(await agents.getAgent(randomId('agent'))).toBeNull();
    });

    it('throws DUPLICATE_ID when adding an existing id and keeps the first', async () => {
      const { agents } = backends();
      const agent = makeAgent({ name: 'first' });
      await agents.addAgent(agent);
      await expectErrorCode(
        agents.addAgent(makeAgent({ id: agent.id, name: 'second' })),
        'DUPLICATE_ID',
      );
      expect((await agents.getAgent(agent.id))?.name).toBe('first');
    });

    it('lists every agent sorted by id', async () => {
      const { agents } = backends();
      const ids = ['agent_z', 'agent_Z', 'agent_1', 'agent_-'].map((id) => `${id}${randomId('')}`);
      for (const id of ids) await agents.addAgent(makeAgent({ id }));
      const listed = (await agents.listAgents()).map((agent) => agent.id);
      expect(isSorted(listed)).toBe(true);
      expect(listed.filter((id) => ids.includes(id))).toEqual([...ids].sort());
    });

    it('accepts hostile ids as opaque data', async () => {
      const { agents } = backends();
      for (const value of HOSTILE_STRINGS) {
        const agent = makeAgent({ id: `${value}${randomId()}` });
        await agents.addAgent(agent);
        expect(await agents.getAgent(agent.id)).toEqual(agent);
      }
    });

    it('keeps its copy when the caller changes what it gave or got', async () => {
      const { agents } = backends();
      const agent = makeAgent({ tools: ['add'] });
      await agents.addAgent(agent);
      tryToMutate(() => agent.tools.push('rm'));
      const got = await agents.getAgent(agent.id);
      tryToMutate(() => got?.tools.push('rm'));
      expect((await agents.getAgent(agent.id))?.tools).toEqual(['add']);
    });
  });
}
