import { accessSync, constants } from 'node:fs';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { LlmDriver, LlmResponse } from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { runtimeInspectorSource } from './inspector-source.js';
import { startInspectorServer } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };

const THINKING = `I will add 2 and 2 (${crypto.randomUUID()}).`;
const SIGNATURE = `signature-${crypto.randomUUID()}`;
const REDACTED = `redacted-${crypto.randomUUID()}`;

/** A model that thinks (a signed block and a redacted one) before calling add, then answers. */
const thinkingDriver: LlmDriver = {
  providerType: 'thinking-test',
  async generate(request): Promise<LlmResponse> {
    if (request.iteration === 1) {
      return {
        text: '',
        toolCalls: [{ id: 'call_think', name: 'add', arguments: { a: 2, b: 2 } }],
        usage: { inputTokens: 50, outputTokens: 20, reasoningTokens: 12, cachedInputTokens: 32 },
        stopReason: 'tool_calls',
        reasoning: [
          { type: 'reasoning', text: THINKING, signature: SIGNATURE },
          { type: 'reasoning', text: '', redactedData: REDACTED },
        ],
      };
    }
    return {
      text: '4',
      toolCalls: [],
      usage: { inputTokens: 60, outputTokens: 1 },
      stopReason: 'end_turn',
    };
  },
};

describe('the inspector page in Chromium: reasoning parts', () => {
  it('shows reasoning text and usage details, marks redacted reasoning, and renders no signature or redacted data', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(thinkingDriver)
      .defaultModel({ model: 'thinker', providerType: 'thinking-test' })
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const server = await startInspectorServer({
      source: runtimeInspectorSource(runtime, { label: 'memory (reasoning)' }),
      port: 0,
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`${server.url}#/sessions/${sessionId}`);
      const timeline = page.locator('[data-testid=timeline-entry][data-kind=message]');
      await expect.poll(() => timeline.count(), POLL).toBe(4);
      const agent = await timeline.nth(1).textContent();
      expect(agent).toContain(`(reasoning) ${THINKING}`);
      expect(agent).toContain('(reasoning, redacted)');
      expect(await page.locator('body').textContent()).toContain('12 reasoning');

      // The context of the turn's last model call holds the first answer with its reasoning.
      await page.getByTestId('open-context').last().click();
      const parts = page.locator('[data-testid=reasoning-part]');
      await expect.poll(() => parts.count(), POLL).toBe(2);
      expect(await parts.first().textContent()).toContain(THINKING);
      expect(await parts.first().textContent()).toContain('signed');
      expect(await parts.nth(1).textContent()).toContain('redacted');
      // The rendered parts and the timeline leave the signature and redacted data out (the raw
      // context JSON below them still shows exactly what the model was sent).
      for (const text of [agent, ...(await parts.allTextContents())]) {
        expect(text).not.toContain(SIGNATURE);
        expect(text).not.toContain(REDACTED);
      }
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 60_000);
});
