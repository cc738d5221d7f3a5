import { accessSync, constants } from 'node:fs';
import {
  COMPACTION_STORAGE_KEY,
  type CompactionRecord,
  defineCapability,
  type LlmDriver,
  type LlmResponse,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { runtimeInspectorSource } from './inspector-source.js';
import { startInspectorServer } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };
const SUMMARY = `The user said one and two (${crypto.randomUUID()}).`;

/**
 * A compaction capability in miniature, on core's hook contract: from the third turn on it
 * stores a record covering the first two turns and sends only what follows.
 */
const compactAfterTwoTurns = defineCapability({
  id: 'compaction',
  name: 'Compaction (test)',
  description: 'Summarises the first two turns.',
  tools: [],
  async beforeModelCall(context) {
    if (context.compaction || context.messages.length < 5) return undefined;
    const record: CompactionRecord = {
      version: 1,
      throughSeq: 4,
      summary: SUMMARY,
      createdAt: new Date().toISOString(),
      turnId: context.turnId,
      tokensBefore: 900,
      tokensAfter: 300,
    };
    await context.storage.setValue(
      context.sessionId,
      COMPACTION_STORAGE_KEY,
      JSON.stringify(record),
    );
    return { messages: context.messages.filter((message) => message.seq > 4), compaction: record };
  },
});

const echoDriver: LlmDriver = {
  providerType: 'echo-test',
  async generate(request): Promise<LlmResponse> {
    return {
      text: `seen ${request.messages.length}`,
      toolCalls: [],
      usage: { inputTokens: 10, outputTokens: 2 },
      stopReason: 'end_turn',
    };
  },
};

describe('the inspector page in Chromium: compaction points', () => {
  it('marks the compaction point on the turn and in the timeline, and the context shows the summary', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const runtime = await new InProcessRuntimeBuilder()
      .capability(compactAfterTwoTurns)
      .driver(echoDriver)
      .defaultModel({ model: 'echo', providerType: 'echo-test' })
      .singleSession((session) => session.harness('chat', 'Chat.').withCapability('compaction'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    for (const text of ['one', 'two', 'three']) await runtime.runTextTurn(sessionId, text);
    const server = await startInspectorServer({
      source: runtimeInspectorSource(runtime, { label: 'memory (compaction)' }),
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

      // The third turn carries the compaction point; the others none.
      const points = page.locator('[data-testid=compaction-point]');
      await expect.poll(() => points.count(), POLL).toBe(1);
      expect(await points.first().getAttribute('data-through-seq')).toBe('4');
      expect(await points.first().textContent()).toContain(
        'history through message #4 summarised · 900 → 300 tokens',
      );
      const turns = page.locator('[data-testid=turn]');
      expect(await turns.nth(2).locator('[data-testid=compaction-point]').count()).toBe(1);

      // The timeline entry of the event, between the third input and its answer.
      const entry = page.locator(
        '[data-testid=timeline-entry][data-event-type="context.compacted"]',
      );
      await expect.poll(() => entry.count(), POLL).toBe(1);
      expect(await entry.textContent()).toContain('history through message #4 summarised');

      // The turn's context: the summary in the system prompt, only the messages after #4.
      await page.getByTestId('open-context').last().click();
      await page.getByTestId('context-compaction').waitFor(POLL);
      expect(await page.getByTestId('context-compaction').textContent()).toContain(
        'messages through #4',
      );
      expect(await page.getByTestId('system-prompt').textContent()).toContain(
        `<compacted_history through_seq="4">\n${SUMMARY}\n</compacted_history>`,
      );
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
      await server.close();
      await runtime.close();
    }
  }, 60_000);
});
