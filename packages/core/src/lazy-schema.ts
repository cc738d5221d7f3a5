import { z } from 'zod';

const INSPECT = Symbol.for('nodejs.util.inspect.custom');
const BUILDERS = new WeakMap<object, () => object>();

/**
 * A value (in practice a zod schema) built the first time anything touches it, standing in for
 * it meanwhile with the same type.
 *
 * Why: a zod schema costs its construction when the module defining it is imported, whether or
 * not the process ever parses with it. Most of the schemas our packages export (stream parts,
 * host turn plans, schedules, MCP server configs, request options) are for features a given
 * process may never use, and building them all at import was the largest share of what our
 * packages add to a cold start (`bench/RESULTS.md`). A schema wrapped here is built on its first
 * use: a parse, a method call (`.optional()`, `.extend()`), a property read (`.shape`), an
 * `instanceof` check or a place in another schema that parses.
 *
 * What it is: a `Proxy` that forwards every operation to the built value. Methods read through it
 * are the built value's own (zod binds them to the schema), so `const { parse } = schema` works;
 * `instanceof z.ZodType` holds (the prototype is forwarded); `console.log` and `util.inspect`
 * print the built schema. It differs from the value it stands for in identity only
 * (`lazySchema(build) !== build()`), and it cannot be frozen or made non-extensible (a schema is
 * not frozen either). Code that parses a schema many times a second reads it through the proxy
 * once per parse (a few nanoseconds); a hot inner loop can take {@link materializeLazySchema}'s
 * result once and keep it.
 *
 * @example
 * ```ts
 * import { lazySchema } from '@everruns-ts/core';
 * import { z } from 'zod';
 *
 * export const reportSchema = lazySchema(() => z.object({ title: z.string(), pages: z.number() }));
 * reportSchema.parse({ title: 'Q3', pages: 12 }); // built here, on first use
 * ```
 */
export function lazySchema<T extends object>(build: () => T): T {
  if (typeof build !== 'function') {
    throw new TypeError('lazySchema: build must be a function returning the schema');
  }
  let built: T | undefined;
  let building = false;
  const materialize = (): T => {
    if (built !== undefined) return built;
    if (building) {
      throw new TypeError(
        'lazySchema: the schema refers to itself while it is being built (use z.lazy for recursion)',
      );
    }
    building = true;
    try {
      const value = build();
      if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
        throw new TypeError('lazySchema: build must return an object');
      }
      built = value;
      return value;
    } finally {
      building = false;
    }
  };
  // util.inspect looks at a proxy's target, not through its traps: the target answers with the
  // built schema's own inspection.
  const target = {
    [INSPECT](
      depth: number,
      options: object,
      inspect: (value: unknown, options: object) => string,
    ) {
      return inspect(materialize(), { ...options, depth });
    },
  };
  const proxy = new Proxy(target, {
    // The built value is the receiver: zod's members bind to it when first read.
    get: (_target, key) => Reflect.get(materialize(), key),
    set: (_target, key, value) => Reflect.set(materialize(), key, value),
    has: (_target, key) => Reflect.has(materialize(), key),
    deleteProperty: (_target, key) => Reflect.deleteProperty(materialize(), key),
    ownKeys: () => Reflect.ownKeys(materialize()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(materialize(), key);
      // A proxy may not report a property non-configurable unless its target has it so.
      if (descriptor !== undefined) descriptor.configurable = true;
      return descriptor;
    },
    defineProperty: (_target, key, descriptor) =>
      Reflect.defineProperty(materialize(), key, { ...descriptor, configurable: true }),
    getPrototypeOf: () => Reflect.getPrototypeOf(materialize()),
    setPrototypeOf: (_target, prototype) => Reflect.setPrototypeOf(materialize(), prototype),
    isExtensible: () => true,
    preventExtensions: () => false,
  });
  BUILDERS.set(proxy, materialize);
  return proxy as T;
}

/**
 * The value a {@link lazySchema} stands for, built now if it was not yet; any other value is
 * returned as it is. For code that uses a schema in a hot loop and wants no proxy in the way.
 */
export function materializeLazySchema<T extends object>(schema: T): T {
  const materialize = BUILDERS.get(schema);
  return materialize === undefined ? schema : (materialize() as T);
}

/** The definition of a {@link lazyField}: the kind, and how to reach the schema it defers to. */
interface DeferredDef extends z.core.$ZodTypeDef {
  getter: () => z.core.$ZodType;
}

/**
 * The schema kind behind {@link lazyField}: parses with the schema it stands for, built on the
 * first parse that reaches it. Its own kind (`deferred`) is one zod treats as a user kind: the
 * walk zod's memoizer makes on a container's first parse, looking for reference cycles, sees no
 * children in it, and a container's first parse reads only its `optin`/`optout` (both unset, as
 * for any required schema). JSON Schema is the deferred schema's, through zod's
 * `processJSONSchema` hook.
 */
const ZodDeferred = z.core.$constructor(
  'ZodDeferred',
  (inst: z.core.$ZodType & { _zod: { processJSONSchema?: unknown } }, def: DeferredDef) => {
    z.ZodType.init(inst as z.ZodType, def as z.core.$ZodTypeDef as never);
    inst._zod.parse = (payload, context) => def.getter()._zod.run(payload, context);
    inst._zod.processJSONSchema = (
      context: z.core.ToJSONSchemaContext,
      _json: unknown,
      params: z.core.ProcessParams,
    ) => {
      const inner = def.getter();
      z.core.processSchema(inner, context, params);
      const seen = context.seen.get(inst);
      if (seen) seen.ref = inner;
    };
  },
);

/**
 * A field for a container schema (an object's property, a union's option) that keeps a
 * {@link lazySchema} unbuilt until a value for it is parsed.
 *
 * Why: placed in a container as it is, a lazy schema is built on the container's first parse even
 * when the value has no such field: zod reads every property schema's internals to know which
 * keys are optional, and (zod 4.6 and newer) walks the container's whole subtree looking for
 * reference cycles. A harness schema with an optional `mcpServers` field so built all ~50 MCP
 * schemas on a process's first harness, and the model schema its ~40 request-option schemas,
 * though neither was used (`bench/RESULTS.md`). The field parses exactly as the lazy schema does
 * (same output, same issues at the same paths, the caller's parse options passed on) and gives
 * the same JSON Schema. Its static type is the lazy schema's; at run time it is a zod schema of its
 * own kind, so read the lazy schema itself (not `.shape.field`) for its methods and members.
 * Not for recursive schemas: use `z.lazy` for a schema that contains itself.
 *
 * On a zod without the JSON Schema hook this relies on (`z.core.processSchema`), the lazy schema
 * is returned as it is.
 *
 * @example
 * ```ts
 * import { lazyField, lazySchema } from '@everruns-ts/core';
 * import { z } from 'zod';
 *
 * const retrySchema = lazySchema(() => z.object({ attempts: z.number().int().min(1) }));
 * const jobSchema = z.object({ name: z.string(), retry: z.optional(lazyField(retrySchema)) });
 * jobSchema.parse({ name: 'nightly' }); // retrySchema is still unbuilt
 * jobSchema.parse({ name: 'hourly', retry: { attempts: 3 } }); // built here
 * ```
 */
export function lazyField<T extends z.ZodType>(schema: T): T {
  if ((typeof schema !== 'object' && typeof schema !== 'function') || schema === null) {
    throw new TypeError('lazyField: schema must be a zod schema (typically one from lazySchema)');
  }
  if (typeof (z.core as { processSchema?: unknown }).processSchema !== 'function') return schema;
  const getter = () => materializeLazySchema(schema) as unknown as z.core.$ZodType;
  return new ZodDeferred({ type: 'deferred', getter } as unknown as DeferredDef) as unknown as T;
}

const PARSE_COUNTS = new WeakMap<object, number>();
const WITHOUT_FAST_PATH = { jitless: true } as const;
/** Parses of a schema made without the fast path before it gets one. */
const PARSES_WITHOUT_FAST_PATH = 2;

/**
 * `schema.safeParse(value)`, except that the first two parses of each schema in the process skip
 * zod's generated fast path; later parses of the same schema take it as usual.
 *
 * Why: on an object schema's first parse, zod writes a specialised parser for it and compiles it
 * with `new Function` (and the first such compilation in a process also compiles zod's code
 * generator). That pays for itself on a schema parsed many times (a message, a tool's arguments),
 * not on one parsed once at start-up (a harness, a capability's definition, the runtime's
 * options): together they made a few milliseconds of a cold start's first turn on this project's
 * benchmark machine (`bench/RESULTS.md`). Two, not one, because the runtime checks a turn's input
 * message twice (when the turn is asked for and in its input step), so a process's first turn
 * generates no code. Parsing without the fast path gives the same result and the same issues; it
 * is slower per call, which is why a schema parsed again gets its fast path.
 *
 * @example
 * ```ts
 * import { safeParseDeferringJit } from '@everruns-ts/core';
 * import { z } from 'zod';
 *
 * const settings = z.object({ region: z.string() });
 * const result = safeParseDeferringJit(settings, { region: 'eu' }); // no code generated yet
 * if (result.success) console.log(result.data.region);
 * ```
 */
export function safeParseDeferringJit<T>(
  schema: z.ZodType<T>,
  value: unknown,
): z.ZodSafeParseResult<T> {
  const count = PARSE_COUNTS.get(schema) ?? 0;
  if (count >= PARSES_WITHOUT_FAST_PATH) return schema.safeParse(value);
  PARSE_COUNTS.set(schema, count + 1);
  return schema.safeParse(value, WITHOUT_FAST_PATH);
}
