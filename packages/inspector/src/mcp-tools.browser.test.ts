import { accessSync, constants } from 'node:fs';
import { defineTool, type McpToolSource } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runtimeInspectorSource } from './inspector-source.js';
import { startInspectorServer } from './server.js';

// Issue 16, item 3: the page marks a context's MCP tools with their server and lists the servers
// left out of the turn.

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const POLL = { timeout: 20_000, interval: 50 };

const source: McpToolSource = {
  async listTools({ servers }) {
    const names = Object.keys(servers);
    return {
      tools: names
        .filter((server) => server !== 'offline')
        .map((server) => ({
          server,
          serverToolName: 'add',
          tool: defineTool({
            name: `${server}__add`,
            description: 'Adds two numbers.',
            inputSchema: z.object({ a: z.number(), b: z.number() }),
            execute: ({ a, b }) => String(a + b),
          }),
        })),
      errors: names.includes('offline')
        ? [{ server: 'offline', message: 'connection refused' }]
        : [],
    };
  },
  async close() {},
};

describe('the inspector page and MCP tools, in Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('marks MCP tools with their server and shows a server left out', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(source)
      .llmSim(LlmSimConfig.fixed('Done.'))
      .singleSession((s) =>
        s
          .harness('h', 'Help.')
          .harnessMcpServer('units', { transport: 'stdio', command: 'units-server' })
          .harnessMcpServer('offline', { transport: 'http', url: 'http://127.0.0.1:9/mcp' }),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await runtime.runTextTurn(sessionId, 'Hi');
    const server = await startInspectorServer({ source: runtimeInspectorSource(runtime), port: 0 });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${server.url}#/sessions/${sessionId}`);
      const open = page.getByTestId('open-context').first();
      await open.waitFor(POLL);
      await open.click();
      const badge = page.locator(
        '[data-testid=context-tool][data-tool-name=units__add] [data-testid=context-tool-mcp]',
      );
      await expect.poll(() => badge.textContent(), POLL).toBe('MCP units');
      expect(await page.getByTestId('context-mcp-issue').textContent()).toContain('MCP offline');
    } finally {
      await page.close();
      await server.close();
      await runtime.close();
    }
  });
});
