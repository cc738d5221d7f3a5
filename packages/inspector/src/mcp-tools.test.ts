import { defineTool, type McpToolSource } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runtimeInspectorSource } from './inspector-source.js';
import { type InspectorServer, startInspectorServer } from './server.js';

// Issue 16, item 3: the inspector shows a session's MCP tools with their server, and never the
// secret values of the server's configuration.

const TOKEN = `mcp-token-${Math.random().toString(36).slice(2)}`;

/** A source with one server whose one tool adds two numbers, as an MCP pool would hand it over. */
const source: McpToolSource = {
  async listTools({ servers }) {
    return {
      tools: Object.keys(servers).map((server) => ({
        server,
        serverToolName: 'add',
        tool: defineTool({
          name: `${server}__add`,
          description: 'Adds two numbers.',
          inputSchema: z.object({ a: z.number(), b: z.number() }),
          execute: ({ a, b }) => String(a + b),
        }),
      })),
      errors: [],
    };
  },
  async close() {},
};

describe('the inspector and MCP tools', () => {
  let server: InspectorServer;
  let runtime: Awaited<ReturnType<InProcessRuntimeBuilder['build']>>;
  let sessionId: string;

  beforeAll(async () => {
    runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(
        LlmSimConfig.sequence(['', '5']).withToolCallSequence([
          [{ name: 'units__add', arguments: { a: 2, b: 3 } }],
          [],
        ]),
      )
      .singleSession((s) =>
        s
          .harness('h', 'Help.')
          .harnessMcpServer('units', {
            transport: 'stdio',
            command: 'units-server',
            env: { UNITS_TOKEN: TOKEN },
          })
          // A session-level server too: the session record itself holds its secret header.
          .sessionMcpServer('remote', {
            transport: 'http',
            url: 'http://127.0.0.1:9/mcp',
            headers: { authorization: `Bearer ${TOKEN}` },
          }),
      )
      .build();
    sessionId = runtime.defaultSessionId() as string;
    server = await startInspectorServer({ source: runtimeInspectorSource(runtime), port: 0 });
    await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
  });

  afterAll(async () => {
    await server.close();
    await runtime.close();
  });

  it('serves the context with the MCP tools marked by server, and no env value', async () => {
    const response = await fetch(`${server.url}api/sessions/${sessionId}/context`);
    expect(response.status).toBe(200);
    const body = await response.text();
    expect(body).not.toContain(TOKEN);
    const { contexts } = JSON.parse(body) as {
      contexts: { tools: { name: string }[]; mcpTools?: { name: string; server: string }[] }[];
    };
    const context = contexts[0];
    expect(context?.tools.map((tool) => tool.name)).toContain('units__add');
    expect(context?.mcpTools).toEqual([
      { name: 'units__add', server: 'units', serverToolName: 'add' },
      { name: 'remote__add', server: 'remote', serverToolName: 'add' },
    ]);
  });

  it('serves the session and its events without the env value', async () => {
    for (const path of [`api/sessions/${sessionId}`, 'api/sessions']) {
      const response = await fetch(`${server.url}${path}`);
      expect(response.status, path).toBe(200);
      const body = await response.text();
      expect(body, path).not.toContain(TOKEN);
      if (path.endsWith(sessionId)) expect(body).toContain('units__add');
    }
  });
});
