import { inspect } from 'node:util';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { harnessSchema, mcpServersSchema, runtimeEventSchema } from './index.js';
import {
  lazyField,
  lazySchema,
  materializeLazySchema,
  safeParseDeferringJit,
} from './lazy-schema.js';

const pointShape = () => z.object({ x: z.number(), y: z.number().int() });

function counted<T>(build: () => T): { build: () => T; calls: () => number } {
  let calls = 0;
  return {
    build: () => {
      calls++;
      return build();
    },
    calls: () => calls,
  };
}

describe('lazySchema', () => {
  it('builds on first use, once', () => {
    const builder = counted(pointShape);
    const point = lazySchema(builder.build);
    expect(builder.calls()).toBe(0);
    expect(point.parse({ x: 1, y: 2 })).toEqual({ x: 1, y: 2 });
    expect(point.safeParse({ x: 1, y: 2.5 }).success).toBe(false);
    expect(point.shape.x).toBeInstanceOf(z.ZodNumber);
    expect(builder.calls()).toBe(1);
  });

  it('parses and reports issues as the schema it stands for, detached methods included', () => {
    const lazy = lazySchema(pointShape);
    const real = pointShape();
    for (const input of [{ x: 1, y: 2 }, { x: '1', y: 2 }, { y: 1.5 }, null, []]) {
      const left = lazy.safeParse(input);
      const right = real.safeParse(input);
      expect(left.success).toBe(right.success);
      expect(left.error?.issues).toEqual(right.error?.issues);
    }
    const { parse } = lazy;
    expect(parse({ x: 3, y: 4 })).toEqual({ x: 3, y: 4 });
    expect(() => parse({ x: 3 })).toThrow(z.ZodError);
  });

  it('is an instance of its zod classes and composes with other schemas', () => {
    const point = lazySchema(pointShape);
    expect(point instanceof z.ZodType).toBe(true);
    expect(point instanceof z.ZodObject).toBe(true);
    expect(point instanceof z.ZodString).toBe(false);

    const path = z.object({ from: point, to: z.optional(point), via: z.array(point) });
    expect(path.parse({ from: { x: 0, y: 0 }, via: [{ x: 1, y: 1 }] })).toEqual({
      from: { x: 0, y: 0 },
      via: [{ x: 1, y: 1 }],
    });
    const failed = path.safeParse({ from: { x: 0, y: 0 }, via: [{ x: 1, y: 0.5 }] });
    expect(failed.error?.issues[0]?.path).toEqual(['via', 0, 'y']);

    const extended = point.extend({ z: z.number() });
    expect(extended.parse({ x: 1, y: 2, z: 3 })).toEqual({ x: 1, y: 2, z: 3 });
    expect(point.optional().parse(undefined)).toBeUndefined();

    const shapes = z.discriminatedUnion('kind', [
      lazySchema(() => z.object({ kind: z.literal('circle'), r: z.number() })),
      lazySchema(() => z.object({ kind: z.literal('square'), side: z.number() })),
    ]);
    expect(shapes.parse({ kind: 'square', side: 2 })).toEqual({ kind: 'square', side: 2 });
    expect(shapes.safeParse({ kind: 'triangle' }).success).toBe(false);
  });

  it('converts to the same JSON Schema and shows as the schema when inspected', () => {
    const lazy = lazySchema(pointShape);
    expect(z.toJSONSchema(lazy)).toEqual(z.toJSONSchema(pointShape()));
    expect(inspect(lazy)).toBe(inspect(materializeLazySchema(lazy)));
    expect(inspect(lazy)).not.toBe('{}');
  });

  it('answers reflection as the built schema does', () => {
    const lazy = lazySchema(pointShape);
    const built = materializeLazySchema(lazy);
    expect(Object.keys(lazy)).toEqual(Object.keys(built));
    expect('parse' in lazy).toBe(true);
    expect(Object.getPrototypeOf(lazy)).toBe(Object.getPrototypeOf(built));
    expect(Object.getOwnPropertyDescriptor(lazy, '_zod')?.value).toBe(built._zod);
    expect({ ...lazy.shape }).toEqual({ ...built.shape });
  });

  it('gives the built value once built, and any other value as it is', () => {
    const builder = counted(pointShape);
    const lazy = lazySchema(builder.build);
    const built = materializeLazySchema(lazy);
    expect(built).not.toBe(lazy);
    expect(built instanceof z.ZodObject).toBe(true);
    expect(materializeLazySchema(lazy)).toBe(built);
    expect(builder.calls()).toBe(1);
    const plain = z.string();
    expect(materializeLazySchema(plain)).toBe(plain);
  });

  it('keeps the type of the schema it stands for', () => {
    const lazy = lazySchema(pointShape);
    expectTypeOf(lazy).toEqualTypeOf<ReturnType<typeof pointShape>>();
    expectTypeOf<z.infer<typeof lazy>>().toEqualTypeOf<{ x: number; y: number }>();
  });

  it('refuses a build that is not a function, returns no object or refers to itself', () => {
    expect(() => lazySchema(undefined as unknown as () => object)).toThrow(TypeError);
    const empty = lazySchema(() => undefined as unknown as z.ZodString);
    expect(() => empty.parse('a')).toThrow(/build must return an object/);

    const selfish: z.ZodObject = lazySchema(() => z.object({ inner: selfish.shape.inner }));
    expect(() => selfish.parse({})).toThrow(/refers to itself/);
  });

  it('builds again after a build that threw', () => {
    let attempts = 0;
    const flaky = lazySchema(() => {
      attempts++;
      if (attempts === 1) throw new Error('not yet');
      return z.string();
    });
    expect(() => flaky.parse('a')).toThrow('not yet');
    expect(flaky.parse('a')).toBe('a');
    expect(attempts).toBe(2);
  });
});

describe('lazyField', () => {
  const retryShape = () =>
    z
      .object({
        attempts: z.number().int().min(1),
        mode: z.enum(['fixed', 'backoff']).default('fixed'),
      })
      .strict();
  const inputs = [
    { name: 'a' },
    { name: 'a', retry: { attempts: 2 } },
    { name: 'a', retry: { attempts: 0, extra: true } },
    { name: 'a', retry: 'often' },
    { name: 'a', retry: null },
    { retry: { attempts: 1, mode: 'random' } },
    [],
  ];

  it('leaves the lazy schema unbuilt until a value for its field is parsed', () => {
    const builder = counted(retryShape);
    const retry = lazySchema(builder.build);
    const job = z.object({ name: z.string(), retry: z.optional(lazyField(retry)) });
    expect(job.parse({ name: 'nightly' })).toEqual({ name: 'nightly' });
    expect(job.safeParse({ name: 3 }).success).toBe(false);
    expect(builder.calls()).toBe(0);
    expect(job.parse({ name: 'hourly', retry: { attempts: 3 } })).toEqual({
      name: 'hourly',
      retry: { attempts: 3, mode: 'fixed' },
    });
    expect(builder.calls()).toBe(1);
  });

  it('parses, reports issues and converts to JSON Schema as the schema placed directly', () => {
    const retry = lazySchema(retryShape);
    const deferred = z.object({ name: z.string(), retry: z.optional(lazyField(retry)) });
    const direct = z.object({ name: z.string(), retry: z.optional(retryShape()) });
    for (const input of inputs) {
      const left = deferred.safeParse(input);
      const right = direct.safeParse(input);
      expect(left.success).toBe(right.success);
      expect(left.data).toEqual(right.data);
      expect(left.error?.issues).toEqual(right.error?.issues);
    }
    expect(z.toJSONSchema(deferred)).toEqual(z.toJSONSchema(direct));
    expect(z.toJSONSchema(deferred, { io: 'input' })).toEqual(
      z.toJSONSchema(direct, { io: 'input' }),
    );
  });

  it('passes the parse options on, parses asynchronously and encodes', async () => {
    const job = z.object({ retry: lazyField(lazySchema(retryShape)) });
    const issue = job.safeParse({ retry: { attempts: 0 } }, { error: () => 'not allowed' }).error
      ?.issues[0];
    expect(issue).toMatchObject({ message: 'not allowed', path: ['retry', 'attempts'] });
    await expect(job.parseAsync({ retry: { attempts: 4 } })).resolves.toEqual({
      retry: { attempts: 4, mode: 'fixed' },
    });
    expect(z.encode(job, { retry: { attempts: 4, mode: 'backoff' } })).toEqual({
      retry: { attempts: 4, mode: 'backoff' },
    });
  });

  it('defers to a schema that is not lazy too, in arrays and unions', () => {
    const tags = z.array(z.union([z.string(), lazyField(z.object({ tag: z.string() }))]));
    expect(tags.parse(['a', { tag: 'b' }])).toEqual(['a', { tag: 'b' }]);
    expect(tags.safeParse([{ tag: 1 }]).success).toBe(false);
  });

  it('refuses an argument that is not a schema at once, as lazySchema refuses a bad build', () => {
    for (const bad of [undefined, null, 'z.string()', 42]) {
      expect(() => lazyField(bad as unknown as z.ZodString)).toThrow(TypeError);
    }
  });

  it('keeps the type of the schema it defers to', () => {
    const retry = lazySchema(retryShape);
    expectTypeOf(lazyField(retry)).toEqualTypeOf<typeof retry>();
  });
});

describe('schemas core builds on first use', () => {
  it('validates a harness with and without MCP servers through the lazy MCP schema', () => {
    const base = { id: 'harness_one', name: 'one' };
    expect(harnessSchema.parse(base).mcpServers).toBeUndefined();
    const withServer = harnessSchema.parse({
      ...base,
      mcpServers: { docs: { transport: 'http', url: 'https://mcp.example.com/' } },
    });
    expect(withServer.mcpServers?.docs).toMatchObject({ transport: 'http' });
    const bad = harnessSchema.safeParse({ ...base, mcpServers: { docs: { transport: 'smoke' } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path.slice(0, 2)).toEqual(['mcpServers', 'docs']);
    expect(mcpServersSchema instanceof z.ZodRecord).toBe(true);
  });

  it('validates a runtime event through the lazy event schema', () => {
    const event = {
      id: 'event_1',
      sessionId: 'session_1',
      type: 'turn.started',
      data: { turnId: 'turn_1' },
      ts: new Date().toISOString(),
      seq: 1,
    };
    expect(runtimeEventSchema.parse(event)).toEqual(event);
    const wrongType = runtimeEventSchema.safeParse({ ...event, type: 'no.such.event' });
    expect(wrongType.error?.issues[0]?.path).toEqual(['type']);
    expect(runtimeEventSchema.safeParse({ ...event, seq: -1 }).success).toBe(false);
  });
});

describe('safeParseDeferringJit', () => {
  const order = () =>
    z.object({
      id: z.string().min(1),
      lines: z.array(z.object({ sku: z.string(), quantity: z.number().int().positive() })),
      note: z.optional(z.string()),
      priority: z.number().default(1),
      total: z.string().transform((text) => Number(text)),
    });
  const inputs: unknown[] = [
    { id: 'o1', lines: [{ sku: 'a', quantity: 2 }], total: '12.5' },
    { id: 'o2', lines: [], note: 'gift', priority: 3, total: '0', extra: true },
    { id: '', lines: [{ sku: 'a', quantity: 0 }], total: 5 },
    { lines: 'none' },
    null,
    [],
  ];

  // zod generates an object schema's fast path with the Function constructor; counting
  // constructions shows whether a parse took it.
  function countingFunctionConstructions<T>(run: () => T): { result: T; constructions: number } {
    const original = globalThis.Function;
    let constructions = 0;
    globalThis.Function = new Proxy(original, {
      construct(target, args, newTarget) {
        constructions++;
        return Reflect.construct(target, args, newTarget);
      },
    });
    try {
      return { result: run(), constructions };
    } finally {
      globalThis.Function = original;
    }
  }

  it('gives what safeParse gives, data and issues, on every call', () => {
    const deferred = order();
    const plain = order();
    for (let round = 0; round < 3; round++) {
      for (const input of inputs) {
        const left = safeParseDeferringJit(deferred, input);
        const right = plain.safeParse(input);
        expect(left.success).toBe(right.success);
        expect(left.data).toEqual(right.data);
        expect(left.error?.issues).toEqual(right.error?.issues);
      }
    }
  });

  it('generates no parser code on the first two parses of a schema, and does from the third', () => {
    z.object({ warm: z.string() }).parse({ warm: 'up' }); // zod's one-time eval support check
    const schema = order();
    const valid = inputs[0];
    const first = countingFunctionConstructions(() => safeParseDeferringJit(schema, valid));
    const second = countingFunctionConstructions(() => safeParseDeferringJit(schema, valid));
    const third = countingFunctionConstructions(() => safeParseDeferringJit(schema, valid));
    expect(first.result.success && second.result.success && third.result.success).toBe(true);
    expect(first.constructions).toBe(0);
    expect(second.constructions).toBe(0);
    expect(third.constructions).toBeGreaterThan(0);
  });

  it('counts per schema, lazy schemas included', () => {
    const lazy = lazySchema(order);
    const other = order();
    safeParseDeferringJit(other, inputs[0]);
    safeParseDeferringJit(other, inputs[0]);
    const first = countingFunctionConstructions(() => safeParseDeferringJit(lazy, inputs[1]));
    expect(first.result.success).toBe(true);
    expect(first.constructions).toBe(0);
  });

  it('throws as safeParse does for a schema that needs an async parse', () => {
    const slow = z.object({ id: z.string().refine(async (id) => id.length > 0) });
    expect(() => safeParseDeferringJit(slow, { id: 'x' })).toThrow(z.core.$ZodAsyncError);
  });
});
