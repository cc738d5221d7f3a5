import { describe, expect, it } from 'vitest';
import {
  agentSchema,
  foldOverlay,
  harnessSchema,
  mcpServersWithoutSecrets,
  REDACTED_OPTION_VALUE,
  sessionSchema,
} from '../index.js';

describe('MCP servers through the overlay', () => {
  const root = harnessSchema.parse({
    id: 'h_root',
    name: 'root',
    mcpServers: {
      math: { transport: 'stdio', command: 'root-math' },
      docs: { transport: 'http', url: 'http://127.0.0.1:1/mcp' },
    },
  });
  const child = harnessSchema.parse({
    id: 'h_child',
    name: 'child',
    parentHarnessId: 'h_root',
    mcpServers: { search: { transport: 'stdio', command: 'child-search' } },
  });
  const agent = agentSchema.parse({
    id: 'a1',
    name: 'agent',
    mcpServers: { math: { transport: 'stdio', command: 'agent-math', args: ['--fast'] } },
  });
  const session = sessionSchema.parse({
    id: 's1',
    harnessId: 'h_child',
    agentId: 'a1',
    mcpServers: { docs: { transport: 'http', url: 'http://127.0.0.1:1/mcp', disabled: true } },
  });

  it('replaces a server by name in later layers and leaves out a disabled one', () => {
    const overlay = foldOverlay([root, child], agent, session);
    expect(overlay.mcpServers).toEqual({
      search: { transport: 'stdio', command: 'child-search' },
      math: { transport: 'stdio', command: 'agent-math', args: ['--fast'] },
    });
  });

  it('a later layer switches a disabled server on again', () => {
    const again = sessionSchema.parse({
      id: 's2',
      harnessId: 'h_child',
      mcpServers: { docs: { transport: 'http', url: 'http://127.0.0.1:2/mcp' } },
    });
    const disabling = harnessSchema.parse({
      id: 'h_off',
      name: 'off',
      mcpServers: { docs: { transport: 'http', url: 'http://127.0.0.1:1/mcp', disabled: true } },
    });
    expect(foldOverlay([root, disabling], null, again).mcpServers).toEqual({
      math: { transport: 'stdio', command: 'root-math' },
      docs: { transport: 'http', url: 'http://127.0.0.1:2/mcp' },
    });
  });

  it('definitions without mcpServers (written before MCP) fold to none', () => {
    const { mcpServers: _h, ...oldHarness } = harnessSchema.parse({ id: 'h_old', name: 'old' });
    const { mcpServers: _s, ...oldSession } = sessionSchema.parse({ id: 's3', harnessId: 'h_old' });
    expect(
      foldOverlay([oldHarness as typeof root], null, oldSession as typeof session).mcpServers,
    ).toEqual({});
  });

  it('refuses bad server names and configs', () => {
    expect(
      harnessSchema.safeParse({
        id: 'h',
        name: 'h',
        mcpServers: { 'bad name': { transport: 'stdio', command: 'x' } },
      }).success,
    ).toBe(false);
    expect(
      harnessSchema.safeParse({
        id: 'h',
        name: 'h',
        mcpServers: { ok: { transport: 'http', url: 'file:///etc/passwd' } },
      }).success,
    ).toBe(false);
  });

  it('shows env and header values as redacted, names kept, URL credentials removed', () => {
    expect(
      mcpServersWithoutSecrets({
        a: { transport: 'stdio', command: 'x', env: { TOKEN: 'tok-secret' } },
        b: {
          transport: 'http',
          url: 'http://user:pw@127.0.0.1:3/mcp',
          headers: { Authorization: 'Bearer abc' },
        },
      }),
    ).toEqual({
      a: { transport: 'stdio', command: 'x', env: { TOKEN: REDACTED_OPTION_VALUE } },
      b: {
        transport: 'http',
        url: 'http://127.0.0.1:3/mcp',
        headers: { Authorization: REDACTED_OPTION_VALUE },
      },
    });
  });
});
