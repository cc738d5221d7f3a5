import { accessSync, constants } from 'node:fs';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StreamingChatServer, startStreamingChatServer } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };

describe('the streaming chat example in Chromium', () => {
  let server: StreamingChatServer;
  let browser: Awaited<ReturnType<typeof chromium.launch>>;

  beforeAll(async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    server = await startStreamingChatServer({ port: 0, chunkDelayMs: 15 });
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the answer arriving in pieces, with the thinking and the tool call, as the session stores it', async () => {
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(server.url);
    const a = 100 + Math.floor(Math.random() * 900);
    const b = 100 + Math.floor(Math.random() * 900);
    await page.getByTestId('question').fill(`What is ${a} + ${b}?`);
    await page.getByTestId('send').click();

    const answer = page.getByTestId('assistant-message').last();
    await expect.poll(() => answer.getAttribute('data-done'), POLL).toBe('true');
    expect(await page.getByTestId('status').textContent()).toBe('ready');

    const texts = await answer.getByTestId('text').allTextContents();
    const finalText = texts.join('\n');
    expect(texts[1]).toContain(`${a} + ${b} = ${a + b}.`);
    expect(await answer.getByTestId('reasoning').textContent()).toContain(`${a} + ${b}`);
    const tool = answer.getByTestId('tool');
    expect(await tool.getAttribute('data-state')).toBe('output-available');
    expect(await tool.getAttribute('data-tool-name')).toBe('add');
    expect(await tool.textContent()).toContain(`"result":${a + b}`);

    // Each render recorded the answer's length: the text grew through several partial states
    // before the final one, so it arrived in pieces, not at once.
    const renders = await page.evaluate(
      () => (globalThis as unknown as { renders: number[] }).renders,
    );
    expect(renders.at(-1)).toBe(finalText.length);
    const partials = new Set(renders.filter((length) => length > 0 && length < finalText.length));
    expect(partials.size).toBeGreaterThan(1);

    // The session of the page's chat stores the answer the page shows.
    const chatId = await page.evaluate(() => (globalThis as unknown as { chatId: string }).chatId);
    const sessionId = server.sessionOf(chatId);
    expect(sessionId).toBeDefined();
    const messages = await server.chat.runtime.messages(sessionId as string);
    const stored = messages.filter((message) => message.role === 'agent').at(-1);
    expect(stored?.content).toContainEqual({ type: 'text', text: texts[1] });
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
