import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ToolContext, ToolDefinition } from '../capability.js';
import { defineTool, toolError } from '../capability-kit.js';
import { EverrunsError } from '../errors.js';
import type { SessionFileSystem } from '../file-system.js';
import type { ToolCall } from '../message.js';
import type { MemoryStore, RuntimeSessionStore, SessionStorageStore } from '../stores.js';
import {
  type ExecuteToolCallRequest,
  executeToolCall,
  type ToolExecutionDependencies,
} from './execute-tool-call.js';
import type { TurnTool } from './turn-types.js';

const workspace = { name: 'workspace' } as unknown as SessionFileSystem;

function dependencies(
  overrides: Partial<ToolExecutionDependencies['limits']> = {},
  forToolCall?: ToolExecutionDependencies['fileSystems']['forToolCall'],
): ToolExecutionDependencies {
  return {
    backends: {
      storage: {} as SessionStorageStore,
      sessions: {} as RuntimeSessionStore,
      memory: {} as MemoryStore,
    },
    fileSystems: forToolCall ? { forToolCall } : {},
    limits: { toolTimeoutMs: 1_000, maxToolResultChars: 1_000, ...overrides },
  };
}

function toolsOf(...tools: ToolDefinition<never, unknown>[]): Map<string, TurnTool> {
  return new Map(
    tools.map((tool) => [
      tool.name,
      { tool: tool as ToolDefinition, capabilityId: 'test', config: { unit: 'cm' } },
    ]),
  );
}

function request(
  tools: Map<string, TurnTool>,
  call: Omit<ToolCall, 'id'> & { id?: string },
  extra: Partial<ExecuteToolCallRequest> = {},
): ExecuteToolCallRequest {
  return {
    call: { id: call.id ?? `call_${randomUUID()}`, name: call.name, arguments: call.arguments },
    tools,
    sessionId: `session_${randomUUID()}`,
    turnId: `turn_${randomUUID()}`,
    iteration: 1,
    fileSystem: workspace,
    ...extra,
  };
}

const add = defineTool({
  name: 'add',
  description: 'Adds two numbers',
  inputSchema: z.strictObject({ a: z.number(), b: z.number() }),
  execute: ({ a, b }) => String(a + b),
});

/** A tool that never settles until its context signal fires; records what it saw. */
function hangingTool(options: { timeoutMs?: number } = {}) {
  const seen: { context?: ToolContext; reason?: unknown } = {};
  const tool = defineTool({
    name: 'hang',
    description: 'Waits for its signal',
    inputSchema: z.object({}),
    ...options,
    execute: (_input, context) => {
      seen.context = context;
      return new Promise<never>((_resolve, reject) => {
        context.signal.addEventListener('abort', () => {
          seen.reason = context.signal.reason;
          reject(context.signal.reason);
        });
      });
    },
  });
  return { tool, seen };
}

describe('executeToolCall', () => {
  it('runs a tool with arguments given as an object or a JSON string', async () => {
    const tools = toolsOf(add);
    expect(
      await executeToolCall(
        dependencies(),
        request(tools, { name: 'add', arguments: { a: 2, b: 3 } }),
      ),
    ).toEqual({ content: '5', isError: false });
    expect(
      await executeToolCall(
        dependencies(),
        request(tools, { name: 'add', arguments: '{"a":1,"b":1}' }),
      ),
    ).toEqual({ content: '2', isError: false });
  });

  it('reports an unknown tool with the names of the available ones', async () => {
    const outcome = await executeToolCall(
      dependencies(),
      request(toolsOf(add), { name: 'multiply', arguments: {} }),
    );
    expect(outcome).toEqual({
      content: 'Unknown tool "multiply". Available tools: add.',
      isError: true,
    });
    const none = await executeToolCall(
      dependencies(),
      request(new Map(), { name: 'multiply', arguments: {} }),
    );
    expect(none.content).toBe('Unknown tool "multiply". Available tools: (none).');
  });

  it('reports arguments that are not JSON or not a JSON object as tool errors', async () => {
    const tools = toolsOf(add);
    const malformed = await executeToolCall(
      dependencies(),
      request(tools, { name: 'add', arguments: '{"a": 1,' }),
    );
    expect(malformed.isError).toBe(true);
    expect(malformed.content).toMatch(/^Arguments of add are not valid JSON: /);
    const array = await executeToolCall(
      dependencies(),
      request(tools, { name: 'add', arguments: '[1, 2]' }),
    );
    expect(array).toEqual({
      content: 'Arguments of add must be a JSON object, got an array.',
      isError: true,
    });
    const number = await executeToolCall(
      dependencies(),
      request(tools, { name: 'add', arguments: '42' }),
    );
    expect(number).toEqual({
      content: 'Arguments of add must be a JSON object, got number.',
      isError: true,
    });
  });

  it('treats empty or missing arguments as an empty object', async () => {
    const ping = defineTool({
      name: 'ping',
      description: 'Answers pong',
      inputSchema: z.strictObject({}),
      execute: () => 'pong',
    });
    const tools = toolsOf(ping);
    for (const args of ['', '  ', null, undefined]) {
      expect(
        await executeToolCall(dependencies(), request(tools, { name: 'ping', arguments: args })),
      ).toEqual({ content: 'pong', isError: false });
    }
  });

  it('reports arguments the schema rejects, naming the field, without running the tool', async () => {
    let ran = false;
    const tool = defineTool({
      name: 'add',
      description: 'Adds',
      inputSchema: z.strictObject({ a: z.number(), b: z.number() }),
      execute: () => {
        ran = true;
        return 'ran';
      },
    });
    const outcome = await executeToolCall(
      dependencies(),
      request(toolsOf(tool), { name: 'add', arguments: { a: 'one', b: 2 } }),
    );
    expect(outcome.isError).toBe(true);
    expect(outcome.content).toMatch(/^Invalid arguments for add: a: /);
    expect(ran).toBe(false);
  });

  it('reports a tool that throws as a tool error with its message', async () => {
    const tool = defineTool({
      name: 'explode',
      description: 'Throws',
      inputSchema: z.object({}),
      execute: () => {
        throw new Error('disk on fire');
      },
    });
    expect(
      await executeToolCall(
        dependencies(),
        request(toolsOf(tool), { name: 'explode', arguments: {} }),
      ),
    ).toEqual({ content: 'Tool explode failed: disk on fire', isError: true });
  });

  it('reports a toolError result as a tool error with exactly its message', async () => {
    const tool = defineTool({
      name: 'refuse',
      description: 'Refuses',
      inputSchema: z.object({}),
      execute: async () => toolError('not today'),
    });
    expect(
      await executeToolCall(
        dependencies(),
        request(toolsOf(tool), { name: 'refuse', arguments: {} }),
      ),
    ).toEqual({ content: 'not today', isError: true });
  });

  it('sends a string as is, undefined as empty text and any other value as JSON', async () => {
    const values: unknown[] = ['plain', undefined, { total: 3, items: [1, 2] }, 7, null];
    const tools = toolsOf(
      ...values.map((value, index) =>
        defineTool({
          name: `value_${index}`,
          description: 'Returns a value',
          inputSchema: z.object({}),
          execute: () => value,
        }),
      ),
    );
    const contents = [];
    for (const [index] of values.entries()) {
      const outcome = await executeToolCall(
        dependencies(),
        request(tools, { name: `value_${index}`, arguments: {} }),
      );
      expect(outcome.isError).toBe(false);
      contents.push(outcome.content);
    }
    expect(contents).toEqual(['plain', '', '{"total":3,"items":[1,2]}', '7', 'null']);
  });

  it('returns a result equal to an interruption word as an ordinary result', async () => {
    const tools = toolsOf(
      ...['timeout', 'aborted'].map((word) =>
        defineTool({
          name: word,
          description: 'Returns a word',
          inputSchema: z.object({}),
          execute: () => word,
        }),
      ),
    );
    for (const word of ['timeout', 'aborted']) {
      expect(
        await executeToolCall(dependencies(), request(tools, { name: word, arguments: {} })),
      ).toEqual({ content: word, isError: false });
    }
  });

  it('cancels a tool that passes its own timeout and fires its signal', async () => {
    const { tool, seen } = hangingTool({ timeoutMs: 20 });
    const outcome = await executeToolCall(
      dependencies({ toolTimeoutMs: 60_000 }),
      request(toolsOf(tool), { name: 'hang', arguments: {} }),
    );
    expect(outcome).toEqual({
      content: 'Tool hang did not finish within 20 ms and was cancelled.',
      isError: true,
    });
    expect(seen.context?.signal.aborted).toBe(true);
    expect(EverrunsError.hasCode(seen.reason, 'LIMIT_EXCEEDED')).toBe(true);
  });

  it('uses the default tool timeout of the limits when the tool sets none', async () => {
    const { tool } = hangingTool();
    const outcome = await executeToolCall(
      dependencies({ toolTimeoutMs: 15 }),
      request(toolsOf(tool), { name: 'hang', arguments: {} }),
    );
    expect(outcome).toEqual({
      content: 'Tool hang did not finish within 15 ms and was cancelled.',
      isError: true,
    });
  });

  it('throws ABORTED when the turn is aborted while a tool runs, and fires the tool signal', async () => {
    const { tool, seen } = hangingTool();
    const controller = new AbortController();
    const running = executeToolCall(
      dependencies(),
      request(toolsOf(tool), { name: 'hang', arguments: {} }, { signal: controller.signal }),
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const reason = new Error('user pressed stop');
    controller.abort(reason);
    const error = await running.catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
    expect((error as EverrunsError).cause).toBe(reason);
    expect(seen.context?.signal.aborted).toBe(true);
    expect(seen.reason).toBe(reason);
  });

  it('throws ABORTED for a turn aborted before the call, handing the tool a fired signal', async () => {
    const { tool, seen } = hangingTool();
    const controller = new AbortController();
    controller.abort(new Error('already stopped'));
    const error = await executeToolCall(
      dependencies(),
      request(toolsOf(tool), { name: 'hang', arguments: {} }, { signal: controller.signal }),
    ).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
    if (seen.context) expect(seen.context.signal.aborted).toBe(true);
  });

  /** A tool that, once its signal fires, takes `cleanupMs` to stop (or never stops) and records it. */
  function slowToStop(cleanupMs: number | 'never') {
    const log: string[] = [];
    const tool = defineTool({
      name: 'slow_stop',
      description: 'Cleans up for a while when aborted',
      inputSchema: z.object({}),
      execute: (_input, context) =>
        new Promise<string>((resolve) => {
          const stop = () => {
            log.push('signal');
            if (cleanupMs === 'never') return;
            setTimeout(() => {
              log.push('stopped');
              resolve('late answer');
            }, cleanupMs);
          };
          if (context.signal.aborted) stop();
          else context.signal.addEventListener('abort', stop);
        }),
    });
    return { tool, log };
  }

  it('rejects an aborted call only once its tool has stopped', async () => {
    for (const abortBefore of [false, true]) {
      const { tool, log } = slowToStop(60);
      const controller = new AbortController();
      if (abortBefore) controller.abort();
      const running = executeToolCall(
        dependencies(),
        request(toolsOf(tool), { name: 'slow_stop', arguments: {} }, { signal: controller.signal }),
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
      controller.abort();
      const error = await running.catch((caught: unknown) => {
        log.push('rejected');
        return caught;
      });
      expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
      expect(log).toEqual(['signal', 'stopped', 'rejected']);
    }
  });

  it('rejects an aborted call whose tool ignores its signal once toolAbortGraceMs has passed', async () => {
    for (const [graceMs, least] of [
      [40, 35],
      [0, 0],
    ] as const) {
      const { tool, log } = slowToStop('never');
      const controller = new AbortController();
      const running = executeToolCall(
        dependencies({ toolAbortGraceMs: graceMs }),
        request(toolsOf(tool), { name: 'slow_stop', arguments: {} }, { signal: controller.signal }),
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
      const abortedAt = performance.now();
      controller.abort();
      const error = await running.catch((caught: unknown) => caught);
      expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
      expect(performance.now() - abortedAt).toBeGreaterThanOrEqual(least);
      expect(log).toEqual(['signal']);
    }
  });

  it('reports an ABORTED error a tool throws on its own as a tool error when the turn goes on', async () => {
    const tool = defineTool({
      name: 'self_abort',
      description: 'Throws ABORTED',
      inputSchema: z.object({}),
      execute: () => {
        throw new EverrunsError({ code: 'ABORTED', message: 'inner request aborted' });
      },
    });
    expect(
      await executeToolCall(
        dependencies(),
        request(
          toolsOf(tool),
          { name: 'self_abort', arguments: {} },
          { signal: new AbortController().signal },
        ),
      ),
    ).toEqual({ content: 'Tool self_abort failed: inner request aborted', isError: true });
  });

  it('truncates a result over the limit with a marker giving the original size', async () => {
    const huge = 'x'.repeat(250);
    const tools = toolsOf(
      defineTool({
        name: 'dump',
        description: 'Returns a lot',
        inputSchema: z.object({}),
        execute: () => huge,
      }),
      defineTool({
        name: 'dump_error',
        description: 'Fails with a lot',
        inputSchema: z.object({}),
        execute: () => toolError(huge),
      }),
    );
    const limited = dependencies({ maxToolResultChars: 100 });
    const outcome = await executeToolCall(limited, request(tools, { name: 'dump', arguments: {} }));
    expect(outcome).toEqual({
      content: `${'x'.repeat(100)}\n…[truncated: the result was 250 characters; the limit is 100]`,
      isError: false,
    });
    const failure = await executeToolCall(
      limited,
      request(tools, { name: 'dump_error', arguments: {} }),
    );
    expect(failure.isError).toBe(true);
    expect(failure.content).toBe(outcome.content);
    const exact = await executeToolCall(
      dependencies({ maxToolResultChars: 250 }),
      request(tools, { name: 'dump', arguments: {} }),
    );
    expect(exact.content).toBe(huge);
  });

  it('runs a tool call whose id looks like an internal marker as an ordinary call', async () => {
    const tool = defineTool({
      name: 'echo',
      description: 'Echoes',
      inputSchema: z.object({}),
      execute: () => 'ran',
    });
    for (const id of ['call_1__duplicate_1', 'timeout', 'aborted']) {
      const call = { id, name: 'echo', arguments: {} };
      expect(
        await executeToolCall(dependencies(), { ...request(toolsOf(tool), call), call }),
      ).toEqual({ content: 'ran', isError: false });
    }
  });

  it('hands the tool its call identity, config, stores and the per-call file system', async () => {
    let context: ToolContext | undefined;
    const tool = defineTool({
      name: 'inspect',
      description: 'Records its context',
      inputSchema: z.object({}),
      execute: (_input, toolContext) => {
        context = toolContext;
        return 'ok';
      },
    });
    const decorated = { name: 'decorated' } as unknown as SessionFileSystem;
    const scopes: unknown[] = [];
    const deps = dependencies({}, (fileSystem, scope) => {
      scopes.push({ fileSystem, scope });
      return decorated;
    });
    const call = request(toolsOf(tool), { name: 'inspect', arguments: {} }, { iteration: 3 });
    await executeToolCall(deps, call);
    expect(context).toMatchObject({
      sessionId: call.sessionId,
      turnId: call.turnId,
      toolCallId: call.call.id,
      idempotencyKey: `${call.sessionId}/${call.turnId}/${call.call.id}`,
      iteration: 3,
      config: { unit: 'cm' },
      fileSystem: decorated,
      storage: deps.backends.storage,
      sessions: deps.backends.sessions,
      memory: deps.backends.memory,
    });
    expect(context?.signal.aborted).toBe(false);
    expect(scopes).toEqual([
      {
        fileSystem: workspace,
        scope: {
          sessionId: call.sessionId,
          turnId: call.turnId,
          toolCallId: call.call.id,
          iteration: 3,
        },
      },
    ]);
  });

  it('gives the context an enumerable signal and the scope a hidden one, the same signal', async () => {
    let context: ToolContext | undefined;
    let scope: { signal?: AbortSignal } | undefined;
    const tool = defineTool({
      name: 'inspect',
      description: 'Records its context',
      inputSchema: z.object({}),
      execute: (_input, toolContext) => {
        context = toolContext;
      },
    });
    const deps = dependencies({}, (fileSystem, callScope) => {
      scope = callScope;
      return fileSystem;
    });
    await executeToolCall(deps, request(toolsOf(tool), { name: 'inspect', arguments: {} }));
    expect(Object.keys(context ?? {})).toContain('signal');
    expect(Object.keys(scope ?? {})).not.toContain('signal');
    expect(JSON.parse(JSON.stringify(scope))).toEqual({
      sessionId: context?.sessionId,
      turnId: context?.turnId,
      toolCallId: context?.toolCallId,
      iteration: context?.iteration,
    });
    expect(scope?.signal).toBe(context?.signal);
    expect({ ...context }.signal).toBe(context?.signal);
  });

  it('hands the session workspace itself when the factory does not decorate per call', async () => {
    let seen: SessionFileSystem | undefined;
    const tool = defineTool({
      name: 'inspect',
      description: 'Records its file system',
      inputSchema: z.object({}),
      execute: (_input, context) => {
        seen = context.fileSystem;
      },
    });
    await executeToolCall(
      dependencies(),
      request(toolsOf(tool), { name: 'inspect', arguments: {} }),
    );
    expect(seen).toBe(workspace);
  });
});

describe('executeToolCall: data stays data (issue 13, invariants 6 and 7)', () => {
  it('truncates on code-point boundaries, never splitting a surrogate pair', async () => {
    const emoji = '😀'.repeat(60);
    const tools = toolsOf(
      defineTool({
        name: 'emoji',
        description: 'Returns emoji',
        inputSchema: z.object({}),
        execute: () => emoji,
      }),
    );
    for (const limit of [1, 2, 3, 49, 50, 51, 100]) {
      const { content } = await executeToolCall(
        dependencies({ maxToolResultChars: limit }),
        request(tools, { name: 'emoji', arguments: {} }),
      );
      const kept = content.slice(0, content.indexOf('\n…[truncated'));
      expect(kept.length).toBeLessThanOrEqual(limit);
      expect(kept.length).toBeGreaterThanOrEqual(limit - 1);
      expect(kept).toBe('😀'.repeat(Math.floor(limit / 2)));
      expect(content).toContain(`the result was ${emoji.length} characters; the limit is ${limit}`);
      // Well formed: no lone surrogate anywhere.
      expect(Buffer.from(content, 'utf8').toString('utf8')).toBe(content);
    }
  });

  it("returns a value shaped like the runner's own interruption tag as an ordinary JSON result", async () => {
    const tools = toolsOf(
      defineTool({
        name: 'tagged',
        description: 'Returns objects that look like interruption tags',
        inputSchema: z.object({ which: z.string() }),
        execute: ({ which }) => ({ interruption: which }),
      }),
    );
    for (const which of ['timeout', 'aborted']) {
      expect(
        await executeToolCall(
          dependencies(),
          request(tools, { name: 'tagged', arguments: { which } }),
        ),
      ).toEqual({ content: JSON.stringify({ interruption: which }), isError: false });
    }
  });

  it('hands the tool __proto__, constructor and prototype keys as plain own keys', async () => {
    let received: unknown;
    const tool = defineTool({
      name: 'echo',
      description: 'Echoes its arguments',
      inputSchema: z.custom<Record<string, unknown>>(
        (value) => typeof value === 'object' && value !== null,
      ),
      execute: (input) => {
        received = input;
        return input;
      },
    });
    const text = '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"":"empty"}';
    for (const args of [text, JSON.parse(text)]) {
      const outcome = await executeToolCall(
        dependencies(),
        request(toolsOf(tool), { name: 'echo', arguments: args }),
      );
      expect(outcome).toEqual({ content: text, isError: false });
      expect(Object.getPrototypeOf(received)).toBe(Object.prototype);
      expect(Object.keys(received as object)).toEqual(['__proto__', 'constructor', '']);
      expect((received as { admin?: unknown }).admin).toBeUndefined();
    }
    expect(({} as { admin?: unknown }).admin).toBeUndefined();
  });

  it('redacts every secret a tool read from its error message and result: raw, URL-encoded and Base64', async () => {
    const secret = 'sk-live/abc+def=ghi jkl';
    const storage = {
      getSecret: async (_sessionId: string, key: string) => (key === 'api_key' ? secret : null),
      listKeys: async () => [],
    } as unknown as SessionStorageStore;
    const deps: ToolExecutionDependencies = {
      ...dependencies(),
      backends: { storage, sessions: {} as RuntimeSessionStore, memory: {} as MemoryStore },
    };
    const base64 = Buffer.from(secret).toString('base64');
    const base64Url = Buffer.from(secret).toString('base64url');
    const leaks = [secret, encodeURIComponent(secret), base64, base64Url];
    const tools = toolsOf(
      defineTool({
        name: 'leaky_throw',
        description: 'Throws with the secret in its message',
        inputSchema: z.object({}),
        execute: async (_input, context) => {
          const value = await context.storage.getSecret(context.sessionId, 'api_key');
          throw new Error(`request with ${value} failed: ${leaks.join(' | ')}`);
        },
      }),
      defineTool({
        name: 'leaky_error',
        description: 'Returns a tool error with the secret',
        inputSchema: z.object({}),
        execute: async (_input, context) => {
          await context.storage.getSecret(context.sessionId, 'api_key');
          return toolError(`401 for Authorization: Bearer ${secret} (${base64})`);
        },
      }),
      defineTool({
        name: 'leaky_result',
        description: 'Returns the secret in JSON',
        inputSchema: z.object({}),
        execute: async (_input, context) => ({
          echoed: await context.storage.getSecret(context.sessionId, 'api_key'),
          url: `https://x.test/?key=${encodeURIComponent(secret)}`,
        }),
      }),
      defineTool({
        name: 'lists_keys',
        description: 'Uses the storage without reading a secret',
        inputSchema: z.object({}),
        execute: async (_input, context) => context.storage.listKeys(context.sessionId),
      }),
    );
    for (const name of ['leaky_throw', 'leaky_error', 'leaky_result']) {
      const outcome = await executeToolCall(deps, request(tools, { name, arguments: {} }));
      for (const form of leaks) expect(outcome.content, name).not.toContain(form);
      expect(outcome.content, name).toContain('secret://api_key');
    }
    expect(
      await executeToolCall(deps, request(tools, { name: 'lists_keys', arguments: {} })),
    ).toEqual({ content: '[]', isError: false });
  });

  it('redacts every form the shared redactor knows from any tool: any case, hex, JSON-escaped, Base64 inside a longer text', async () => {
    const secret = `Sk_${randomUUID()}/"é`;
    const storage = {
      getSecret: async (_sessionId: string, key: string) => (key === 'token' ? secret : null),
    } as unknown as SessionStorageStore;
    const deps: ToolExecutionDependencies = {
      ...dependencies({ maxToolResultChars: 100_000 }),
      backends: { storage, sessions: {} as RuntimeSessionStore, memory: {} as MemoryStore },
    };
    const bytes = Buffer.from(secret);
    const leaks = {
      upper: secret.toUpperCase(),
      lower: secret.toLowerCase(),
      hex: bytes.toString('hex'),
      hexUpper: bytes.toString('hex').toUpperCase(),
      json: JSON.stringify({ secret }),
      everyByte: [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join(''),
      basic: `Basic ${Buffer.from(`user:${secret}`).toString('base64')}`,
      offsetTwo: Buffer.from(`ab${secret}`).toString('base64url'),
      html: secret.replaceAll('"', '&quot;'),
    };
    const tools = toolsOf(
      defineTool({
        name: 'echo_forms',
        description: 'Echoes the secret in many encodings',
        inputSchema: z.object({ fail: z.boolean() }),
        execute: async (input: { fail: boolean }, context) => {
          await context.storage.getSecret(context.sessionId, 'token');
          const text = Object.entries(leaks)
            .map(([name, form]) => `${name}=${form}`)
            .join('\n');
          if (input.fail) throw new Error(text);
          return { text };
        },
      }),
    );
    for (const fail of [false, true]) {
      const outcome = await executeToolCall(
        deps,
        request(tools, { name: 'echo_forms', arguments: { fail } }),
      );
      expect(outcome.isError).toBe(fail);
      for (const [name, form] of Object.entries(leaks)) {
        expect(outcome.content, name).toContain(`${name}=`);
        expect(outcome.content.toLowerCase(), name).not.toContain(
          name === 'json' ? JSON.stringify(secret).slice(1, -1).toLowerCase() : form.toLowerCase(),
        );
      }
      expect(outcome.content).not.toContain(secret.slice(3));
      expect(outcome.content).toContain('secret://token');
    }
  });

  it('redacts a huge result in bounded time and drops a secret that straddles the limit', async () => {
    const secret = `tok_${randomUUID()}`;
    const storage = {
      getSecret: async () => secret,
    } as unknown as SessionStorageStore;
    const deps: ToolExecutionDependencies = {
      ...dependencies({ maxToolResultChars: 1_000 }),
      backends: { storage, sessions: {} as RuntimeSessionStore, memory: {} as MemoryStore },
    };
    const huge = `${'x'.repeat(990)}${secret}${'y'.repeat(100 * 1024 * 1024)}`;
    const tools = toolsOf(
      defineTool({
        name: 'huge',
        description: 'Returns 100 MB with a secret across the limit',
        inputSchema: z.object({}),
        execute: async (_input, context) => {
          await context.storage.getSecret(context.sessionId, 'token');
          return huge;
        },
      }),
    );
    const outcome = await executeToolCall(deps, request(tools, { name: 'huge', arguments: {} }));
    expect(outcome.content.startsWith('x'.repeat(990))).toBe(true);
    expect(outcome.content).not.toContain(secret.slice(0, 4));
    expect(outcome.content).toContain(
      `the result was ${huge.length} characters; the limit is 1000`,
    );
  });

  it('answers arguments nested 100,000 levels deep with a tool error, as an object or as JSON text', async () => {
    let ran = false;
    const tools = toolsOf(
      defineTool({
        name: 'takes_anything',
        description: 'Accepts any value',
        inputSchema: z.object({ value: z.unknown() }),
        execute: async () => {
          ran = true;
          return 'ran';
        },
      }),
    );
    let deep: unknown = 1;
    for (let level = 0; level < 100_000; level++) deep = { value: deep };
    const text = `{"value":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    for (const args of [deep, text]) {
      const outcome = await executeToolCall(
        dependencies(),
        request(tools, { name: 'takes_anything', arguments: args }),
      );
      expect(outcome).toEqual({
        content:
          'Arguments of takes_anything are nested more than 100 levels deep; this call was not run.',
        isError: true,
      });
    }
    expect(ran).toBe(false);
  });

  it('answers arguments holding 100,000 values with a tool error before validating them, and spells out at most 20 issues', async () => {
    const tools = toolsOf(
      defineTool({
        name: 'tagged',
        description: 'Takes string tags',
        inputSchema: z.strictObject({ tags: z.array(z.string()) }),
        execute: async () => 'ran',
      }),
    );
    const huge = { tags: Array.from({ length: 100_000 }, (_, index) => index) };
    const outcome = await executeToolCall(
      dependencies(),
      request(tools, { name: 'tagged', arguments: huge }),
    );
    expect(outcome).toEqual({
      content: 'Arguments of tagged hold more than 20000 values; this call was not run.',
      isError: true,
    });
    const invalid = await executeToolCall(
      dependencies({ maxToolResultChars: 100_000 }),
      request(tools, {
        name: 'tagged',
        arguments: { tags: Array.from({ length: 25 }, (_, index) => index) },
      }),
    );
    expect(invalid.isError).toBe(true);
    expect(invalid.content.match(/expected string/g)).toHaveLength(20);
    expect(invalid.content).toMatch(/; and 5 more issues$/);
  });
});
