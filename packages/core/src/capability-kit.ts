import { z } from 'zod';
import type { Capability, ToolContext, ToolDefinition, ToolSpec } from './capability.js';
import { EverrunsError } from './errors.js';
import { formatZodError } from './format-zod-error.js';
import { safeParseDeferringJit } from './lazy-schema.js';

// The kit for capability authors: declare a capability and its tools, report a tool error, and
// compute the model-facing spec of a tool.

const capabilityShape = z.object({
  id: z.string().regex(/^[a-z0-9_.-]+$/i, 'must be letters, digits, "_", "-" or "."'),
  name: z.string().min(1),
  description: z.string(),
  dependencies: z.array(z.string().min(1)).optional(),
  beforeModelCall: z
    .custom<(...args: unknown[]) => unknown>(
      (value) => typeof value === 'function',
      'must be a function',
    )
    .optional(),
  beforeToolCall: z
    .custom<(...args: unknown[]) => unknown>(
      (value) => typeof value === 'function',
      'must be a function',
    )
    .optional(),
  afterToolCall: z
    .custom<(...args: unknown[]) => unknown>(
      (value) => typeof value === 'function',
      'must be a function',
    )
    .optional(),
  commands: z
    .array(
      z.object({
        name: z
          .string()
          .regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-" (no "/")'),
        description: z.string(),
        execute: z.custom<(...args: unknown[]) => unknown>(
          (value) => typeof value === 'function',
          'must be a function',
        ),
      }),
    )
    .optional(),
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
 * Declares a capability, validating its shape (ids, tool and command names, schemas, that each
 * hook and `execute` is a function). Throws `EverrunsError` `INVALID_INPUT` naming the bad field,
 * `DUPLICATE_ID` for a tool or command declared twice.
 *
 * Hooks (`beforeModelCall`, `beforeToolCall`, `afterToolCall`) run in the order the session's
 * capabilities resolve (harness, agent, session layers; dependencies first), each seeing the
 * changes of the ones before it. A hook that throws is contained: it fails what it wraps (the
 * model call ends the turn with `CAPABILITY_FAILED`; a tool call becomes a tool error the model
 * sees), never the runtime.
 */
export function defineCapability<TConfig = unknown>(
  capability: Capability<TConfig>,
): Capability<TConfig> {
  const parsed = safeParseDeferringJit(capabilityShape, capability);
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
  const commandNames = new Set<string>();
  for (const command of capability.commands ?? []) {
    if (commandNames.has(command.name)) {
      throw new EverrunsError({
        code: 'DUPLICATE_ID',
        message: `Capability ${capability.id} declares command /${command.name} twice`,
      });
    }
    commandNames.add(command.name);
  }
  return Object.freeze({
    ...capability,
    tools: Object.freeze([...capability.tools]),
    ...(capability.commands ? { commands: Object.freeze([...capability.commands]) } : {}),
  });
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

const specCache = new WeakMap<object, ToolSpec>();

/** The model-facing spec of a tool; the JSON Schema is computed once per tool and cached. */
export function toolSpec(tool: ToolDefinition<never, never> | ToolDefinition): ToolSpec {
  let spec = specCache.get(tool);
  if (!spec) {
    const schema: Record<string, unknown> = tool.inputJsonSchema
      ? { ...tool.inputJsonSchema }
      : z.toJSONSchema(tool.inputSchema as z.ZodType, { io: 'input', unrepresentable: 'any' });
    delete schema.$schema;
    spec = Object.freeze({ name: tool.name, description: tool.description, inputSchema: schema });
    specCache.set(tool, spec);
  }
  return spec;
}
