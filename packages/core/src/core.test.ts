import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CapabilityRegistry,
  compileGrepPattern,
  DriverRegistry,
  defineCapability,
  defineTool,
  EverrunsError,
  globToRegExp,
  InputMessage,
  normalizeWorkspacePath,
  pageTextLines,
  replaceExactText,
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

describe('normalizeWorkspacePath limits', () => {
  it('refuses a 10,000-character path and a 5,000-deep path with INVALID_PATH naming the limit', () => {
    expect(() => normalizeWorkspacePath(`/${'a'.repeat(10_000)}`)).toThrowError(
      expect.objectContaining({
        code: 'INVALID_PATH',
        details: expect.objectContaining({ limit: 'maxPathLength' }),
      }),
    );
    expect(() => normalizeWorkspacePath(`/${'a/'.repeat(5_000)}`)).toThrowError(
      expect.objectContaining({ code: 'INVALID_PATH' }),
    );
    expect(() => normalizeWorkspacePath(`/${'a/'.repeat(257)}`)).toThrowError(
      expect.objectContaining({
        code: 'INVALID_PATH',
        details: expect.objectContaining({ limit: 'maxPathDepth', depth: 257 }),
      }),
    );
    expect(normalizeWorkspacePath(`/workspace/${'a/'.repeat(256)}`)).toBe(`/${'a/'.repeat(255)}a`);
    expect(() => normalizeWorkspacePath('/a/b/c', { maxDepth: 2 })).toThrow();
    expect(() => normalizeWorkspacePath('/abcdef', { maxLength: 4 })).toThrow();
  });
});
