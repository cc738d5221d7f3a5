import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

// A fake provider server on 127.0.0.1 (Node only) for testing an HTTP driver: it records every
// request and answers from a script, one reply per request; plus ways to feed the driver bytes
// in awkward pieces.

/** One request the fake server received; `body` is the parsed JSON, if any. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A scripted answer to one request. */
export type Reply = (response: ServerResponse, request: IncomingMessage) => Promise<void> | void;

/** A running fake provider server. */
export interface FakeServer {
  /** `http://127.0.0.1:<port>` followed by the `basePath` it was started with. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Resolves when a request's connection has closed, whether it finished or not. */
  closedConnections: Promise<void>[];
  /** The server side of each request, to cut a connection from the test. */
  responses: ServerResponse[];
  close(): Promise<void>;
}

const runningServers: FakeServer[] = [];

/** Closes every server {@link startFakeServer} started and has not closed yet (for `afterEach`). */
export async function closeFakeServers(): Promise<void> {
  await Promise.all(runningServers.splice(0).map((server) => server.close()));
}

/**
 * Starts a fake server that answers its n-th request with `replies[n]` (a request beyond the
 * script gets a 599). `basePath` is appended to its `baseUrl`, for example `/v1`.
 */
export async function startFakeServer(
  replies: Reply[],
  options: { basePath?: string } = {},
): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  const closedConnections: Promise<void>[] = [];
  const responses: ServerResponse[] = [];
  const server = createServer((request, response) => {
    responses.push(response);
    closedConnections.push(new Promise((resolve) => response.on('close', () => resolve())));
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      requests.push({
        method: request.method ?? '',
        path: request.url ?? '',
        headers: request.headers,
        body: text === '' ? undefined : JSON.parse(text),
      });
      const reply = replies[requests.length - 1];
      if (!reply) {
        response.writeHead(599).end('no scripted reply');
        return;
      }
      Promise.resolve(reply(response, request)).catch(() => response.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake: FakeServer = {
    baseUrl: `http://127.0.0.1:${port}${options.basePath ?? ''}`,
    requests,
    closedConnections,
    responses,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  runningServers.push(fake);
  return fake;
}

/** Replies with a JSON body. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return (response) => {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(body));
  };
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 2));

/**
 * Replies with an event stream written in the given pieces, pausing between them so the client
 * reads them separately. `end: 'cut'` destroys the socket after the last piece, `end: 'hold'`
 * keeps the response open until the client goes away.
 */
export function sse(
  pieces: Array<string | Buffer>,
  end: 'finish' | 'cut' | 'hold' = 'finish',
): Reply {
  return async (response) => {
    response.socket?.setNoDelay(true);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.flushHeaders();
    for (const piece of pieces) {
      response.write(piece);
      await pause();
    }
    if (end === 'finish') response.end();
    else if (end === 'cut') response.socket?.destroy();
  };
}

/**
 * A reply that stalls at one point of the exchange, until the client goes away: `headers` never
 * sends the status line, `first-byte` sends status and headers of an event stream but no body,
 * `idle` sends `pieces` and then nothing more.
 */
export function stall(point: 'headers' | 'first-byte' | 'idle', pieces: string[] = []): Reply {
  if (point === 'headers') return () => undefined;
  if (point === 'first-byte') {
    return (response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.flushHeaders();
    };
  }
  return sse(pieces, 'hold');
}

/**
 * Replies with an event stream whose pieces come `delayMs` apart, each gap shorter than an idle
 * timeout while the whole takes long: to prove a total timeout.
 */
export function slowSse(pieces: string[], delayMs: number): Reply {
  return async (response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.flushHeaders();
    for (const piece of pieces) {
      if (response.destroyed) return;
      response.write(piece);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    if (!response.destroyed) response.end();
  };
}

/**
 * The pieces of `text` cut at `count` pseudo-random UTF-8 byte offsets drawn from `seed` (the
 * same seed gives the same cuts), to replay a recorded stream in awkward pieces.
 */
export function splitAtRandomBytes(text: string, count: number, seed: number): Buffer[] {
  const length = Buffer.byteLength(text, 'utf8');
  let state = seed >>> 0 || 1;
  const offsets = new Set<number>();
  for (let each = 0; each < count && length > 1; each += 1) {
    state = (state * 1_103_515_245 + 12_345) >>> 0;
    offsets.add(1 + (state % (length - 1)));
  }
  return splitBytes(text, [...offsets]);
}

/** Splits `text` (as UTF-8 bytes) right after each given byte offset. */
export function splitBytes(text: string, offsets: number[]): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const pieces: Buffer[] = [];
  let start = 0;
  for (const offset of [...offsets].sort((left, right) => left - right)) {
    pieces.push(bytes.subarray(start, offset));
    start = offset;
  }
  pieces.push(bytes.subarray(start));
  return pieces;
}

/** A `fetch` that hands the driver the response body one byte at a time. */
export const byteByByteFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const source = response.body;
  if (!source) return response;
  const reader = source.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      for (const byte of value) controller.enqueue(new Uint8Array([byte]));
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
};
