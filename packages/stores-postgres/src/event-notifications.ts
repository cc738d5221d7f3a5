import { createHash } from 'node:crypto';
import { type RuntimeEvent, runtimeEventSchema } from '@everruns-ts/core';
import type pg from 'pg';
import { quoteIdentifier, sleep } from './postgres-database.js';
import { type DedicatedConnection, openDedicatedConnection } from './postgres-pool.js';

// How events cross processes: every bus NOTIFYs on one channel and, while it has subscribers,
// LISTENs on it. A payload is plain ASCII (JSON with every non-ASCII character escaped), so its
// size in bytes is its length whatever the server encoding, and it starts with the emitting bus's
// id and a kind:
//
//   <bus> k <firstSeq> <json>            kept events, inline: a JSON array of events without `seq`
//                                        (numbered firstSeq, firstSeq + 1, …)
//   <bus> r <firstSeq> <count> <hash>    kept events too large to inline: the receiver reads the
//                                        rows (session digest in hex, seq firstSeq..+count-1)
//   <bus> e <json>                       one ephemeral event, whole
//   <bus> f <eventId> <index> <total> <chunk>
//                                        one fragment of an ephemeral event too large for one
//                                        payload; all fragments go out in one transaction, so they
//                                        arrive together and in order
//
// PostgreSQL refuses payloads of 8000 bytes or more; the kept forms leave room for the sequence
// number the insert statement fills in.

/** Largest payload this package sends, in bytes (PostgreSQL's limit is 7999). */
export const NOTIFY_PAYLOAD_LIMIT = 7900;

/** The default channel of a schema: `everruns_events_<schema>`, or a digest for long names. */
export function defaultEventChannel(schema: string): string {
  const plain = `everruns_events_${schema}`;
  if (plain.length <= 63) return plain;
  return `everruns_events_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

const NON_ASCII = /[\u0080-\uffff]/g;
/** {@link NON_ASCII} without the global flag: a test that keeps no state between calls. */
const ANY_NON_ASCII = /[\u0080-\uffff]/;

function escapeNonAscii(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `JSON.stringify` with every non-ASCII character escaped: byte length equals length. */
export function asciiJson(value: unknown): string {
  return asciiText(JSON.stringify(value));
}

/** JSON text with every non-ASCII character escaped (`\uXXXX`): byte length equals length. */
export function asciiText(json: string): string {
  return ANY_NON_ASCII.test(json) ? json.replace(NON_ASCII, escapeNonAscii) : json;
}

/**
 * The JSON of an event as a kept payload carries it (every field but `seq`), built from its stored
 * parts: `data` is the event data's JSON as stored, put in as it is instead of being parsed and
 * written again. Gives what `JSON.stringify` gives for the event without `seq` (`JSON.stringify` of
 * a parsed `JSON.stringify` output is that output).
 */
export function keptEventJson(
  id: string,
  type: string,
  sessionId: string,
  ts: string,
  data: string,
  turnId: unknown,
): string {
  const head = `{"id":${JSON.stringify(id)},"type":${JSON.stringify(type)},"sessionId":${JSON.stringify(sessionId)},"ts":${JSON.stringify(ts)},"data":${data}`;
  const turn = turnId === undefined ? undefined : JSON.stringify(turnId);
  return turn === undefined ? `${head}}` : `${head},"turnId":${turn}}`;
}

/** The payloads that carry one ephemeral event: one, or ordered fragments. */
export function ephemeralPayloads(busId: string, event: RuntimeEvent): string[] {
  const json = asciiJson(event);
  const whole = `${busId} e ${json}`;
  if (whole.length <= NOTIFY_PAYLOAD_LIMIT) return [whole];
  const header = `${busId} f ${event.id} 0000000 0000000 `.length;
  const size = NOTIFY_PAYLOAD_LIMIT - header;
  const total = Math.ceil(json.length / size);
  const payloads: string[] = [];
  for (let index = 0; index < total; index++) {
    payloads.push(
      `${busId} f ${event.id} ${index} ${total} ${json.slice(index * size, (index + 1) * size)}`,
    );
  }
  return payloads;
}

/** A parsed notification of another bus. */
export type RemoteNotification =
  | { kind: 'events'; events: RuntimeEvent[] }
  | { kind: 'reference'; firstSeq: number; count: number; sessionHash: Buffer };

const MAX_PARTIAL_EVENTS = 256;

/**
 * Turns the payloads of other buses into events: drops this bus's own, reassembles fragments,
 * validates every event. Throws on a payload it cannot read (the caller reports it).
 */
export class NotificationDecoder {
  readonly #busId: string;
  readonly #partial = new Map<string, { total: number; chunks: string[] }>();

  constructor(busId: string) {
    this.#busId = busId;
  }

  /** Forgets unfinished fragments (after the connection was lost). */
  reset(): void {
    this.#partial.clear();
  }

  decode(payload: string): RemoteNotification | null {
    const first = payload.indexOf(' ');
    if (first < 0) throw new Error('not an event notification');
    const busId = payload.slice(0, first);
    if (busId === this.#busId) return null;
    const kind = payload.slice(first + 1, first + 2);
    const rest = payload.slice(first + 3);
    switch (kind) {
      case 'k': {
        const space = rest.indexOf(' ');
        const firstSeq = Number(rest.slice(0, space));
        const entries = JSON.parse(rest.slice(space + 1)) as unknown[];
        if (!Array.isArray(entries) || !Number.isInteger(firstSeq)) throw new Error('bad kept');
        return {
          kind: 'events',
          events: entries.map((entry, index) =>
            runtimeEventSchema.parse({ ...(entry as object), seq: firstSeq + index }),
          ),
        };
      }
      case 'r': {
        const [seq, count, hash] = rest.split(' ');
        const firstSeq = Number(seq);
        const total = Number(count);
        if (!Number.isInteger(firstSeq) || !Number.isInteger(total) || !hash) {
          throw new Error('bad reference');
        }
        return {
          kind: 'reference',
          firstSeq,
          count: total,
          sessionHash: Buffer.from(hash, 'hex'),
        };
      }
      case 'e':
        return { kind: 'events', events: [runtimeEventSchema.parse(JSON.parse(rest))] };
      case 'f':
        return this.#fragment(busId, rest);
      default:
        throw new Error(`unknown notification kind ${JSON.stringify(kind)}`);
    }
  }

  #fragment(busId: string, rest: string): RemoteNotification | null {
    const parts = rest.split(' ', 3);
    const [eventId, indexText, totalText] = parts;
    const index = Number(indexText);
    const total = Number(totalText);
    if (!eventId || !Number.isInteger(index) || !Number.isInteger(total) || total < 1) {
      throw new Error('bad fragment');
    }
    const chunk = rest.slice(eventId.length + indexText!.length + totalText!.length + 3);
    const key = `${busId} ${eventId}`;
    let entry = this.#partial.get(key);
    if (index === 0) {
      entry = { total, chunks: [] };
      this.#partial.set(key, entry);
      if (this.#partial.size > MAX_PARTIAL_EVENTS) {
        this.#partial.delete(this.#partial.keys().next().value as string);
      }
    }
    if (!entry || entry.total !== total || entry.chunks.length !== index) {
      this.#partial.delete(key);
      throw new Error('fragment out of order');
    }
    entry.chunks.push(chunk);
    if (entry.chunks.length < total) return null;
    this.#partial.delete(key);
    return {
      kind: 'events',
      events: [runtimeEventSchema.parse(JSON.parse(entry.chunks.join('')))],
    };
  }
}

/** One start-to-stop life of a {@link ChannelListener}. */
interface ListenRun {
  active: boolean;
  /** The `LISTEN` is in place. */
  connected: boolean;
  stop: () => void;
  done: Promise<void>;
}

/** What a {@link ChannelListener} reports. */
export interface ChannelListenerHandlers {
  /**
   * Called before each `LISTEN` with a promise that settles once it is in place (resolved) or
   * failed (rejected); `restored` is true after a lost connection.
   */
  beforeListen(listening: Promise<void>, restored: boolean): void;
  onPayload(payload: string): void;
  onError(error: unknown): void;
}

/**
 * One dedicated connection holding `LISTEN channel` while started; reconnects with back-off after
 * the connection is lost, until stopped.
 */
export class ChannelListener {
  readonly #pool: pg.Pool;
  readonly #channel: string;
  readonly #handlers: ChannelListenerHandlers;
  readonly #backoff: (failures: number) => number;
  #run: ListenRun | undefined;
  #waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];

  constructor(
    pool: pg.Pool,
    channel: string,
    handlers: ChannelListenerHandlers,
    backoff: (failures: number) => number,
  ) {
    this.#pool = pool;
    this.#channel = channel;
    this.#handlers = handlers;
    this.#backoff = backoff;
  }

  /** Starts listening unless started. */
  start(): void {
    if (this.#run?.active) return;
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const run: ListenRun = {
      active: true,
      connected: false,
      stop: () => {},
      done: Promise.resolve(),
    };
    run.stop = () => {
      run.active = false;
      stop();
    };
    this.#run = run;
    run.done = this.#loop(run, stopped);
  }

  /**
   * Resolves when the `LISTEN` is in place; rejects when the attempt under way fails (the
   * listener keeps trying) or the listener is stopped first.
   */
  listening(): Promise<void> {
    if (!this.#run?.active) return Promise.reject(new Error('not listening'));
    if (this.#run.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Stops listening and closes the connection. */
  async stop(): Promise<void> {
    const run = this.#run;
    if (!run) return;
    run.stop();
    this.#settleWaiters(new Error('stopped listening'));
    await run.done;
    if (this.#run === run) this.#run = undefined;
  }

  #settleWaiters(error?: unknown): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  }

  async #loop(run: ListenRun, stopped: Promise<void>): Promise<void> {
    let failures = 0;
    let restored = false;
    while (run.active) {
      let connection: DedicatedConnection | undefined;
      let markListening: () => void = () => {};
      let markFailed: (error: unknown) => void = () => {};
      const listening = new Promise<void>((resolve, reject) => {
        markListening = resolve;
        markFailed = reject;
      });
      listening.catch(() => {});
      this.#handlers.beforeListen(listening, restored);
      try {
        connection = await openDedicatedConnection(this.#pool);
        const { client } = connection;
        const lost = new Promise<void>((resolve) => {
          client.once('error', (error) => {
            if (run.active) this.#handlers.onError(error);
            resolve();
          });
          client.once('end', () => resolve());
        });
        client.on('notification', (message) => {
          if (run.active && this.#run === run && message.channel === this.#channel) {
            this.#handlers.onPayload(message.payload ?? '');
          }
        });
        await client.query(`LISTEN ${quoteIdentifier(this.#channel)}`);
        failures = 0;
        markListening();
        if (run.active) {
          run.connected = true;
          this.#settleWaiters();
          await Promise.race([lost, stopped]);
          run.connected = false;
        }
      } catch (error) {
        markFailed(error);
        if (run.active) {
          this.#handlers.onError(error);
          this.#settleWaiters(error);
        }
        failures++;
      } finally {
        await connection?.close();
      }
      restored = true;
      if (run.active && failures > 0) {
        await Promise.race([sleep(this.#backoff(failures)), stopped]);
      }
    }
  }
}
