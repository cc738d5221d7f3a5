import { z } from 'zod';
import type { CapabilityConfig, Session } from './domain.js';
import { EverrunsError } from './errors.js';
import type { SessionFileSystem } from './file-system.js';
import type { MemoryStore, RuntimeSessionStore, SessionStorageStore } from './stores.js';

/** What a tool sees when it runs. */
export interface ToolContext<TConfig = unknown> {
  sessionId: string;
  turnId: string;
  toolCallId: string;
  /** Deterministic key of this call, `sessionId/turnId/toolCallId`: the same on a replay. */
  idempotencyKey: string;
  /** 1-based reason/act iteration of the turn. */
  iteration: number;
  /** The session's workspace; capabilities never touch `node:fs` directly. */
  fileSystem: SessionFileSystem;
  /** Key/value and secret storage (secrets reach tools only through here). */
  storage: SessionStorageStore;
  /** Long-lived memory. */
  memory: MemoryStore;
  /**
   * The session store, for tools that read or update the session itself (title, info). Set by
   * the runtime's act step; optional so contexts built elsewhere (tests, other hosts) stay valid.
   */
  sessions?: RuntimeSessionStore;
  /** This capability's validated configuration for the session. */
  config: TConfig;
  /** Fires when the turn is cancelled or the tool's timeout passes. */
  signal: AbortSignal;
}

/** A JSON Schema object as sent to a model. */
export type JsonSchema = Record<string, unknown>;

/**
 * One tool. The model's arguments are validated against `inputSchema` before `execute` runs; a
 * failure is reported to the model as a tool error naming the field.
 */
export interface ToolDefinition<TInput = unknown, TConfig = unknown> {
  /** Name the model calls, unique within a session's tool set. */
  name: string;
  /** What the tool does, for the model. */
  description: string;
  /** zod schema of the arguments. */
  inputSchema: z.ZodType<TInput>;
  /**
   * Runs the tool. Return a string or any JSON value (sent to the model as JSON). Throwing, or
   * returning {@link toolError}, reports a tool error to the model; the turn goes on.
   */
  execute(input: TInput, context: ToolContext<TConfig>): Promise<unknown> | unknown;
  /** True when running the call twice has the same effect as once (re-run on crash recovery). */
  idempotent?: boolean;
  /** Per-call timeout in milliseconds; the context signal fires when it passes. */
  timeoutMs?: number;
  /**
   * A client-side tool is not run by the runtime: the turn waits for the host to submit its
   * result (`waiting_for_tool_results`).
   */
  clientSide?: boolean;
}

/** A tool as the model sees it. */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments. */
  inputSchema: JsonSchema;
}

/** What a capability's prompt function sees. */
export interface CapabilityPromptContext<TConfig = unknown> {
  session: Session;
  fileSystem: SessionFileSystem;
  config: TConfig;
  signal?: AbortSignal;
}

/**
 * A capability: tools plus a system-prompt contribution, switched on per harness, agent or
 * session by id. Third-party capabilities are built with {@link defineCapability} exactly like the
 * built-ins.
 */
export interface Capability<TConfig = unknown> {
  /** Stable id, for example `test_math`. */
  id: string;
  /** Display name. */
  name: string;
  description: string;
  /** Ids of capabilities this one needs; they are switched on with it. */
  dependencies?: readonly string[];
  /** Schema of the per-session configuration; absent means "no configuration". */
  configSchema?: z.ZodType<TConfig>;
  /**
   * Text added to the system prompt inside `<capability id="…">…</capability>`, or a function
   * computing it per turn (for example from a workspace file). Empty or `null` adds nothing.
   */
  systemPrompt?:
    | string
    | ((
        context: CapabilityPromptContext<TConfig>,
      ) => Promise<string | null | undefined> | string | null | undefined);
  /** Tools the capability provides. */
  tools: readonly ToolDefinition<never, TConfig>[];
}

const capabilityShape = z.object({
  id: z.string().regex(/^[a-z0-9_.-]+$/i, 'must be letters, digits, "_", "-" or "."'),
  name: z.string().min(1),
  description: z.string(),
  dependencies: z.array(z.string().min(1)).optional(),
  tools: z.array(
    z.object({
      name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"'),
      description: z.string(),
      inputSchema: z.custom<z.ZodType>(
        (value) => value instanceof z.ZodType,
        'must be a zod schema',
      ),
      execute: z.custom<(...args: unknown[]) => unknown>((value) => typeof value === 'function'),
    }),
  ),
});

/**
 * Declares a capability, validating its shape (ids, tool names, schemas). Throws
 * `EverrunsError` `INVALID_INPUT` naming the bad field.
 */
export function defineCapability<TConfig = unknown>(
  capability: Capability<TConfig>,
): Capability<TConfig> {
  const parsed = capabilityShape.safeParse(capability);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid capability ${JSON.stringify((capability as { id?: unknown })?.id)}: ${formatZodError(parsed.error)}`,
    });
  }
  const names = new Set<string>();
  for (const tool of capability.tools) {
    if (names.has(tool.name)) {
      throw new EverrunsError({
        code: 'DUPLICATE_ID',
        message: `Capability ${capability.id} declares tool ${tool.name} twice`,
      });
    }
    names.add(tool.name);
  }
  return Object.freeze({ ...capability, tools: Object.freeze([...capability.tools]) });
}

/** Declares one tool with its input type inferred from the zod schema. */
export function defineTool<TSchema extends z.ZodType, TConfig = unknown>(tool: {
  name: string;
  description: string;
  inputSchema: TSchema;
  execute(input: z.output<TSchema>, context: ToolContext<TConfig>): Promise<unknown> | unknown;
  idempotent?: boolean;
  timeoutMs?: number;
  clientSide?: boolean;
}): ToolDefinition<never, TConfig> {
  return tool as unknown as ToolDefinition<never, TConfig>;
}

const TOOL_ERROR = Symbol.for('@everruns-ts/tool-error');

/** A tool's reported failure, returned instead of thrown. */
export interface ToolErrorResult {
  readonly [TOOL_ERROR]: true;
  readonly message: string;
}

/** Returns a tool error for the model (the turn continues). */
export function toolError(message: string): ToolErrorResult {
  return { [TOOL_ERROR]: true, message };
}

/** True when a tool's return value is a {@link toolError}. */
export function isToolError(value: unknown): value is ToolErrorResult {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[TOOL_ERROR] === true
  );
}

/** Formats a zod error as `field: problem; field: problem`. */
export function formatZodError(error: z.ZodError): string {
  return error.issues
    .map(
      (issue) =>
        `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`,
    )
    .join('; ');
}

const specCache = new WeakMap<object, ToolSpec>();

/** The model-facing spec of a tool; the JSON Schema is computed once per tool and cached. */
export function toolSpec(tool: ToolDefinition<never, never> | ToolDefinition): ToolSpec {
  let spec = specCache.get(tool);
  if (!spec) {
    const schema = z.toJSONSchema(tool.inputSchema as z.ZodType, {
      io: 'input',
      unrepresentable: 'any',
    });
    delete (schema as Record<string, unknown>).$schema;
    spec = Object.freeze({ name: tool.name, description: tool.description, inputSchema: schema });
    specCache.set(tool, spec);
  }
  return spec;
}

/** A capability switched on for a session, with its validated config. */
export interface ResolvedCapability {
  capability: Capability;
  config: unknown;
}

/**
 * The capabilities a platform offers. Registering a capability whose dependencies would form a
 * cycle throws `CAPABILITY_CYCLE`; resolving a configuration that names an unknown capability
 * throws `CAPABILITY_NOT_FOUND`.
 */
export class CapabilityRegistry {
  readonly #capabilities = new Map<string, Capability>();

  /** Registers a capability. Throws `DUPLICATE_ID` when the id is taken, `CAPABILITY_CYCLE` on a cycle. */
  register<TConfig>(capability: Capability<TConfig>): this {
    const cap = capability as unknown as Capability;
    if (this.#capabilities.has(cap.id)) {
      throw new EverrunsError({
        code: 'DUPLICATE_ID',
        message: `Capability ${cap.id} is already registered`,
      });
    }
    this.#capabilities.set(cap.id, cap);
    try {
      this.#checkCycles(cap.id, []);
    } catch (error) {
      this.#capabilities.delete(cap.id);
      throw error;
    }
    return this;
  }

  /** The capability registered under `id`, or `undefined`. */
  get(id: string): Capability | undefined {
    return this.#capabilities.get(id);
  }

  /** Whether `id` is registered. */
  has(id: string): boolean {
    return this.#capabilities.has(id);
  }

  /** Every registered capability, in registration order. */
  list(): Capability[] {
    return [...this.#capabilities.values()];
  }

  /** Throws `CAPABILITY_NOT_FOUND` when a registered capability depends on an unregistered one. */
  validate(): void {
    for (const capability of this.#capabilities.values()) {
      for (const dependency of capability.dependencies ?? []) {
        if (!this.#capabilities.has(dependency)) {
          throw new EverrunsError({
            code: 'CAPABILITY_NOT_FOUND',
            message: `Capability ${capability.id} depends on ${dependency}, which is not registered`,
            details: { capabilityId: capability.id, dependency },
          });
        }
      }
    }
  }

  /**
   * Expands configs into the capabilities to switch on: dependencies first, each once, the last
   * config of an id winning. Validates each config with the capability's schema (`INVALID_INPUT`).
   */
  resolve(configs: readonly CapabilityConfig[]): ResolvedCapability[] {
    const configById = new Map<string, unknown>();
    for (const entry of configs) configById.set(entry.id, entry.config);
    const ordered: ResolvedCapability[] = [];
    const seen = new Set<string>();
    const visit = (id: string, requiredBy?: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const capability = this.#capabilities.get(id);
      if (!capability) {
        throw new EverrunsError({
          code: 'CAPABILITY_NOT_FOUND',
          message: requiredBy
            ? `Capability ${requiredBy} depends on ${id}, which is not registered`
            : `Capability ${id} is not registered`,
          details: { capabilityId: id },
        });
      }
      for (const dependency of capability.dependencies ?? []) visit(dependency, id);
      let config = configById.get(id);
      if (capability.configSchema) {
        const parsed = capability.configSchema.safeParse(config ?? {});
        if (!parsed.success) {
          throw new EverrunsError({
            code: 'INVALID_INPUT',
            message: `Invalid configuration of capability ${id}: ${formatZodError(parsed.error)}`,
            details: { capabilityId: id },
          });
        }
        config = parsed.data;
      }
      ordered.push({ capability, config });
    };
    for (const entry of configs) visit(entry.id);
    return ordered;
  }

  #checkCycles(id: string, path: string[]): void {
    if (path.includes(id)) {
      throw new EverrunsError({
        code: 'CAPABILITY_CYCLE',
        message: `Capability dependencies form a cycle: ${[...path, id].join(' -> ')}`,
        details: { cycle: [...path, id] },
      });
    }
    const capability = this.#capabilities.get(id);
    for (const dependency of capability?.dependencies ?? [])
      this.#checkCycles(dependency, [...path, id]);
  }
}
