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
const PIECES = ['Hello, ', 'live ', 'world.'];
const ANSWER = PIECES.join('');

/** A model whose answer waits until the test releases it. */
function gatedDriver() {
  let release: (() => void) | undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const driver: LlmDriver = {
    providerType: 'gated-test',
    async generate(): Promise<LlmResponse> {
      await released;
      return {
        text: ANSWER,
        toolCalls: [],
        usage: { inputTokens: 10, outputTokens: 3 },
        stopReason: 'end_turn',
      };
    },
  };
  return { driver, release: () => release?.() };
}

describe('the inspector page in Chromium: live sessions', () => {
  it('follows a running turn: the answer grows piece by piece, then the finished turn shows, with no click', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const gated = gatedDriver();
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(gated.driver)
      .defaultModel({ model: 'gated', providerType: 'gated-test' })
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const server = await startInspectorServer({
      source: runtimeInspectorSource(runtime, { label: 'memory (live)' }),
      port: 0,
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    let turn: Promise<unknown> | undefined;
    try {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`${server.url}#/sessions/${sessionId}`);
      await expect.poll(() => page.getByTestId('live-status').textContent(), POLL).toBe('live');
      expect(await page.locator('#refresh').isHidden()).toBe(true);
      await expect.poll(() => page.getByTestId('turns').textContent(), POLL).toContain('No turn');

      // A turn starts while the page is open: its card appears, running.
      turn = runtime.runTextTurn(sessionId, 'Greet me.');
      const card = page.locator('[data-testid=turn]');
      await expect.poll(() => card.count(), POLL).toBe(1);
      await expect.poll(() => card.locator('.badge').first().textContent(), POLL).toBe('running');
      const turnId = (await card.getAttribute('data-turn-id')) as string;

      // The model's answer streams: each piece reaches the page as a delta event.
      const answer = page.getByTestId('live-answer');
      const reasoning = page.getByTestId('live-reasoning');
      await runtime.backends.events.emit({
        type: 'reason.thinking.delta',
        sessionId,
        turnId,
        data: { iteration: 1, delta: 'A greeting.', offset: 0 },
      });
      await expect.poll(() => reasoning.textContent(), POLL).toBe('A greeting.');
      let sent = '';
      for (const piece of PIECES) {
        await runtime.backends.events.emit({
          type: 'output.message.delta',
          sessionId,
          turnId,
          data: { iteration: 1, delta: piece, offset: sent.length },
        });
        sent += piece;
        await expect.poll(() => answer.textContent(), POLL).toBe(sent);
        // Still the running turn: nothing was stored yet.
        expect(await page.getByTestId('turn-response').count()).toBe(0);
      }

      // The model finishes: the stored turn replaces the live block, and the list follows.
      gated.release();
      await turn;
      await expect.poll(() => card.locator('.badge').first().textContent(), POLL).toBe('completed');
      await expect.poll(() => page.getByTestId('turn-response').textContent(), POLL).toBe(ANSWER);
      await expect.poll(() => page.getByTestId('live').count(), POLL).toBe(0);
      await expect
        .poll(() => page.locator('[data-testid=session-link] .badge').first().textContent(), POLL)
        .toBe('idle');
      await expect
        .poll(
          () =>
            page.locator('[data-testid=timeline-entry][data-event-type="session.idled"]').count(),
          POLL,
        )
        .toBe(1);
      expect(pageErrors).toEqual([]);
    } finally {
      gated.release();
      await turn?.catch(() => undefined);
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 60_000);
});
