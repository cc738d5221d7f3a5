import { getEventListeners } from 'node:events';
import { defineCapability, defineTool, PlatformDefinition } from '@everruns-ts/core';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

/** A runtime with one tool add(a, b) and a model that calls it, then answers its result. */
async function calculatorRuntime() {
  const seen: AbortSignal[] = [];
  let callSeq = 0;
  const platform = new PlatformDefinition();
  platform.capabilities.register(
    defineCapability({
      id: 'calculator',
      name: 'Calculator',
      description: 'Adds numbers',
      tools: [
        defineTool({
          name: 'add',
          description: 'Add two numbers',
          inputSchema: z.object({ a: z.number(), b: z.number() }),
          execute: ({ a, b }, context) => {
            seen.push(context.signal);
            return a + b;
          },
        }),
      ],
    }),
  );
  platform.drivers.register({
    providerType: 'fake',
    async generate(request, options) {
      if (options?.signal) seen.push(options.signal);
      const usage = { inputTokens: 0, outputTokens: 0 };
      if (request.messages.at(-1)?.role === 'tool_result') {
        return { text: '4', toolCalls: [], usage, stopReason: 'end_turn' };
      }
      return {
        text: '',
        toolCalls: [{ id: `call_${++callSeq}`, name: 'add', arguments: { a: 2, b: 2 } }],
        usage,
        stopReason: 'tool_calls',
      };
    },
  });
  const runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .harness({
      id: 'harness_calculator',
      name: 'calculator',
      systemPrompt: 'Use the add tool.',
      capabilities: [{ id: 'calculator' }],
    })
    .backends(inMemoryBackends())
    .build();
  return { runtime, seen };
}

describe('abort listeners of turns', () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  afterEach(() => {
    process.off('warning', onWarning);
    warnings.length = 0;
  });

  it('leaves no abort listener behind on the caller signal or the turn signals after 50 turns', async () => {
    const { runtime, seen } = await calculatorRuntime();
    const session = await runtime.createSession({ harnessId: 'harness_calculator' });
    const caller = new AbortController();
    for (let turn = 0; turn < 50; turn++) {
      const result = await runtime.runTextTurn(session.id, 'What is 2 + 2?', {
        signal: caller.signal,
      });
      expect(result.response).toBe('4');
      expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    }
    expect(seen.length).toBeGreaterThanOrEqual(100);
    for (const signal of seen) expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await runtime.close();
  });

  it('runs 40 turns at once on one runtime without a listener warning, and close still aborts', async () => {
    process.on('warning', onWarning);
    const { runtime } = await calculatorRuntime();
    const sessions = await Promise.all(
      Array.from({ length: 40 }, () => runtime.createSession({ harnessId: 'harness_calculator' })),
    );
    const results = await Promise.all(
      sessions.map((session) => runtime.runTextTurn(session.id, 'What is 2 + 2?')),
    );
    expect(results.map((result) => result.response)).toEqual(results.map(() => '4'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual(
      [],
    );
    await runtime.close();
    await expect(runtime.runTextTurn(sessions[0]?.id as string, 'again')).rejects.toMatchObject({
      code: 'RUNTIME_CLOSED',
    });
  });
});
