import type { McpServers } from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { makeAgent, makeHarness, makeSession, randomId, TRICKY_TEXT } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/** MCP servers of every transport, with secret-looking env and header values and tricky text. */
export function sampleMcpServers(secret: string): McpServers {
  return {
    math: {
      transport: 'stdio',
      command: 'node',
      args: ['server.js', TRICKY_TEXT],
      env: { API_TOKEN: secret, EMPTY: '', TRICKY: TRICKY_TEXT },
      cwd: '/srv/math',
      timeoutMs: 5_000,
      connectTimeoutMs: 2_000,
      tools: ['add', 'subtract'],
    },
    'docs-1': {
      transport: 'http',
      url: 'http://127.0.0.1:8931/mcp?x=1',
      headers: { Authorization: `Bearer ${secret}`, 'X-Trace': 'on' },
    },
    off: { transport: 'stdio', command: 'off', disabled: true },
  };
}

/**
 * Tests that harnesses, agents and sessions keep their `mcpServers` exactly (env and header
 * values included: a backend may store them encrypted, but reads them back as written), through
 * every read: get, list, the harness chain, session updates and the turn snapshot when the
 * backend offers one.
 */
export function mcpServerDefinitionTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'MCP servers in definitions', ({ backends }) => {
    it('round-trips the MCP servers of a harness, through get, list and the chain', async () => {
      const { harnesses } = backends();
      const parent = makeHarness({ mcpServers: sampleMcpServers('parent-secret') });
      const child = makeHarness({
        parentHarnessId: parent.id,
        mcpServers: { math: { transport: 'stdio', command: 'child', env: { K: 'child-secret' } } },
      });
      await harnesses.addHarness(parent);
      await harnesses.addHarness(child);
      expect(await harnesses.getHarness(parent.id)).toEqual(parent);
      expect(await harnesses.getHarnessChain(child.id)).toEqual([parent, child]);
      const listed = await harnesses.listHarnesses();
      expect(listed.find((harness) => harness.id === child.id)).toEqual(child);
    });

    it('round-trips the MCP servers of an agent', async () => {
      const { agents } = backends();
      const agent = makeAgent({ mcpServers: sampleMcpServers('agent-secret') });
      await agents.addAgent(agent);
      expect(await agents.getAgent(agent.id)).toEqual(agent);
      expect((await agents.listAgents()).find((entry) => entry.id === agent.id)).toEqual(agent);
    });

    it('round-trips the MCP servers of a session, through updates and listings', async () => {
      const { sessions } = backends();
      const session = makeSession({ mcpServers: sampleMcpServers('session-secret') });
      expect(await sessions.createSession(session)).toEqual(session);
      expect(await sessions.getSession(session.id)).toEqual(session);
      const titled = await sessions.updateSessionTitle(session.id, 'titled');
      expect(titled.mcpServers).toEqual(session.mcpServers);
      const active = await sessions.updateSessionStatus(session.id, 'active');
      expect(active.mcpServers).toEqual(session.mcpServers);
      const listed = (await sessions.listSessions()).find((entry) => entry.id === session.id);
      expect(listed?.mcpServers).toEqual(session.mcpServers);
    });

    it('keeps definitions without MCP servers as they were', async () => {
      const { harnesses, sessions } = backends();
      const harness = makeHarness();
      await harnesses.addHarness(harness);
      expect(await harnesses.getHarness(harness.id)).toEqual(harness);
      expect((await harnesses.getHarness(harness.id))?.mcpServers).toBeUndefined();
      const session = makeSession({ harnessId: harness.id, mcpServers: {} });
      await sessions.createSession(session);
      expect(await sessions.getSession(session.id)).toEqual(session);
    });

    it('the turn snapshot and session setup carry every layer’s MCP servers', async () => {
      const all = backends();
      if (!all.loadTurnSnapshot && !all.loadSessionSetup) return;
      const harness = makeHarness({ mcpServers: sampleMcpServers('snap-harness') });
      const agent = makeAgent({ mcpServers: sampleMcpServers('snap-agent') });
      const session = makeSession({
        id: randomId('session'),
        harnessId: harness.id,
        agentId: agent.id,
        mcpServers: sampleMcpServers('snap-session'),
      });
      await all.harnesses.addHarness(harness);
      await all.agents.addAgent(agent);
      await all.sessions.createSession(session);
      const loads = [
        all.loadTurnSnapshot && (() => all.loadTurnSnapshot?.(session.id)),
        all.loadSessionSetup && (() => all.loadSessionSetup?.(session.id)),
      ];
      for (const load of loads) {
        if (!load) continue;
        const snapshot = await load();
        expect(snapshot?.session).toEqual(session);
        expect(snapshot?.harnessChain).toEqual([harness]);
        expect(snapshot?.agent).toEqual(agent);
      }
    });
  });
}
