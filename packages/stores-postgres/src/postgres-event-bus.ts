import {
  type EventBus,
  type EventRequest,
  type EventType,
  everrunsError,
  newId,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { violatedConstraint } from './postgres-errors.js';
import {
  checkSize,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { decodeText, encodeOptionalText, encodeText, textDigest } from './text-codec.js';

/** Options of {@link PostgresEventBus}. */
export interface PostgresEventBusOptions {
  /**
   * Also keep the events this process emits in memory, for {@link PostgresEventBus.collectedEvents}
   * (tests and small tools). Default false: a long-running service should read events back with
   * {@link PostgresEventBus.loadEvents}.
   */
  keepEvents?: boolean;
  /** Called when a subscriber throws; the error never reaches the emitter. */
  onListenerError?: (error: unknown, event: RuntimeEvent) => void;
}

/** A page request of {@link PostgresEventBus.loadEvents}. */
export interface EventPageRequest {
  /** Events with `seq` greater than this. Default 0. */
  afterSeq?: number;
  /** At most this many, 1..10,000. Default 1,000. */
  limit?: number;
}

interface EventRow {
  seq: number;
  id: string;
  type: string;
  turn_id: string | null;
  ts: string;
  data: string;
}

/**
 * An event bus that persists every event in the `events` table. `seq` is assigned per session in
 * the same statement that stores the event (a counter row per session, locked for the statement),
 * so concurrent emitters in any number of processes get 1, 2, 3 … without gaps. Subscribers are
 * called in this process only, after the event is stored.
 */
export class PostgresEventBus implements EventBus {
  readonly #context: StoreContext;
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  readonly #keepEvents: boolean;
  readonly #onListenerError: ((error: unknown, event: RuntimeEvent) => void) | undefined;
  readonly #kept: RuntimeEvent[] = [];

  constructor(context: StoreContext, options: PostgresEventBusOptions = {}) {
    this.#context = context;
    this.#keepEvents = options.keepEvents ?? false;
    this.#onListenerError = options.onListenerError;
  }

  /**
   * Numbers, stamps and stores several events of one session in one statement (consecutive `seq`
   * in the given order, all stored or none), then delivers them to subscribers in that order.
   * Requests of different sessions are emitted one by one.
   */
  async emitMany(requests: EventRequest[]): Promise<RuntimeEvent[]> {
    if (!Array.isArray(requests)) throw new TypeError('requests must be an array');
    const first = requests[0];
    if (requests.length < 2 || requests.some((entry) => entry?.sessionId !== first?.sessionId)) {
      const events: RuntimeEvent[] = [];
      for (const request of requests) events.push(await this.emit(request));
      return events;
    }
    const sessionId = first!.sessionId;
    requireString(sessionId, 'request.sessionId');
    const rows = requests.map((request) => {
      requireString(request.type, 'request.type');
      const data = stringifyForStore(request.data ?? {}, 'event data');
      checkSize(this.#context, data, 'Event data');
      return { request, id: newId('evt'), ts: new Date().toISOString(), data };
    });
    const { db } = this.#context;
    const count = rows.length;
    const seqs = await db.run('emitMany', async (client, attempt) => {
      try {
        const result = await client.query<{ id: string; seq: number }>(
          `WITH input AS (
             SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
               WITH ORDINALITY AS entry(id, type, turn_id, ts, data, ord)
           ),
           next AS (
             INSERT INTO ${db.table('event_sequences')} AS counter (session_hash, last_seq)
             VALUES ($1, $7)
             ON CONFLICT (session_hash) DO UPDATE SET last_seq = counter.last_seq + $7
             RETURNING last_seq
           )
           INSERT INTO ${db.table('events')} (session_hash, seq, id, session_id, type, turn_id, ts, data)
           SELECT $1, next.last_seq - $7 + input.ord::integer, input.id, $8, input.type,
                  input.turn_id, input.ts, input.data
             FROM next, input
           RETURNING id, seq`,
          [
            textDigest(sessionId),
            rows.map((row) => row.id),
            rows.map((row) => encodeText(row.request.type)),
            rows.map((row) => encodeOptionalText(row.request.turnId)),
            rows.map((row) => row.ts),
            rows.map((row) => row.data),
            count,
            encodeText(sessionId),
          ],
        );
        return new Map(result.rows.map((row) => [row.id, row.seq]));
      } catch (error) {
        if (violatedConstraint(error) !== 'events_id' || !attempt.afterConnectionLoss) throw error;
        // An earlier attempt committed before its connection dropped.
        const stored = await client.query<{ id: string; seq: number }>(
          `SELECT id, seq FROM ${db.table('events')} WHERE id = ANY($1::text[])`,
          [rows.map((row) => row.id)],
        );
        return new Map(stored.rows.map((row) => [row.id, row.seq]));
      }
    });
    const events = rows.map((row) => {
      const event: RuntimeEvent = {
        id: row.id,
        type: row.request.type,
        sessionId,
        seq: seqs.get(row.id)!,
        ts: row.ts,
        data: parseStored<Record<string, unknown>>(row.data, 'event data'),
      };
      if (row.request.turnId !== undefined) event.turnId = row.request.turnId;
      return event;
    });
    for (const event of events) this.#deliver(event);
    return events;
  }

  /** Numbers, stamps and stores one event, then delivers it to subscribers. */
  async emit(request: EventRequest): Promise<RuntimeEvent> {
    requireString(request?.sessionId, 'request.sessionId');
    requireString(request.type, 'request.type');
    const id = newId('evt');
    const ts = new Date().toISOString();
    const eventData = request.data ?? {};
    const data = stringifyForStore(eventData, 'event data');
    checkSize(this.#context, data, 'Event data');
    const sessionHash = textDigest(request.sessionId);
    const { db } = this.#context;
    const seq = await db.run('emit', async (client, attempt) => {
      try {
        const result = await client.query<{ seq: number }>(
          `WITH next AS (
             INSERT INTO ${db.table('event_sequences')} AS counter (session_hash, last_seq)
             VALUES ($1, 1)
             ON CONFLICT (session_hash) DO UPDATE SET last_seq = counter.last_seq + 1
             RETURNING last_seq
           )
           INSERT INTO ${db.table('events')} (session_hash, seq, id, session_id, type, turn_id, ts, data)
           SELECT $1, next.last_seq, $2, $3, $4, $5, $6, $7 FROM next
           RETURNING seq`,
          [
            sessionHash,
            id,
            encodeText(request.sessionId),
            encodeText(request.type),
            encodeOptionalText(request.turnId),
            ts,
            data,
          ],
        );
        return result.rows[0]!.seq;
      } catch (error) {
        if (violatedConstraint(error) !== 'events_id' || !attempt.afterConnectionLoss) throw error;
        // An earlier attempt committed before its connection dropped.
        const stored = await client.query<{ seq: number }>(
          `SELECT seq FROM ${db.table('events')} WHERE id = $1`,
          [id],
        );
        return stored.rows[0]!.seq;
      }
    });
    const event: RuntimeEvent = {
      id,
      type: request.type,
      sessionId: request.sessionId,
      seq,
      ts,
      data: parseStored<Record<string, unknown>>(data, 'event data'),
    };
    if (request.turnId !== undefined) event.turnId = request.turnId;
    this.#deliver(event);
    return event;
  }

  #deliver(event: RuntimeEvent): void {
    if (this.#keepEvents) this.#kept.push(event);
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        try {
          this.#onListenerError?.(error, event);
        } catch {
          // A failing error handler must not break emit either.
        }
      }
    }
  }

  /**
   * Events this process emitted through this bus, in emission order, of one session or all;
   * `[]` unless the bus was created with `keepEvents: true`.
   */
  collectedEvents(sessionId?: string): RuntimeEvent[] {
    return sessionId === undefined
      ? this.#kept.slice()
      : this.#kept.filter((event) => event.sessionId === sessionId);
  }

  /** Calls `listener` for every event this bus emits from now on; returns the unsubscribe function. */
  subscribe(listener: (event: RuntimeEvent) => void): () => void {
    const wrapper = (event: RuntimeEvent) => listener(event);
    this.#listeners.add(wrapper);
    return () => {
      this.#listeners.delete(wrapper);
    };
  }

  /** A session's stored events in `seq` order, from any process. */
  async loadEvents(sessionId: string, page: EventPageRequest = {}): Promise<RuntimeEvent[]> {
    requireString(sessionId, 'sessionId');
    const afterSeq = page.afterSeq ?? 0;
    const limit = page.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw everrunsError('INVALID_INPUT', 'limit must be an integer in 1..10000', {
        details: { limit },
      });
    }
    if (!Number.isInteger(afterSeq) || afterSeq < 0) {
      throw everrunsError('INVALID_INPUT', 'afterSeq must be a non-negative integer', {
        details: { afterSeq },
      });
    }
    const { db } = this.#context;
    const result = await db.run('loadEvents', (client) =>
      client.query<EventRow>(
        `SELECT seq, id, type, turn_id, ts, data FROM ${db.table('events')}
          WHERE session_hash = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
        [textDigest(sessionId), Math.min(afterSeq, 2 ** 31 - 1), limit],
      ),
    );
    return result.rows.map((row) => {
      const event: RuntimeEvent = {
        id: row.id,
        type: decodeText(row.type) as EventType,
        sessionId,
        seq: row.seq,
        ts: row.ts,
        data: parseStored<Record<string, unknown>>(row.data, 'event data'),
      };
      if (row.turn_id !== null) event.turnId = decodeText(row.turn_id);
      return event;
    });
  }
}
