import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hostMatches,
  isPrivateAddress,
  WEB_FETCH_CAPABILITY_ID,
  webFetchCapability,
} from './index.js';

const PAGE = `<!doctype html><html><head><title>Docs</title></head><body>
<h1>Getting started</h1><p>Install with <strong>pnpm</strong>.</p>
<ul><li>one</li><li>two</li></ul><a href="/next">Next</a></body></html>`;

let server: Server;
let base: string;
let port: number;

beforeAll(async () => {
  server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    switch (url.pathname) {
      case '/page':
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        response.end(PAGE);
        return;
      case '/plain':
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('just text');
        return;
      case '/big':
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('x'.repeat(50_000));
        return;
      case '/missing':
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('nope');
        return;
      case '/image':
        response.writeHead(200, { 'content-type': 'image/png' });
        response.end(Buffer.from([137, 80, 78, 71]));
        return;
      case '/hop':
        response.writeHead(302, { location: '/hop2' });
        response.end();
        return;
      case '/hop2':
        response.writeHead(301, { location: `${base}/plain` });
        response.end();
        return;
      case '/loop':
        response.writeHead(302, { location: '/loop' });
        response.end();
        return;
      case '/to-localhost':
        response.writeHead(302, { location: `http://localhost:${port}/plain` });
        response.end();
        return;
      case '/to-metadata':
        response.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        response.end();
        return;
      case '/hang':
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.write('partial');
        return; // never ends
      case '/auth': {
        const authorization = request.headers.authorization ?? '';
        response.writeHead(authorization.startsWith('Bearer ') ? 200 : 401, {
          'content-type': 'text/plain',
        });
        const token = authorization.slice('Bearer '.length);
        response.end(
          `you sent ${token}; base64 ${Buffer.from(token).toString('base64')}; url ${encodeURIComponent(token)}`,
        );
        return;
      }
      default:
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end(`path ${url.pathname}`);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

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

async function fetchCalls(
  calls: LlmSimToolCall[],
  config: unknown,
  secrets: Record<string, string> = {},
) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(webFetchCapability)
    .llmSim(LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]))
    .singleSession((session) =>
      session.harness('web', '').withCapability(WEB_FETCH_CAPABILITY_ID, config),
    )
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  for (const [name, value] of Object.entries(secrets))
    await runtime.backends.storage.setSecret(sessionId, name, value);
  const result = await runtime.runTextTurn(sessionId, 'fetch');
  expect(result).toMatchObject({ success: true, response: 'done' });
  const messages = await runtime.messages(sessionId);
  return { runtime, sessionId, messages, results: toolResults(messages) };
}

const fetchCall = (id: string, args: Record<string, unknown>): LlmSimToolCall => ({
  id,
  name: 'web_fetch',
  arguments: args,
});

const LOCAL = { allowPrivateNetwork: true };

describe('web_fetch against a local server, private networks allowed', () => {
  it('fetches raw, Markdown, text and HEAD, and follows redirects', async () => {
    const { results } = await fetchCalls(
      [
        fetchCall('raw', { url: `${base}/page` }),
        fetchCall('md', { url: `${base}/page`, as_markdown: true }),
        fetchCall('text', { url: `${base}/page`, as_text: true }),
        fetchCall('head', { url: `${base}/page`, method: 'HEAD' }),
        fetchCall('plain-md', { url: `${base}/plain`, as_markdown: true }),
        fetchCall('hop', { url: `${base}/hop` }),
        fetchCall('404', { url: `${base}/missing` }),
      ],
      LOCAL,
    );
    for (const [id, result] of results)
      expect(result.isError, `${id}: ${result.content}`).toBe(false);
    expect(results.get('raw')?.json).toMatchObject({
      url: `${base}/page`,
      status_code: 200,
      content_type: 'text/html; charset=utf-8',
      format: 'raw',
      content: PAGE,
      truncated: false,
    });
    const markdown = results.get('md')?.json.content as string;
    expect(results.get('md')?.json.format).toBe('markdown');
    expect(markdown).toContain('# Getting started');
    expect(markdown).toContain('**pnpm**');
    expect(markdown).toMatch(/\* one\n\* two|- one\n- two/);
    const text = results.get('text')?.json.content as string;
    expect(results.get('text')?.json.format).toBe('text');
    expect(text).toContain('Install with pnpm.');
    expect(text).not.toContain('<');
    expect(results.get('head')?.json).toMatchObject({ status_code: 200, bytes: 0 });
    expect(results.get('head')?.json.content).toBeUndefined();
    expect(results.get('plain-md')?.json).toMatchObject({ content: 'just text', format: 'raw' });
    expect(results.get('hop')?.json).toMatchObject({
      url: `${base}/plain`,
      content: 'just text',
      redirects: [`${base}/hop`, `${base}/hop2`],
    });
    expect(results.get('404')?.json).toMatchObject({ status_code: 404, content: 'nope' });
  });

  it('cuts a large body at the byte and character limits', async () => {
    const bytes = await fetchCalls([fetchCall('big', { url: `${base}/big` })], {
      ...LOCAL,
      maxBytes: 1000,
    });
    expect(bytes.results.get('big')?.json).toMatchObject({ truncated: true, bytes: 1000 });
    expect(String(bytes.results.get('big')?.json.content).length).toBe(1000);
    const chars = await fetchCalls([fetchCall('big', { url: `${base}/big` })], {
      ...LOCAL,
      maxChars: 300,
    });
    expect(chars.results.get('big')?.json).toMatchObject({ truncated: true, bytes: 50_000 });
    expect(String(chars.results.get('big')?.json.content).length).toBe(300);
  });

  it('gives up after the time limit with a tool error, and the turn goes on', async () => {
    const { results } = await fetchCalls([fetchCall('hang', { url: `${base}/hang` })], {
      ...LOCAL,
      timeoutMs: 300,
    });
    expect(results.get('hang')).toMatchObject({
      isError: true,
      content: expect.stringContaining('no complete answer within 300 ms'),
    });
  });

  it('applies the deny and allow lists, also to redirect targets', async () => {
    const denied = await fetchCalls(
      [
        fetchCall('denied', { url: `${base}/plain` }),
        fetchCall('redirect', { url: `http://localhost:${port}/hop2` }),
      ],
      { ...LOCAL, denyHosts: ['127.0.0.1'] },
    );
    expect(denied.results.get('denied')).toMatchObject({
      isError: true,
      content: expect.stringContaining('refused: the host 127.0.0.1 is on the deny list'),
    });
    expect(denied.results.get('redirect')?.content).toContain(
      'the host 127.0.0.1 is on the deny list',
    );
    const allowed = await fetchCalls(
      [
        fetchCall('ok', { url: `http://localhost:${port}/plain` }),
        fetchCall('other', { url: `${base}/plain` }),
      ],
      { ...LOCAL, allowHosts: ['localhost'] },
    );
    expect(allowed.results.get('ok')?.json).toMatchObject({ content: 'just text' });
    expect(allowed.results.get('other')?.content).toContain(
      'the host 127.0.0.1 is not on the allow list',
    );
  });

  it("honours the session's network access list, redirects included", async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(webFetchCapability)
      .llmSim(
        LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
          [
            fetchCall('ok', { url: `http://localhost:${port}/plain` }),
            fetchCall('blocked', { url: `${base}/plain` }),
            fetchCall('redirect', { url: `http://localhost:${port}/hop2` }),
          ],
          [],
        ]),
      )
      .singleSession((session) =>
        session
          .harness('web', '')
          .withCapability(WEB_FETCH_CAPABILITY_ID, LOCAL)
          .harnessNetworkAccess({ allowed: ['localhost', '127.0.0.1'] })
          .sessionNetworkAccess({ allowed: ['localhost'] }),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await runtime.runTextTurn(sessionId, 'fetch');
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.get('ok')?.json).toMatchObject({ content: 'just text' });
    expect(results.get('blocked')).toMatchObject({
      isError: true,
      content: expect.stringContaining("the session's network access list does not allow"),
    });
    expect(results.get('redirect')?.content).toContain(
      "the session's network access list does not allow http://127.0.0.1",
    );
    await runtime.close();
  });

  it('stops after too many redirects and refuses binary content', async () => {
    const { results } = await fetchCalls(
      [fetchCall('loop', { url: `${base}/loop` }), fetchCall('image', { url: `${base}/image` })],
      { ...LOCAL, maxRedirects: 3 },
    );
    expect(results.get('loop')?.content).toContain('more than 3 redirects');
    expect(results.get('image')?.content).toContain('binary content (image/png)');
  });

  it('sends secret references as their values and never returns the value', async () => {
    const secret = `tok-${crypto.randomUUID()}/+=`;
    const { results, messages, runtime } = await fetchCalls(
      [
        fetchCall('auth', {
          url: `${base}/auth`,
          headers: { Authorization: 'Bearer secret://api_token' },
        }),
        fetchCall('unknown', {
          url: `${base}/auth`,
          headers: { Authorization: 'Bearer secret://nope' },
        }),
      ],
      { ...LOCAL, secretOrigins: { api_token: [base] } },
      { api_token: secret },
    );
    expect(results.get('auth')?.json).toMatchObject({ status_code: 200 });
    expect(results.get('auth')?.json.content).toBe(
      'you sent [secret]; base64 [secret]; url [secret]',
    );
    expect(results.get('unknown')?.content).toContain(
      'unknown secret secret://nope in header Authorization',
    );
    const everything = JSON.stringify([messages, runtime.events()]);
    for (const form of [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)])
      expect(everything).not.toContain(form);
  });
});

describe('web_fetch with private networks refused (the default)', () => {
  it('refuses loopback, private, link-local and unspecified addresses before connecting', async () => {
    const { results } = await fetchCalls(
      [
        fetchCall('ip', { url: `${base}/plain` }),
        fetchCall('name', { url: `http://localhost:${port}/plain` }),
        fetchCall('v6', { url: `http://[::1]:${port}/plain` }),
        fetchCall('mapped', { url: `http://[::ffff:127.0.0.1]:${port}/plain` }),
        fetchCall('zero', { url: `http://0.0.0.0:${port}/plain` }),
        fetchCall('metadata', { url: 'http://169.254.169.254/latest/meta-data/' }),
        fetchCall('lan', { url: 'http://192.168.1.1/' }),
        fetchCall('ten', { url: 'https://10.0.0.1/' }),
        fetchCall('ula', { url: 'http://[fd00::1]/' }),
      ],
      {},
    );
    for (const id of ['ip', 'name', 'v6', 'mapped', 'zero', 'metadata', 'lan', 'ten', 'ula']) {
      expect(results.get(id), id).toMatchObject({
        isError: true,
        content: expect.stringMatching(
          /web_fetch failed: refused: .* resolves to the private address .*; private networks are not allowed/,
        ),
      });
    }
  });

  it('refuses a redirect into a private range even when the first host was allowed', async () => {
    const { results } = await fetchCalls(
      [
        fetchCall('localhost', { url: `${base}/to-localhost` }),
        fetchCall('metadata', { url: `${base}/to-metadata` }),
        fetchCall('direct', { url: `${base}/plain` }),
      ],
      { allowPrivateNetwork: ['127.0.0.1'] },
    );
    expect(results.get('direct')?.json).toMatchObject({ content: 'just text' });
    expect(results.get('localhost')?.content).toMatch(
      /refused: localhost resolves to the private address/,
    );
    expect(results.get('metadata')?.content).toContain(
      'refused: 169.254.169.254 resolves to the private address',
    );
  });

  it('reports bad input as tool errors naming the problem', async () => {
    const { results } = await fetchCalls(
      [
        { id: 'missing', name: 'web_fetch', arguments: {} },
        { id: 'type', name: 'web_fetch', arguments: { url: 42 } },
        {
          id: 'extra',
          name: 'web_fetch',
          arguments: { url: 'https://example.com', follow: false },
        },
        {
          id: 'method',
          name: 'web_fetch',
          arguments: { url: 'https://example.com', method: 'POST' },
        },
        { id: 'invalid', name: 'web_fetch', arguments: { url: 'not a url' } },
        { id: 'scheme', name: 'web_fetch', arguments: { url: 'file:///etc/passwd' } },
        {
          id: 'credentials',
          name: 'web_fetch',
          arguments: { url: 'https://user:pw@example.com/' },
        },
        {
          id: 'header',
          name: 'web_fetch',
          arguments: { url: 'https://example.com', headers: { 'bad header': 'x' } },
        },
        {
          id: 'host-header',
          name: 'web_fetch',
          arguments: { url: 'https://example.com', headers: { Host: 'x' } },
        },
      ],
      {},
    );
    const error = (id: string) => {
      expect(results.get(id)?.isError, id).toBe(true);
      return results.get(id)?.content ?? '';
    };
    expect(error('missing')).toMatch(/web_fetch: url:/);
    expect(error('type')).toMatch(/url: .*string/);
    expect(error('extra')).toContain('follow');
    expect(error('method')).toMatch(/method:/);
    expect(error('invalid')).toContain('"not a url" is not a valid URL');
    expect(error('scheme')).toContain('only http and https URLs can be fetched, not file:');
    expect(error('credentials')).toContain('credentials');
    expect(error('header')).toMatch(/headers\.bad header: Invalid key/);
    expect(error('host-header')).toContain('the header Host cannot be set');
  });
});

describe('address and host checks', () => {
  it('classifies private and public addresses', () => {
    for (const address of [
      '127.0.0.1',
      '127.255.0.9',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.0.10',
      '169.254.169.254',
      '0.0.0.0',
      '100.64.0.1',
      '::1',
      '::',
      'fc00::1',
      'fd12:3456::1',
      'fe80::1',
      '::ffff:10.0.0.1',
      '::ffff:7f00:1',
    ])
      expect(isPrivateAddress(address), address).toBe(true);
    for (const address of [
      '8.8.8.8',
      '172.32.0.1',
      '192.169.0.1',
      '1.1.1.1',
      '2606:4700::1111',
      '::ffff:8.8.8.8',
    ])
      expect(isPrivateAddress(address), address).toBe(false);
  });

  it('matches exact hosts and wildcard subdomains', () => {
    expect(hostMatches('Example.com', 'example.com')).toBe(true);
    expect(hostMatches('docs.example.com', '*.example.com')).toBe(true);
    expect(hostMatches('example.com', '*.example.com')).toBe(false);
    expect(hostMatches('badexample.com', '*.example.com')).toBe(false);
  });
});
