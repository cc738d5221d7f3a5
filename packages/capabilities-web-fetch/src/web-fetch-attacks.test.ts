// Attacks on web_fetch from a hostile server, through real turns: a scripted model calls the
// tool against local servers on 127.0.0.1 and ::1; each test asserts its bound (time, event-loop
// delay, requests the servers received) and exactly what the model saw.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEB_FETCH_CAPABILITY_ID, webFetchCapability } from './index.js';

/** The bound of the issue: no tool call holds the event loop longer than this. */
const MAX_LOOP_DELAY_MS = 100;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
}

/** What a test server answers. */
interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
}

/** A local server that records every request and answers with `handler`. */
async function startServer(
  host: string,
  handler: (path: string, headers: IncomingHttpHeaders) => Answer,
): Promise<{ server: Server; origin: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const path = request.url ?? '/';
    received.push({ path, headers: request.headers });
    const answer = handler(path, request.headers);
    response.writeHead(answer.status ?? 200, answer.headers ?? { 'content-type': 'text/html' });
    response.end(answer.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, origin: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, received };
}

async function stopServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** One session whose scripted model calls `calls` then answers "done". */
async function attackRuntime(
  calls: LlmSimToolCall[],
  config: Record<string, unknown>,
  secrets: Record<string, string> = {},
) {
  const driver = new LlmSimDriver(
    LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
  );
  const runtime = await new InProcessRuntimeBuilder()
    .capability(webFetchCapability)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
    .singleSession((session) =>
      session.harness('web', '').withCapability(WEB_FETCH_CAPABILITY_ID, {
        allowPrivateNetwork: true,
        ...config,
      }),
    )
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  for (const [name, value] of Object.entries(secrets))
    await runtime.backends.storage.setSecret(sessionId, name, value);
  return { runtime, driver, sessionId };
}

/** Runs one turn while measuring its wall time and the worst event-loop delay. */
async function measuredTurn(run: () => Promise<unknown>) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const started = performance.now();
  await run();
  const elapsedMs = performance.now() - started;
  histogram.disable();
  if (process.env.WEB_FETCH_ATTACKS_VERBOSE)
    console.log({ elapsedMs, maxLoopDelayMs: histogram.max / 1e6 });
  return { elapsedMs, maxLoopDelayMs: histogram.max / 1e6 };
}

function toolResults(messages: Message[]) {
  const results = new Map<
    string,
    { content: string; isError: boolean; json: Record<string, unknown> }
  >();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(part.content);
        } catch {}
        results.set(part.toolCallId, { ...part, json });
      }
  return results;
}

const fetchCall = (id: string, args: Record<string, unknown>): LlmSimToolCall => ({
  id,
  name: 'web_fetch',
  arguments: args,
});

/** Pages a hostile server serves to freeze a converter. */
const HOSTILE_PAGES: Record<string, string> = {
  // 24 KB+ of unclosed tags: Markdown conversion took over 12 s before the fix.
  '/unclosed-div': '<div>'.repeat(40_000),
  '/unclosed-mixed': '<div><ul><b><i>x'.repeat(20_000),
  // Closed but 20,000 levels deep: both converters overflowed the stack.
  '/deep': `${'<div>'.repeat(20_000)}deep text${'</div>'.repeat(20_000)}`,
  // Quadratic inside node-html-markdown even when well formed: converted chunk by chunk.
  '/many-breaks': `<p>${'x<br>'.repeat(200_000)}</p>`,
  // Lists nested 64 deep: Markdown indents every item by the depth, so the whole page makes
  // tens of megabytes of output; only the deadline stops it when maxChars asks for all of it.
  '/nested-lists': '<ul><li>x'.repeat(100_000),
  '/tags-without-end': '<a b'.repeat(100_000),
  // 2 MB of ordinary markup: large work that has to stay off the event loop.
  '/large': `<html><body>${'<div class="c"><h2>Title</h2><p>Some <b>bold</b> and <a href="/x">a link</a>.</p><ul><li>a</li><li>b</li></ul></div>'.repeat(18_000)}</body></html>`,
};

let hostile: Awaited<ReturnType<typeof startServer>>;

beforeAll(async () => {
  hostile = await startServer('127.0.0.1', (path) => ({
    body: HOSTILE_PAGES[path] ?? '<p>a small page</p>',
  }));
});

afterAll(async () => {
  await stopServer(hostile.server);
});

describe('web_fetch conversion of hostile pages', () => {
  it('converts pages of unclosed and deeply nested tags quickly, without stalling the event loop', async () => {
    const calls: LlmSimToolCall[] = [];
    for (const path of [
      '/many-breaks',
      '/unclosed-div',
      '/unclosed-mixed',
      '/deep',
      '/tags-without-end',
      '/large',
    ])
      for (const format of ['as_markdown', 'as_text'])
        calls.push(
          fetchCall(`${path}:${format}`, { url: `${hostile.origin}${path}`, [format]: true }),
        );
    const { runtime, sessionId } = await attackRuntime(calls, {});
    const measured = await measuredTurn(() => runtime.runTextTurn(sessionId, 'read them'));
    const results = toolResults(await runtime.messages(sessionId));
    for (const [id, result] of results)
      expect(result.isError, `${id}: ${result.content}`).toBe(false);
    expect(results.get('/unclosed-div:as_markdown')?.json).toMatchObject({
      format: 'markdown',
      content: '',
    });
    expect(results.get('/unclosed-mixed:as_markdown')?.json.content).toMatch(/^\*\*_x_\*\*/);
    expect(results.get('/deep:as_markdown')?.json.content).toBe('deep text');
    expect(results.get('/deep:as_text')?.json.content).toBe('deep text');
    // A tag the document never ends is text, as in a browser (the runtime may cut this long result).
    expect(results.get('/tags-without-end:as_text')?.content).toContain(
      '"format":"text","truncated":true,"bytes":400000,"content":"<a b<a b<a b',
    );
    expect(results.get('/many-breaks:as_markdown')?.content).toContain(
      '"format":"markdown","truncated":true,"bytes":1000007,"content":"x  \\nx  \\nx',
    );
    expect(results.get('/large:as_markdown')?.content).toContain(
      '"format":"markdown","truncated":true,"bytes":2000000,"content":"## Title\\n\\nSome **bold** and [a link](/x).',
    );
    expect(measured.elapsedMs).toBeLessThan(20_000);
    expect(measured.maxLoopDelayMs).toBeLessThan(MAX_LOOP_DELAY_MS);
  });

  it('stops a conversion at its deadline with a tool error while another session goes on', async () => {
    const attack = await attackRuntime(
      [fetchCall('lists', { url: `${hostile.origin}/nested-lists`, as_markdown: true })],
      { conversionTimeoutMs: 3000, maxChars: 100_000_000 },
    );
    const bystander = await attackRuntime(
      [fetchCall('small', { url: `${hostile.origin}/small`, as_markdown: true })],
      {},
    );
    let attackDone = false;
    const measured = await measuredTurn(async () => {
      const attackTurn = attack.runtime
        .runTextTurn(attack.sessionId, 'read it')
        .finally(() => (attackDone = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const bystanderTurn = await bystander.runtime.runTextTurn(bystander.sessionId, 'hello');
      expect(bystanderTurn).toMatchObject({ success: true, response: 'done' });
      expect(attackDone, 'the bystander finished while the attack was still converting').toBe(
        false,
      );
      await attackTurn;
    });
    const small = toolResults(await bystander.runtime.messages(bystander.sessionId)).get('small');
    expect(small?.json).toMatchObject({ content: 'a small page', format: 'markdown' });
    expect(toolResults(await attack.runtime.messages(attack.sessionId)).get('lists')).toEqual({
      isError: true,
      toolCallId: 'lists',
      type: 'tool_result',
      content: 'web_fetch failed: converting the page to Markdown took longer than 3000 ms',
      json: {},
    });
    expect(measured.elapsedMs).toBeLessThan(8_000);
    expect(measured.maxLoopDelayMs).toBeLessThan(MAX_LOOP_DELAY_MS);
  });

  it('converts only maxConversionChars of a page and says it was truncated', async () => {
    const { runtime, sessionId } = await attackRuntime(
      [fetchCall('deep', { url: `${hostile.origin}/deep`, as_text: true })],
      { maxConversionChars: 1000 },
    );
    await runtime.runTextTurn(sessionId, 'read it');
    expect(toolResults(await runtime.messages(sessionId)).get('deep')?.json).toMatchObject({
      content: '',
      truncated: true,
      format: 'text',
    });
  });
});

/** Every encoding of `secret` the issue lists, to look for in what the model saw. */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret);
  const base64 = bytes.toString('base64');
  return [
    secret,
    secret.toUpperCase(),
    encodeURIComponent(secret),
    base64,
    base64.replace(/=+$/, ''),
    bytes.toString('base64url'),
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
    Buffer.from(`user:${secret}`).toString('base64').slice(8, -4),
    Buffer.from(`ab${secret}`).toString('base64url').slice(4, -4),
    secret.slice(0, 12),
  ];
}

describe('web_fetch secrets against a hostile server', () => {
  const secret = `sk_live-${crypto.randomUUID()}/ab+c=`;
  let echo: Awaited<ReturnType<typeof startServer>>;
  let other: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    other = await startServer('::1', () => ({ body: 'other origin' }));
    echo = await startServer('127.0.0.1', (path, headers): Answer => {
      const value = String(headers['x-api-key'] ?? '');
      const bytes = Buffer.from(value);
      switch (path) {
        case '/encodings':
          return {
            headers: { 'content-type': 'text/plain' },
            body: [
              `raw ${value}`,
              `upper ${value.toUpperCase()}`,
              `url ${encodeURIComponent(value)}`,
              `every-byte ${[...bytes].map((byte) => `%${byte.toString(16)}`).join('')}`,
              `base64 ${bytes.toString('base64')}`,
              `base64-unpadded ${bytes.toString('base64').replace(/=+$/, '')}`,
              `base64url ${bytes.toString('base64url')}`,
              `base64url-padded ${bytes.toString('base64url')}==`,
              `basic ${Buffer.from(`user:${value}`).toString('base64')}`,
              `offset-two ${Buffer.from(`ab${value}`).toString('base64url')}`,
              `hex ${bytes.toString('hex')}`,
              `HEX ${bytes.toString('hex').toUpperCase()}`,
              `json ${JSON.stringify({ key: value })}`,
            ].join('\n'),
          };
        case '/header-echo':
          return { headers: { 'content-type': `text/plain; key=${value}` }, body: 'ok' };
        case '/redirect-echo':
          return {
            status: 302,
            headers: { location: `/landing?key=${encodeURIComponent(value)}` },
          };
        case '/redirect-invalid':
          return { status: 302, headers: { location: `http://[${value}]/` } };
        case '/binary':
          return { headers: { 'content-type': `image/png; key=${value}` }, body: 'png' };
        case '/html':
          return {
            headers: { 'content-type': 'text/html' },
            body: `<h1>${value}</h1><p>${[...value].map((char) => `&#${char.charCodeAt(0)};`).join('')}</p><p><code>${bytes.toString('base64url')}</code></p>`,
          };
        case '/cut':
          return { headers: { 'content-type': 'text/plain' }, body: `${'x'.repeat(100)}${value}` };
        case '/to-other':
          return { status: 307, headers: { location: `${other.origin}/landing` } };
        default:
          return { headers: { 'content-type': 'text/plain' }, body: `landed at ${path}` };
      }
    });
  });

  afterAll(async () => {
    await stopServer(echo.server);
    await stopServer(other.server);
  });

  it('redacts a secret from body, headers, final URL and errors, in every common encoding', async () => {
    const header = { 'x-api-key': 'secret://api_key' };
    const { runtime, driver, sessionId } = await attackRuntime(
      [
        fetchCall('encodings', { url: `${echo.origin}/encodings`, headers: header }),
        fetchCall('header', { url: `${echo.origin}/header-echo`, headers: header }),
        fetchCall('redirect', { url: `${echo.origin}/redirect-echo`, headers: header }),
        fetchCall('invalid', { url: `${echo.origin}/redirect-invalid`, headers: header }),
        fetchCall('binary', { url: `${echo.origin}/binary`, headers: header }),
        fetchCall('markdown', { url: `${echo.origin}/html`, headers: header, as_markdown: true }),
        fetchCall('text', { url: `${echo.origin}/html`, headers: header, as_text: true }),
      ],
      { secretOrigins: { api_key: [echo.origin] } },
      { api_key: secret },
    );
    await runtime.runTextTurn(sessionId, 'fetch');
    expect(echo.received.filter((request) => request.headers['x-api-key'] === secret)).toHaveLength(
      8,
    );
    const results = toolResults(await runtime.messages(sessionId));
    const seen = JSON.stringify(driver.requests.at(-1)?.messages);
    const stored = JSON.stringify([await runtime.messages(sessionId), runtime.events()]);
    for (const form of encodings(secret)) {
      expect(seen, form).not.toContain(form);
      expect(stored, form).not.toContain(form);
    }
    expect(results.get('header')?.json.content_type).toBe('text/plain; key=[secret]');
    expect(results.get('redirect')?.json).toMatchObject({
      url: `${echo.origin}/landing?key=[secret]`,
      content: 'landed at /landing?key=[secret]',
    });
    expect(results.get('invalid')).toMatchObject({
      isError: true,
      content: 'web_fetch failed: "http://[[secret]]/" is not a valid URL',
    });
    expect(results.get('binary')).toMatchObject({
      isError: true,
      content: `web_fetch: ${echo.origin}/binary returned binary content (image/png; key=[secret]), which is not supported`,
    });
    expect(results.get('markdown')?.json.content).toBe('# [secret]\n\n[secret]\n\n`[secret]`');
    expect(results.get('text')?.json.content).toBe('[secret]\n\n[secret]\n\n[secret]');
  });

  it('leaves no beginning of a secret where the byte limit cuts through it', async () => {
    const { runtime, sessionId } = await attackRuntime(
      [
        fetchCall('cut', {
          url: `${echo.origin}/cut`,
          headers: { 'x-api-key': 'secret://api_key' },
        }),
      ],
      { secretOrigins: { api_key: [echo.origin] }, maxBytes: 120 },
      { api_key: secret },
    );
    await runtime.runTextTurn(sessionId, 'fetch');
    expect(toolResults(await runtime.messages(sessionId)).get('cut')?.json).toMatchObject({
      content: 'x'.repeat(100),
      truncated: true,
      bytes: 120,
    });
  });

  it('sends a secret header only to its configured origin, never after a cross-origin redirect', async () => {
    echo.received.length = 0;
    other.received.length = 0;
    const headers = {
      'x-api-key': 'secret://api_key',
      Authorization: 'Bearer secret://api_key',
      'x-plain': 'visible',
    };
    const { runtime, sessionId } = await attackRuntime(
      [
        fetchCall('redirected', { url: `${echo.origin}/to-other`, headers }),
        fetchCall('unlisted', { url: `${other.origin}/direct`, headers }),
      ],
      { secretOrigins: { api_key: [echo.origin] } },
      { api_key: secret },
    );
    await runtime.runTextTurn(sessionId, 'fetch');
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.get('redirected')?.json).toMatchObject({
      url: `${other.origin}/landing`,
      content: 'other origin',
    });
    expect(results.get('unlisted')).toMatchObject({
      isError: true,
      content: `web_fetch failed: refused: the secret secret://api_key (header x-api-key) may not be sent to ${other.origin}: it is not among the origins configured for it (secretOrigins)`,
    });
    expect(echo.received.map((request) => request.headers['x-api-key'])).toEqual([secret]);
    expect(other.received).toHaveLength(1);
    expect(other.received[0]?.headers).toMatchObject({ 'x-plain': 'visible' });
    expect(other.received[0]?.headers['x-api-key']).toBeUndefined();
    expect(other.received[0]?.headers.authorization).toBeUndefined();
  });

  it('refuses every secret when no origin is configured for it, before any request', async () => {
    echo.received.length = 0;
    const { runtime, sessionId } = await attackRuntime(
      [
        fetchCall('none', {
          url: `${echo.origin}/encodings`,
          headers: { 'x-api-key': 'secret://api_key' },
        }),
      ],
      {},
      { api_key: secret },
    );
    await runtime.runTextTurn(sessionId, 'fetch');
    expect(toolResults(await runtime.messages(sessionId)).get('none')?.content).toContain(
      'the secret secret://api_key (header x-api-key) may not be sent to',
    );
    expect(echo.received).toHaveLength(0);
  });
});
