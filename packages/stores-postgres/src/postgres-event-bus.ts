import { randomBytes } from 'node:crypto';
import {
  type ClaimEventBus,
  type EventRequest,
  type EventType,
  type EverrunsLogger,
  errorLogFields,
  eventTimeOf,
  everrunsError,
  everrunsLoggerSchema,
  formatZodError,
  isEphemeralEventType,
  type JointClaimWrite,
  type JointMessageOptions,
  type JointMessageWrite,
  type JointStatusOptions,
  type JointStatusWrite,
  type Message,
  type MessageEventBus,
  type NewMessage,
  newId,
  type RuntimeEvent,
  type RuntimeMessageStore,
  type RuntimeSessionStore,
  type SessionStatus,
  type SessionStorageStore,
  type StatusEventBus,
  silentLogger,
} from '@everruns-ts/core';
import { z } from 'zod';
import {
  asciiText,
  ChannelListener,
  defaultEventChannel,
  ephemeralPayloads,
  keptEventJson,
  NOTIFY_PAYLOAD_LIMIT,
  NotificationDecoder,
  type RemoteNotification,
} from './event-notifications.js';
import { violatedConstraint } from './postgres-errors.js';
import { type JointRows, PostgresMessageStore } from './postgres-message-store.js';
import { PostgresSessionStorageStore } from './postgres-session-storage-store.js';
import { PostgresSessionStore } from './postgres-session-store.js';
import {
  checkSize,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { decodeText, encodeOptionalText, encodeText, textDigest } from './text-codec.js';
import { jointTurnSnapshot } from './turn-snapshot.js';

/** Options of {@link PostgresEventBus}. */
export interface PostgresEventBusOptions {
  /**
   * Also keep the events this process emits in memory, for {@link PostgresEventBus.collectedEvents}
   * (tests and small tools). Default false: a long-running service should read events back with
   * {@link PostgresEventBus.loadEvents}. Ephemeral events are never collected.
   */
  keepEvents?: boolean;
  /** Called when a subscriber throws; the error never reaches the emitter. */
  onListenerError?: (error: unknown, event: RuntimeEvent) => void;
  /**
   * Send every event to the buses of other processes on the same database (`NOTIFY` on
   * {@link PostgresEventBusOptions.channel}; a kept event's notification rides in the statement
   * that stores it). Default true. With false, subscribers of other processes hear nothing from
   * this bus (it still hears theirs).
   */
  publish?: boolean;
  /**
   * The `LISTEN`/`NOTIFY` channel, 1..63 characters. Default `everruns_events_<schema>` (a
   * digest of the schema name when that is longer than 63 characters), so buses of different
   * schemas do not hear each other.
   */
  channel?: string;
  /**
   * Store ephemeral events (`output.message.delta`, …) in the `events` table like any other:
   * they then take a `seq` of their own and are delivered as kept events. Default false: they are
   * delivered (here and to other processes) and never written.
   */
  persistEphemeral?: boolean;
  /**
   * Ephemeral events waiting to be sent to other processes before `emit` waits for the backlog
   * to drain (back-pressure on a producer faster than the database). Default 10,000.
   */
  maxPendingNotifications?: number;
  /**
   * Called with problems of cross-process delivery: a lost or failed `LISTEN` connection (the
   * bus reconnects with back-off), a notification that could not be sent or read. Never thrown.
   */
  onError?: (error: unknown) => void;
  /**
   * Where the bus reports, besides `onError`: a lost `LISTEN` connection (`warn`), its reconnect
   * (`info`), notifications that could not be sent (`warn`: other processes miss those events)
   * and a subscriber that threw (`warn`: the event was dropped for it). Entries carry the channel,
   * event types, ids and counts, never event data. Default: silent.
   */
  logger?: EverrunsLogger;
}

const optionsSchema = z
  .object({
    keepEvents: z.boolean().optional(),
    onListenerError: z.function().optional(),
    publish: z.boolean().optional(),
    channel: z
      .string()
      .min(1)
      .max(63)
      .refine((channel) => !channel.includes('\u0000'), 'must not contain NUL')
      .optional(),
    persistEphemeral: z.boolean().optional(),
    maxPendingNotifications: z.number().int().positive().optional(),
    onError: z.function().optional(),
    logger: everrunsLoggerSchema.optional(),
  })
  .strict();

/** Options of {@link PostgresEventBus.subscribe}. */
export interface EventSubscriptionOptions {
  /**
   * Only this session's events. A filtered subscriber also gets the kept events it missed while
   * the `LISTEN` connection was down: after reconnecting, the bus reads the session's events
   * after the last one it delivered to it (ephemeral events of that gap are lost).
   */
  sessionId?: string;
}

/** The unsubscribe function of {@link PostgresEventBus.subscribe}. */
export interface PostgresEventSubscription {
  /** Stops delivery to this subscriber; the last one releases the `LISTEN` connection. */
  (): void;
  /**
   * Resolves once events of other processes reach this subscriber (the `LISTEN` is in place);
   * rejects (`STORE_UNAVAILABLE`) when connecting failed (the bus keeps trying) or the subscriber
   * left first. Await it before starting work whose events you must not miss.
   */
  readonly ready: Promise<void>;
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

interface Subscriber {
  listener: (event: RuntimeEvent) => void;
  sessionId?: string;
  /** The last kept `seq` delivered to a filtered subscriber. */
  lastSeq?: number;
  /** Kept events of other processes up to this `seq` were delivered by a catch-up read. */
  caughtUpTo?: number;
}

interface PendingNotification {
  sessionId: string;
  payloads: string[];
  sent: () => void;
}

/** Events prepared to be written with a message (see `PostgresEventBus.storeMessageAndEmit`). */
interface JointEvents {
  rows: JointRows;
  /** The stored events, delivered: the message's `seq` in their data, theirs from `firstSeq`. */
  finish(messageSeq: number, firstSeq: number): RuntimeEvent[];
}

/**
 * Two sets of joint rows written in one statement: `first`'s CTEs then `second`'s (its
 * parameters numbered after `first`'s), both SELECTs; committed when `first` is, with what
 * `second` says.
 */
function bothJointRows(first: JointRows, second: JointRows): JointRows {
  const rows: JointRows = {
    ...(first.shape !== undefined && second.shape !== undefined
      ? { shape: `${first.shape}|${first.params.length}|${second.shape}` }
      : {}),
    ctes: (from, driver) =>
      `${first.ctes(from, driver)},
           ${second.ctes(from + first.params.length, driver)}`,
    select: `${first.select}, ${second.select}`,
    params: [...first.params, ...second.params],
    committed: async (client) => {
      const earlier = await first.committed(client);
      return earlier === null ? null : { ...earlier, ...(await second.committed(client)) };
    },
  };
  const ready = [first.ready, second.ready].filter((entry) => entry !== undefined);
  if (ready.length > 0) rows.ready = Promise.all(ready).then(() => undefined);
  return rows;
}

/** Sessions whose last kept `seq` the bus remembers (for the `seq` of ephemeral events). */
const REMEMBERED_SESSIONS = 10_000;
/** Payloads sent per `NOTIFY` statement. */
const NOTIFY_BATCH = 200;

/**
 * An event bus that persists every kept event in the `events` table. `seq` is assigned per session
 * in the same statement that stores the event (a counter row per session, locked for the
 * statement), so concurrent emitters in any number of processes get 1, 2, 3 … without gaps.
 *
 * Ephemeral events (`EPHEMERAL_EVENT_TYPES`: the deltas of a streaming answer) are not written:
 * they carry the `seq` of the session's last kept event as this bus knows it, and `ephemeral: true`.
 *
 * Subscribers hear the events of this bus at once, and the events of every other bus on the same
 * database and channel (other processes) through `LISTEN`/`NOTIFY`: a kept event's `NOTIFY` runs
 * in the statement that stores it (no extra round trip), ephemeral events are sent in batches
 * behind the emitter's back, and a kept event waits for the ephemeral ones of its session emitted
 * before it, so a subscriber sees each session's events in emission order. Payloads over
 * PostgreSQL's limit (8000 bytes) are handled: kept events are announced by reference and read
 * from the table by the subscriber's bus; ephemeral events go out as ordered fragments in one
 * transaction. The `LISTEN` connection is opened by the first subscriber, closed when the last one
 * leaves, and reopened after a loss.
 */
export class PostgresEventBus implements MessageEventBus, StatusEventBus, ClaimEventBus {
  readonly #context: StoreContext;
  readonly #subscribers = new Set<Subscriber>();
  readonly #keepEvents: boolean;
  readonly #onListenerError: ((error: unknown, event: RuntimeEvent) => void) | undefined;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #logger: EverrunsLogger;
  readonly #kept: RuntimeEvent[] = [];
  readonly #busId = randomBytes(8).toString('hex');
  readonly #publish: boolean;
  readonly #persistEphemeral: boolean;
  readonly #maxPending: number;
  readonly #channel: string;
  readonly #lastSeq = new Map<string, number>();
  readonly #decoder: NotificationDecoder;
  readonly #listener: ChannelListener;
  /** Remote notifications are handled one after the other, in arrival order. */
  #inbox: Promise<void> = Promise.resolve();
  #outbox: PendingNotification[] = [];
  #outboxCount = 0;
  #flushing: Promise<void> | undefined;
  #closed = false;
  /** {@link caughtUp} calls waiting for their marker, by token. */
  readonly #barriers = new Map<string, () => void>();
  /** Per session, resolves when its last queued ephemeral notification is sent. */
  readonly #sessionSent = new Map<string, Promise<void>>();

  constructor(context: StoreContext, options: PostgresEventBusOptions = {}) {
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) {
      throw everrunsError(
        'CONFIGURATION',
        `Invalid event bus options: ${formatZodError(parsed.error)}`,
      );
    }
    this.#context = context;
    this.#keepEvents = options.keepEvents ?? false;
    this.#onListenerError = options.onListenerError;
    this.#onError = options.onError;
    this.#logger = options.logger ?? silentLogger;
    this.#publish = options.publish ?? true;
    this.#persistEphemeral = options.persistEphemeral ?? false;
    this.#maxPending = options.maxPendingNotifications ?? 10_000;
    this.#channel = options.channel ?? defaultEventChannel(context.db.schemaName);
    this.#decoder = new NotificationDecoder(this.#busId);
    this.#listener = new ChannelListener(
      context.db.pool,
      this.#channel,
      {
        beforeListen: (listening, restored) => {
          if (restored) {
            listening.then(
              () =>
                this.#logger.info(
                  { channel: this.#channel },
                  'PostgreSQL event bus: LISTEN reconnected',
                ),
              () => {},
            );
          }
          this.#decoder.reset();
          if (restored) {
            this.#enqueueInbox(async () => {
              await this.#catchUp(listening);
              // The catch-up read covers what a lost marker stood for.
              this.#releaseBarriers();
            });
          }
        },
        onPayload: (payload) => this.#enqueueInbox(() => this.#receive(payload)),
        onError: (error) => {
          this.#logger.warn(
            { channel: this.#channel, error: errorLogFields(error) },
            'PostgreSQL event bus: LISTEN connection lost or failed; reconnecting',
          );
          this.#reportError(error);
        },
      },
      (failures) => context.db.backoff(failures),
    );
  }

  /** The `LISTEN`/`NOTIFY` channel of this bus. */
  get channel(): string {
    return this.#channel;
  }

  /**
   * Numbers, stamps and stores several events of one session in one statement (consecutive `seq`
   * in the given order, all stored or none), then delivers them to subscribers in that order.
   * Requests of different sessions, or with ephemeral events among them, are emitted one by one.
   */
  async emitMany(requests: EventRequest[]): Promise<RuntimeEvent[]> {
    if (!Array.isArray(requests)) throw new TypeError('requests must be an array');
    const first = requests[0];
    if (
      requests.length < 2 ||
      requests.some(
        (entry) => entry?.sessionId !== first?.sessionId || this.#isEphemeral(entry?.type),
      )
    ) {
      const events: RuntimeEvent[] = [];
      for (const request of requests) events.push(await this.emit(request));
      return events;
    }
    const sessionId = first!.sessionId;
    requireString(sessionId, 'request.sessionId');
    const rows = requests.map((request) => this.#prepareRow(request));
    const events = rows.map((row) => preparedEvent(row, sessionId, row.data));
    const sessionHash = textDigest(sessionId);
    const note = this.#keptNotification(
      sessionHash,
      sessionId,
      rows,
      sameData,
      rows.reduce((total, row) => total + row.data.length, 0),
    );
    await this.#sessionSent.get(sessionId);
    const { db } = this.#context;
    const count = rows.length;
    const seqs = await db.run('emitMany', async (client, attempt) => {
      try {
        const result = await client.query<{ id: string; seq: number }>(
          `WITH input AS (
             SELECT * FROM ROWS FROM (json_array_elements_text($2::json),
                                      json_array_elements_text($3::json),
                                      json_array_elements_text($4::json),
                                      json_array_elements_text($5::json),
                                      json_array_elements_text($6::json))
               WITH ORDINALITY AS entry(id, type, turn_id, ts, data, ord)
           ),
           next AS (
             INSERT INTO ${db.table('event_sequences')} AS counter (session_hash, last_seq)
             VALUES ($1, $7)
             ON CONFLICT (session_hash) DO UPDATE SET last_seq = counter.last_seq + $7
             RETURNING last_seq
           ),
           stored AS (
             INSERT INTO ${db.table('events')} (session_hash, seq, id, session_id, type, turn_id, ts, data)
             SELECT $1, next.last_seq - $7 + input.ord::integer, input.id, $8, input.type,
                    input.turn_id, input.ts, input.data
               FROM next, input
             RETURNING id, seq
           )${
             note
               ? `,
           announced AS (
             SELECT pg_notify($9, $10 || (next.last_seq - $7 + 1)::text || $11) FROM next
           )
           SELECT stored.id, stored.seq FROM stored, announced`
               : `
           SELECT id, seq FROM stored`
           }`,
          [
            sessionHash,
            ...eventColumnsJson(rows),
            count,
            encodeText(sessionId),
            ...(note ? [this.#channel, note.prefix, note.suffix] : []),
          ],
        );
        return new Map(result.rows.map((row) => [row.id, row.seq]));
      } catch (error) {
        if (violatedConstraint(error) !== 'events_id' || !attempt.afterConnectionLoss) throw error;
        // An earlier attempt committed (and announced) before its connection dropped.
        const stored = await client.query<{ id: string; seq: number }>(
          `SELECT id, seq FROM ${db.table('events')} WHERE id = ANY($1::text[])`,
          [rows.map((row) => row.id)],
        );
        return new Map(stored.rows.map((row) => [row.id, row.seq]));
      }
    });
    for (const event of events) event.seq = seqs.get(event.id)!;
    this.#remember(sessionId, Math.max(...events.map((event) => event.seq)));
    for (const event of events) this.#deliver(event);
    return events;
  }

  /**
   * Stores `message` and the events `events(stored)` builds in the INSERT's statement (see
   * `MessageEventBus`) when `messages` is the message store of this bus's backend and the message
   * is appended: one round trip, both or neither, the lease of `options.lease` renewed in it, the
   * events' `NOTIFY` with them. To write them together the events are built twice, for two marker
   * `seq` values, and their data must differ only where the marker stands (the statement puts
   * the message's `seq` there). Resolves `null`, doing nothing, for another store (or a wrapper
   * around one), and `{ message, events: null }` when the events were not written with the
   * message (an answered write; ephemeral events, events of another session or data that would
   * not match): the caller emits them. With `options.sessionStatus` the statement sets the status
   * too, only when it writes the events (`statusSet: true`); never with `expectedSeq`. With
   * `options.releaseLease` as well (and `options.lease`) it releases the lease instead of renewing
   * it and deletes the values under the prefix (`leaseReleased: true`).
   */
  async storeMessageAndEmit(
    messages: RuntimeMessageStore,
    sessionId: string,
    message: NewMessage,
    events: (stored: Message) => EventRequest[],
    options?: JointMessageOptions,
  ): Promise<JointMessageWrite | null> {
    if (typeof events !== 'function') throw new TypeError('events must be a function');
    const own = PostgresMessageStore.sameBackend(messages, this.#context);
    if (own === null) return null;
    // A value to claim with the message goes in the same statement through this backend's own
    // storage only (the caller claims it apart otherwise).
    const claim = options?.claimValue;
    const claimStore = claim
      ? PostgresSessionStorageStore.sameBackend(claim.storage, this.#context)
      : null;
    const claimRows =
      claim && claimStore ? claimStore.claimRows(sessionId, claim.key, claim.value) : null;
    let prepared: JointEvents | null = null;
    const {
      message: stored,
      joined,
      statusSet,
      turnSnapshot,
      leaseReleased,
    } = await own.storeJointly(
      sessionId,
      message,
      options,
      (storedAt) => {
        prepared = this.#prepareJoint(
          sessionId,
          storedAt,
          events as (stored: Message | null) => EventRequest[],
        );
        const rows = prepared?.rows ?? null;
        return rows && claimRows ? bothJointRows(rows, claimRows) : rows;
      },
      options?.loadTurnSnapshot === true ? jointTurnSnapshot(this.#context, sessionId) : undefined,
    );
    const joint = prepared as JointEvents | null;
    if (joint === null || joined === null) return { message: stored, events: null };
    const written = joint.finish(stored.seq, Number(joined.joint_first_seq));
    const result: JointMessageWrite = { message: stored, events: written };
    if (statusSet) result.statusSet = true;
    if (turnSnapshot) result.turnSnapshot = turnSnapshot;
    if (leaseReleased === true) result.leaseReleased = true;
    if (claimRows && joined.value_claimed === true) result.valueClaimed = true;
    return result;
  }

  /**
   * True when `sessions` is the session store of this bus's backend (not a wrapper around one):
   * {@link updateSessionStatusAndEmit} then writes a status with its events in one statement
   * instead of resolving `null`. Writes nothing; for a caller that must know beforehand (the
   * durable host numbers the effects of a turn's ending by it).
   */
  writesJointlyWith(sessions: unknown): boolean {
    return PostgresSessionStore.sameBackend(sessions, this.#context) !== null;
  }

  /**
   * Sets the session's status and stores `events` in the UPDATE's statement (see
   * `StatusEventBus`) when `sessions` is the session store of this bus's backend: one round trip,
   * both or neither, `options.leaseHolder` checked in it, the events' `NOTIFY` with them.
   * Resolves `null`, doing nothing, for another store (or a wrapper around one), and
   * `{ session, events: null }` when the events were not written with the status (none,
   * ephemeral ones, another session's): the caller emits them. With `options.releaseLease` (and
   * `leaseHolder`) the same statement releases the lease and deletes the values under the prefix
   * (`leaseReleased: true`); not when the events were not written with it.
   */
  async updateSessionStatusAndEmit(
    sessions: RuntimeSessionStore,
    sessionId: string,
    status: SessionStatus,
    events: EventRequest[],
    options?: JointStatusOptions,
  ): Promise<JointStatusWrite | null> {
    if (!Array.isArray(events)) throw new TypeError('events must be an array');
    const own = PostgresSessionStore.sameBackend(sessions, this.#context);
    if (own === null) return null;
    requireString(sessionId, 'sessionId');
    const joint = this.#prepareJoint(sessionId, null, () => events);
    const { session, joined, leaseReleased } = await own.updateStatusJointly(
      sessionId,
      status,
      options,
      joint?.rows ?? null,
    );
    if (joint === null || joined === null) return { session, events: null };
    const written = joint.finish(0, Number(joined.joint_first_seq));
    return leaseReleased
      ? { session, events: written, leaseReleased: true }
      : { session, events: written };
  }

  /**
   * Sets a session-storage value where its key has none and stores `events` in the INSERT's
   * statement (see `ClaimEventBus`) when `storage` is the session storage of this bus's backend:
   * one round trip, both or neither, the events' `NOTIFY` with them. Resolves `null`, doing
   * nothing, for another store (or a wrapper around one); `{ set, events: null }` when the events
   * were not written with the value (none, ephemeral ones, another session's): the caller emits
   * them when `set`.
   */
  async setValueIfAbsentAndEmit(
    storage: SessionStorageStore,
    sessionId: string,
    key: string,
    value: string,
    events: EventRequest[],
  ): Promise<JointClaimWrite | null> {
    if (!Array.isArray(events)) throw new TypeError('events must be an array');
    const own = PostgresSessionStorageStore.sameBackend(storage, this.#context);
    if (own === null) return null;
    requireString(sessionId, 'sessionId');
    const joint = this.#prepareJoint(sessionId, null, () => events);
    const { set, joined } = await own.setValueIfAbsentJointly(
      sessionId,
      key,
      value,
      joint?.rows ?? null,
    );
    if (!set || joint === null || joined === null) return { set, events: null };
    return { set: true, events: joint.finish(0, Number(joined.joint_first_seq)) };
  }

  /**
   * The events `build` makes for a message, prepared to be written in its INSERT's statement:
   * `null` when they cannot be (none, ephemeral ones, another session's, data that depends on
   * the message's `seq` other than by the number itself).
   */
  #prepareJoint(
    sessionId: string,
    storedAt: ((seq: number) => Message) | null,
    build: (stored: Message | null) => EventRequest[],
  ): JointEvents | null {
    // Two markers of the same length that no id, time or count of a turn looks like.
    const base = 100_000_000_000_000 + Math.floor(Math.random() * 400_000_000_000_000);
    const marker = String(base);
    const other = String(base + 500_000_000_000_000);
    const requests = build(storedAt ? storedAt(base) : null);
    const check = storedAt ? build(storedAt(Number(other))) : requests;
    if (
      !Array.isArray(requests) ||
      requests.length === 0 ||
      !Array.isArray(check) ||
      check.length !== requests.length
    ) {
      return null;
    }
    const swap = (text: string) => text.replaceAll(marker, other);
    const rows: PreparedEventRow[] = [];
    for (const [index, request] of requests.entries()) {
      const twin = check[index];
      if (
        request?.sessionId !== sessionId ||
        this.#isEphemeral(request.type) ||
        twin?.sessionId !== sessionId ||
        twin.type !== request.type ||
        twin.turnId !== request.turnId
      ) {
        return null;
      }
      const row = this.#prepareRow(request);
      // Without a message the data must not hold the marker (it would be replaced).
      if (
        swap(row.data) !== (storedAt ? stringifyForStore(twin.data ?? {}, 'event data') : row.data)
      ) {
        return null;
      }
      rows.push(row);
    }
    const withSeq = (text: string, seq: number) => text.replaceAll(marker, String(seq));
    const eventsAt = (dataOf: (data: string) => string) =>
      rows.map((row) => preparedEvent(row, sessionId, dataOf(row.data)));
    const sessionHash = textDigest(sessionId);
    const dataSize = rows.reduce((total, row) => total + row.data.length, 0);
    const note = this.#keptNotification(sessionHash, sessionId, rows, sameData, dataSize);
    if (note !== null) {
      if (note.verbatim) {
        // The payload holds each row's data as it is (or, sent by reference, none of it) and
        // nothing else but JSON strings and its header: the marker stands in it exactly where it
        // stands in the data unless an id, type, time or hash spells it too, which the count shows.
        const expected = note.inline
          ? rows.reduce((total, row) => total + occurrences(row.data, marker), 0)
          : 0;
        if (occurrences(note.suffix, marker) !== expected) return null;
      } else {
        // Escaped characters next to the data could join digits with it: built again to compare.
        const twinNote = this.#keptNotification(sessionHash, sessionId, rows, swap, dataSize);
        if (twinNote === null || swap(note.suffix) !== twinNote.suffix) return null;
      }
    }
    const { db } = this.#context;
    const count = rows.length;
    const ids = rows.map((row) => row.id);
    return {
      rows: {
        shape: `events:${storedAt ? 'message' : 'none'}:${note ? 'notify' : 'quiet'}`,
        ctes: (first, driver) => {
          const p = (offset: number) => `$${first + offset}`;
          // The message's seq where the marker stands; without a message the marker stays (the
          // data holds none), the parameter still typed.
          const seqInto = (text: string) =>
            `replace(${text}, ${p(8)}::text, ${storedAt ? `${driver}.seq::text` : `${p(8)}::text`})`;
          return `event_next AS (
             INSERT INTO ${db.table('event_sequences')} AS counter (session_hash, last_seq)
             SELECT ${p(0)}::bytea, ${p(1)}::integer FROM ${driver}
             ON CONFLICT (session_hash) DO UPDATE SET last_seq = counter.last_seq + ${p(1)}::integer
             RETURNING last_seq
           ),
           event_input AS (
             SELECT * FROM ROWS FROM (json_array_elements_text(${p(2)}::json),
                                      json_array_elements_text(${p(3)}::json),
                                      json_array_elements_text(${p(4)}::json),
                                      json_array_elements_text(${p(5)}::json),
                                      json_array_elements_text(${p(6)}::json))
               WITH ORDINALITY AS entry(id, type, turn_id, ts, data, ord)
           ),
           event_stored AS (
             INSERT INTO ${db.table('events')} (session_hash, seq, id, session_id, type, turn_id, ts, data)
             SELECT ${p(0)}::bytea, event_next.last_seq - ${p(1)}::integer + event_input.ord::integer,
                    event_input.id, ${p(7)}, event_input.type, event_input.turn_id, event_input.ts,
                    ${seqInto('event_input.data')}
               FROM event_next, event_input, ${driver}
             RETURNING seq
           )${
             note
               ? `,
           event_announced AS (
             SELECT pg_notify(${p(9)}, ${p(10)}::text
                      || (event_next.last_seq - ${p(1)}::integer + 1)::text
                      || ${seqInto(`${p(11)}::text`)})
               FROM event_next, ${driver}
           )`
               : ''
           }`;
        },
        select: `(SELECT min(seq) FROM event_stored) AS joint_first_seq${
          note ? ', (SELECT count(*) FROM event_announced) AS joint_announced' : ''
        }`,
        params: [
          sessionHash,
          count,
          ...eventColumnsJson(rows),
          encodeText(sessionId),
          marker,
          ...(note ? [this.#channel, note.prefix, note.suffix] : []),
        ],
        // Ephemeral events of this session emitted before must reach other processes first.
        ...(this.#sessionSent.has(sessionId) ? { ready: this.#sessionSent.get(sessionId)! } : {}),
        committed: async (client) => {
          const stored = await client.query<{ seq: number }>(
            `SELECT seq FROM ${db.table('events')} WHERE id = ANY($1::text[]) ORDER BY seq`,
            [ids],
          );
          return stored.rows.length === count ? { joint_first_seq: stored.rows[0]!.seq } : null;
        },
      },
      finish: (messageSeq, firstSeq) => {
        const stored = eventsAt((data) => withSeq(data, messageSeq));
        for (const [index, event] of stored.entries()) event.seq = firstSeq + index;
        this.#remember(sessionId, firstSeq + count - 1);
        for (const event of stored) this.#deliver(event);
        return stored;
      },
    };
  }

  /** A kept event's row: an id, the time and the data as stored (checked against the size limit). */
  #prepareRow(request: EventRequest): PreparedEventRow {
    requireString(request.type, 'request.type');
    const data = stringifyForStore(request.data ?? {}, 'event data');
    checkSize(this.#context, data, 'Event data');
    return { request, id: newId('evt'), ts: eventTimeOf(request), data };
  }

  /**
   * Numbers, stamps and stores one event, then delivers it to subscribers. An ephemeral event is
   * not stored (unless `persistEphemeral`): it is delivered at once and sent to other processes
   * in the background.
   */
  async emit(request: EventRequest): Promise<RuntimeEvent> {
    requireString(request?.sessionId, 'request.sessionId');
    requireString(request.type, 'request.type');
    if (this.#isEphemeral(request.type)) return this.#emitEphemeral(request);
    const row = this.#prepareRow(request);
    const { id, ts, data } = row;
    const sessionHash = textDigest(request.sessionId);
    const event = preparedEvent(row, request.sessionId, data);
    const note = this.#keptNotification(
      sessionHash,
      request.sessionId,
      [row],
      sameData,
      data.length,
    );
    // Ephemeral events of this session emitted before must reach other processes first.
    await this.#sessionSent.get(request.sessionId);
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
           RETURNING seq${note ? ', pg_notify($8, $9 || seq::text || $10)' : ''}`,
          [
            sessionHash,
            id,
            encodeText(request.sessionId),
            encodeText(request.type),
            encodeOptionalText(request.turnId),
            ts,
            data,
            ...(note ? [this.#channel, note.prefix, note.suffix] : []),
          ],
        );
        return result.rows[0]!.seq;
      } catch (error) {
        if (violatedConstraint(error) !== 'events_id' || !attempt.afterConnectionLoss) throw error;
        // An earlier attempt committed (and announced) before its connection dropped.
        const stored = await client.query<{ seq: number }>(
          `SELECT seq FROM ${db.table('events')} WHERE id = $1`,
          [id],
        );
        return stored.rows[0]!.seq;
      }
    });
    event.seq = seq;
    this.#remember(request.sessionId, seq);
    this.#deliver(event);
    return event;
  }

  #isEphemeral(type: unknown): boolean {
    return !this.#persistEphemeral && typeof type === 'string' && isEphemeralEventType(type);
  }

  /**
   * The `NOTIFY` of kept events, as `prefix || firstSeq || suffix`: inline when the payload fits,
   * otherwise a reference to the rows; `null` when the bus does not publish.
   */
  #keptNotification(
    sessionHash: Buffer,
    sessionId: string,
    rows: readonly PreparedEventRow[],
    dataOf: (data: string) => string,
    dataSize: number,
  ): KeptNotification | null {
    if (!this.#publish) return null;
    // Cheap bound first: data larger than the limit is never inlined.
    if (dataSize < NOTIFY_PAYLOAD_LIMIT) {
      // The events' JSON from their stored parts (as `keptPayloadEvent` gives it), data unparsed.
      const events = rows.map((row) =>
        keptEventJson(
          row.id,
          row.request.type,
          sessionId,
          row.ts,
          dataOf(row.data),
          row.request.turnId,
        ),
      );
      const json = `[${events.join(',')}]`;
      const ascii = asciiText(json);
      const suffix = ` ${ascii}`;
      const prefix = `${this.#busId} k `;
      if (prefix.length + 10 + suffix.length <= NOTIFY_PAYLOAD_LIMIT) {
        return { prefix, suffix, inline: true, verbatim: ascii.length === json.length };
      }
    }
    return {
      prefix: `${this.#busId} r `,
      suffix: ` ${rows.length} ${sessionHash.toString('hex')}`,
      inline: false,
      verbatim: true,
    };
  }

  async #emitEphemeral(request: EventRequest): Promise<RuntimeEvent> {
    const data = stringifyForStore(request.data ?? {}, 'event data');
    checkSize(this.#context, data, 'Event data');
    const event: RuntimeEvent = {
      id: newId('evt'),
      type: request.type,
      sessionId: request.sessionId,
      seq: this.#lastSeq.get(request.sessionId) ?? (await this.#loadLastSeq(request.sessionId)),
      ts: eventTimeOf(request),
      data: parseStored<Record<string, unknown>>(data, 'event data'),
      ephemeral: true,
    };
    if (request.turnId !== undefined) event.turnId = request.turnId;
    this.#deliver(event);
    if (this.#publish) {
      if (this.#outboxCount >= this.#maxPending) await this.#flushing;
      this.#queueNotification(event.sessionId, ephemeralPayloads(this.#busId, event));
    }
    return event;
  }

  async #loadLastSeq(sessionId: string): Promise<number> {
    const { db } = this.#context;
    const result = await db.run('emit', (client) =>
      client.query<{ last_seq: number }>(
        `SELECT last_seq FROM ${db.table('event_sequences')} WHERE session_hash = $1`,
        [textDigest(sessionId)],
      ),
    );
    const seq = result.rows[0]?.last_seq ?? 0;
    this.#remember(sessionId, seq);
    return seq;
  }

  #remember(sessionId: string, seq: number): void {
    const known = this.#lastSeq.get(sessionId);
    this.#lastSeq.delete(sessionId);
    this.#lastSeq.set(sessionId, Math.max(seq, known ?? 0));
    if (this.#lastSeq.size > REMEMBERED_SESSIONS) {
      this.#lastSeq.delete(this.#lastSeq.keys().next().value as string);
    }
  }

  #queueNotification(sessionId: string, payloads: string[]): void {
    let sent: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      sent = resolve;
    });
    this.#sessionSent.set(sessionId, done);
    void done.then(() => {
      if (this.#sessionSent.get(sessionId) === done) this.#sessionSent.delete(sessionId);
    });
    this.#outbox.push({ sessionId, payloads, sent });
    this.#outboxCount++;
    this.#flushing ??= this.#flush();
  }

  /** Sends queued ephemeral notifications, in order, in batches of one statement each. */
  async #flush(): Promise<void> {
    const { db } = this.#context;
    while (this.#outbox.length > 0) {
      const batch: PendingNotification[] = [];
      let size = 0;
      while (this.#outbox.length > 0 && (size === 0 || size < NOTIFY_BATCH)) {
        const next = this.#outbox.shift()!;
        batch.push(next);
        size += next.payloads.length;
      }
      try {
        await db.run('notify', (client) =>
          client.query(`SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS entry(payload)`, [
            this.#channel,
            batch.flatMap((entry) => entry.payloads),
          ]),
        );
      } catch (error) {
        this.#logger.warn(
          {
            channel: this.#channel,
            notifications: batch.length,
            error: errorLogFields(error),
          },
          'PostgreSQL event bus: notifications not sent; other processes miss these events',
        );
        this.#reportError(error);
      } finally {
        this.#outboxCount -= batch.length;
        for (const entry of batch) entry.sent();
      }
    }
    this.#flushing = undefined;
  }

  #reportError(error: unknown): void {
    try {
      this.#onError?.(error);
    } catch {
      // A failing error handler must not break delivery.
    }
  }

  /** Delivers to subscribers; `origin` says where the event came from. */
  #deliver(event: RuntimeEvent, origin: 'local' | 'remote' | 'catch-up' = 'local'): void {
    if (this.#keepEvents && origin === 'local' && !event.ephemeral) this.#kept.push(event);
    for (const subscriber of [...this.#subscribers]) {
      if (subscriber.sessionId !== undefined) {
        if (subscriber.sessionId !== event.sessionId) continue;
        if (!event.ephemeral) {
          // A notification of an event the catch-up read already delivered.
          if (origin === 'remote' && event.seq <= (subscriber.caughtUpTo ?? 0)) continue;
          if (origin === 'catch-up' && event.seq <= (subscriber.lastSeq ?? 0)) continue;
          subscriber.lastSeq = Math.max(subscriber.lastSeq ?? 0, event.seq);
          if (origin === 'catch-up') subscriber.caughtUpTo = event.seq;
        }
      }
      try {
        subscriber.listener(event);
      } catch (error) {
        this.#logger.warn(
          {
            eventType: event.type,
            eventId: event.id,
            sessionId: event.sessionId,
            seq: event.seq,
            error: errorLogFields(error),
          },
          'PostgreSQL event bus: a subscriber threw; the event was dropped for it',
        );
        try {
          this.#onListenerError?.(error, event);
        } catch {
          // A failing error handler must not break emit either.
        }
      }
    }
  }

  #enqueueInbox(work: () => Promise<void> | void): void {
    this.#inbox = this.#inbox.then(work).catch((error) => this.#reportError(error));
  }

  #releaseBarriers(): void {
    const waiting = [...this.#barriers.values()];
    this.#barriers.clear();
    for (const release of waiting) release();
  }

  async #receive(payload: string): Promise<void> {
    if (payload.startsWith(`${this.#busId} s `)) {
      const token = payload.slice(this.#busId.length + 3);
      this.#barriers.get(token)?.();
      this.#barriers.delete(token);
      return;
    }
    let notification: RemoteNotification | null;
    try {
      notification = this.#decoder.decode(payload);
    } catch (error) {
      throw everrunsError('STATE_INVALID', 'An event notification could not be read', {
        cause: error,
        details: { channel: this.#channel, payload: payload.slice(0, 200) },
      });
    }
    if (notification === null || this.#subscribers.size === 0) return;
    if (notification.kind === 'events') {
      for (const event of notification.events) this.#deliver(event, 'remote');
      return;
    }
    const { firstSeq, count, sessionHash } = notification;
    const wanted = [...this.#subscribers].some(
      (subscriber) =>
        subscriber.sessionId === undefined || textDigest(subscriber.sessionId).equals(sessionHash),
    );
    if (!wanted) return;
    const { db } = this.#context;
    const result = await db.run('receiveEvents', (client) =>
      client.query<EventRow & { session_id: string }>(
        `SELECT seq, id, session_id, type, turn_id, ts, data FROM ${db.table('events')}
          WHERE session_hash = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq`,
        [sessionHash, firstSeq, firstSeq + count - 1],
      ),
    );
    for (const row of result.rows) {
      this.#deliver(eventFromRow(row, decodeText(row.session_id)), 'remote');
    }
  }

  /** After a reconnect: the kept events filtered subscribers missed while the connection was down. */
  async #catchUp(listening: Promise<void>): Promise<void> {
    try {
      await listening;
    } catch {
      return;
    }
    for (const subscriber of [...this.#subscribers]) {
      if (subscriber.sessionId === undefined || subscriber.lastSeq === undefined) continue;
      for (;;) {
        const missed = await this.loadEvents(subscriber.sessionId, {
          afterSeq: subscriber.lastSeq,
        });
        for (const event of missed) this.#deliver(event, 'catch-up');
        if (missed.length < 1000 || !this.#subscribers.has(subscriber)) break;
      }
    }
  }

  /**
   * Events this process emitted through this bus, in emission order, of one session or all;
   * `[]` unless the bus was created with `keepEvents: true`. Ephemeral events are not collected.
   */
  collectedEvents(sessionId?: string): RuntimeEvent[] {
    return sessionId === undefined
      ? this.#kept.slice()
      : this.#kept.filter((event) => event.sessionId === sessionId);
  }

  /**
   * Calls `listener` for every event of this bus and of other processes' buses on the same
   * database and channel from now on (of one session with `options.sessionId`); returns the
   * unsubscribe function, whose `ready` promise tells when other processes' events arrive.
   */
  subscribe(
    listener: (event: RuntimeEvent) => void,
    options: EventSubscriptionOptions = {},
  ): PostgresEventSubscription {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    if (options.sessionId !== undefined) requireString(options.sessionId, 'options.sessionId');
    const subscriber: Subscriber = {
      listener: (event) => listener(event),
      ...(options.sessionId !== undefined ? { sessionId: options.sessionId } : {}),
    };
    this.#subscribers.add(subscriber);
    if (!this.#closed) this.#listener.start();
    const ready = this.#listener.listening().catch((error: unknown) => {
      throw everrunsError(
        'STORE_UNAVAILABLE',
        "The event bus could not listen for other processes' events",
        {
          cause: error,
          details: { channel: this.#channel },
        },
      );
    });
    ready.catch(() => {});
    const unsubscribe = () => {
      if (!this.#subscribers.delete(subscriber)) return;
      if (this.#subscribers.size === 0) {
        void this.#listener.stop();
        this.#releaseBarriers();
      }
    };
    return Object.assign(unsubscribe, { ready });
  }

  /**
   * Resolves once every event another process committed before this call has been delivered to
   * this bus's subscribers (a marker sent on the channel came back: notifications arrive in
   * commit order and are handled in arrival order). Resolves at once without subscribers; rejects
   * (`STORE_UNAVAILABLE`) when the `LISTEN` connection cannot be opened. A host calls it before
   * ending a turn's stream, so the turn's last events are not cut off.
   */
  async caughtUp(): Promise<void> {
    if (this.#subscribers.size === 0 || this.#closed) return;
    try {
      await this.#listener.listening();
    } catch (error) {
      throw everrunsError('STORE_UNAVAILABLE', 'The event bus is not listening', {
        cause: error,
        details: { channel: this.#channel },
      });
    }
    const token = randomBytes(8).toString('hex');
    const arrived = new Promise<void>((resolve) => this.#barriers.set(token, resolve));
    const { db } = this.#context;
    try {
      await db.run('caughtUp', (client) =>
        client.query('SELECT pg_notify($1, $2)', [this.#channel, `${this.#busId} s ${token}`]),
      );
    } catch (error) {
      this.#barriers.delete(token);
      throw error;
    }
    await arrived;
  }

  /**
   * Stops listening and waits for queued notifications to be sent (`postgresBackends().close()`
   * calls it). Subscribers stay registered but hear only this process's events afterwards.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#listener.stop();
    this.#releaseBarriers();
    await this.#flushing;
    await this.#inbox;
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
    return result.rows.map((row) => eventFromRow(row, sessionId));
  }
}

/** An event prepared to be stored, before the statement numbers it. */
interface PreparedEventRow {
  request: EventRequest;
  id: string;
  ts: string;
  /** The data as stored (JSON). */
  data: string;
}

/** The event a prepared row stands for, with `data` (its stored JSON) parsed; `seq` is still 0. */
/** The stored data as it is (the kept payload of events written as they are). */
const sameData = (data: string): string => data;

/** A kept event's notification, as `prefix || firstSeq || suffix`. */
interface KeptNotification {
  prefix: string;
  suffix: string;
  /** The events themselves ride in it (else a reference the receiver reads them by). */
  inline: boolean;
  /** No character was escaped: the rows' data stand in it as they are. */
  verbatim: boolean;
}

/**
 * The rows' columns (id, type, turn id, time, data) as five JSON arrays of strings (`null` for no
 * turn), for `json_array_elements_text`: escaped by the native `JSON.stringify` in one pass, where
 * a `text[]` parameter is escaped element by element in JavaScript (`pg`'s array literal). Exact
 * for these values: they are encoded text (`encodeText`) or JSON text, which hold no U+0000 (the
 * one escape PostgreSQL refuses to turn into text) and no lone surrogate.
 */
function eventColumnsJson(rows: readonly PreparedEventRow[]): string[] {
  return [
    JSON.stringify(rows.map((row) => row.id)),
    JSON.stringify(rows.map((row) => encodeText(row.request.type))),
    JSON.stringify(rows.map((row) => encodeOptionalText(row.request.turnId))),
    JSON.stringify(rows.map((row) => row.ts)),
    JSON.stringify(rows.map((row) => row.data)),
  ];
}

/** How many times `part` occurs in `text`, counted left to right without overlaps. */
function occurrences(text: string, part: string): number {
  let count = 0;
  for (let at = text.indexOf(part); at !== -1; at = text.indexOf(part, at + part.length)) count++;
  return count;
}

function preparedEvent(row: PreparedEventRow, sessionId: string, data: string): RuntimeEvent {
  const event: RuntimeEvent = {
    id: row.id,
    type: row.request.type,
    sessionId,
    seq: 0,
    ts: row.ts,
    data: parseStored<Record<string, unknown>>(data, 'event data'),
  };
  if (row.request.turnId !== undefined) event.turnId = row.request.turnId;
  return event;
}

function eventFromRow(row: EventRow, sessionId: string): RuntimeEvent {
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
}
