import {
  type AssembledTurnContext,
  defineCapability,
  defineTool,
  INTERRUPTED_TOOL_RESULT_TEXT,
  type McpServerConfig,
  type McpTool,
  type McpToolRequest,
  type McpToolSource,
  type Message,
  PlatformDefinition,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { executeActActivity } from './host-entry.js';
import {
  AgentBuilder,
  HarnessBuilder,
  InProcessRuntimeBuilder,
  InputMessage,
  LlmSimConfig,
  SessionBuilder,
} from './index.js';
import { expectCode } from './test-support.js';

// MCP servers in definitions (issue 16): folded through the overlay, their tools listed by the
// platform's McpToolSource for each turn step, called through the act step like any tool, and
// never shown with their env or header values.

const HARNESS_TOKEN = 'harness-token-6f1c2e';
const AGENT_TOKEN = 'agent-token-9d04ab';
const DOCS_HEADER = 'Bearer docs-secret-77aa';

/**
 * An MCP tool source as `@everruns-ts/mcp` would be, without a real server: each server's tools
 * come from `toolsOf(config)`; a server whose command is `unreachable` fails (with its env value
 * in the message, as a careless server might).
 */
class FakeMcpSource implements McpToolSource {
  readonly requests: McpToolRequest[] = [];
  readonly calls: Array<{ server: string; tool: string; input: unknown; signal: boolean }> = [];
  closed = 0;

  constructor(
    readonly toolsOf: (server: string, config: McpServerConfig) => string[] = () => ['add'],
  ) {}

  async listTools(request: McpToolRequest) {
    if (this.closed > 0) throw new Error('closed');
    this.requests.push(request);
    const tools: McpTool[] = [];
    const errors: { server: string; message: string }[] = [];
    for (const [server, config] of Object.entries(request.servers)) {
      if (config.transport === 'stdio' && config.command === 'unreachable') {
        errors.push({
          server,
          message: `spawn failed with env ${JSON.stringify(config.env ?? {})}`,
        });
        continue;
      }
      for (const serverToolName of this.toolsOf(server, config)) {
        tools.push({
          server,
          serverToolName,
          tool: {
            name: serverToolName.includes('__') ? serverToolName : `${server}__${serverToolName}`,
            description: `${serverToolName} of ${server}`,
            inputSchema: z.looseObject({}),
            inputJsonSchema: {
              type: 'object',
              properties: { a: { type: 'number' }, b: { type: 'number' } },
              required: ['a', 'b'],
              'x-from-server': server,
            },
            execute: (input, context) => {
              this.calls.push({
                server,
                tool: serverToolName,
                input,
                signal: context.signal instanceof AbortSignal,
              });
              const { a, b } = input as { a: number; b: number };
              return `${server}:${a + b}`;
            },
          },
        });
      }
    }
    return { tools, errors };
  }

  async close() {
    this.closed++;
  }
}

const lookupCapability = defineCapability({
  id: 'lookup',
  name: 'Lookup',
  description: 'A capability tool whose name an MCP server also uses',
  tools: [
    defineTool({
      name: 'math__add',
      description: 'the capability tool',
      inputSchema: z.object({}).loose(),
      execute: () => 'from the capability',
    }),
  ],
});

function toolResults(messages: readonly Message[]): string[] {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part.content] : [])),
  );
}

describe('MCP servers', () => {
  it('folds harness, agent and session servers: the agent replaces, the session disables', async () => {
    const source = new FakeMcpSource();
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .mcpToolSource(source)
      .singleSession((s) =>
        s
          .harness('h', 'be helpful')
          .harnessMcpServer('math', {
            transport: 'stdio',
            command: 'math-v1',
            env: { TOKEN: HARNESS_TOKEN },
          })
          .harnessMcpServer('docs', {
            transport: 'http',
            url: 'http://127.0.0.1:9/mcp',
            headers: { Authorization: DOCS_HEADER },
          })
          .agent('a', 'agent')
          .agentMcpServer('math', {
            transport: 'stdio',
            command: 'math-v2',
            args: ['--fast'],
            env: { TOKEN: AGENT_TOKEN },
          })
          .sessionMcpServer('docs', {
            transport: 'http',
            url: 'http://127.0.0.1:9/mcp',
            disabled: true,
          }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const context = await runtime.loadContext(sessionId);
    expect(source.requests).toHaveLength(1);
    expect(source.requests[0]?.sessionId).toBe(sessionId);
    expect(source.requests[0]?.servers).toEqual({
      math: {
        transport: 'stdio',
        command: 'math-v2',
        args: ['--fast'],
        env: { TOKEN: AGENT_TOKEN },
      },
    });
    expect(context.mcpTools).toEqual([
      { name: 'math__add', server: 'math', serverToolName: 'add' },
    ]);
    expect(context.mcpIssues).toEqual([]);
    const spec = context.tools.find((tool) => tool.name === 'math__add');
    expect(spec?.inputSchema).toMatchObject({ 'x-from-server': 'math', required: ['a', 'b'] });
    // The context shows which servers and variables are set, never their values.
    expect(context.overlay.mcpServers.math).toMatchObject({ env: { TOKEN: '[redacted]' } });
    expect(context.overlay.harnessChain[0]?.mcpServers?.docs).toMatchObject({
      headers: { Authorization: '[redacted]' },
    });
    assertNoSecrets(context);
    await runtime.close();
    expect(source.closed).toBe(1);
  });

  it('a turn calls an MCP tool through the act step and the model gets its result', async () => {
    const source = new FakeMcpSource();
    const seen: string[][] = [];
    const platform = new PlatformDefinition().withMcpToolSource(source);
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .llmSim(
        LlmSimConfig.fromFunction((request, { index }) => {
          seen.push(request.tools.map((tool) => tool.name));
          if (index === 0) {
            return {
              toolCalls: [{ id: 'call_1', name: 'math__add', arguments: { a: 2, b: 3 } }],
            };
          }
          return `the sum is ${toolResults(request.messages).join(',')}`;
        }),
      )
      .singleSession((s) =>
        s.sessionMcpServer('math', {
          transport: 'stdio',
          command: 'math-server',
          env: { TOKEN: AGENT_TOKEN },
        }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const result = await runtime.runTurn(sessionId, InputMessage.user('add 2 and 3'));
    expect(result.success).toBe(true);
    expect(result.response).toBe('the sum is math:5');
    expect(source.calls).toEqual([
      { server: 'math', tool: 'add', input: { a: 2, b: 3 }, signal: true },
    ]);
    expect(seen).toEqual([['math__add'], ['math__add']]);
    // One listing for the whole turn (the in-process runtime caches the turn's setup).
    expect(source.requests).toHaveLength(1);
    const turnContext = runtime.turnContext(result.turnId);
    expect(turnContext?.mcpTools).toEqual([
      { name: 'math__add', server: 'math', serverToolName: 'add' },
    ]);
    assertNoSecrets(turnContext);
    const events = runtime.backends.events.collectedEvents?.(sessionId) ?? [];
    expect(events.find((event) => event.type === 'tool.completed')?.data).toMatchObject({
      toolName: 'math__add',
      isError: false,
      result: 'math:5',
    });
    expect(JSON.stringify(events)).not.toContain(AGENT_TOKEN);
    await runtime.close();
    expect(source.closed).toBe(1);
  });

  it('a capability tool keeps its name: the clashing MCP tool is left out and noted', async () => {
    const source = new FakeMcpSource((server) => (server === 'math' ? ['add', 'mul'] : ['add']));
    const runtime = await new InProcessRuntimeBuilder()
      .capability(lookupCapability)
      .mcpToolSource(source)
      .llmSim(
        LlmSimConfig.fromFunction((request, { index }) => {
          if (index === 0) return { toolCalls: [{ id: 'c1', name: 'math__add', arguments: {} }] };
          return toolResults(request.messages).join(',');
        }),
      )
      .singleSession((s) =>
        s.withCapability('lookup').harnessMcpServer('math', { transport: 'stdio', command: 'm' }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const context = await runtime.loadContext(sessionId);
    expect(context.tools.map((tool) => [tool.name, tool.description])).toEqual([
      ['math__add', 'the capability tool'],
      ['math__mul', 'mul of math'],
    ]);
    expect(context.mcpTools).toEqual([
      { name: 'math__mul', server: 'math', serverToolName: 'mul' },
    ]);
    expect(context.mcpIssues).toEqual([
      {
        server: 'math',
        kind: 'name_clash',
        toolName: 'math__add',
        serverToolName: 'add',
        message:
          'Tool math__add of MCP server math was left out: the name is taken by capability lookup',
      },
    ]);
    const result = await runtime.runTurn(sessionId, InputMessage.user('go'));
    expect(result.response).toBe('from the capability');
    expect(source.calls).toEqual([]);
    await runtime.close();
  });

  it('an unreachable server does not stop the turn; its error is noted without secrets', async () => {
    const source = new FakeMcpSource();
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(
        LlmSimConfig.fromFunction((request, { index }) => {
          if (index === 0) {
            return { toolCalls: [{ id: 'c1', name: 'good__add', arguments: { a: 1, b: 1 } }] };
          }
          return `tools: ${request.tools.map((tool) => tool.name).join(',')}; ${toolResults(request.messages).join(',')}`;
        }),
      )
      .singleSession((s) =>
        s
          .harnessMcpServer('broken', {
            transport: 'stdio',
            command: 'unreachable',
            env: { TOKEN: HARNESS_TOKEN },
          })
          .harnessMcpServer('good', { transport: 'stdio', command: 'good-server' }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const context = await runtime.loadContext(sessionId);
    expect(context.mcpTools?.map((tool) => tool.name)).toEqual(['good__add']);
    expect(context.mcpIssues).toHaveLength(1);
    expect(context.mcpIssues?.[0]).toMatchObject({ server: 'broken', kind: 'unreachable' });
    expect(context.mcpIssues?.[0]?.message).toContain('spawn failed');
    assertNoSecrets(context);
    const result = await runtime.runTurn(sessionId, InputMessage.user('go'));
    expect(result.success).toBe(true);
    expect(result.response).toBe('tools: good__add; good:2');
    await runtime.close();
  });

  it('a source that fails as a whole leaves the MCP tools out and the turn goes on', async () => {
    const failing: McpToolSource = {
      listTools: async () => {
        throw new Error('pool exploded');
      },
      close: async () => {},
    };
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(failing)
      .llmSim(LlmSimConfig.fixed('fine'))
      .singleSession((s) => s.sessionMcpServer('x', { transport: 'stdio', command: 'x' }))
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const result = await runtime.runTurn(sessionId, InputMessage.user('go'));
    expect(result).toMatchObject({ success: true, response: 'fine' });
    expect((await runtime.loadContext(sessionId)).mcpIssues).toEqual([
      { server: 'x', kind: 'unreachable', message: 'pool exploded' },
    ]);
    await runtime.close();
  });

  it('a session without enabled servers costs nothing: the source is never asked', async () => {
    const source = new FakeMcpSource();
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('plain'))
      .singleSession((s) =>
        s
          .harnessMcpServer('off', { transport: 'stdio', command: 'x' })
          .sessionMcpServer('off', { transport: 'stdio', command: 'x', disabled: true }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const result = await runtime.runTurn(sessionId, InputMessage.user('hi'));
    expect(result.response).toBe('plain');
    const context = await runtime.loadContext(sessionId);
    expect(context.mcpTools).toBeUndefined();
    expect(source.requests).toEqual([]);
    await runtime.close();
  });

  it('servers without a source are ignored, and the tools follow the agent allow-list and the server allow-list', async () => {
    const plain = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('x'))
      .singleSession((s) => s.sessionMcpServer('math', { transport: 'stdio', command: 'm' }))
      .build();
    expect((await plain.loadContext(plain.defaultSessionId()!)).tools).toEqual([]);
    await plain.close();

    const source = new FakeMcpSource(() => ['add', 'mul', 'div']);
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('x'))
      .singleSession((s) =>
        s
          .harnessMcpServer('math', { transport: 'stdio', command: 'm', tools: ['add', 'mul'] })
          .harnessMcpServer('calc', { transport: 'stdio', command: 'c' }),
      )
      .build();
    const sessionId = runtime.defaultSessionId()!;
    expect((await runtime.loadContext(sessionId)).tools.map((tool) => tool.name)).toEqual([
      'math__add',
      'math__mul',
      'calc__add',
      'calc__mul',
      'calc__div',
    ]);
    await runtime.close();

    const harness = new HarnessBuilder('h', '').build();
    const agent = new AgentBuilder('a', '')
      .mcpServer('math', { transport: 'stdio', command: 'm' })
      .tool('math__mul')
      .build();
    const session = new SessionBuilder(harness.id).agent(agent.id).build();
    const restricted = await new InProcessRuntimeBuilder()
      .mcpToolSource(new FakeMcpSource(() => ['add', 'mul']))
      .llmSim(LlmSimConfig.fixed('x'))
      .harness(harness)
      .agent(agent)
      .session(session)
      .build();
    expect((await restricted.loadContext(session.id)).tools.map((tool) => tool.name)).toEqual([
      'math__mul',
    ]);
    await restricted.close();
  });

  it('builders validate server names and configurations with INVALID_INPUT', async () => {
    expect(() =>
      new HarnessBuilder('h', '').mcpServer('bad name', { transport: 'stdio', command: 'x' }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() =>
      new SessionBuilder('harness_1').mcpServer('ok', {
        transport: 'http',
        url: 'ftp://127.0.0.1/x',
      } as unknown as McpServerConfig),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() =>
      new SessionBuilder('harness_1').mcpServer('ok', {
        transport: 'stdio',
        command: '',
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    const harness = new HarnessBuilder('h', '')
      .mcpServer('math', { transport: 'stdio', command: 'a' })
      .mcpServer('math', { transport: 'stdio', command: 'b', timeoutMs: 5_000 })
      .build();
    expect(harness.mcpServers).toEqual({
      math: { transport: 'stdio', command: 'b', timeoutMs: 5_000 },
    });
    const runtime = await new InProcessRuntimeBuilder().llmSim(LlmSimConfig.fixed('x')).build();
    await expectCode(
      runtime.createSession({
        harnessId: 'harness_x',
        mcpServers: { ok: { transport: 'stdio' } },
      } as never),
      'INVALID_INPUT',
    );
    await runtime.close();
  });

  it('a call claimed before a crash re-runs only an idempotent MCP tool; others get the interrupted result', async () => {
    const ran: string[] = [];
    const source: McpToolSource = {
      async listTools({ servers }) {
        return {
          tools: Object.keys(servers).flatMap((server) =>
            (['lookup', 'send'] as const).map((serverToolName) => ({
              server,
              serverToolName,
              tool: {
                name: `${server}__${serverToolName}`,
                description: serverToolName,
                inputSchema: z.looseObject({}),
                // As @everruns-ts/mcp maps the server's `idempotentHint`.
                idempotent: serverToolName === 'lookup',
                execute: () => {
                  ran.push(serverToolName);
                  return `${serverToolName} ran`;
                },
              },
            })),
          ),
          errors: [],
        };
      },
      async close() {},
    };
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('x'))
      .singleSession((s) => s.sessionMcpServer('svc', { transport: 'stdio', command: 's' }))
      .build();
    const sessionId = runtime.defaultSessionId()!;
    const turnId = 'turn_replayed';
    // The step replayed after a crash: the journal says both calls had started.
    const outcome = await executeActActivity(
      runtime.hostAdapter,
      {
        sessionId,
        turnId,
        iteration: 1,
        toolCalls: [
          { id: 'c_lookup', name: 'svc__lookup', arguments: {} },
          { id: 'c_send', name: 'svc__send', arguments: {} },
        ],
      },
      { wasStarted: async () => true },
    );
    expect(outcome.results.map((result) => [result.toolName, result.isError])).toEqual([
      ['svc__lookup', false],
      ['svc__send', true],
    ]);
    expect(ran).toEqual(['lookup']);
    expect(toolResults(await runtime.messages(sessionId))).toEqual([
      'lookup ran',
      INTERRUPTED_TOOL_RESULT_TEXT,
    ]);
    await runtime.close();
  });

  it('runtime.close() closes the source once, after running turns end', async () => {
    const source = new FakeMcpSource();
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('x'))
      .build();
    await Promise.all([runtime.close(), runtime.close()]);
    expect(source.closed).toBe(1);
  });
});

/** The context as JSON holds none of the env or header values of the tests' servers. */
function assertNoSecrets(context: AssembledTurnContext | undefined): void {
  expect(context).toBeDefined();
  const text = JSON.stringify(context);
  for (const secret of [HARNESS_TOKEN, AGENT_TOKEN, DOCS_HEADER, 'docs-secret']) {
    expect(text).not.toContain(secret);
  }
}
