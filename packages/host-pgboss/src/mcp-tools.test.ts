import { randomBytes } from 'node:crypto';
import {
  DriverRegistry,
  LLMSIM_DEFAULT_MODEL,
  type McpToolRequest,
  type McpToolSource,
  PlatformDefinition,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PgBossHost } from './index.js';
import {
  adminQuery,
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
} from './test-support/database.js';

// Issue 16, item 4: a worker lists a session's MCP tools on demand from its platform's source,
// and an MCP call is a tool call like any other (the act step's journal, its stored result).

const storesSchema = randomSchemaName('mcp_stores');
const hostSchema = randomSchemaName('mcp_host');
const bossSchema = randomSchemaName('mcp_boss');
const TOKEN = `mcp-host-token-${randomBytes(6).toString('hex')}`;

class RecordingSource implements McpToolSource {
  readonly requests: McpToolRequest[] = [];
  readonly calls: unknown[] = [];
  async listTools(request: McpToolRequest) {
    this.requests.push(request);
    return {
      tools: Object.keys(request.servers).map((server) => ({
        server,
        serverToolName: 'add',
        tool: {
          name: `${server}__add`,
          description: 'Adds two numbers',
          inputSchema: z.looseObject({}),
          inputJsonSchema: { type: 'object', properties: { a: { type: 'number' } } },
          execute: (input: unknown) => {
            this.calls.push(input);
            const { a, b } = input as { a: number; b: number };
            return String(a + b);
          },
        },
      })),
      errors: [],
    };
  }
  async close() {}
}

let backends: PostgresBackends;
let host: PgBossHost | undefined;

beforeAll(async () => {
  backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema: storesSchema, secretKey: { id: 'k', key: randomBytes(32) } },
  );
  await backends.migrate();
});

afterAll(async () => {
  await host?.stop().catch(() => {});
  await backends?.close();
  await dropSchemas(storesSchema, hostSchema, bossSchema);
});

describe('PgBossHost with an MCP tool source', () => {
  it('a worker lists the session’s MCP tools and runs the call through the journaled act step', async () => {
    const source = new RecordingSource();
    const drivers = new DriverRegistry();
    drivers.register(
      new LlmSimDriver(
        LlmSimConfig.fromFunction((request, { index }) => {
          if (index === 0) {
            return {
              toolCalls: [{ id: 'mcp_call_1', name: 'calc__add', arguments: { a: 20, b: 22 } }],
            };
          }
          const results = request.messages.flatMap((message) =>
            message.content.flatMap((part) => (part.type === 'tool_result' ? [part.content] : [])),
          );
          return `tools ${request.tools.map((tool) => tool.name).join(',')} gave ${results.join(',')}`;
        }),
      ),
    );
    const platform = new PlatformDefinition(undefined, drivers).withMcpToolSource(source);
    await backends.providers.setDefaultModel(LLMSIM_DEFAULT_MODEL);
    const harnessId = `harness_${randomBytes(6).toString('hex')}`;
    const sessionId = `session_${randomBytes(6).toString('hex')}`;
    await backends.harnesses.addHarness({
      id: harnessId,
      name: 'h',
      systemPrompt: '',
      tags: [],
      capabilities: [],
      initialFiles: [],
      status: 'active',
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      mcpServers: {
        calc: { transport: 'stdio', command: 'calc-server', env: { TOKEN } },
      },
    });
    await backends.sessions.createSession({
      id: sessionId,
      harnessId,
      tags: [],
      capabilities: [],
      initialFiles: [],
      status: 'started',
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    });
    host = await PgBossHost.start({
      connectionString: DATABASE_URL,
      backends,
      platform,
      schema: hostSchema,
      bossSchema,
      pollingIntervalSeconds: 0.5,
    });
    await host.work({ concurrency: 1 });
    const handle = await host.submitTextTurn(sessionId, 'add');
    const result = await handle.result({ timeoutMs: 30_000 });
    expect(result).toMatchObject({ success: true, response: 'tools calc__add gave 42' });
    expect(source.calls).toEqual([{ a: 20, b: 22 }]);
    // Every listing came from the stored definitions, secrets decrypted for the source only.
    expect(source.requests.length).toBeGreaterThan(0);
    for (const request of source.requests) {
      expect(request.sessionId).toBe(sessionId);
      expect(request.servers).toEqual({
        calc: { transport: 'stdio', command: 'calc-server', env: { TOKEN } },
      });
    }
    const journal = await adminQuery<{ tool_call_id: string }>(
      `SELECT tool_call_id FROM "${hostSchema}".tool_calls WHERE session_id = $1`,
      [sessionId],
    );
    expect(journal.rows.map((row) => row.tool_call_id)).toEqual(['mcp_call_1']);
    const messages = await backends.messages.load(sessionId);
    const stored = messages.find((message) => message.role === 'tool_result');
    expect(stored?.content[0]).toMatchObject({ toolCallId: 'mcp_call_1', content: '42' });
    const events = await backends.events.loadEvents(sessionId, { afterSeq: 0, limit: 1000 });
    expect(JSON.stringify(events)).not.toContain(TOKEN);
  });
});
