import {
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type LlmRequestOptions,
  newId,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { LlmSimConfig, LlmSimDriver } from './index.js';

function request(options?: LlmRequestOptions): LlmRequest {
  const sessionId = newId('session');
  return {
    model: LLMSIM_DEFAULT_MODEL,
    systemPrompt: '',
    messages: [
      {
        id: newId('msg'),
        sessionId,
        seq: 1,
        role: 'user',
        content: [{ type: 'text', text: 'hi' }],
        createdAt: new Date(0).toISOString(),
      },
    ],
    tools: [],
    sessionId,
    turnId: newId('turn'),
    iteration: 1,
    ...(options ? { options } : {}),
  };
}

describe('llmsim driver request options', () => {
  it('driver accepts every valid option, answers as scripted and records them in order', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const options: LlmRequestOptions = {
      temperature: 0.1,
      toolChoice: 'none',
      responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object' } },
      reasoningEffort: 'high',
      thinkingBudgetTokens: 4096,
      extraBody: { anything: true },
    };
    expect((await driver.generate(request(options))).text).toBe('ok');
    for await (const _event of driver.stream(request())) {
      // drained
    }
    expect(driver.requestOptions).toEqual([options, undefined]);
  });

  it('driver rejects options the schema refuses with INVALID_INPUT and records nothing', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const bad = request({ topP: 2 } as LlmRequestOptions);
    const generated = await driver.generate(bad).catch((error: unknown) => error);
    expect(EverrunsError.hasCode(generated, 'INVALID_INPUT')).toBe(true);
    const streamed = await (async () => {
      for await (const _event of driver.stream(bad)) {
        // never reached
      }
    })().catch((error: unknown) => error);
    expect(EverrunsError.hasCode(streamed, 'INVALID_INPUT')).toBe(true);
    expect(driver.requests).toHaveLength(0);
  });
});
