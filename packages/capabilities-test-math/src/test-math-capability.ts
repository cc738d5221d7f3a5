import { type Capability, defineCapability, defineTool, toolError } from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link testMathCapability}, as upstream (`test_math`). */
export const TEST_MATH_CAPABILITY_ID = 'test_math';

/** Names of the tools of {@link testMathCapability}. */
export type TestMathOperation = 'add' | 'subtract' | 'multiply' | 'divide';

/**
 * What every test_math tool returns (sent to the model as JSON): the result together with the
 * operation and its operands, as upstream's `TestMathCapability`.
 */
export interface TestMathResult {
  result: number;
  operation: TestMathOperation;
  a: number;
  b: number;
}

function operands(aDescription: string, bDescription: string) {
  return z.strictObject({
    a: z.number().describe(aDescription),
    b: z.number().describe(bDescription),
  });
}

const addTool = defineTool({
  name: 'add',
  description: 'Adds two numbers and returns their sum.',
  inputSchema: operands('The first number', 'The second number'),
  idempotent: true,
  execute: ({ a, b }): TestMathResult => ({ result: a + b, operation: 'add', a, b }),
});

const subtractTool = defineTool({
  name: 'subtract',
  description: 'Subtracts the second number from the first and returns the difference.',
  inputSchema: operands('The number to subtract from', 'The number to subtract'),
  idempotent: true,
  execute: ({ a, b }): TestMathResult => ({ result: a - b, operation: 'subtract', a, b }),
});

const multiplyTool = defineTool({
  name: 'multiply',
  description: 'Multiplies two numbers and returns their product.',
  inputSchema: operands('The first number', 'The second number'),
  idempotent: true,
  execute: ({ a, b }): TestMathResult => ({ result: a * b, operation: 'multiply', a, b }),
});

const divideTool = defineTool({
  name: 'divide',
  description:
    'Divides the first number by the second and returns the quotient. Dividing by zero is an error.',
  inputSchema: operands('The dividend', 'The divisor; must not be zero'),
  idempotent: true,
  execute: ({ a, b }) =>
    b === 0
      ? toolError('Division by zero')
      : ({ result: a / b, operation: 'divide', a, b } satisfies TestMathResult),
});

/**
 * The `test_math` capability: calculator tools `add`, `subtract`, `multiply` and `divide`, each
 * taking `{ a: number, b: number }` (no other keys). It adds nothing to the system prompt and
 * exists to exercise tool calling in tests and examples. Dividing by zero returns a tool error
 * (`Division by zero`); the turn goes on.
 */
export const testMathCapability: Capability = defineCapability({
  id: TEST_MATH_CAPABILITY_ID,
  name: 'Test Math',
  description:
    'Testing capability: calculator tools (add, subtract, multiply, divide) for tool-calling tests.',
  tools: [addTool, subtractTool, multiplyTool, divideTool],
});
