import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EverrunsError,
  isToolError,
  type McpServerConfig,
  type McpTool,
  type ToolContext,
  toolSpec,
} from '@everruns-ts/core';
import { DEFAULT_INHERITED_ENV_VARS } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { McpClientPool, type McpClientPoolOptions, TOOL_NAME_PATTERN } from './index.js';

const DEMO_SERVER = fileURLToPath(new URL('../test-servers/demo-server.mjs', import.meta.url));
const PAGED_SERVER = fileURLToPath(new URL('../test-servers/paged-server.mjs', import.meta.url));

/** The demo server as a stdio child process (connect timeout generous: the machine is shared). */
function demo(extra: Partial<Extract<McpServerConfig, { transport: 'stdio' }>> = {}) {
  return {
    transport: 'stdio',
    command: process.execPath,
    args: [DEMO_SERVER],
    connectTimeoutMs: 60_000,
    ...extra,
  } satisfies McpServerConfig;
}

const pools: McpClientPool[] = [];
function pool(options: McpClientPoolOptions = {}): McpClientPool {
  const created = new McpClientPool({ stderr: 'ignore', ...options });
  pools.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((created) => created.close()));
});

/** What the runtime's act step hands a tool, as far as MCP tools read it. */
function context(signal: AbortSignal = new AbortController().signal): ToolContext {
  return {
    sessionId: 'session-1',
    turnId: 'turn-1',
    toolCallId: 'call-1',
    idempotencyKey: 'session-1/turn-1/call-1',
    iteration: 1,
    config: undefined,
    signal,
  } as ToolContext;
}

function byName(tools: McpTool[], name: string): McpTool {
  const found = tools.find((tool) => tool.tool.name === name);
  if (!found) throw new Error(`no tool ${name} in ${tools.map((tool) => tool.tool.name)}`);
  return found;
}

async function call(tools: McpTool[], name: string, input: Record<string, unknown> = {}) {
  return byName(tools, name).tool.execute(input, context());
}

async function whoami(tools: McpTool[], name: string): Promise<{ pid: number }> {
  return JSON.parse((await call(tools, name)) as string);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

describe('McpClientPool over stdio', () => {
  it('lists the tools of every server, namespaced, with the server schema and the allow-list', async () => {
    const source = pool();
    const { tools, errors } = await source.listTools({
      sessionId: 's1',
      servers: {
        math: demo(),
        picked: demo({ tools: ['add', 'dotted.name'] }),
        off: demo({ disabled: true }),
      },
    });
    expect(errors).toEqual([]);
    const names = tools.map((tool) => tool.tool.name);
    expect(names).toEqual([
      'math__add',
      'math__divide',
      'math__describe',
      'math__hang',
      'math__crash',
      'math__env',
      'math__whoami',
      'math__grow',
      'math__dotted_name',
      'picked__add',
      'picked__dotted_name',
    ]);
    for (const name of names) expect(name).toMatch(TOOL_NAME_PATTERN);
    const add = byName(tools, 'math__add');
    expect(add).toMatchObject({ server: 'math', serverToolName: 'add' });
    expect(add.tool.description).toBe('Adds two numbers.');
    expect(add.tool.idempotent).toBe(true);
    expect(byName(tools, 'math__divide').tool.idempotent).toBe(false);
    expect(byName(tools, 'picked__dotted_name').serverToolName).toBe('dotted.name');
    // The model sees the server's JSON schema as the server wrote it.
    expect(toolSpec(add.tool).inputSchema).toEqual({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
      required: ['a', 'b'],
    });
  });

  it('reads every page of tools/list', async () => {
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: { paged: { transport: 'stdio', command: process.execPath, args: [PAGED_SERVER] } },
    });
    expect(errors).toEqual([]);
    expect(tools.map((tool) => tool.tool.name)).toEqual([
      'paged__p1',
      'paged__p2',
      'paged__p3',
      'paged__p4',
      'paged__p5',
      'paged__p6',
    ]);
    expect(await call(tools, 'paged__p5')).toBe('called p5');
  });

  it('never gives a reserved name: a clash gets a deterministic suffix', async () => {
    const { tools } = await pool({ reservedToolNames: ['math__add', 'math__add_2'] }).listTools({
      sessionId: 's1',
      servers: { math: demo({ tools: ['add'] }) },
    });
    expect(tools.map((tool) => tool.tool.name)).toEqual(['math__add_3']);
  });

  it('reports a server that cannot be started in errors and still gives the others', async () => {
    const { tools, errors } = await pool().listTools({
      sessionId: 's1',
      servers: {
        broken: { transport: 'stdio', command: '/nonexistent/mcp-server-that-is-not-here' },
        math: demo({ tools: ['add'] }),
        refused: { transport: 'http', url: 'http://127.0.0.1:1/mcp', connectTimeoutMs: 5_000 },
        wrong: { transport: 'stdio', command: '' } as McpServerConfig,
      },
    });
    expect(tools.map((tool) => tool.tool.name)).toEqual(['math__add']);
    expect(errors.map((error) => error.server)).toEqual(['broken', 'refused', 'wrong']);
    expect(errors[0]?.message).toMatch(/ENOENT/);
    expect(errors[2]?.message).toMatch(/invalid MCP server config/);
  });

  it('reports a server that never finishes the handshake as timed out, and ends its process', async () => {
    const pidFile = join(await mkdtemp(join(tmpdir(), 'mcp-silent-')), 'pid');
    const { errors } = await pool().listTools({
      sessionId: 's1',
      servers: {
        silent: {
          transport: 'stdio',
          command: process.execPath,
          args: [
            '-e',
            'require("node:fs").writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000);',
            pidFile,
          ],
          connectTimeoutMs: 1_000,
        },
      },
    });
    expect(errors).toEqual([{ server: 'silent', message: expect.stringMatching(/timed out/) }]);
    const pid = Number(await readFile(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });

  it('hands a child stderr to the stderr function, with the server name', async () => {
    const seen: string[] = [];
    const { errors } = await pool({
      stderr: (server, text) => seen.push(`${server}: ${text}`),
    }).listTools({
      sessionId: 's1',
      servers: {
        noisy: {
          transport: 'stdio',
          command: process.execPath,
          args: ['-e', 'process.stderr.write("no config file"); process.exitCode = 2;'],
        },
      },
    });
    expect(errors.map((error) => error.server)).toEqual(['noisy']);
    await vi.waitFor(() => expect(seen.join('')).toBe('noisy: no config file'));
  });

  it('calls a tool with its arguments and maps text, structured content, errors, images and resources', async () => {
    const { tools } = await pool().listTools({ sessionId: 's1', servers: { math: demo() } });
    // Structured content whose JSON a text block already holds is given once.
    expect(await call(tools, 'math__add', { a: 2, b: 3 })).toBe('{"sum":5}');
    expect(await call(tools, 'math__divide', { a: 1, b: 4 })).toBe('0.25');

    const failed = await call(tools, 'math__divide', { a: 1, b: 0 });
    expect(isToolError(failed)).toBe(true);
    expect((failed as { message: string }).message).toBe('division by zero');

    // Arguments the server's schema refuses come back as the server's tool error.
    const refused = await call(tools, 'math__add', { a: 'two' });
    expect(isToolError(refused)).toBe(true);

    expect(await call(tools, 'math__describe', { subject: 'cats' })).toBe(
      [
        'about cats',
        '[image image/png, 67 bytes, not shown: tool results are text]',
        '[resource link file:///notes/readme.md (readme)]',
        '[resource memo://today]',
        'buy milk',
        '{"subject":"cats","parts":4}',
      ].join('\n'),
    );
  });

  it('bounds the result text', async () => {
    const { tools } = await pool({ maxResultChars: 20 }).listTools({
      sessionId: 's1',
      servers: { math: demo({ tools: ['env'] }) },
    });
    const text = (await call(tools, 'math__env')) as string;
    expect(text.startsWith('{')).toBe(true);
    expect(text).toMatch(/^.{20}\n\[… \d+ more characters cut by the MCP client\]$/s);
  });

  it('turns a call that hangs past timeoutMs into a tool error; the next call works on the same server', async () => {
    const { tools } = await pool().listTools({
      sessionId: 's1',
      servers: { slow: demo({ timeoutMs: 300 }) },
    });
    const before = await whoami(tools, 'slow__whoami');
    const hung = await call(tools, 'slow__hang');
    expect(isToolError(hung)).toBe(true);
    expect((hung as { message: string }).message).toMatch(/slow failed on hang: timed out/);
    expect(await call(tools, 'slow__add', { a: 1, b: 1 })).toBe('{"sum":2}');
    expect((await whoami(tools, 'slow__whoami')).pid).toBe(before.pid);
  });

  it('passes the call signal: an aborted call ends without waiting for the server', async () => {
    const { tools } = await pool().listTools({ sessionId: 's1', servers: { slow: demo() } });
    const controller = new AbortController();
    const pending = byName(tools, 'slow__hang').tool.execute({}, context(controller.signal));
    controller.abort(new Error('turn cancelled'));
    expect(isToolError(await pending)).toBe(true);
    expect(await call(tools, 'slow__add', { a: 2, b: 2 })).toBe('{"sum":4}');
  });

  it('turns a crash mid-call into a tool error and reconnects on the next call', async () => {
    const { tools } = await pool().listTools({ sessionId: 's1', servers: { flaky: demo() } });
    const first = await whoami(tools, 'flaky__whoami');
    const crashed = await call(tools, 'flaky__crash');
    expect(isToolError(crashed)).toBe(true);
    expect((crashed as { message: string }).message).toMatch(/flaky failed on crash/);
    expect(alive(first.pid)).toBe(false);
    const second = await whoami(tools, 'flaky__whoami');
    expect(second.pid).not.toBe(first.pid);
    expect(await call(tools, 'flaky__add', { a: 3, b: 4 })).toBe('{"sum":7}');
  });

  it('lists again after notifications/tools/list_changed', async () => {
    const source = pool();
    const request = { sessionId: 's1', servers: { grow: demo() } };
    const before = await source.listTools(request);
    expect(before.tools.map((tool) => tool.tool.name)).not.toContain('grow__extra_1');
    expect(await call(before.tools, 'grow__grow')).toBe('added extra_1');
    const after = await source.listTools(request);
    expect(after.tools.map((tool) => tool.tool.name)).toContain('grow__extra_1');
    expect(await call(after.tools, 'grow__extra_1')).toBe('extra_1');
  });

  it('shares one connection between sessions with the same config, or not with sharing: session', async () => {
    const shared = pool();
    const a = await shared.listTools({ sessionId: 'a', servers: { math: demo() } });
    const b = await shared.listTools({ sessionId: 'b', servers: { math: demo() } });
    expect(shared.connectionCount).toBe(1);
    expect((await whoami(a.tools, 'math__whoami')).pid).toBe(
      (await whoami(b.tools, 'math__whoami')).pid,
    );
    // A different env is a different server.
    const c = await shared.listTools({
      sessionId: 'c',
      servers: { math: demo({ env: { X: '1' } }) },
    });
    expect(shared.connectionCount).toBe(2);
    expect((await whoami(c.tools, 'math__whoami')).pid).not.toBe(
      (await whoami(a.tools, 'math__whoami')).pid,
    );

    const separate = pool({ sharing: 'session' });
    const d = await separate.listTools({ sessionId: 'd', servers: { math: demo() } });
    const e = await separate.listTools({ sessionId: 'e', servers: { math: demo() } });
    expect(separate.connectionCount).toBe(2);
    expect((await whoami(d.tools, 'math__whoami')).pid).not.toBe(
      (await whoami(e.tools, 'math__whoami')).pid,
    );
  });

  it('gives the same tool definitions while the server tool list is unchanged', async () => {
    const source = pool();
    const request = { sessionId: 's1', servers: { math: demo({ tools: ['add'] }) } };
    const first = await source.listTools(request);
    const second = await source.listTools(request);
    expect(second.tools[0]?.tool).toBe(first.tools[0]?.tool);
  });

  it('closes a connection left idle for idleTimeoutMs; the next use starts the server again', async () => {
    const source = pool({ idleTimeoutMs: 100 });
    const request = { sessionId: 's1', servers: { math: demo({ tools: ['whoami'] }) } };
    const { tools } = await source.listTools(request);
    const first = await whoami(tools, 'math__whoami');
    await vi.waitFor(() => expect(alive(first.pid)).toBe(false), { timeout: 20_000, interval: 50 });
    const second = await whoami(tools, 'math__whoami');
    expect(second.pid).not.toBe(first.pid);
    expect((await source.listTools(request)).errors).toEqual([]);
  });

  it('gives a child only the config env and the SDK safe variables, not the host environment', async () => {
    process.env.EVERRUNS_MCP_HOST_ONLY = 'host secret';
    try {
      const { tools } = await pool().listTools({
        sessionId: 's1',
        servers: { env: demo({ env: { GIVEN: 'to the child' } }) },
      });
      const env = JSON.parse((await call(tools, 'env__env')) as string) as Record<string, string>;
      expect(env.GIVEN).toBe('to the child');
      expect(env.EVERRUNS_MCP_HOST_ONLY).toBeUndefined();
      const allowed = new Set(['GIVEN', ...DEFAULT_INHERITED_ENV_VARS]);
      expect(Object.keys(env).filter((key) => !allowed.has(key))).toEqual([]);
    } finally {
      delete process.env.EVERRUNS_MCP_HOST_ONLY;
    }
  });

  it('closes 50 sessions each with its own stdio server: no child process is left', async () => {
    const source = pool();
    const pids: number[] = [];
    for (let batch = 0; batch < 5; batch++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, index) => {
          const session = batch * 10 + index;
          const { tools, errors } = await source.listTools({
            sessionId: `session-${session}`,
            servers: { own: demo({ env: { SESSION: String(session) }, tools: ['whoami'] }) },
          });
          expect(errors).toEqual([]);
          pids.push((await whoami(tools, 'own__whoami')).pid);
        }),
      );
    }
    expect(new Set(pids).size).toBe(50);
    expect(source.connectionCount).toBe(50);
    expect(pids.every(alive)).toBe(true);
    await source.close();
    expect(pids.filter(alive)).toEqual([]);
    // Fifty Node processes loading the SDK take a while on a small shared machine.
  }, 240_000);

  it('rejects with RUNTIME_CLOSED after close(), also from tools listed before', async () => {
    const source = pool();
    const { tools } = await source.listTools({ sessionId: 's1', servers: { math: demo() } });
    const { pid } = await whoami(tools, 'math__whoami');
    await source.close();
    expect(alive(pid)).toBe(false);
    await expect(
      source.listTools({ sessionId: 's1', servers: { math: demo() } }),
    ).rejects.toSatisfy((error) => EverrunsError.hasCode(error, 'RUNTIME_CLOSED'));
    await expect(call(tools, 'math__add', { a: 1, b: 2 })).rejects.toSatisfy((error) =>
      EverrunsError.hasCode(error, 'RUNTIME_CLOSED'),
    );
    await source.close();
  });

  it('rejects an aborted listing with ABORTED and invalid options with INVALID_INPUT', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      pool().listTools({ sessionId: 's1', servers: { math: demo() }, signal: controller.signal }),
    ).rejects.toSatisfy((error) => EverrunsError.hasCode(error, 'ABORTED'));
    expect(() => new McpClientPool({ sharing: 'sometimes' as 'config' })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});
