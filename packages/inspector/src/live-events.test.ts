import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { isEphemeralEventType, type RuntimeEvent } from '@everruns-ts/core';
import {
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  inMemoryBackends,
  LlmSimConfig,
} from '@everruns-ts/runtime';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  backendsInspectorSource,
  type InspectorSource,
  runtimeInspectorSource,
} from './inspector-source.js';
import { type InspectorServer, startInspectorServer } from './server.js';

const POLL = { timeout: 20_000, interval: 20 };

/** One message of an event stream, as an `EventSource` would dispatch it. */
interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/** A raw `GET /api/events` connection that parses the stream as it arrives. */
interface SseConnection {
  status: number;
  headers: IncomingMessage['headers'];
  messages: SseMessage[];
  /** Everything received, comments included. */
  raw(): string;
  /** The data of the `message` events, parsed. */
  events(): RuntimeEvent[];
  closed(): boolean;
  close(): void;
  request: ClientRequest;
  response: IncomingMessage;
}

function connect(
  server: InspectorServer,
  path: string,
  headers: Record<string, string> = {},
  options: { read?: boolean } = {},
): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: '127.0.0.1', port: server.port, path, headers },
      (response) => {
        let text = '';
        let buffer = '';
        let closed = false;
        const messages: SseMessage[] = [];
        response.on('close', () => {
          closed = true;
        });
        if (options.read !== false) {
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            text += chunk;
            buffer += chunk;
            for (;;) {
              const end = buffer.indexOf('\n\n');
              if (end < 0) break;
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const message: SseMessage = { event: 'message', data: '', id: undefined };
              let hasData = false;
              for (const line of block.split('\n')) {
                if (line.startsWith(':')) continue;
                const colon = line.indexOf(':');
                const field = colon < 0 ? line : line.slice(0, colon);
                const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
                if (field === 'event') message.event = value;
                else if (field === 'id') message.id = value;
                else if (field === 'data') {
                  message.data += hasData ? `\n${value}` : value;
                  hasData = true;
                }
              }
              if (hasData) messages.push(message);
            }
          });
        } else {
          response.pause();
        }
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          messages,
          raw: () => text,
          events: () =>
            messages
              .filter((message) => message.event === 'message')
              .map((message) => JSON.parse(message.data) as RuntimeEvent),
          closed: () => closed,
          close: () => outgoing.destroy(),
          request: outgoing,
          response,
        });
      },
    );
    outgoing.on('error', (error) => {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(error);
    });
    outgoing.end();
  });
}

async function ready(connection: SseConnection): Promise<void> {
  expect(connection.status).toBe(200);
  await expect
    .poll(() => connection.messages.some((message) => message.event === 'ready'), POLL)
    .toBe(true);
}

/** The source, counting the subscriptions still open. */
function countingSource(source: InspectorSource): { source: InspectorSource; open: () => number } {
  let open = 0;
  const subscribe = source.subscribe;
  if (!subscribe) throw new Error('the source cannot follow');
  return {
    source: {
      ...source,
      subscribe(listener, options) {
        open += 1;
        const unsubscribe = subscribe(listener, options);
        let done = false;
        return () => {
          if (done) return;
          done = true;
          open -= 1;
          unsubscribe();
        };
      },
    },
    open: () => open,
  };
}

function keptOnly(events: RuntimeEvent[]): RuntimeEvent[] {
  return events.filter((event) => !isEphemeralEventType(event.type));
}

describe('the inspector event stream (GET /api/events)', () => {
  let runtime: InProcessRuntime;
  let sessionId: string;
  let otherSessionId: string;
  let counted: ReturnType<typeof countingSource>;
  let server: InspectorServer;

  beforeEach(async () => {
    runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.sequence(['', '4']).withToolCallSequence([
          [{ name: 'add', arguments: { a: 2, b: 2 } }],
          [],
        ]),
      )
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    sessionId = runtime.defaultSessionId() as string;
    const harnessId = (await runtime.getSession(sessionId))?.harnessId as string;
    otherSessionId = (await runtime.createSession({ harnessId, title: 'other' })).id;
    counted = countingSource(runtimeInspectorSource(runtime));
    server = await startInspectorServer({ source: counted.source, port: 0, heartbeatMs: 25 });
  });

  afterEach(async () => {
    await server?.close();
    await runtime?.close();
  });

  it("streams a session's events in emission order, deltas included, as text/event-stream", async () => {
    const stream = await connect(server, `/api/events?sessionId=${sessionId}`);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-store');
    await ready(stream);

    const bus = runtime.backends.events;
    const turnId = 'turn_live_test';
    await bus.emit({
      type: 'output.message.delta',
      sessionId,
      turnId,
      data: { iteration: 1, delta: 'Hel', offset: 0 },
    });
    await bus.emit({
      type: 'reason.thinking.delta',
      sessionId,
      turnId,
      data: { iteration: 1, delta: 'thinking', offset: 0 },
    });
    await bus.emit({
      type: 'output.message.delta',
      sessionId,
      turnId,
      data: { iteration: 1, delta: 'lo', offset: 3 },
    });
    await bus.emit({
      type: 'output.message.delta',
      sessionId: otherSessionId,
      data: { delta: 'x' },
    });
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    expect(result.success).toBe(true);

    const kept = keptOnly(runtime.events(sessionId));
    await expect.poll(() => keptOnly(stream.events()).length, POLL).toBe(kept.length);
    const received = stream.events();
    expect(received.map((event) => event.sessionId)).toEqual(received.map(() => sessionId));
    expect(received.slice(0, 3).map((event) => [event.type, event.data.delta])).toEqual([
      ['output.message.delta', 'Hel'],
      ['reason.thinking.delta', 'thinking'],
      ['output.message.delta', 'lo'],
    ]);
    expect(keptOnly(received)).toEqual(JSON.parse(JSON.stringify(kept)));
    // Kept events carry their seq as the SSE id (a reconnecting EventSource sends it back);
    // deltas carry none, so the last id stays that of the last kept event.
    const ids = stream.messages
      .filter((message) => message.event === 'message')
      .map((message) => message.id);
    expect(ids.slice(0, 3)).toEqual([undefined, undefined, undefined]);
    expect(ids.slice(3)).toEqual(kept.map((event) => String(event.seq)));
    expect(received.at(-1)?.type).toBe('session.idled');
    stream.close();
  });

  it('streams every session without a sessionId', async () => {
    const stream = await connect(server, '/api/events');
    await ready(stream);
    await runtime.backends.events.emit({
      type: 'output.message.delta',
      sessionId: otherSessionId,
      data: { delta: 'elsewhere' },
    });
    await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    await expect.poll(() => stream.events().at(-1)?.type, POLL).toBe('session.idled');
    const received = stream.events();
    expect(received[0]).toMatchObject({ sessionId: otherSessionId, data: { delta: 'elsewhere' } });
    expect(keptOnly(received.slice(1))).toEqual(
      JSON.parse(JSON.stringify(keptOnly(runtime.events(sessionId)))),
    );
    stream.close();
  });

  it('sends the kept events after since or Last-Event-ID first, then live ones, without duplicates', async () => {
    await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    const first = keptOnly(runtime.events(sessionId));
    expect(first.length).toBeGreaterThan(5);

    const since = await connect(server, `/api/events?sessionId=${sessionId}&since=3`);
    await ready(since);
    const resumed = await connect(server, `/api/events?sessionId=${sessionId}`, {
      'last-event-id': '5',
    });
    await ready(resumed);
    await expect.poll(() => since.events().length, POLL).toBe(first.length - 3);
    await expect.poll(() => resumed.events().length, POLL).toBe(first.length - 5);

    await runtime.runTextTurn(sessionId, 'Again?');
    const all = keptOnly(runtime.events(sessionId));
    const expected = (after: number) =>
      JSON.parse(JSON.stringify(all.filter((event) => event.seq > after)));
    await expect.poll(() => since.events().length, POLL).toBe(all.length - 3);
    await expect.poll(() => resumed.events().length, POLL).toBe(all.length - 5);
    expect(since.events()).toEqual(expected(3));
    expect(resumed.events()).toEqual(expected(5));
    since.close();
    resumed.close();
  });

  it('closes the subscription when the client disconnects: no listener left after 25 connections', async () => {
    expect(counted.open()).toBe(0);
    const streams: SseConnection[] = [];
    for (let index = 0; index < 25; index += 1) {
      const stream = await connect(
        server,
        index % 2 === 0 ? '/api/events' : `/api/events?sessionId=${sessionId}`,
      );
      await ready(stream);
      streams.push(stream);
    }
    expect(counted.open()).toBe(25);
    for (const stream of streams) stream.close();
    await expect.poll(() => counted.open(), POLL).toBe(0);

    // An event emitted now reaches nobody, and the server keeps working.
    await runtime.backends.events.emit({
      type: 'output.message.delta',
      sessionId,
      data: { delta: 'after' },
    });
    const again = await connect(server, `/api/events?sessionId=${sessionId}`);
    await ready(again);
    expect(counted.open()).toBe(1);
    // Closing the server ends open streams and their subscriptions.
    await server.close();
    await expect.poll(() => again.closed(), POLL).toBe(true);
    expect(counted.open()).toBe(0);
  });

  it('disconnects a client that stops reading before its unsent output grows without bound', async () => {
    const stalled = await connect(
      server,
      `/api/events?sessionId=${sessionId}`,
      {},
      { read: false },
    );
    expect(stalled.status).toBe(200);
    await expect.poll(() => counted.open(), POLL).toBe(1);
    const piece = 'x'.repeat(64 * 1024);
    for (let index = 0; index < 400 && counted.open() > 0; index += 1) {
      await runtime.backends.events.emit({
        type: 'output.message.delta',
        sessionId,
        data: { delta: piece },
      });
    }
    await expect.poll(() => counted.open(), POLL).toBe(0);
    stalled.close();
  });

  it('sends heartbeat comments while idle', async () => {
    const stream = await connect(server, `/api/events?sessionId=${sessionId}`);
    await ready(stream);
    await expect.poll(() => stream.raw().includes('\n: heartbeat\n\n'), POLL).toBe(true);
    expect(stream.events()).toEqual([]);
    stream.close();
  });

  it('refuses other hosts, bad queries and unknown sessions before streaming', async () => {
    const rebinding = await connect(server, '/api/events', {
      host: `attacker.example:${server.port}`,
    });
    expect(rebinding.status).toBe(421);
    const sinceWithoutSession = await connect(server, '/api/events?since=3');
    expect(sinceWithoutSession.status).toBe(400);
    const badSince = await connect(server, `/api/events?sessionId=${sessionId}&since=-1`);
    expect(badSince.status).toBe(400);
    const badLastId = await connect(server, `/api/events?sessionId=${sessionId}`, {
      'last-event-id': 'abc',
    });
    expect(badLastId.status).toBe(400);
    const missing = await connect(server, '/api/events?sessionId=session_missing');
    expect(missing.status).toBe(404);
    await expect.poll(() => missing.closed(), POLL).toBe(true);
    expect(JSON.parse(missing.raw()).error.code).toBe('SESSION_NOT_FOUND');
    expect(counted.open()).toBe(0);
  });

  it('reports live following in /api/info, and a source that cannot follow answers 501', async () => {
    const info = await (await fetch(`${server.url}api/info`)).json();
    expect(info.live).toBe(true);
    const backends = inMemoryBackends();
    const still = await startInspectorServer({
      source: backendsInspectorSource({ backends, follow: false }),
      port: 0,
    });
    try {
      expect((await (await fetch(`${still.url}api/info`)).json()).live).toBe(false);
      const response = await fetch(`${still.url}api/events`);
      expect(response.status).toBe(501);
      expect((await response.json()).error.code).toBe('LIVE_UNAVAILABLE');
    } finally {
      await still.close();
    }
  });

  it('refuses a heartbeat interval out of range', async () => {
    await expect(
      startInspectorServer({ source: counted.source, port: 0, heartbeatMs: 0 }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('says ready only once a cross-process subscription is in place, and ends the stream when it fails', async () => {
    const inner = runtimeInspectorSource(runtime);
    const innerSubscribe = inner.subscribe as NonNullable<InspectorSource['subscribe']>;
    const settle: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
    const sessionFilters: Array<string | undefined> = [];
    let open = 0;
    const slow: InspectorSource = {
      ...inner,
      subscribe(listener, options) {
        open += 1;
        sessionFilters.push(options?.sessionId);
        const unsubscribe = innerSubscribe(listener, options);
        let resolve: () => void = () => undefined;
        let reject: (error: Error) => void = () => undefined;
        const ready = new Promise<void>((yes, no) => {
          resolve = yes;
          reject = no;
        });
        settle.push({ resolve, reject });
        return Object.assign(
          () => {
            open -= 1;
            unsubscribe();
          },
          { ready },
        );
      },
    };
    const waiting = await startInspectorServer({ source: slow, port: 0 });
    try {
      const first = await connect(waiting, `/api/events?sessionId=${sessionId}`);
      await expect.poll(() => settle.length, POLL).toBe(1);
      expect(sessionFilters).toEqual([sessionId]);
      // Headers are out (a browser's EventSource stays open), but not ready yet.
      expect(first.status).toBe(200);
      expect(first.messages).toEqual([]);
      settle[0]?.resolve();
      await ready(first);
      await runtime.backends.events.emit({
        type: 'output.message.delta',
        sessionId,
        data: { delta: 'now' },
      });
      await expect
        .poll(() => first.events().map((event) => event.data.delta), POLL)
        .toEqual(['now']);
      first.close();

      const failing = await connect(waiting, '/api/events');
      await expect.poll(() => settle.length, POLL).toBe(2);
      expect(sessionFilters[1]).toBeUndefined();
      settle[1]?.reject(new Error('LISTEN failed'));
      await expect.poll(() => failing.closed(), POLL).toBe(true);
      expect(failing.messages.map((message) => message.event)).toEqual(['failure']);
      expect(JSON.parse(failing.messages[0]?.data as string).message).toBe('LISTEN failed');
      await expect.poll(() => open, POLL).toBe(0);
    } finally {
      await waiting.close();
    }
  });

  it("streams a streamed turn's deltas between its kept events, in the order they were emitted", async () => {
    const streaming = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.chunked([[''], ['The sum ', 'is ', '4.']])
          .withReasoningSequence(['Adding two and two.', ''])
          .withToolCallSequence([[{ name: 'add', arguments: { a: 2, b: 2 } }], []])
          .withStreaming({ chunkSize: 5 }),
      )
      .singleSession((session) => session.harness('math', 'Math.').withCapability('test_math'))
      .build();
    const streamingSessionId = streaming.defaultSessionId() as string;
    const streamingServer = await startInspectorServer({
      source: runtimeInspectorSource(streaming),
      port: 0,
    });
    try {
      const stream = await connect(streamingServer, `/api/events?sessionId=${streamingSessionId}`);
      await ready(stream);
      const turn = streaming.streamTextTurn(streamingSessionId, 'What is 2 + 2?');
      for await (const _part of turn) {
        // drained
      }
      expect((await turn.result).response).toBe('The sum is 4.');
      await expect.poll(() => stream.events().at(-1)?.type, POLL).toBe('session.idled');
      const received = stream.events();
      // The kept events are exactly what the bus kept, and nothing else was kept.
      expect(keptOnly(received)).toEqual(
        JSON.parse(JSON.stringify(streaming.events(streamingSessionId))),
      );
      const deltas = received.filter((event) => isEphemeralEventType(event.type));
      expect(deltas.every((event) => event.ephemeral === true)).toBe(true);
      const pieces = (type: string, iteration: number) =>
        deltas
          .filter((event) => event.type === type && event.data.iteration === iteration)
          .map((event) => (event.data.delta ?? event.data.argumentsDelta) as string);
      expect(pieces('reason.thinking.delta', 1).join('')).toBe('Adding two and two.');
      expect(pieces('reason.thinking.delta', 1).length).toBeGreaterThan(1);
      expect(JSON.parse(pieces('tool.call.delta', 1).join(''))).toEqual({ a: 2, b: 2 });
      expect(pieces('output.message.delta', 2)).toEqual(['The sum ', 'is ', '4.']);
      // Every delta sits between its step's reason.started and output.message.completed.
      const types = received.map((event) =>
        isEphemeralEventType(event.type) ? `delta@${event.data.iteration}` : event.type,
      );
      for (const iteration of [1, 2]) {
        const started = received.findIndex(
          (event) => event.type === 'reason.started' && event.data.iteration === iteration,
        );
        const completed = received.findIndex(
          (event) =>
            event.type === 'output.message.completed' && event.data.iteration === iteration,
        );
        const positions = types.flatMap((type, index) =>
          type === `delta@${iteration}` ? [index] : [],
        );
        expect(positions.length).toBeGreaterThan(0);
        expect(Math.min(...positions)).toBeGreaterThan(started);
        expect(Math.max(...positions)).toBeLessThan(completed);
      }
      stream.close();
    } finally {
      await streamingServer.close();
      await streaming.close();
    }
  });
});
