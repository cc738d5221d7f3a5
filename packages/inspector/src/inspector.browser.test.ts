import { accessSync, constants, mkdirSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInspectorDemo, type InspectorDemo } from './demo.js';
import { type InspectorServer, startInspectorServer } from './server.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOTS = new URL('../screenshots/', import.meta.url);
/** The page renders asynchronously; a loaded machine may take a while. */
const POLL = { timeout: 20_000, interval: 50 };

function requireChromium(): void {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium is not available at ${CHROMIUM_PATH}. The inspector's browser test needs it: ` +
        "run `node scripts/ensure-chromium.mjs` (installs Debian's chromium when run as root) " +
        'or `apt-get update && apt-get install -y chromium`, or set CHROMIUM_PATH.',
    );
  }
}

async function withDemoServer<T>(
  allowApprovals: boolean,
  body: (demo: InspectorDemo, server: InspectorServer) => Promise<T>,
): Promise<T> {
  const demo = await createInspectorDemo();
  const server = await startInspectorServer({ source: demo.source, port: 0, allowApprovals });
  try {
    return await body(demo, server);
  } finally {
    await server.close();
    await demo.close();
  }
}

describe('the inspector page in Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    requireChromium();
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('shows the timeline and a turn context, approves the pending delete, and the file is gone', async () => {
    await withDemoServer(true, async (demo, server) => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));

      await page.goto(`${server.url}#/sessions/${demo.mathSessionId}`);
      await expect.poll(() => page.locator('[data-testid=session-link]').count(), POLL).toBe(2);
      await expect
        .poll(() => page.getByTestId('mode').textContent(), POLL)
        .toBe('approvals enabled');

      // The timeline: every message and event of the math session, in order.
      const lastEntry = page.locator(
        '[data-testid=timeline-entry][data-event-type="session.idled"]',
      );
      await lastEntry.waitFor();
      const messages = await demo.runtime.messages(demo.mathSessionId);
      const events = demo.runtime.events(demo.mathSessionId);
      const entries = page.locator('[data-testid=timeline-entry]');
      expect(await entries.count()).toBe(messages.length + events.length);
      const types = await entries.evaluateAll((nodes) =>
        nodes.map((node) => (node as HTMLElement).dataset.eventType ?? 'message'),
      );
      expect(types.slice(0, 4)).toEqual([
        'message',
        'input.message',
        'session.activated',
        'turn.started',
      ]);
      expect(types.at(-2)).toBe('turn.completed');

      // Tool calls with arguments, results, durations and errors.
      const add = page.locator('[data-testid=tool-call][data-tool-name=add]');
      await expect.poll(() => add.textContent(), POLL).toContain('"result":4');
      const divide = page.locator('[data-testid=tool-call][data-tool-name=divide]');
      expect(await divide.textContent()).toContain('Division by zero');
      expect(await divide.locator('.badge.error').count()).toBe(1);
      expect(await add.textContent()).toMatch(/\d+ ms/);

      // The host plan replayed over the stored turn.
      expect(await page.getByTestId('plan-decision').textContent()).toBe('complete (end_turn)');

      // Open the turn's context: exactly what the model received.
      await page.getByTestId('open-context').first().click();
      const contextBody = page.getByTestId('context-body');
      await contextBody.waitFor();
      const turnId = (await demo.runtime.messages(demo.mathSessionId))[0]?.turnId as string;
      const sent = demo.runtime.turnContext(turnId);
      expect(sent).toBeDefined();
      expect(await page.getByTestId('system-prompt').textContent()).toBe(sent?.systemPrompt);
      expect(await page.getByTestId('context-model').textContent()).toBe(sent?.model.model);
      const toolNames = await page
        .locator('[data-testid=context-tool]')
        .evaluateAll((nodes) => nodes.map((node) => (node as HTMLElement).dataset.toolName));
      expect(toolNames).toEqual(sent?.tools.map((tool) => tool.name));
      expect(await page.locator('[data-testid=context-messages] tr').count()).toBe(
        sent?.messages.length,
      );
      expect(await page.getByTestId('context-source').textContent()).toContain('Recorded');

      // The workspace session: its turn waits for the delete.
      await page.goto(`${server.url}#/sessions/${demo.filesSessionId}`);
      const pending = page.getByTestId('pending-approval');
      await pending.waitFor();
      expect(await pending.textContent()).toContain(demo.pendingDeletePath);
      expect(await page.getByTestId('plan-decision').textContent()).toBe(
        'scheduleAct: delete_file',
      );
      await page.screenshot({
        path: screenshotPath('inspector-pending-approval.png'),
        fullPage: true,
      });

      await pending.getByTestId('approve').click();
      await page.getByTestId('decided-approvals').waitFor();
      expect(await page.getByTestId('decided-approvals').textContent()).toContain('approve');
      expect(await page.getByTestId('pending-approval').count()).toBe(0);

      const result = await demo.pendingTurn;
      expect(result).toMatchObject({
        success: true,
        response: `Deleted ${demo.pendingDeletePath}.`,
      });
      const workspace = await demo.runtime.fileSystem(demo.filesSessionId);
      expect(await workspace.statFile(demo.pendingDeletePath)).toBeNull();
      const files = (await (
        await fetch(`${server.url}api/sessions/${demo.filesSessionId}/files`)
      ).json()) as Array<{ path: string }>;
      expect(files.map((file) => file.path)).not.toContain(demo.pendingDeletePath);

      // The page follows the session live: with no click, it shows the finished turn and the
      // planner's final decision (the Refresh button is hidden while the stream is up).
      expect(await page.getByTestId('live-status').textContent()).toBe('live');
      expect(await page.locator('#refresh').isHidden()).toBe(true);
      await expect
        .poll(() => page.getByTestId('plan-decision').textContent(), POLL)
        .toBe('complete (end_turn)');
      await expect
        .poll(
          () =>
            page
              .locator('[data-testid=timeline-entry][data-event-type="approval.decided"]')
              .count(),
          POLL,
        )
        .toBe(1);
      await page.screenshot({
        path: screenshotPath('inspector-after-approval.png'),
        fullPage: true,
      });
      expect(pageErrors).toEqual([]);
      await page.close();
    });
  });

  it('keeps the approval buttons disabled and refuses decisions when approvals are not allowed', async () => {
    await withDemoServer(false, async (demo, server) => {
      const page = await browser.newPage();
      await page.goto(`${server.url}#/sessions/${demo.filesSessionId}`);
      const pending = page.getByTestId('pending-approval');
      await pending.waitFor();
      expect(await page.getByTestId('mode').textContent()).toBe('read-only');
      expect(await pending.getByTestId('approve').isDisabled()).toBe(true);
      expect(await pending.getByTestId('deny').isDisabled()).toBe(true);

      const approvalId = (await demo.approvals.pending())[0]?.id as string;
      const status = await page.evaluate(async (id) => {
        const response = await fetch(`/api/approvals/${encodeURIComponent(id)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ decision: 'approve' }),
        });
        return response.status;
      }, approvalId);
      expect(status).toBe(403);
      expect((await demo.approvals.pending()).map((entry) => entry.id)).toEqual([approvalId]);
      const workspace = await demo.runtime.fileSystem(demo.filesSessionId);
      expect(await workspace.statFile(demo.pendingDeletePath)).not.toBeNull();
      await page.close();
    });
  });
});

function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return new URL(name, SCREENSHOTS).pathname;
}
