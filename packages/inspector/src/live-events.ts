import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, isEphemeralEventType, type RuntimeEvent } from '@everruns-ts/core';
import { z } from 'zod';
import type { InspectorSource } from './inspector-source.js';

/** Default interval of the comment lines that keep an idle event stream open. */
export const DEFAULT_HEARTBEAT_MS = 15_000;
/**
 * A client whose unsent output grows past this many bytes (it stopped reading) is disconnected;
 * its `EventSource` reconnects and the page reloads what it missed.
 */
export const MAX_UNSENT_BYTES = 1024 * 1024;

const SEQ = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a non-negative integer')
  .transform(Number);

/** The query of `GET /api/events`, and the `Last-Event-ID` header of a reconnecting client. */
export const liveEventsQuerySchema = z
  .object({
    sessionId: z.string().min(1).max(512).optional(),
    since: SEQ.optional(),
    lastEventId: SEQ.optional(),
  })
  .refine((query) => query.sessionId !== undefined || query.since === undefined, {
    message: 'since needs a sessionId (sequence numbers count per session)',
    path: ['since'],
  });

/** What a streamed event stream was asked for. */
export type LiveEventsQuery = z.infer<typeof liveEventsQuerySchema>;

/** A refused event stream request: answered with `status` and `code` before the stream starts. */
export class LiveEventsError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Reads and checks the query of `GET /api/events`. */
export function parseLiveEventsQuery(url: URL, request: IncomingMessage): LiveEventsQuery {
  const header = request.headers['last-event-id'];
  const parsed = liveEventsQuerySchema.safeParse({
    sessionId: url.searchParams.get('sessionId') ?? undefined,
    since: url.searchParams.get('since') ?? undefined,
    lastEventId: typeof header === 'string' && header !== '' ? header : undefined,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LiveEventsError(
      400,
      'INVALID_INPUT',
      `${issue?.path.join('.') || 'query'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}

/** Options of {@link streamLiveEvents}. */
export interface StreamLiveEventsOptions {
  source: InspectorSource;
  query: LiveEventsQuery;
  heartbeatMs: number;
}

/**
 * Answers `GET /api/events` with a `text/event-stream`: the source's events as they are emitted
 * (ephemeral deltas included), each a `message` whose data is the event's JSON. With a
 * `sessionId`, only that session's events; kept events then carry their `seq` as the SSE `id`,
 * so a reconnecting `EventSource` (its `Last-Event-ID`) or `?since=<seq>` first receives the kept
 * events it missed. An `event: ready` message tells the client the subscription is in place.
 * Comment lines every `heartbeatMs` keep proxies from closing an idle stream. The subscription
 * ends when the client disconnects.
 */
export async function streamLiveEvents(
  response: ServerResponse,
  options: StreamLiveEventsOptions,
): Promise<void> {
  const { source, query } = options;
  const subscribe = source.subscribe;
  if (!subscribe) {
    throw new LiveEventsError(
      501,
      'LIVE_UNAVAILABLE',
      `The source ${source.label} cannot follow sessions live; reload instead`,
    );
  }
  const sessionId = query.sessionId;
  if (sessionId !== undefined && !(await source.getSession(sessionId))) {
    throw new LiveEventsError(404, 'SESSION_NOT_FOUND', `No session ${sessionId}`);
  }
  const since = query.lastEventId ?? query.since;

  let closed = false;
  let lastSentSeq = since ?? 0;
  // Events that arrive while the missed ones load; sent after them.
  let pending: RuntimeEvent[] | undefined = since === undefined ? undefined : [];
  const write = (text: string) => {
    if (closed) return;
    response.write(text);
    if (response.writableLength > MAX_UNSENT_BYTES) response.destroy();
  };
  const send = (event: RuntimeEvent) => {
    const ephemeral = event.ephemeral === true || isEphemeralEventType(event.type);
    if (sessionId !== undefined && !ephemeral) {
      if (event.seq <= lastSentSeq) return;
      lastSentSeq = event.seq;
      write(`id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
      return;
    }
    write(`data: ${JSON.stringify(event)}\n\n`);
  };
  const unsubscribe = subscribe(
    (event) => {
      if (closed || (sessionId !== undefined && event.sessionId !== sessionId)) return;
      if (pending) pending.push(event);
      else send(event);
    },
    sessionId === undefined ? {} : { sessionId },
  );
  const heartbeat = setInterval(() => write(': heartbeat\n\n'), options.heartbeatMs);
  heartbeat.unref();
  const cleanUp = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe();
    // A subscription left before it was ready rejects its `ready`; nobody waits for it then.
    unsubscribe.ready?.catch(() => undefined);
  };
  // Fires when the client disconnects (or the server closes the connection).
  response.once('close', cleanUp);

  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-accel-buffering': 'no',
    connection: 'keep-alive',
  });
  write('retry: 2000\n\n');
  if (unsubscribe.ready) {
    try {
      await unsubscribe.ready;
    } catch (error) {
      // Ending the stream makes the EventSource reconnect after `retry`.
      write(`event: failure\ndata: ${JSON.stringify({ message: errorMessage(error) })}\n\n`);
      response.end();
      return;
    }
  }
  write(
    `event: ready\ndata: ${JSON.stringify({ sessionId: sessionId ?? null, since: since ?? null })}\n\n`,
  );
  if (since === undefined || sessionId === undefined) return;
  try {
    for (const event of await source.events(sessionId)) {
      if (event.seq > since && !isEphemeralEventType(event.type)) send(event);
    }
  } catch (error) {
    write(`event: failure\ndata: ${JSON.stringify({ message: errorMessage(error) })}\n\n`);
  }
  const buffered = pending ?? [];
  pending = undefined;
  for (const event of buffered) send(event);
}
