import { accessSync, constants } from 'node:fs';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { LlmDriver, LlmResponse } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { backendsInspectorSource, runtimeInspectorSource } from './inspector-source.js';
import { startInspectorServer } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };
const PIECES = ['Hello, ', 'live ', 'world.'];
const ANSWER = PIECES.join('');

/** A model that adds 2 and 2, then answers; each answer waits until the test releases it. */
function gatedDriver() {
  const gates = [0, 1].map(() => {
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    return { open, opened };
  });
  const driver: LlmDriver = {
    providerType: 'gated-test',
    async generate(request): Promise<LlmResponse> {
      if (request.iteration === 1) {
        await gates[0]?.opened;
        return {
          text: '',
          toolCalls: [{ id: 'call_add', name: 'add', arguments: { a: 2, b: 2 } }],
          usage: { inputTokens: 10, outputTokens: 5 },
          stopReason: 'tool_calls',
        };
      }
      await gates[1]?.opened;
      return {
        text: ANSWER,
        toolCalls: [],
        usage: { inputTokens: 20, outputTokens: 3 },
        stopReason: 'end_turn',
      };
    },
  };
  return {
    driver,
    release: (index: number) => gates[index]?.open(),
    releaseAll: () => {
      for (const gate of gates) gate.open();
    },
  };
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

      // The model streams a tool call: its arguments grow on the page.
      const liveCall = page.locator('[data-testid=live-tool-call]');
      let argumentsSent = '';
      for (const piece of ['{"a":2,', '"b":2}']) {
        await runtime.backends.events.emit({
          type: 'tool.call.delta',
          sessionId,
          turnId,
          data: {
            iteration: 1,
            index: 0,
            toolCallId: 'call_add',
            toolName: 'add',
            argumentsDelta: piece,
          },
        });
        argumentsSent += piece;
        await expect.poll(() => liveCall.locator('pre').textContent(), POLL).toBe(argumentsSent);
      }
      expect(await liveCall.locator('code').textContent()).toBe('add');

      // The call is stored and runs: the table shows it with its result, the live block goes.
      gated.release(0);
      const call = page.locator('[data-testid=tool-call][data-tool-name=add]');
      await expect.poll(() => call.textContent(), POLL).toContain('"result":4');
      await expect.poll(() => liveCall.count(), POLL).toBe(0);

      // The answer streams: each piece reaches the page as a delta event.
      const answer = page.getByTestId('live-answer');
      const reasoning = page.getByTestId('live-reasoning');
      await runtime.backends.events.emit({
        type: 'reason.thinking.delta',
        sessionId,
        turnId,
        data: { iteration: 2, delta: 'A greeting.', offset: 0 },
      });
      await expect.poll(() => reasoning.textContent(), POLL).toBe('A greeting.');
      let sent = '';
      for (const piece of PIECES) {
        await runtime.backends.events.emit({
          type: 'output.message.delta',
          sessionId,
          turnId,
          data: { iteration: 2, delta: piece, offset: sent.length },
        });
        sent += piece;
        await expect.poll(() => answer.textContent(), POLL).toBe(sent);
        // Still the running turn: no answer was stored yet.
        expect(await page.getByTestId('turn-response').count()).toBe(0);
      }

      // The model finishes: the stored turn replaces the live block, and the list follows.
      gated.release(1);
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

      // With the finished turn's context open, a second turn re-renders the session live; the
      // context section of the finished turn stays as it was (not reloaded).
      await page.getByTestId('open-context').first().click();
      await page.getByTestId('context-body').waitFor();
      await page.getByTestId('context').evaluate((node) => {
        (node as HTMLElement).dataset.marker = 'kept';
      });
      const firstEvent = page
        .locator('[data-testid=timeline-entry][data-kind=event] details')
        .first();
      await firstEvent.locator('summary').click();
      expect(await firstEvent.getAttribute('open')).toBe('');
      await runtime.runTextTurn(sessionId, 'Once more.');
      await expect.poll(() => card.count(), POLL).toBe(2);
      await expect
        .poll(() => page.locator('[data-testid=turn-response]').allTextContents(), POLL)
        .toEqual([ANSWER, ANSWER]);
      expect(await page.getByTestId('context').getAttribute('data-marker')).toBe('kept');
      // So does an event the reader opened in the timeline.
      expect(await firstEvent.getAttribute('open')).toBe('');
      expect(
        await page.locator('[data-testid=timeline-entry][data-kind=event] details[open]').count(),
      ).toBe(1);
      expect(pageErrors).toEqual([]);
    } finally {
      gated.releaseAll();
      await turn?.catch(() => undefined);
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 60_000);

  it('keeps the Refresh button for a source that cannot follow live, and refreshes on a click', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('Refreshed answer.'))
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const server = await startInspectorServer({
      source: backendsInspectorSource({
        backends: runtime.backends,
        capabilities: [testMathCapability],
        follow: false,
      }),
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
      await expect
        .poll(() => page.getByTestId('live-status').textContent(), POLL)
        .toBe('manual refresh');
      await expect.poll(() => page.getByTestId('turns').textContent(), POLL).toContain('No turn');
      expect(await page.locator('#refresh').isVisible()).toBe(true);

      await runtime.runTextTurn(sessionId, 'Anything new?');
      // Nothing follows by itself here (checked after the turn is stored), until Refresh.
      expect(await page.locator('[data-testid=turn]').count()).toBe(0);
      await page.locator('#refresh').click();
      await expect
        .poll(() => page.getByTestId('turn-response').textContent(), POLL)
        .toBe('Refreshed answer.');
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 60_000);
});
