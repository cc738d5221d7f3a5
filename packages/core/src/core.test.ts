import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  agentSchema,
  CapabilityRegistry,
  compileGrepPattern,
  DriverRegistry,
  defineCapability,
  defineTool,
  detectDependencyBlocker,
  EverrunsError,
  foldOverlay,
  globToRegExp,
  harnessSchema,
  InputMessage,
  type Message,
  MISSING_TOOL_RESULT_TEXT,
  normalizeWorkspacePath,
  pageTextLines,
  repairHistory,
  replaceExactText,
  sessionSchema,
  splitLines,
  toolSpec,
} from './index.js';

const capability = (id: string, dependencies: string[] = []) =>
  defineCapability({ id, name: id, description: id, dependencies, tools: [] });

describe('EverrunsError', () => {
  it('is recognised by marker and code, not by instanceof', () => {
    const error = new EverrunsError({
      code: 'SESSION_NOT_FOUND',
      message: 'gone',
      details: { sessionId: 's' },
    });
    const foreign = Object.assign(new Error('copy'), {
      [Symbol.for('@everruns-ts/error')]: true,
      code: 'X',
    });
    expect(EverrunsError.isInstance(error)).toBe(true);
    expect(EverrunsError.isInstance(foreign)).toBe(true);
    expect(EverrunsError.isInstance(new Error('plain'))).toBe(false);
    expect(EverrunsError.hasCode(error, 'SESSION_NOT_FOUND')).toBe(true);
    expect(error.toJSON()).toEqual({
      code: 'SESSION_NOT_FOUND',
      message: 'gone',
      details: { sessionId: 's' },
    });
  });
});

describe('normalizeWorkspacePath', () => {
  it.each([
    ['a/b', '/a/b'],
    ['/workspace/x', '/x'],
    ['/workspace', '/'],
    ['//a///b/./c/', '/a/b/c'],
    ['/', '/'],
    ['%2e%2e/x', '/%2e%2e/x'],
  ])('normalises %j to %j', (input, expected) => {
    expect(normalizeWorkspacePath(input)).toBe(expected);
  });

  it.each([
    '',
    '   ',
    '../x',
    '/a/../b',
    'a/..',
    'a\u0000b',
    'C:/x',
    'c:',
    '\\\\server\\share',
    'a\\b',
  ])('refuses %j with INVALID_PATH', (input) => {
    expect(() => normalizeWorkspacePath(input)).toThrow(
      expect.objectContaining({ code: 'INVALID_PATH' }),
    );
  });
});

describe('globToRegExp', () => {
  it('matches *, ** and ? on workspace paths', () => {
    expect(globToRegExp('*.ts').test('/src/a.ts')).toBe(true);
    expect(globToRegExp('/*.ts').test('/src/a.ts')).toBe(false);
    expect(globToRegExp('/src/**/*.ts').test('/src/a/b/c.ts')).toBe(true);
    expect(globToRegExp('/src/**/*.ts').test('/src/c.ts')).toBe(true);
    expect(globToRegExp('/a?.md').test('/ab.md')).toBe(true);
    expect(globToRegExp('/a?.md').test('/a/b.md')).toBe(false);
    expect(globToRegExp('/a.(x)').test('/a.(x)')).toBe(true);
  });
});

describe('CapabilityRegistry', () => {
  it('resolves dependencies first, each once, last config winning', () => {
    const registry = new CapabilityRegistry()
      .register(capability('base'))
      .register(capability('mid', ['base']))
      .register(capability('top', ['mid', 'base']));
    const resolved = registry.resolve([
      { id: 'top' },
      { id: 'base', config: 1 },
      { id: 'base', config: 2 },
    ]);
    expect(resolved.map((entry) => entry.capability.id)).toEqual(['base', 'mid', 'top']);
  });

  it('refuses a duplicate id, a cycle, a missing dependency and an unknown capability with typed errors', () => {
    const registry = new CapabilityRegistry().register(capability('a', ['b']));
    expect(() => registry.register(capability('a'))).toThrow(
      expect.objectContaining({ code: 'DUPLICATE_ID' }),
    );
    expect(() => registry.validate()).toThrow(
      expect.objectContaining({ code: 'CAPABILITY_NOT_FOUND' }),
    );
    expect(() => registry.register(capability('b', ['a']))).toThrow(
      expect.objectContaining({ code: 'CAPABILITY_CYCLE' }),
    );
    expect(registry.has('b')).toBe(false);
    expect(() => registry.resolve([{ id: 'nope' }])).toThrow(
      expect.objectContaining({ code: 'CAPABILITY_NOT_FOUND' }),
    );
  });

  it('validates a capability config with its schema', () => {
    const configured = defineCapability({
      id: 'configured',
      name: 'Configured',
      description: '',
      configSchema: z.object({ level: z.number().default(1) }),
      tools: [],
    });
    const registry = new CapabilityRegistry().register(configured);
    expect(registry.resolve([{ id: 'configured' }])[0]?.config).toEqual({ level: 1 });
    expect(() => registry.resolve([{ id: 'configured', config: { level: 'x' } }])).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining('level') }),
    );
  });

  it('refuses malformed capabilities at definition', () => {
    expect(() =>
      defineCapability({ id: 'bad id!', name: 'x', description: '', tools: [] }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    const tool = defineTool({
      name: 't',
      description: '',
      inputSchema: z.object({}),
      execute: () => 1,
    });
    expect(() =>
      defineCapability({ id: 'dup', name: 'x', description: '', tools: [tool, tool] }),
    ).toThrow(expect.objectContaining({ code: 'DUPLICATE_ID' }));
  });

  it('gives tools a cached JSON Schema spec', () => {
    const tool = defineTool({
      name: 'greet',
      description: 'Greets',
      inputSchema: z.object({ name: z.string(), times: z.number().int().optional() }),
      execute: ({ name }) => `hi ${name}`,
    });
    const spec = toolSpec(tool);
    expect(spec.inputSchema).toMatchObject({
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string' } },
    });
    expect(toolSpec(tool)).toBe(spec);
  });
});

describe('DriverRegistry', () => {
  it('throws DRIVER_NOT_FOUND for an unregistered provider', () => {
    expect(() => new DriverRegistry().get('openai')).toThrow(
      expect.objectContaining({ code: 'DRIVER_NOT_FOUND' }),
    );
  });
});

describe('foldOverlay and detectDependencyBlocker', () => {
  const root = harnessSchema.parse({
    id: 'h_root',
    name: 'root',
    systemPrompt: 'root',
    capabilities: [{ id: 'a', config: 'root' }, { id: 'b' }],
    maxIterations: 10,
    defaultModelId: 'root-model',
    initialFiles: [{ path: '/x', content: 'root' }],
  });
  const child = harnessSchema.parse({
    id: 'h_child',
    name: 'child',
    parentHarnessId: 'h_root',
    systemPrompt: '  ',
  });
  const agent = agentSchema.parse({
    id: 'a1',
    name: 'agent',
    systemPrompt: 'agent',
    capabilities: [{ id: 'a', config: 'agent' }],
    initialFiles: [{ path: '/x', content: 'agent' }],
  });
  const session = sessionSchema.parse({
    id: 's1',
    harnessId: 'h_child',
    agentId: 'a1',
    maxIterations: 3,
  });

  it('folds root first, then agent, then session', () => {
    const overlay = foldOverlay([root, child], agent, session);
    expect(overlay.systemPrompts).toEqual(['root', 'agent']);
    expect(overlay.capabilities).toEqual([{ id: 'b' }, { id: 'a', config: 'agent' }]);
    expect(overlay.maxIterations).toBe(3);
    expect(overlay.modelId).toBe('root-model');
    expect(overlay.initialFiles.map((file) => file.content)).toEqual(['agent']);
  });

  it('reports missing or disabled harnesses and agents', () => {
    expect(detectDependencyBlocker(session, [root, child], agent)).toBeNull();
    expect(detectDependencyBlocker(session, null, agent)?.code).toBe('harness_missing');
    expect(
      detectDependencyBlocker(session, [{ ...root, status: 'disabled' }, child], agent)?.code,
    ).toBe('harness_disabled');
    expect(detectDependencyBlocker(session, [root, child], null)?.code).toBe('agent_missing');
    expect(
      detectDependencyBlocker(session, [root, child], { ...agent, status: 'archived' }),
    ).toMatchObject({
      code: 'agent_disabled',
      dependencyId: 'a1',
    });
  });
});

describe('repairHistory', () => {
  let seq = 0;
  const message = (role: Message['role'], content: Message['content']): Message => ({
    id: `m${++seq}`,
    sessionId: 's',
    seq,
    role,
    content,
    createdAt: '2026-01-01T00:00:00.000Z',
  });

  it('returns the same history when every call has its result', () => {
    const history = [
      message('user', [{ type: 'text', text: 'hi' }]),
      message('agent', [{ type: 'tool_call', id: 'c1', name: 'add', arguments: {} }]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
      ]),
      message('agent', [{ type: 'text', text: 'done' }]),
    ];
    expect(repairHistory(history)).toBe(history);
  });

  it('adds a synthetic result to a call without one and drops an orphan result', () => {
    const history = [
      message('user', [{ type: 'text', text: 'hi' }]),
      message('agent', [
        { type: 'tool_call', id: 'c1', name: 'add', arguments: {} },
        { type: 'tool_call', id: 'c2', name: 'add', arguments: {} },
      ]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
      ]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'ghost', content: '?', isError: false },
      ]),
    ];
    const repaired = repairHistory(history);
    const results = repaired.flatMap((entry) =>
      entry.content.filter((part) => part.type === 'tool_result'),
    );
    expect(results).toEqual([
      { type: 'tool_result', toolCallId: 'c2', content: MISSING_TOOL_RESULT_TEXT, isError: true },
      { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
    ]);
    expect(history).toHaveLength(4);
  });
});

describe('InputMessage', () => {
  it('builds and validates user input', () => {
    expect(InputMessage.schema.parse(InputMessage.user('hi'))).toEqual({
      role: 'user',
      content: [{ type: 'text', text: 'hi' }],
    });
    expect(InputMessage.schema.safeParse({ content: [] }).success).toBe(false);
    expect(
      InputMessage.schema.safeParse({
        content: [{ type: 'tool_result', toolCallId: 'x', content: '' }],
      }).success,
    ).toBe(false);
  });
});

describe('file text helpers', () => {
  it('splits lines keeping their ends and pages them', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a\nb\n')).toEqual(['a\n', 'b\n']);
    expect(splitLines('a\nb')).toEqual(['a\n', 'b']);
    expect(pageTextLines('a\nb\nc\n', { offset: 1, limit: 1 })).toEqual({
      content: 'b\n',
      totalLines: 3,
      truncated: true,
    });
  });

  it('replaces exactly one occurrence unless told to replace all', () => {
    expect(replaceExactText('/f', 'x y x', 'y', 'z')).toBe('x z x');
    expect(replaceExactText('/f', 'x y x', 'x', 'w', true)).toBe('w y w');
    expect(() => replaceExactText('/f', 'x y x', 'x', 'w')).toThrow(
      expect.objectContaining({
        code: 'CONTENT_MISMATCH',
        details: { path: '/f', occurrences: 2 },
      }),
    );
    expect(() => compileGrepPattern('(')).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});
