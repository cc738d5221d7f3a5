import {
  type Capability,
  defineCapability,
  defineTool,
  type LlmResponse,
  PlatformDefinition,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { z } from 'zod';

/** The `calculator` capability of the math turn: one tool, `add(a, b)`. */
export function calculatorCapability(options: { idempotent?: boolean } = {}): Capability {
  return defineCapability({
    id: 'calculator',
    name: 'Calculator',
    description: 'Adds numbers',
    tools: [
      defineTool({
        name: 'add',
        description: 'Add two numbers',
        inputSchema: z.object({ a: z.number(), b: z.number() }),
        ...(options.idempotent === undefined ? {} : { idempotent: options.idempotent }),
        execute: ({ a, b }) => a + b,
      }),
    ],
  });
}

/**
 * A runtime on `backends` whose harness `math` runs the math turn: the fake model calls
 * `add(2, 2)`, then answers a tool result with "4" (streamed as one text piece when asked to
 * stream). No turn context is kept.
 */
export function mathRuntime(backends: RuntimeBackends, options: { idempotent?: boolean } = {}) {
  let calls = 0;
  const platform = new PlatformDefinition();
  platform.capabilities.register(calculatorCapability(options));
  platform.drivers.register({
    providerType: 'fake',
    async generate(request): Promise<LlmResponse> {
      const last = request.messages[request.messages.length - 1];
      if (last?.role === 'tool_result') {
        return {
          text: '4',
          toolCalls: [],
          usage: { inputTokens: 1, outputTokens: 1 },
          stopReason: 'end_turn',
        };
      }
      return {
        text: '',
        toolCalls: [{ id: `call_${++calls}`, name: 'add', arguments: { a: 2, b: 2 } }],
        usage: { inputTokens: 1, outputTokens: 1 },
        stopReason: 'tool_calls',
      };
    },
    // A streamed answer: one text piece, then the answer `generate` gives.
    async *stream(request) {
      const response = await this.generate(request);
      if (response.text) yield { type: 'text_delta' as const, text: response.text };
      yield { type: 'finish' as const, response };
    },
  });
  return new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: 'math', name: 'math', capabilities: [{ id: 'calculator' }] })
    .options({ keepTurnContexts: 0 })
    .build();
}
