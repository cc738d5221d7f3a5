import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EverrunsError } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInspectorDemo, type InspectorDemo } from './demo.js';
import { createInspectorHandler, type InspectorServer, startInspectorServer } from './server.js';

interface RawResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function raw(
  server: InspectorServer,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: '127.0.0.1',
        port: server.port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers ?? {},
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: response.headers,
          }),
        );
      },
    );
    outgoing.on('error', reject);
    if (options.body !== undefined) outgoing.write(options.body);
    outgoing.end();
  });
}

const json = { 'content-type': 'application/json' };

describe('the inspector server', () => {
  let demo: InspectorDemo;
  let readOnly: InspectorServer;
  let approving: InspectorServer;

  beforeAll(async () => {
    demo = await createInspectorDemo();
    readOnly = await startInspectorServer({ source: demo.source, port: 0 });
    approving = await startInspectorServer({
      source: demo.source,
      port: 0,
      allowApprovals: true,
    });
  });

  afterAll(async () => {
    await readOnly?.close();
    await approving?.close();
    await demo?.close();
  });

  it('listens on 127.0.0.1 by default and serves the page with a strict content security policy', async () => {
    expect(readOnly.host).toBe('127.0.0.1');
    expect(readOnly.url).toBe(`http://127.0.0.1:${readOnly.port}/`);
    const page = await raw(readOnly, { path: '/' });
    expect(page.status).toBe(200);
    // Relative asset paths: the same page works under an app's base path (createInspectorHandler).
    expect(page.body).toContain('<script type="module" src="app.js"></script>');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect((await raw(readOnly, { path: '/app.js' })).status).toBe(200);
    const icon = await raw(readOnly, { path: '/favicon.ico' });
    expect(icon.status).toBe(200);
    expect(icon.headers['content-type']).toBe('image/x-icon');
  });

  it('refuses requests whose Host header names another site (DNS rebinding)', async () => {
    const response = await raw(readOnly, {
      path: '/api/sessions',
      headers: { host: `attacker.example:${readOnly.port}` },
    });
    expect(response.status).toBe(421);
    const local = await raw(readOnly, {
      path: '/api/sessions',
      headers: { host: `localhost:${readOnly.port}` },
    });
    expect(local.status).toBe(200);
  });

  it('reports whether approvals are allowed', async () => {
    const info = JSON.parse((await raw(readOnly, { path: '/api/info' })).body);
    expect(info).toEqual({
      label: 'memory (demo)',
      allowApprovals: false,
      approvalsAvailable: true,
      live: true,
    });
    const approvingInfo = JSON.parse((await raw(approving, { path: '/api/info' })).body);
    expect(approvingInfo.allowApprovals).toBe(true);
  });

  it('answers 403 to a decision when approvals are not allowed, and leaves the request pending', async () => {
    const [pending] = await demo.approvals.pending();
    expect(pending).toBeDefined();
    const response = await raw(readOnly, {
      method: 'POST',
      path: `/api/approvals/${encodeURIComponent(pending?.id as string)}`,
      headers: json,
      body: JSON.stringify({ decision: 'approve' }),
    });
    expect(response.status).toBe(403);
    expect(JSON.parse(response.body).error.code).toBe('APPROVALS_DISABLED');
    expect(await demo.approvals.pending()).toHaveLength(1);
  });

  it('refuses decisions from another origin, without JSON, or with an unknown decision', async () => {
    const id = encodeURIComponent((await demo.approvals.pending())[0]?.id as string);
    const crossOrigin = await raw(approving, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: { ...json, origin: 'http://attacker.example' },
      body: JSON.stringify({ decision: 'approve' }),
    });
    expect(crossOrigin.status).toBe(403);
    const form = await raw(approving, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'decision=approve',
    });
    expect(form.status).toBe(415);
    const unknownDecision = await raw(approving, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: json,
      body: JSON.stringify({ decision: 'maybe' }),
    });
    expect(unknownDecision.status).toBe(400);
    const unknownId = await raw(approving, {
      method: 'POST',
      path: '/api/approvals/approval_nope',
      headers: json,
      body: JSON.stringify({ decision: 'deny' }),
    });
    expect(unknownId.status).toBe(404);
    expect(await demo.approvals.pending()).toHaveLength(1);
  });

  it('answers 404 for an unknown session and for unknown paths', async () => {
    const missing = await raw(readOnly, { path: '/api/sessions/session_missing' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('SESSION_NOT_FOUND');
    expect((await raw(readOnly, { path: '/nothing-here' })).status).toBe(404);
    expect((await raw(readOnly, { method: 'DELETE', path: '/api/sessions' })).status).toBe(405);
  });

  it('serves the current context of a session and the recorded contexts of its turns', async () => {
    const current = JSON.parse(
      (await raw(readOnly, { path: `/api/sessions/${demo.mathSessionId}/context` })).body,
    );
    expect(current.source).toBe('current');
    expect(current.contexts[0].messages).toHaveLength(
      (await demo.runtime.messages(demo.mathSessionId)).length,
    );
    const turnId = (await demo.runtime.messages(demo.mathSessionId))[0]?.turnId as string;
    const recorded = JSON.parse(
      (
        await raw(readOnly, {
          path: `/api/sessions/${demo.mathSessionId}/turns/${turnId}/context`,
        })
      ).body,
    );
    expect(recorded.source).toBe('recorded');
    expect(recorded.contexts.map((context: { iteration: number }) => context.iteration)).toEqual([
      1, 2,
    ]);
    expect(recorded.contexts[1]).toEqual(
      JSON.parse(JSON.stringify(demo.runtime.turnContext(turnId))),
    );
  });

  it('denies through the API: the tool reports the denial and the file stays', async () => {
    const id = encodeURIComponent((await demo.approvals.pending())[0]?.id as string);
    const response = await raw(approving, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: { ...json, origin: `http://127.0.0.1:${approving.port}` },
      body: JSON.stringify({ decision: 'deny' }),
    });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({
      id: decodeURIComponent(id),
      decision: 'deny',
    });
    const result = await demo.pendingTurn;
    expect(result.success).toBe(true);
    expect(result.response).toContain('APPROVAL_DENIED');
    const workspace = await demo.runtime.fileSystem(demo.filesSessionId);
    expect(await workspace.statFile(demo.pendingDeletePath)).not.toBeNull();
    const detail = JSON.parse(
      (await raw(readOnly, { path: `/api/sessions/${demo.filesSessionId}` })).body,
    );
    expect(detail.turns[0].toolCalls[0]).toMatchObject({
      name: 'delete_file',
      status: 'completed',
      isError: true,
    });
    expect(detail.approvals.decided).toHaveLength(1);
    expect(detail.hostPlan.plan.kind).toBe('complete');
  });
  it('lists and serves the parent of a subagent session (parentSessionId)', async () => {
    const parent = await demo.runtime.getSession(demo.mathSessionId);
    const child = await demo.runtime.createSession({
      harnessId: parent?.harnessId as string,
      parentSessionId: demo.mathSessionId,
      title: 'a subagent',
    });
    const listed = JSON.parse((await raw(readOnly, { path: '/api/sessions' })).body) as {
      id: string;
      parentSessionId?: string;
    }[];
    expect(listed.find((session) => session.id === child.id)?.parentSessionId).toBe(
      demo.mathSessionId,
    );
    expect(
      listed.find((session) => session.id === demo.mathSessionId)?.parentSessionId,
    ).toBeUndefined();
    const detail = JSON.parse((await raw(readOnly, { path: `/api/sessions/${child.id}` })).body);
    expect(detail.session.parentSessionId).toBe(demo.mathSessionId);
  });
});

describe('createInspectorHandler in an app server', () => {
  let demo: InspectorDemo;
  const servers: Server[] = [];

  beforeAll(async () => {
    demo = await createInspectorDemo();
  });

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
    await demo?.close();
  });

  async function serve(handler: ReturnType<typeof createInspectorHandler>) {
    const server = createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return { port } as InspectorServer;
  }

  it('serves loopback Host headers on any port and refuses other names unless allowed', async () => {
    const server = await serve(createInspectorHandler(demo.source));
    const get = (host: string) => raw(server, { path: '/api/sessions', headers: { host } });
    expect((await get(`127.0.0.1:${server.port}`)).status).toBe(200);
    expect((await get('localhost:8080')).status).toBe(200);
    expect((await get(`[::1]:${server.port}`)).status).toBe(200);
    const refused = await get(`attacker.example:${server.port}`);
    expect(refused.status).toBe(421);
    expect(JSON.parse(refused.body).error.code).toBe('HOST_NOT_ALLOWED');
    expect((await get('localhost.attacker.example')).status).toBe(421);

    const proxied = await serve(
      createInspectorHandler(demo.source, { allowedHosts: ['inspector.internal:443'] }),
    );
    const viaProxy = await raw(proxied, {
      path: '/api/sessions',
      headers: { host: 'inspector.internal:443' },
    });
    expect(viaProxy.status).toBe(200);
    expect(JSON.parse(viaProxy.body).map((session: { id: string }) => session.id)).toContain(
      demo.mathSessionId,
    );
  });

  it('is read-only by default and checks the origin of decisions like the server', async () => {
    const server = await serve(createInspectorHandler(demo.source, { allowApprovals: true }));
    const id = encodeURIComponent((await demo.approvals.pending())[0]?.id as string);
    const crossOrigin = await raw(server, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: { ...json, origin: 'http://attacker.example' },
      body: JSON.stringify({ decision: 'deny' }),
    });
    expect(crossOrigin.status).toBe(403);
    const readOnly = await serve(createInspectorHandler(demo.source));
    const refused = await raw(readOnly, {
      method: 'POST',
      path: `/api/approvals/${id}`,
      headers: json,
      body: JSON.stringify({ decision: 'deny' }),
    });
    expect(refused.status).toBe(403);
    expect(await demo.approvals.pending()).toHaveLength(1);
  });

  it('takes a runtime and records its turns; refuses invalid options with INVALID_INPUT', async () => {
    const handler = createInspectorHandler(demo.runtime);
    expect(handler.source.label).toBe('in-process runtime');
    const server = await serve(handler);
    const info = JSON.parse((await raw(server, { path: '/api/info' })).body);
    expect(info.label).toBe('in-process runtime');
    for (const options of [{ basePath: 'inspector' }, { basePath: '/a/' }, { heartbeatMs: 1 }]) {
      let caught: unknown;
      try {
        createInspectorHandler(demo.source, options);
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.isInstance(caught) && caught.code, JSON.stringify(options)).toBe(
        'INVALID_INPUT',
      );
    }
  });
});
