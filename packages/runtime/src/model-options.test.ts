import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  defineCapability,
  defineTool,
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmDriver,
  type LlmRequestOptions,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type InProcessRuntime, InProcessRuntimeBuilder } from './index.js';

const clientTools = defineCapability({
  id: 'client_tools',
  name: 'Client tools',
  description: 'tools the client runs',
  tools: [
    defineTool({
      name: 'ask_user',
      description: 'asks the user a question in the client',
      inputSchema: z.object({ question: z.string() }),
      clientSide: true,
      execute: () => {
        throw new Error('a client-side tool must not run on the server');
      },
    }),
  ],
});

const modelOptions: LlmRequestOptions = {
  temperature: 0.2,
  seed: 7,
  stop: ['END'],
  extraBody: { top_k: 40, user: 'model' },
};

async function buildRuntime(
  driver: LlmDriver,
  options: LlmRequestOptions | null = modelOptions,
): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({ ...LLMSIM_DEFAULT_MODEL, ...(options ? { options } : {}) })
    .singleSession((session) =>
      session.harness(`h_${crypto.randomUUID()}`, 'Help.').withCapability('test_math'),
    )
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

describe('request options through a turn', () => {
  it('sends the model configuration options with every model call of a turn', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['adding', 'done']).withToolCallSequence([
        [{ name: 'add', arguments: { a: 1, b: 2 } }],
        [],
      ]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'add');
    expect(result.success).toBe(true);
    expect(driver.requests).toHaveLength(2);
    for (const request of driver.requests) expect(request.options).toEqual(modelOptions);
  });

  it('lets the per-turn modelOptions beat the model configuration key by key, for that turn only', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const { runtime, sessionId } = await buildRuntime(driver);
    await runtime.runTextTurn(sessionId, 'first', {
      modelOptions: { temperature: 0.9, toolChoice: 'none', extraBody: { user: 'turn' } },
    });
    await runtime.runTextTurn(sessionId, 'second');
    expect(driver.requests[0]?.options).toEqual({
      temperature: 0.9,
      seed: 7,
      stop: ['END'],
      toolChoice: 'none',
      extraBody: { top_k: 40, user: 'turn' },
    });
    expect(driver.requests[1]?.options).toEqual(modelOptions);
  });

  it('sends no options when neither the model nor the turn sets any', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const { runtime, sessionId } = await buildRuntime(driver, null);
    await runtime.runTextTurn(sessionId, 'hi');
    expect(driver.requests[0]?.options).toBeUndefined();
  });

  it('rejects invalid per-turn modelOptions with INVALID_INPUT and stores nothing', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const { runtime, sessionId } = await buildRuntime(driver);
    for (const bad of [
      { temperature: 3 },
      { topP: 0 },
      { toolChoice: { type: 'tool' } },
      { extraBody: { model: 'other' } },
      { extraBody: { stream: false } },
      { responseFormat: { type: 'json_schema', name: 'has space', schema: {} } },
      { unknownOption: true },
    ]) {
      const error = await runtime
        .runTextTurn(sessionId, 'hi', { modelOptions: bad as LlmRequestOptions })
        .catch((caught: unknown) => caught);
      expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), JSON.stringify(bad)).toBe(true);
    }
    expect(await runtime.backends.messages.count(sessionId)).toBe(0);
    expect(driver.requests).toHaveLength(0);
    expect((await runtime.backends.sessions.getSession(sessionId))?.status).not.toBe('active');
  });

  it("rejects options the model's driver refuses (checkOptions) before storing the user message", async () => {
    const simulated = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const driver: LlmDriver = {
      providerType: 'llmsim',
      generate: (request, options) => simulated.generate(request, options),
      checkOptions(options) {
        if (options.seed !== undefined) {
          throw new EverrunsError({ code: 'INVALID_INPUT', message: 'no seed here' });
        }
      },
    };
    const { runtime, sessionId } = await buildRuntime(driver, { temperature: 0.5 });
    const error = await runtime
      .runTextTurn(sessionId, 'hi', { modelOptions: { seed: 1 } })
      .catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'INVALID_INPUT')).toBe(true);
    expect(await runtime.backends.messages.count(sessionId)).toBe(0);
    expect(simulated.requests).toHaveLength(0);
    const result = await runtime.runTextTurn(sessionId, 'hi');
    expect(result.success).toBe(true);
  });

  it('keeps the turn options when a turn paused for client tool results resumes', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['asking', 'blue it is']).withToolCallSequence([
        [{ id: 'q1', name: 'ask_user', arguments: { question: 'colour?' } }],
        [],
      ]),
    );
    const runtime = await new InProcessRuntimeBuilder()
      .capability(clientTools)
      .driver(driver)
      .defaultModel({ ...LLMSIM_DEFAULT_MODEL, options: { seed: 3 } })
      .singleSession((session) =>
        session.harness(`h_${crypto.randomUUID()}`, 'Help.').withCapability('client_tools'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const paused = await runtime.runTextTurn(sessionId, 'pick', {
      modelOptions: { toolChoice: 'required' },
    });
    expect(paused.stopReason).toBe('waiting_for_tool_results');
    const done = await runtime.submitToolResults(sessionId, paused.turnId, [
      { toolCallId: 'q1', content: 'blue' },
    ]);
    expect(done.response).toBe('blue it is');
    expect(driver.requestOptions).toEqual([
      { seed: 3, toolChoice: 'required' },
      { seed: 3, toolChoice: 'required' },
    ]);
  });

  it('refuses a model configuration with invalid options when the runtime is built', async () => {
    const error = await new InProcessRuntimeBuilder()
      .driver(new LlmSimDriver(LlmSimConfig.fixed('ok')))
      .defaultModel({ ...LLMSIM_DEFAULT_MODEL, options: { maxOutputTokens: -1 } })
      .build()
      .catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'INVALID_INPUT')).toBe(true);
  });
});
