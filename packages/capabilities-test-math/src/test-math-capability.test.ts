import {
  CapabilityRegistry,
  isToolError,
  newId,
  type ToolContext,
  type ToolDefinition,
  toolSpec,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { TEST_MATH_CAPABILITY_ID, testMathCapability } from './index.js';

/**
 * The tools here never touch files, storage or memory, so those members are left out. The
 * in-memory stores package is not part of the repository yet.
 */
function context(): ToolContext {
  const sessionId = newId('session');
  const turnId = newId('turn');
  const toolCallId = `call_${crypto.randomUUID()}`;
  return {
    sessionId,
    turnId,
    toolCallId,
    idempotencyKey: `${sessionId}/${turnId}/${toolCallId}`,
    iteration: 1,
    config: undefined,
    signal: new AbortController().signal,
  } as unknown as ToolContext;
}

function tool(name: string): ToolDefinition {
  const found = testMathCapability.tools.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no tool ${name}`);
  return found as unknown as ToolDefinition;
}

/** Validates like the act step does, then runs the tool. */
async function call(name: string, args: unknown): Promise<unknown> {
  const definition = tool(name);
  return definition.execute(definition.inputSchema.parse(args), context());
}

describe('testMathCapability', () => {
  it('is the test_math capability with add, subtract, multiply and divide', () => {
    expect(TEST_MATH_CAPABILITY_ID).toBe('test_math');
    expect(testMathCapability.id).toBe(TEST_MATH_CAPABILITY_ID);
    expect(testMathCapability.name).toBe('Test Math');
    expect(testMathCapability.systemPrompt).toBeUndefined();
    expect(testMathCapability.tools.map((candidate) => candidate.name)).toEqual([
      'add',
      'subtract',
      'multiply',
      'divide',
    ]);
    expect(testMathCapability.tools.every((candidate) => candidate.idempotent)).toBe(true);
  });

  it('registers and resolves in a CapabilityRegistry', () => {
    const registry = new CapabilityRegistry().register(testMathCapability);
    const [resolved] = registry.resolve([{ id: 'test_math' }]);
    expect(resolved?.capability).toBe(testMathCapability);
  });

  it('computes each operation and echoes the operands', async () => {
    expect(await call('add', { a: 5, b: 3 })).toEqual({ result: 8, operation: 'add', a: 5, b: 3 });
    expect(await call('subtract', { a: 10, b: 4 })).toEqual({
      result: 6,
      operation: 'subtract',
      a: 10,
      b: 4,
    });
    expect(await call('multiply', { a: 6, b: 7 })).toEqual({
      result: 42,
      operation: 'multiply',
      a: 6,
      b: 7,
    });
    expect(await call('divide', { a: 20, b: 4 })).toEqual({
      result: 5,
      operation: 'divide',
      a: 20,
      b: 4,
    });
    expect(await call('divide', { a: 1, b: 3 })).toMatchObject({ result: 1 / 3 });
    expect(await call('add', { a: -1.5, b: 0.25 })).toMatchObject({ result: -1.25 });
  });

  it('returns a tool error instead of throwing when dividing by zero', async () => {
    const result = await call('divide', { a: 10, b: 0 });
    expect(isToolError(result)).toBe(true);
    expect(isToolError(result) && result.message).toBe('Division by zero');
  });

  it('rejects missing, non-numeric and extra arguments at validation', () => {
    const schema = tool('add').inputSchema;
    expect(schema.safeParse({ a: 1 }).success).toBe(false);
    expect(schema.safeParse({ a: '1', b: 2 }).success).toBe(false);
    expect(schema.safeParse({ a: 1, b: 2, c: 3 }).success).toBe(false);
    expect(schema.safeParse({ a: 1, b: 2 }).success).toBe(true);
  });

  it('describes each tool to the model as a strict JSON Schema with numbers a and b required', () => {
    for (const definition of testMathCapability.tools) {
      const spec = toolSpec(definition);
      expect(spec.name).toBe(definition.name);
      expect(spec.description.length).toBeGreaterThan(0);
      expect(spec.inputSchema).toMatchObject({
        type: 'object',
        properties: { a: { type: 'number' }, b: { type: 'number' } },
        additionalProperties: false,
      });
      expect([...(spec.inputSchema.required as string[])].sort()).toEqual(['a', 'b']);
    }
  });
});
