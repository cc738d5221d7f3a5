import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isToolError, type McpTool, type ToolContext } from '@everruns-ts/core';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createDemoServer } from '../test-servers/demo-server.mjs';
import { McpClientPool } from './index.js';

/** An in-process MCP server on 127.0.0.1 (Streamable HTTP at /mcp, or the older SSE transport). */
interface TestServer {
  url: string;
  port: number;
  /** Sessions the server has initialized (one per client connection). */
  initializations: number;
  /** Every request line seen, `POST /mcp`. */
  requests: string[];
  /** The `authorization` header of every request that had one. */
  authorizations: string[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const pools: McpClientPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function pool(): McpClientPool {
  const created = new McpClientPool();
  pools.push(created);
  return created;
}

async function startServer(
  options: { transport?: 'streamable' | 'sse'; redirectTo?: string; port?: number } = {},
): Promise<TestServer> {
  const streamable = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();
  const state = { initializations: 0, requests: [] as string[], authorizations: [] as string[] };
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    state.requests.push(`${request.method} ${request.url}`);
    if (request.headers.authorization) state.authorizations.push(request.headers.authorization);
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/elsewhere' && options.redirectTo) {
      response.writeHead(307, { location: options.redirectTo }).end();
      return;
    }
    if (url.pathname === '/moved') {
      response.writeHead(307, { location: '/mcp' }).end();
      return;
    }
    if (options.transport === 'sse') {
      if (url.pathname === '/mcp' && request.method === 'GET') {
        const transport = new SSEServerTransport('/messages', response);
        sse.set(transport.sessionId, transport);
        state.initializations++;
        await createDemoServer({ connection: state.initializations }).connect(transport);
        return;
      }
      const transport = sse.get(url.searchParams.get('sessionId') ?? '');
      if (url.pathname === '/messages' && transport) {
        await transport.handlePostMessage(request, response);
        return;
      }
      response.writeHead(405).end();
      return;
    }
    if (url.pathname !== '/mcp') {
      response.writeHead(404).end();
      return;
    }
    const sessionId = request.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? streamable.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId !== undefined) {
        response.writeHead(404).end();
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          state.initializations++;
          streamable.set(id, created);
        },
      });
      transport = created;
      await createDemoServer({ connection: state.initializations + 1 }).connect(created);
    }
    await transport.handleRequest(request, response);
  };
  const http: Server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  await new Promise<void>((resolve) => http.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  const server: TestServer = {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    get initializations() {
      return state.initializations;
    },
    requests: state.requests,
    authorizations: state.authorizations,
    async close() {
      for (const transport of streamable.values()) await transport.close().catch(() => {});
      for (const transport of sse.values()) await transport.close().catch(() => {});
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
  servers.push(server);
  return server;
}

function context(): ToolContext {
  return {
    sessionId: 'session-1',
    turnId: 'turn-1',
    toolCallId: 'call-1',
    idempotencyKey: 'session-1/turn-1/call-1',
    iteration: 1,
    config: undefined,
    signal: new AbortController().signal,
  } as ToolContext;
}

async function call(tools: McpTool[], name: string, input: Record<string, unknown> = {}) {
  const found = tools.find((tool) => tool.tool.name === name);
  if (!found) throw new Error(`no tool ${name}`);
  return found.tool.execute(input, context());
}

describe('McpClientPool over HTTP', () => {
  it('lists and calls tools over Streamable HTTP, sending the config headers', async () => {
    const server = await startServer();
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: {
        web: { transport: 'http', url: server.url, headers: { Authorization: 'Bearer t0ken' } },
      },
    });
    expect(errors).toEqual([]);
    expect(tools.map((tool) => tool.tool.name)).toContain('web__add');
    expect(await call(tools, 'web__add', { a: 20, b: 22 })).toBe('{"sum":42}');
    const failed = await call(tools, 'web__divide', { a: 1, b: 0 });
    expect(isToolError(failed) && failed.message).toBe('division by zero');
    expect(server.authorizations.length).toBeGreaterThan(0);
    expect(new Set(server.authorizations)).toEqual(new Set(['Bearer t0ken']));
  });

  it('shares one server session between two sessions with the same config', async () => {
    const server = await startServer();
    const source = pool();
    const config = { transport: 'http', url: server.url } as const;
    // Both ask at once: the second waits for the first one's connection instead of opening one.
    const [a, b] = await Promise.all([
      source.listTools({ sessionId: 'a', servers: { web: config } }),
      source.listTools({ sessionId: 'b', servers: { web: { ...config, tools: ['whoami'] } } }),
    ]);
    expect(b.tools.map((tool) => tool.tool.name)).toEqual(['web__whoami']);
    expect(await call(a.tools, 'web__add', { a: 1, b: 1 })).toBe('{"sum":2}');
    expect(server.initializations).toBe(1);
    expect(JSON.parse((await call(b.tools, 'web__whoami')) as string).connection).toBe(1);
  });

  it('does not follow a redirect to another host', async () => {
    const target = await startServer();
    const redirecting = await startServer({
      redirectTo: `http://localhost:${target.port}/mcp`,
    });
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: {
        moved: { transport: 'http', url: redirecting.url.replace('/mcp', '/elsewhere') },
      },
    });
    expect(tools).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.server).toBe('moved');
    expect(errors[0]?.message).toMatch(/redirect/i);
    expect(target.requests).toEqual([]);
    expect(redirecting.requests.every((line) => line.endsWith('/elsewhere'))).toBe(true);
  });

  it('follows a redirect within the same origin', async () => {
    const server = await startServer();
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: { moved: { transport: 'http', url: server.url.replace('/mcp', '/moved') } },
    });
    expect(errors).toEqual([]);
    expect(await call(tools, 'moved__add', { a: 1, b: 2 })).toBe('{"sum":3}');
  });

  it('falls back to the SSE transport for a server that only speaks it', async () => {
    const server = await startServer({ transport: 'sse' });
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: { old: { transport: 'http', url: server.url } },
    });
    expect(errors).toEqual([]);
    expect(await call(tools, 'old__add', { a: 5, b: 5 })).toBe('{"sum":10}');
    expect(server.requests).toContain('POST /mcp');
    expect(server.requests).toContain('GET /mcp');
  });

  it('reports both transports when neither answers', async () => {
    const server = await startServer();
    const { errors } = await pool().listTools({
      sessionId: 's1',
      servers: { nowhere: { transport: 'http', url: server.url.replace('/mcp', '/nothing') } },
    });
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(/404.*the SSE transport tried next/s);
  });

  it('turns a call to a server that went away into a tool error and reconnects when it is back', async () => {
    const first = await startServer();
    const source = pool();
    const { tools } = await source.listTools({
      sessionId: 's1',
      servers: { web: { transport: 'http', url: first.url } },
    });
    expect(await call(tools, 'web__add', { a: 1, b: 1 })).toBe('{"sum":2}');
    await first.close();
    const refused = await call(tools, 'web__add', { a: 1, b: 1 });
    expect(isToolError(refused)).toBe(true);
    expect((refused as { message: string }).message).toMatch(/web failed on add/);

    const second = await startServer({ port: first.port });
    expect(await call(tools, 'web__add', { a: 2, b: 3 })).toBe('{"sum":5}');
    expect(second.initializations).toBe(1);
  });

  it('refuses a URL that is not http or https', async () => {
    const { errors } = await pool().listTools({
      sessionId: 's1',
      servers: { ftp: { transport: 'http', url: 'ftp://127.0.0.1/mcp' } as never },
    });
    expect(errors).toEqual([
      { server: 'ftp', message: expect.stringMatching(/invalid MCP server config/) },
    ]);
  });
});
