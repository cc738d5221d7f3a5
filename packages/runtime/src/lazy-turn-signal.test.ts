import {
  defineCapability,
  defineTool,
  EverrunsError,
  type LlmCallOptions,
  type LlmDriver,
  type LlmRequest,
  PlatformDefinition,
} from '@everruns-ts/core';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

const usage = { inputTokens: 0, outputTokens: 0 };

/**
 * A runtime with the tool add(a, b) and `generate` as its model; `toolSignals` collects what the
 * tool's context gives as `signal` when `readToolSignal` is set.
 */
async function runtimeWith(
  generate: (request: LlmRequest, options?: LlmCallOptions) => ReturnType<LlmDriver['generate']>,
  tool: { readSignal?: boolean; wait?: (signal: AbortSignal) => Promise<void> } = {},
) {
  const toolSignals: AbortSignal[] = [];
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
          execute: async ({ a, b }, context) => {
            if (tool.readSignal || tool.wait) toolSignals.push(context.signal);
            if (tool.wait) await tool.wait(context.signal);
            return a + b;
          },
        }),
      ],
    }),
  );
  platform.drivers.register({ providerType: 'fake', generate });
  const runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .harness({ id: 'calc', name: 'calc', capabilities: [{ id: 'calculator' }] })
    .backends(inMemoryBackends())
    .build();
  const session = await runtime.createSession({ harnessId: 'calc' });
  return { runtime, sessionId: session.id, toolSignals };
}

/** The calculator's model: the tool call first, then "4" after its result. */
function mathAnswer(request: LlmRequest) {
  if (request.messages.at(-1)?.role === 'tool_result') {
    return { text: '4', toolCalls: [], usage, stopReason: 'end_turn' as const };
  }
  return {
    text: '',
    toolCalls: [{ id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } }],
    usage,
    stopReason: 'tool_calls' as const,
  };
}

/** Counts `new AbortController()` from now until the returned function is called. */
function countControllers(): () => number {
  const Original = globalThis.AbortController;
  let made = 0;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      made++;
    }
  };
  return () => {
    globalThis.AbortController = Original;
    return made;
  };
}

/** A model that never answers and never reads its signal; `modelCalled` resolves once called. */
function hangingModel() {
  let called!: () => void;
  const modelCalled = new Promise<void>((resolve) => {
    called = resolve;
  });
  const generate = (): ReturnType<LlmDriver['generate']> => {
    called();
    return new Promise(() => {});
  };
  return { generate, modelCalled };
}

/** Resolves when `signal` fires. */
const fired = (signal: AbortSignal) =>
  new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));

describe("a turn's signal, made only when read", () => {
  let stopCounting: (() => number) | undefined;
  afterEach(() => {
    stopCounting?.();
    stopCounting = undefined;
  });

  it('makes no AbortSignal for a turn whose model and tools read none', async () => {
    const { runtime, sessionId } = await runtimeWith(async (request) => mathAnswer(request));
    stopCounting = countControllers();
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    expect(stopCounting()).toBe(0);
    expect(result.response).toBe('4');
  });

  it("ends a turn with ABORTED at the caller's abort while a model that never reads its signal hangs", async () => {
    const { generate, modelCalled } = hangingModel();
    const { runtime, sessionId } = await runtimeWith(generate);
    const caller = new AbortController();
    const reason = new Error('user left');
    stopCounting = countControllers();
    const turn = runtime.runTextTurn(sessionId, 'What is 2 + 2?', { signal: caller.signal });
    await modelCalled;
    caller.abort(reason);
    const error = await turn.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(stopCounting()).toBe(0);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
    expect((error as EverrunsError).cause).toBe(reason);
    // The session takes the next turn.
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it("gives a model that reads its options' signal an AbortSignal that fires with the caller's reason", async () => {
    let seen: AbortSignal | undefined;
    const { runtime, sessionId } = await runtimeWith(async (_request, options) => {
      seen = options?.signal;
      await fired(options!.signal!);
      throw options!.signal!.reason;
    });
    const caller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'What is 2 + 2?', { signal: caller.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toBeInstanceOf(AbortSignal);
    expect(seen?.aborted).toBe(false);
    caller.abort('stop');
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe('stop');
  });

  it("fires a tool's context signal when the turn is aborted while the tool runs", async () => {
    let toolRunning!: () => void;
    const running = new Promise<void>((resolve) => {
      toolRunning = resolve;
    });
    const { runtime, sessionId, toolSignals } = await runtimeWith(
      async (request) => mathAnswer(request),
      {
        wait: async (signal) => {
          toolRunning();
          await fired(signal);
        },
      },
    );
    const caller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'What is 2 + 2?', { signal: caller.signal });
    await running;
    caller.abort('enough');
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    expect(toolSignals).toHaveLength(1);
    expect(toolSignals[0]?.aborted).toBe(true);
    expect(toolSignals[0]?.reason).toBe('enough');
  });

  it('close() ends a running turn whose model never read its signal', async () => {
    const { generate, modelCalled } = hangingModel();
    const { runtime, sessionId } = await runtimeWith(generate);
    const turn = runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    await modelCalled;
    await runtime.close();
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
