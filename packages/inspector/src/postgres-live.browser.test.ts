import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { LLMSIM_DEFAULT_MODEL } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig, LlmSimDriver } from '@everruns-ts/runtime';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { openPostgresSource } from './postgres-source.js';
import { startInspectorServer } from './server.js';
import { SteppedDriver } from './stepped-driver.test-support.js';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POLL = { timeout: 20_000, interval: 50 };
const CHUNKS = ['Streamed ', 'from ', 'another ', 'process.'];

describe('the inspector page in Chromium over PostgreSQL', () => {
  it('follows a turn another process streams: the answer grows piece by piece, then the finished turn shows, with no click', async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    const schema = `inspector_live_${randomBytes(6).toString('hex')}`;
    const secretKey = { id: 'inspector-live', key: randomBytes(32) };
    // The process running the turn: its own pool and event bus.
    const writer = postgresBackends({ connectionString: DATABASE_URL }, { schema, secretKey });
    try {
      await writer.migrate();
    } catch (error) {
      await writer.close();
      throw new Error(
        `PostgreSQL is not reachable at DATABASE_URL (${(error as Error).message}); this test never skips.`,
      );
    }
    const driver = new SteppedDriver(new LlmSimDriver(LlmSimConfig.chunked([CHUNKS])));
    const runtime = await new InProcessRuntimeBuilder()
      .backends(writer)
      .capability(testMathCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) => session.harness('far', 'Far away.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    // The inspector, as another process would open it.
    const source = await openPostgresSource({ connectionString: DATABASE_URL, schema, secretKey });
    const server = await startInspectorServer({ source, port: 0 });
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

      const stream = runtime.streamTextTurn(sessionId, 'Tell me where you are.');
      drained = (async () => {
        for await (const _part of stream) {
          // drained
        }
      })();
      const card = page.locator('[data-testid=turn]');
      await expect.poll(() => card.count(), POLL).toBe(1);
      const answer = page.getByTestId('live-answer');
      let text = '';
      const shown: string[] = [];
      while (!driver.yielded.some((piece) => piece.type === 'finish')) {
        const before = driver.yielded.length;
        driver.step();
        await expect.poll(() => driver.yielded.length, POLL).toBeGreaterThan(before);
        for (const piece of driver.yielded.slice(before)) {
          if (piece.type !== 'text_delta') continue;
          text += piece.text;
          await expect.poll(() => answer.textContent(), POLL).toBe(text);
          expect(await page.getByTestId('turn-response').count()).toBe(0);
          shown.push(text);
        }
      }
      expect(shown).toEqual(CHUNKS.map((_, index) => CHUNKS.slice(0, index + 1).join('')));

      expect(await stream.result).toMatchObject({ success: true, response: CHUNKS.join('') });
      await expect.poll(() => card.locator('.badge').first().textContent(), POLL).toBe('completed');
      await expect
        .poll(() => page.getByTestId('turn-response').textContent(), POLL)
        .toBe(CHUNKS.join(''));
      await expect.poll(() => page.getByTestId('live').count(), POLL).toBe(0);
      expect(pageErrors).toEqual([]);
    } finally {
      driver.releaseAll();
      await drained?.catch(() => undefined);
      await browser.close();
      await server.close();
      await source.close?.();
      await writer.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await runtime.close();
    }
  }, 90_000);
});
