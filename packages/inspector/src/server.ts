import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AssembledTurnContext,
  definitionWithoutSecrets,
  EverrunsError,
  errorMessage,
  everrunsError,
  isEphemeralEventType,
  type Session,
  turnContextWithoutSecrets,
} from '@everruns-ts/core';
import type { InProcessRuntime } from '@everruns-ts/runtime';
import { z } from 'zod';
import type { ApprovalDecision } from './inspector-approvals.js';
import {
  type InspectorSource,
  type RuntimeInspectorSourceOptions,
  runtimeInspectorSource,
} from './inspector-source.js';
import {
  DEFAULT_HEARTBEAT_MS,
  LiveEventsError,
  parseLiveEventsQuery,
  streamLiveEvents,
} from './live-events.js';
import { buildTimeline, buildTurns, replayHostPlan } from './session-view.js';

/** Options of {@link createInspectorHandler}. */
export interface InspectorHandlerOptions {
  /**
   * Let the page approve or deny pending file operations. Default false: the buttons are
   * disabled and `POST /api/approvals/:id` answers 403.
   */
  allowApprovals?: boolean;
  /**
   * `Host` header values (`name:port`) to accept besides loopback ones. By default only a host
   * named `127.0.0.1`, `localhost` or `[::1]` is served (any port), which stops other web sites
   * from reading the API through DNS rebinding. Add your proxy's or DNS name here.
   */
  allowedHosts?: string[];
  /**
   * Serve any `Host` header. Only for a server that is reachable from elsewhere on purpose and
   * guarded by your own authentication. Default false.
   */
  allowAnyHost?: boolean;
  /**
   * Path prefix the handler is mounted under, for example `/inspector` (the page is then at
   * `/inspector/`). Requests outside it answer 404. Default: the root.
   */
  basePath?: string;
  /**
   * Milliseconds between the comment lines that keep an idle `GET /api/events` stream open.
   * Default 15,000; 10..3,600,000.
   */
  heartbeatMs?: number;
  /** Options of {@link runtimeInspectorSource} when the handler is given a runtime. */
  runtimeSource?: RuntimeInspectorSourceOptions;
}

/**
 * A Node request handler serving the inspector page and its JSON API, for an app's own
 * `http.createServer` (or anything that passes Node's `IncomingMessage`/`ServerResponse`).
 */
export interface InspectorRequestHandler {
  (request: IncomingMessage, response: ServerResponse): void;
  /** Where the handler reads sessions from. */
  readonly source: InspectorSource;
}

/** Options of {@link startInspectorServer}. */
export interface InspectorServerOptions {
  /** Where sessions are read from. */
  source: InspectorSource;
  /** TCP port; `0` picks a free one. Default 4780. */
  port?: number;
  /**
   * Address to listen on. Default `127.0.0.1`: only this machine can connect. Anything else
   * exposes every session's messages to the network; set it deliberately.
   */
  host?: string;
  /**
   * Let the page approve or deny pending file operations. Default false: the buttons are
   * disabled and `POST /api/approvals/:id` answers 403.
   */
  allowApprovals?: boolean;
  /**
   * Further `Host` header values to accept (for a proxy or a DNS name). On a loopback address
   * only `127.0.0.1:<port>`, `localhost:<port>` and `[::1]:<port>` are accepted, which stops
   * other web sites from reading the API through DNS rebinding.
   */
  allowedHosts?: string[];
  /**
   * Milliseconds between the comment lines that keep an idle `GET /api/events` stream open.
   * Default 15,000; 10..3,600,000.
   */
  heartbeatMs?: number;
}

/** A running inspector. */
export interface InspectorServer {
  /** For example `http://127.0.0.1:4780/`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly server: Server;
  /**
   * Stops listening and closes open connections (event streams included). Does not close the
   * source. Calling it again returns the first call's promise.
   */
  close(): Promise<void>;
}

const PUBLIC_DIR = new URL('../public/', import.meta.url);
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.ico': { file: 'favicon.ico', type: 'image/x-icon' },
};
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const LOOPBACK_HOST_HEADER = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$/i;
const MAX_BODY_BYTES = 16 * 1024;

const handlerOptionsSchema = z.object({
  allowApprovals: z.boolean().optional(),
  allowedHosts: z.array(z.string().min(1)).optional(),
  allowAnyHost: z.boolean().optional(),
  basePath: z
    .string()
    .regex(/^(?:\/[A-Za-z0-9._~-]+)+$/, 'basePath is a path such as /inspector (no trailing /)')
    .optional(),
  heartbeatMs: z.number().int().min(10).max(3_600_000).optional(),
  runtimeSource: z.looseObject({}).optional(),
});

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The inspector as a Node `(request, response)` handler, to serve it from an app's own HTTP
 * server: give it the app's {@link InProcessRuntime} (its contexts are recorded from now on) or
 * any {@link InspectorSource}. Read-only unless `allowApprovals` is set; only loopback `Host`
 * headers are served unless `allowedHosts` or `allowAnyHost` say otherwise. Where the server
 * listens is the app's choice: keep it on 127.0.0.1 unless the page is guarded.
 *
 * @example
 * ```ts
 * const handler = createInspectorHandler(runtime, { basePath: '/inspector' });
 * createServer((req, res) => {
 *   if (req.url?.startsWith('/inspector')) return handler(req, res);
 *   res.end('my app');
 * }).listen(3000, '127.0.0.1');
 * ```
 */
export function createInspectorHandler(
  target: InProcessRuntime | InspectorSource,
  options: InspectorHandlerOptions = {},
): InspectorRequestHandler {
  const parsed = handlerOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw everrunsError('INVALID_INPUT', `Invalid inspector options: ${parsed.error.message}`, {
      details: { issues: parsed.error.issues },
    });
  }
  const source = isInspectorSource(target)
    ? target
    : runtimeInspectorSource(target, options.runtimeSource);
  const allowed = new Set(options.allowedHosts ?? []);
  const handle = requestHandler({
    source,
    allowApprovals: options.allowApprovals === true,
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    basePath: options.basePath ?? '',
    hostAllowed: (hostHeader) =>
      options.allowAnyHost === true ||
      LOOPBACK_HOST_HEADER.test(hostHeader) ||
      allowed.has(hostHeader),
  });
  const handler = ((request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => sendError(response, error));
  }) as InspectorRequestHandler;
  Object.defineProperty(handler, 'source', { value: source, enumerable: true });
  return handler;
}

function isInspectorSource(target: InProcessRuntime | InspectorSource): target is InspectorSource {
  return typeof (target as Partial<InspectorSource>).listSessions === 'function';
}

interface HandlerParts {
  source: InspectorSource;
  allowApprovals: boolean;
  heartbeatMs: number;
  basePath: string;
  hostAllowed(hostHeader: string): boolean;
}

function requestHandler(parts: HandlerParts) {
  const { source, allowApprovals, heartbeatMs, basePath } = parts;
  return async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const hostHeader = request.headers.host ?? '';
    if (!parts.hostAllowed(hostHeader)) {
      throw new HttpError(421, 'HOST_NOT_ALLOWED', `Host ${hostHeader} is not served here`);
    }
    const url = new URL(request.url ?? '/', `http://${hostHeader || 'localhost'}`);
    const method = request.method ?? 'GET';
    if (basePath && url.pathname === basePath && method === 'GET') {
      response.writeHead(308, { location: `${basePath}/${url.search}` });
      response.end();
      return;
    }
    if (basePath && !url.pathname.startsWith(`${basePath}/`)) {
      throw new HttpError(404, 'NOT_FOUND', `No page at ${url.pathname}`);
    }
    const path = url.pathname.slice(basePath.length);

    if (method === 'GET' && STATIC_FILES[path]) {
      const entry = STATIC_FILES[path];
      const body = await readFile(new URL(entry.file, PUBLIC_DIR));
      response.writeHead(200, {
        'content-type': entry.type,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'content-security-policy':
          "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      });
      response.end(body);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'NOT_FOUND', `No page at ${path}`);
    const segments = path.slice('/api/'.length).split('/').map(decodeURIComponent);

    if (method === 'POST') {
      if (segments[0] === 'approvals' && segments.length === 2) {
        checkSameOrigin(request, hostHeader);
        if (!allowApprovals) {
          throw new HttpError(
            403,
            'APPROVALS_DISABLED',
            'This inspector is read-only: start it with --allow-approvals (allowApprovals: true) to decide approvals',
          );
        }
        if (!source.approvals) throw new HttpError(404, 'NO_APPROVALS', 'No approval queue');
        const body = await readJsonBody(request);
        const decision = (body as { decision?: unknown }).decision;
        if (decision !== 'approve' && decision !== 'deny') {
          throw new HttpError(400, 'INVALID_INPUT', 'decision must be "approve" or "deny"');
        }
        const decided = await source.approvals.decide(
          segments[1] as string,
          decision as ApprovalDecision,
        );
        if (!decided) {
          throw new HttpError(404, 'APPROVAL_NOT_FOUND', `No pending approval ${segments[1]}`);
        }
        sendJson(response, 200, decided);
        return;
      }
      throw new HttpError(404, 'NOT_FOUND', `No endpoint POST ${path}`);
    }
    if (method !== 'GET') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} not allowed`);

    if (segments[0] === 'info' && segments.length === 1) {
      sendJson(response, 200, {
        label: source.label,
        allowApprovals,
        approvalsAvailable: source.approvals !== undefined,
        live: source.subscribe !== undefined,
      });
      return;
    }
    if (segments[0] === 'events' && segments.length === 1) {
      const query = parseLiveEventsQuery(url, request);
      await streamLiveEvents(response, { source, query, heartbeatMs });
      return;
    }
    if (segments[0] === 'approvals' && segments.length === 1) {
      sendJson(response, 200, {
        allowApprovals,
        pending: (await source.approvals?.pending()) ?? [],
        decided: (await source.approvals?.decided()) ?? [],
      });
      return;
    }
    if (segments[0] === 'sessions' && segments.length === 1) {
      const sessions = await source.listSessions();
      const pendingBySession = new Map<string, number>();
      for (const entry of (await source.approvals?.pending()) ?? []) {
        if (entry.sessionId === undefined) continue;
        pendingBySession.set(entry.sessionId, (pendingBySession.get(entry.sessionId) ?? 0) + 1);
      }
      sendJson(
        response,
        200,
        sessions.map((session) => ({
          id: session.id,
          title: session.title,
          status: session.status,
          harnessId: session.harnessId,
          agentId: session.agentId,
          parentSessionId: session.parentSessionId,
          createdAt: session.createdAt,
          updatedAt: session.updatedAt,
          pendingApprovals: pendingBySession.get(session.id) ?? 0,
        })),
      );
      return;
    }
    if (segments[0] === 'sessions' && segments.length >= 2) {
      const sessionId = segments[1] as string;
      const session = await source.getSession(sessionId);
      if (!session) throw new HttpError(404, 'SESSION_NOT_FOUND', `No session ${sessionId}`);
      if (segments.length === 2) {
        sendJson(response, 200, await sessionDetail(source, session));
        return;
      }
      if (segments[2] === 'context' && segments.length === 3) {
        sendJson(response, 200, {
          source: 'current',
          contexts: shownContexts([await source.loadContext(sessionId)]),
        });
        return;
      }
      if (segments[2] === 'turns' && segments[4] === 'context' && segments.length === 5) {
        const kept = await source.turnContexts(sessionId, segments[3] as string);
        sendJson(response, 200, { ...kept, contexts: shownContexts(kept.contexts) });
        return;
      }
      if (segments[2] === 'files' && segments.length === 3) {
        sendJson(response, 200, source.listFiles ? await source.listFiles(sessionId) : []);
        return;
      }
    }
    throw new HttpError(404, 'NOT_FOUND', `No endpoint GET ${path}`);
  };
}

/**
 * Starts the inspector: a small HTTP server for the page (`/`) and its JSON API (`/api/...`).
 * Read-only unless `allowApprovals` is set; listens on 127.0.0.1 unless `host` says otherwise.
 * To serve the page from your own server instead, use {@link createInspectorHandler}.
 */
export async function startInspectorServer(
  options: InspectorServerOptions,
): Promise<InspectorServer> {
  const host = options.host ?? '127.0.0.1';
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10 || heartbeatMs > 3_600_000) {
    throw everrunsError('INVALID_INPUT', 'heartbeatMs must be an integer in 10..3600000', {
      details: { heartbeatMs },
    });
  }
  let port = 0;
  const allowedHosts = () => {
    const hosts = new Set(options.allowedHosts ?? []);
    for (const name of ['127.0.0.1', 'localhost', '[::1]']) hosts.add(`${name}:${port}`);
    if (!LOOPBACK.has(host)) hosts.add(`${host.includes(':') ? `[${host}]` : host}:${port}`);
    return hosts;
  };
  const handle = requestHandler({
    source: options.source,
    allowApprovals: options.allowApprovals === true,
    heartbeatMs,
    basePath: '',
    // On a loopback address only this port's loopback names (and the allowed ones) are served.
    hostAllowed: (hostHeader) => !LOOPBACK.has(host) || allowedHosts().has(hostHeader),
  });
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => sendError(response, error));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4780, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/`,
    port,
    host,
    server,
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Open event streams end here; their subscriptions close with them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function sessionDetail(source: InspectorSource, session: Session) {
  const sessionId = session.id;
  const status = session.status;
  const [messages, allEvents] = await Promise.all([
    source.messages(sessionId),
    source.events(sessionId),
  ]);
  // Deltas are never kept; a bus that still returns them would only clutter the views.
  const events = allEvents.filter((event) => !isEphemeralEventType(event.type));
  let maxIterations = source.limits().maxIterations;
  let contextError: { code: string; message: string } | undefined;
  try {
    maxIterations = (await source.loadContext(sessionId)).maxIterations;
  } catch (error) {
    contextError = describeError(error);
  }
  let hostPlan: ReturnType<typeof replayHostPlan>;
  let hostPlanError: { code: string; message: string } | undefined;
  try {
    hostPlan = replayHostPlan(sessionId, messages, events, {
      maxIterations,
      maxRepeatedToolCalls: source.limits().maxRepeatedToolCalls,
      sessionStatus: status,
    });
  } catch (error) {
    hostPlanError = describeError(error);
  }
  let files: unknown[] = [];
  let filesError: { code: string; message: string } | undefined;
  try {
    files = source.listFiles ? await source.listFiles(sessionId) : [];
  } catch (error) {
    filesError = describeError(error);
  }
  return {
    // Shown to people: an MCP server's env and header values are secrets (never served).
    session: definitionWithoutSecrets(session),
    messages,
    events,
    timeline: buildTimeline(messages, events),
    turns: buildTurns(messages, events),
    hostPlan,
    hostPlanError,
    contextError,
    files,
    filesError,
    approvals: {
      pending: (await source.approvals?.pending(sessionId)) ?? [],
      decided: (await source.approvals?.decided(sessionId)) ?? [],
    },
  };
}

function checkSameOrigin(request: IncomingMessage, hostHeader: string): void {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${hostHeader}`) {
    throw new HttpError(403, 'CROSS_ORIGIN', 'Requests from other origins are refused');
  }
  const type = request.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/json')) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send application/json');
  }
}

async function readJsonBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'TOO_LARGE', 'Body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value;
  } catch {
    throw new HttpError(400, 'INVALID_INPUT', 'The body must be a JSON object');
  }
}

function describeError(error: unknown): { code: string; message: string } {
  if (EverrunsError.isInstance(error)) return { code: error.code, message: error.message };
  if (error instanceof HttpError || error instanceof LiveEventsError) {
    return { code: error.code, message: error.message };
  }
  return { code: 'INTERNAL', message: errorMessage(error) };
}

/** Contexts as the page may show them: whatever the source, never a provider key. */
function shownContexts(contexts: readonly AssembledTurnContext[]): AssembledTurnContext[] {
  return contexts.map(turnContextWithoutSecrets);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(body);
}

function sendError(response: ServerResponse, error: unknown): void {
  let status = 500;
  if (error instanceof HttpError || error instanceof LiveEventsError) status = error.status;
  else if (EverrunsError.isInstance(error)) {
    status = error.code.endsWith('_NOT_FOUND') ? 404 : error.code === 'INVALID_INPUT' ? 400 : 500;
  }
  if (response.headersSent) {
    response.destroy();
    return;
  }
  sendJson(response, status, { error: describeError(error) });
}
