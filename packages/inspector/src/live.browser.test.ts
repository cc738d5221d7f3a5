import { accessSync, constants } from 'node:fs';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { LLMSIM_DEFAULT_MODEL } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig, LlmSimDriver } from '@everruns-ts/runtime';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { backendsInspectorSource, runtimeInspectorSource } from './inspector-source.js';
import { startInspectorServer } from './server.js';
import { SteppedDriver } from './stepped-driver.test-support.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };
const ANSWER_CHUNKS = ['Hello, ', 'live ', 'world.'];
const ANSWER = ANSWER_CHUNKS.join('');
const THINKING = 'Add them first.';

describe('the inspector page in Chromium: live sessions', () => {
  it('follows runtime.streamTurn: reasoning, tool-call arguments and the answer grow piece by piece, then the finished turn shows, with no click', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const driver = new SteppedDriver(
      new LlmSimDriver(
        LlmSimConfig.chunked([[''], ANSWER_CHUNKS])
          .withReasoningSequence([THINKING, ''])
          .withToolCallSequence([[{ id: 'call_add', name: 'add', arguments: { a: 2, b: 2 } }], []])
          .withStreaming({ chunkSize: 6 }),
      ),
    );
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const server = await startInspectorServer({
      source: runtimeInspectorSource(runtime, { label: 'memory (streaming)' }),
      port: 0,
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    let drained: Promise<unknown> | undefined;
    try {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`${server.url}#/sessions/${sessionId}`);
      await expect.poll(() => page.getByTestId('live-status').textContent(), POLL).toBe('live');
      await expect.poll(() => page.getByTestId('turns').textContent(), POLL).toContain('No turn');

      const stream = runtime.streamTextTurn(sessionId, 'Add 2 and 2, then greet me.');
      drained = (async () => {
        for await (const _part of stream) {
          // The page follows the bus; the parts are only drained here.
        }
      })();
      const card = page.locator('[data-testid=turn]');
      await expect.poll(() => card.count(), POLL).toBe(1);
      await expect.poll(() => card.locator('.badge').first().textContent(), POLL).toBe('running');

      const reasoning = page.getByTestId('live-reasoning');
      const liveCall = page.locator('[data-testid=live-tool-call]');
      const answer = page.getByTestId('live-answer');
      const shown = {
        reasoning: [] as string[],
        arguments: [] as string[],
        answer: [] as string[],
      };
      let iteration = 1;
      let text = '';
      let thinking = '';
      let argumentsText = '';
      // Let the model's pieces through one by one; after each, the page shows what came so far.
      for (;;) {
        const before = driver.yielded.length;
        driver.step();
        await expect.poll(() => driver.yielded.length, POLL).toBeGreaterThan(before);
        const pieces = driver.yielded.slice(before);
        for (const piece of pieces) {
          if (piece.type === 'reasoning_delta') {
            thinking += piece.text;
            await expect.poll(() => reasoning.textContent(), POLL).toBe(thinking);
            shown.reasoning.push(thinking);
          } else if (piece.type === 'tool_call_delta' && piece.argumentsDelta !== '') {
            argumentsText += piece.argumentsDelta;
            await expect
              .poll(() => liveCall.locator('pre').textContent(), POLL)
              .toBe(argumentsText);
            expect(await liveCall.locator('code').textContent()).toBe('add');
            shown.arguments.push(argumentsText);
          } else if (piece.type === 'text_delta') {
            text += piece.text;
            await expect.poll(() => answer.textContent(), POLL).toBe(text);
            expect(await page.getByTestId('turn-response').count()).toBe(0);
            shown.answer.push(text);
          } else if (piece.type === 'finish') {
            iteration += 1;
          }
        }
        if (iteration > 2) break;
        if (iteration === 2 && pieces.at(-1)?.type === 'finish') {
          // The call is stored and runs: the table shows it with its result.
          const call = page.locator('[data-testid=tool-call][data-tool-name=add]');
          await expect.poll(() => call.textContent(), POLL).toContain('"result":4');
          await expect.poll(() => liveCall.count(), POLL).toBe(0);
        }
      }
      // Each stream came in several pieces, and the page showed every intermediate state.
      expect(shown.reasoning.at(-1)).toBe(THINKING);
      expect(shown.reasoning.length).toBeGreaterThan(1);
      expect(JSON.parse(shown.arguments.at(-1) as string)).toEqual({ a: 2, b: 2 });
      expect(shown.arguments.length).toBeGreaterThan(1);
      expect(shown.answer).toEqual(['Hello, ', 'Hello, live ', ANSWER]);

      const result = await stream.result;
      expect(result).toMatchObject({ success: true, response: ANSWER });
      await expect.poll(() => card.locator('.badge').first().textContent(), POLL).toBe('completed');
      await expect.poll(() => page.getByTestId('turn-response').textContent(), POLL).toBe(ANSWER);
      await expect.poll(() => page.getByTestId('live').count(), POLL).toBe(0);
      await expect
        .poll(() => page.locator('[data-testid=session-link] .badge').first().textContent(), POLL)
        .toBe('idle');

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
      driver.releaseAll();
      await drained?.catch(() => undefined);
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 90_000);

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
