import { LLMSIM_DEFAULT_MODEL, REDACTED_OPTION_VALUE } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder } from './index.js';

// Issue 13, invariant 7: free-form request option values (extraBody) may carry a proxy's
// credentials, so exposed contexts keep their keys and hide their values.

const PROXY_TOKEN = `proxy-token-${Math.random().toString(36).slice(2)}`;

describe('extraBody values in exposed contexts', () => {
  it('are redacted in loadContext and turnContext, keys kept, while the driver receives them', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const runtime = await new InProcessRuntimeBuilder()
      .driver(driver)
      .defaultModel({
        ...LLMSIM_DEFAULT_MODEL,
        options: { temperature: 0.3, extraBody: { proxy_auth: PROXY_TOKEN, top_k: 5 } },
      })
      .singleSession((session) => session.harness(`h_${crypto.randomUUID()}`, 'Help.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;

    const loaded = await runtime.loadContext(sessionId);
    expect(loaded.model.options).toEqual({
      temperature: 0.3,
      extraBody: { proxy_auth: REDACTED_OPTION_VALUE, top_k: REDACTED_OPTION_VALUE },
    });
    expect(JSON.stringify(loaded)).not.toContain(PROXY_TOKEN);

    const result = await runtime.runTextTurn(sessionId, 'hi', {
      modelOptions: { extraBody: { turn_secret: PROXY_TOKEN } },
    });
    expect(result.success).toBe(true);
    const context = runtime.turnContext(result.turnId);
    expect(context?.model.options?.extraBody).toEqual({
      proxy_auth: REDACTED_OPTION_VALUE,
      top_k: REDACTED_OPTION_VALUE,
    });
    expect(JSON.stringify(context)).not.toContain(PROXY_TOKEN);
    expect(JSON.stringify(runtime.events(sessionId))).not.toContain(PROXY_TOKEN);

    expect(driver.requests[0]?.options?.extraBody).toEqual({
      proxy_auth: PROXY_TOKEN,
      top_k: 5,
      turn_secret: PROXY_TOKEN,
    });
  });
});
