import { accessSync, constants } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInspectorHandler } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };
const SYSTEM_PROMPT =
  'You are a patient assistant who answers every question about the weather in a few words.';

describe('the inspector page in Chromium: embedded in an app server, on a narrow window', () => {
  let browser: Browser;
  let server: Server;
  let base: string;
  let sessionId: string;
  let turnId: string;

  beforeAll(async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('It will be sunny all afternoon, with a light breeze.'))
      .singleSession((session) => session.harness('weather', SYSTEM_PROMPT))
      .build();
    // The app's own server: its own page at /, the inspector under /inspector.
    const inspector = createInspectorHandler(runtime, { basePath: '/inspector' });
    server = createServer((request, response) => {
      if (request.url?.startsWith('/inspector')) return inspector(request, response);
      response.end('the app');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    sessionId = runtime.defaultSessionId() as string;
    // A turn of one reason step (one context recorded): the turn the stray "null" showed on.
    const result = await runtime.runTextTurn(sessionId, 'Will it rain this afternoon?');
    expect(result.success).toBe(true);
    turnId = (await runtime.messages(sessionId))[0]?.turnId as string;
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (server) await new Promise((resolve) => server.close(resolve));
  });

  it('at 420 px wide: one column, text lines hold several words, no horizontal scroll, no stray null', async () => {
    const page = await browser.newPage({ viewport: { width: 420, height: 800 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${base}/inspector/#/sessions/${sessionId}/turns/${turnId}`);
    await page.getByTestId('context-body').waitFor(POLL);
    await expect
      .poll(() => page.locator('[data-testid=timeline-entry]').count(), POLL)
      .toBeGreaterThan(3);

    const layout = await page.evaluate(() => {
      const main = document.getElementById('main') as HTMLElement;
      const prompt = document.querySelector('[data-testid=system-prompt]') as HTMLElement;
      const lineHeight = Number.parseFloat(getComputedStyle(prompt).lineHeight) || 16;
      return {
        mainWidth: main.getBoundingClientRect().width,
        pageScrollWidth: document.documentElement.scrollWidth,
        viewportWidth: window.innerWidth,
        promptLines: Math.round(prompt.getBoundingClientRect().height / lineHeight),
        promptWords: (prompt.textContent ?? '').split(/\s+/).length,
        narrowestEntry: Math.min(
          ...Array.from(document.querySelectorAll('[data-testid=timeline-entry]')).map(
            (entry) => (entry.lastElementChild as HTMLElement).getBoundingClientRect().width,
          ),
        ),
      };
    });
    // The session list no longer takes 280 px beside the session: main spans the window.
    expect(layout.mainWidth).toBeGreaterThan(layout.viewportWidth * 0.9);
    expect(layout.pageScrollWidth).toBeLessThanOrEqual(layout.viewportWidth);
    // The system prompt wraps, but at several words per line, not one.
    expect(layout.promptLines).toBeLessThan(layout.promptWords / 3);
    expect(layout.narrowestEntry).toBeGreaterThan(120);

    const context = page.getByTestId('context');
    expect(await page.locator('[data-testid=context] .tabs').count()).toBe(0);
    const texts = await context.evaluate((section) =>
      Array.from(section.childNodes)
        .filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.textContent),
    );
    expect(texts).toEqual([]);
    expect(await page.getByTestId('system-prompt').textContent()).toBe(SYSTEM_PROMPT);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('serves a favicon under the base path, and the app keeps its own paths', async () => {
    const icon = await fetch(`${base}/inspector/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toBe('image/x-icon');
    const bytes = new Uint8Array(await icon.arrayBuffer());
    // An ICO file: reserved 0, type 1 (icon), one or more images.
    expect([...bytes.slice(0, 4)]).toEqual([0, 0, 1, 0]);
    expect(await (await fetch(`${base}/`)).text()).toBe('the app');
    const redirect = await fetch(`${base}/inspector`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/inspector/');
    const sessions = (await (await fetch(`${base}/inspector/api/sessions`)).json()) as Array<{
      id: string;
    }>;
    expect(sessions.map((session) => session.id)).toEqual([sessionId]);
  });
});
