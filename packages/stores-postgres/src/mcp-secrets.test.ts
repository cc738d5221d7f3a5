import { randomBytes } from 'node:crypto';
import { EverrunsError, type McpToolRequest, type McpToolSource } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import {
  makeAgent,
  makeHarness,
  makeSession,
  sampleMcpServers,
} from '@everruns-ts/store-conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
} from './test-support/database.js';

// Issue 16: the env values of stdio MCP servers and the headers of HTTP ones are secrets. They are
// stored sealed with the store's secret key (bound to the definition), read back as written, and
// handed to the platform's MCP tool source, never to contexts.

const random = () => randomBytes(8).toString('hex');

/** Every row of every table of the schema as text (bytea as hex), like a data dump. */
async function dumpSchema(schema: string): Promise<string> {
  const tables = await adminQuery<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    [schema],
  );
  let dump = '';
  for (const { table_name } of tables.rows) {
    const rows = await adminQuery<{ row: string }>(
      `SELECT t::text AS row FROM "${schema}"."${table_name}" t`,
    );
    for (const { row } of rows.rows) dump += `${table_name}: ${row}\n`;
  }
  return dump;
}

function forms(plaintext: string): string[] {
  return [
    plaintext,
    Buffer.from(plaintext, 'utf8').toString('hex'),
    Buffer.from(plaintext, 'utf8').toString('base64'),
  ];
}

describe('postgres stores: MCP server secrets encrypted at rest', () => {
  const key = { id: 'mcp-key-1', key: randomBytes(32) };
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends({ secretKey: key });
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('stores env and header values only as ciphertext and reads them back as written', async () => {
    const secrets = {
      harness: `harness-env-${random()}`,
      agent: `agent-env-${random()}`,
      session: `session-env-${random()}`,
    };
    const harness = makeHarness({ mcpServers: sampleMcpServers(secrets.harness) });
    const agent = makeAgent({ mcpServers: sampleMcpServers(secrets.agent) });
    const session = makeSession({
      harnessId: harness.id,
      agentId: agent.id,
      mcpServers: sampleMcpServers(secrets.session),
    });
    await backends.harnesses.addHarness(harness);
    await backends.agents.addAgent(agent);
    await backends.sessions.createSession(session);
    const dump = await dumpSchema(backends.schema);
    // What is not secret stays readable: server names, commands, URLs.
    expect(dump).toContain('docs-1');
    expect(dump).toContain('/srv/math');
    expect(dump).toContain('127.0.0.1:8931');
    expect(dump).toContain(key.id);
    for (const secret of Object.values(secrets)) {
      for (const form of forms(secret)) expect(dump).not.toContain(form);
    }
    expect(await backends.harnesses.getHarness(harness.id)).toEqual(harness);
    expect(await backends.agents.getAgent(agent.id)).toEqual(agent);
    expect(await backends.sessions.getSession(session.id)).toEqual(session);
    const snapshot = await backends.loadTurnSnapshot(session.id);
    expect(snapshot?.session.mcpServers).toEqual(session.mcpServers);
    expect(snapshot?.harnessChain?.[0]?.mcpServers).toEqual(harness.mcpServers);
    expect(snapshot?.agent?.mcpServers).toEqual(agent.mcpServers);
  });

  it('refuses another key with SECRET_KEY_MISMATCH, without the secret in the message', async () => {
    const secret = `only-with-the-right-key-${random()}`;
    const harness = makeHarness({
      mcpServers: { math: { transport: 'stdio', command: 'm', env: { TOKEN: secret } } },
    });
    await backends.harnesses.addHarness(harness);
    const wrong = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
      { schema: backends.schema, secretKey: { id: key.id, key: randomBytes(32) } },
    );
    try {
      const error = await wrong.harnesses.getHarness(harness.id).then(
        () => expect.fail('expected SECRET_KEY_MISMATCH'),
        (caught: unknown) => caught,
      );
      expect(EverrunsError.hasCode(error, 'SECRET_KEY_MISMATCH')).toBe(true);
      expect((error as Error).message).not.toContain(secret);
    } finally {
      await wrong.close();
    }
  });

  it('sealed values copied into another definition do not open there', async () => {
    const victim = makeHarness({
      mcpServers: { math: { transport: 'stdio', command: 'm', env: { TOKEN: 'victim' } } },
    });
    const thief = makeHarness({
      mcpServers: { math: { transport: 'stdio', command: 'm', env: { TOKEN: 'thief' } } },
    });
    await backends.harnesses.addHarness(victim);
    await backends.harnesses.addHarness(thief);
    const table = `"${backends.schema}".harnesses`;
    const rows = await adminQuery<{ data: string }>(`SELECT data FROM ${table}`);
    const documents = rows.rows.map((row) => JSON.parse(row.data) as Record<string, unknown>);
    const stolen = documents.find((document) => document.id === victim.id)?.mcpSecretsSealed;
    const original = rows.rows.find((row) => JSON.parse(row.data).id === thief.id)?.data;
    expect(stolen).toBeDefined();
    await adminQuery(`UPDATE ${table} SET data = $1 WHERE data = $2`, [
      JSON.stringify({ ...JSON.parse(original!), mcpSecretsSealed: stolen }),
      original,
    ]);
    const error = await backends.harnesses.getHarness(thief.id).then(
      () => expect.fail('expected SECRET_KEY_MISMATCH'),
      (caught: unknown) => caught,
    );
    expect(EverrunsError.hasCode(error, 'SECRET_KEY_MISMATCH')).toBe(true);
  });

  it('a turn hands the source the decrypted values, and its context shows none of them', async () => {
    const token = `turn-token-${random()}`;
    const requests: McpToolRequest[] = [];
    const source: McpToolSource = {
      async listTools(request) {
        requests.push(request);
        return { tools: [], errors: [] };
      },
      async close() {},
    };
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('done'))
      .singleSession((s) =>
        s.sessionMcpServer('secure', {
          transport: 'http',
          url: 'http://127.0.0.1:8931/mcp',
          headers: { Authorization: `Bearer ${token}` },
        }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const result = await runtime.runTurn(sessionId, {
      role: 'user',
      content: [{ type: 'text', text: 'hi' }],
    });
    expect(result.success).toBe(true);
    expect(requests[0]?.servers.secure).toEqual({
      transport: 'http',
      url: 'http://127.0.0.1:8931/mcp',
      headers: { Authorization: `Bearer ${token}` },
    });
    const context = runtime.turnContext(result.turnId);
    expect(context?.overlay.mcpServers.secure).toMatchObject({
      headers: { Authorization: '[redacted]' },
    });
    expect(JSON.stringify(context)).not.toContain(token);
    expect(JSON.stringify(await runtime.loadContext(sessionId))).not.toContain(token);
    // The runtime does not own these backends' lifetime here: close only the source side.
    await source.close();
  });
});
