import {
  EVENT_TYPES,
  type EventBus,
  type EventRequest,
  type EventType,
  eventTimeOf,
  everrunsError,
  idFromWords,
  isEphemeralEventType,
  isoFromMillis,
  isoNow,
  markEmitThroughSync,
  newId,
  newIdWithWords,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { freezeCopy, ownKey, plainObjectFor } from './freeze-copy.js';

/** Options of {@link CollectingEventBus}. */
export interface CollectingEventBusOptions {
  /** Keep emitted events for {@link CollectingEventBus.collectedEvents}. Default true. */
  keepEvents?: boolean;
  /**
   * How many of a session's latest events are kept (default
   * {@link DEFAULT_MAX_EVENTS_PER_SESSION}, 1,000); older ones are forgotten, so a long-running
   * session's log does not grow without bound. A positive integer, or `Infinity` to keep every
   * event.
   */
  maxEventsPerSession?: number;
  /**
   * Called when a listener throws. The error never reaches the emitter. By default it is
   * ignored.
   */
  onListenerError?: (error: unknown, event: RuntimeEvent) => void;
}

/**
 * A frozen copy of an event's data: a shallow copy when every value is a primitive (the streamed
 * deltas, most events), a deep frozen copy otherwise.
 */
function copyData(data: Record<string, unknown> | undefined): Record<string, unknown> {
  if (data === undefined) return Object.freeze({});
  const prototype = Object.getPrototypeOf(data);
  if (prototype !== Object.prototype && prototype !== null) return freezeCopy(data);
  // Own enumerable keys by `for…in` (the order `Object.keys` gives) without the array of them.
  let count = 0;
  for (const key in data) {
    if (!ownKey.call(data, key)) continue;
    const value = data[key];
    // Nested data, or a key that needs defining rather than assigning: the deep copy.
    if ((value !== null && typeof value === 'object') || key === '__proto__') {
      return freezeCopy(data);
    }
    count++;
  }
  // Sized for its keys: no separate property array past four keys (see `plainObjectFor`).
  const copy = plainObjectFor(count);
  for (const key in data) if (ownKey.call(data, key)) copy[key] = data[key];
  return Object.freeze(copy);
}

/** The default of {@link CollectingEventBusOptions.maxEventsPerSession}: 1,000 events. */
export const DEFAULT_MAX_EVENTS_PER_SESSION = 1000;

/**
 * What a kept event costs in a log's packed numbers: its id's 32 hex digits as four 32-bit words;
 * its type's code (see {@link TYPE_CODES}) in the high half of the fifth word and its time's
 * milliseconds in the low half of it (the top 16 bits) and the sixth (the low 32 bits); its turn
 * in the seventh (1 + the index in the log's `turnIds`, 0 for none).
 */
const WORDS_PER_EVENT = 7;

/** The code of each of `EVENT_TYPES` in a log's words; other types are kept aside. */
const TYPE_CODES: ReadonlyMap<string, number> = new Map(
  EVENT_TYPES.map((type, code) => [type, code]),
);
/** The type code of an event whose type is not one of `EVENT_TYPES` (see `SessionLog.otherTypes`). */
const OTHER_TYPE = 0xffff;

/**
 * The kept events of one session in a compact form, rebuilt as {@link RuntimeEvent}s when read:
 * per event seven 32-bit words (id, type, time, turn; see {@link WORDS_PER_EVENT}) and one
 * reference (the frozen data copy); the `seq` from the first one's (a session's kept events are
 * numbered without gaps), the session id once per log, each turn id once per run of its events.
 * An event kept as an object took about 230 bytes of heap before its data (the event, its id
 * string, its own time string when the millisecond changed); this takes 28 bytes of typed array
 * and 8 of reference. Also the bus-wide emission number of each event, except while the bus keeps
 * a single session's log: then `orders` is left out (its events are the bus's latest, numbered on
 * demand).
 */
interface SessionLog {
  readonly sessionId: string;
  /** The `seq` of the first kept event; the next ones follow it without gaps (but see `seqs`). */
  firstSeq: number;
  /**
   * Every kept event's `seq`, made only when one did not follow the previous (an emit that threw
   * after numbering, say, while copying data that contains itself).
   */
  seqs: number[] | undefined;
  count: number;
  /** {@link WORDS_PER_EVENT} words per event, room for as many events as `datas`. */
  words: Uint32Array;
  /** The frozen data copy of each event. */
  datas: unknown[];
  /** The turn ids of the kept events, each once per run of consecutive events. */
  readonly turnIds: string[];
  /** The types that are not one of `EVENT_TYPES`, by event index (see {@link OTHER_TYPE}). */
  otherTypes: Map<number, string> | undefined;
  orders: number[] | undefined;
}

/** Two hex digits per byte value. */
const HEX: readonly string[] = Array.from({ length: 256 }, (_, byte) =>
  byte.toString(16).padStart(2, '0'),
);

/**
 * An event bus that numbers events per session (`seq` 1, 2, 3 …), keeps them in memory and
 * calls subscribers synchronously. A listener that throws does not stop the others or the
 * emitter. Ephemeral events (the streamed deltas, see `EPHEMERAL_EVENT_TYPES`) are delivered to
 * subscribers with `ephemeral: true` and the `seq` of the session's last kept event (0 before the
 * first), never kept and never numbered.
 */
export class CollectingEventBus implements EventBus {
  readonly #bySession = new Map<string, SessionLog>();
  /** Numbers kept events across sessions, so {@link collectedEvents} can merge them in order. */
  #order = 0;
  readonly #seqs = new Map<string, number>();
  /** Made on the first subscription. */
  #listeners: Set<(event: RuntimeEvent) => void> | undefined;
  /** {@link #listeners} as an array, replaced (never changed) when a listener comes or goes. */
  #listenerList: ReadonlyArray<(event: RuntimeEvent) => void> = [];
  /** See {@link #ephemeralId}; reset by every kept event. */
  #ephemeralIdBase: string | undefined;
  #ephemeralCount = 0;
  /** The last time stamp kept and its millisecond (see {@link #millisOf}). */
  #lastTs = '';
  #lastMillis = 0;
  /** The last millisecond read back and its time stamp (see {@link #eventAt}). */
  #readMillis = -1;
  #readTs = '';
  readonly #keepEvents: boolean;
  readonly #maxEventsPerSession: number;
  readonly #onListenerError: ((error: unknown, event: RuntimeEvent) => void) | undefined;

  constructor(options: CollectingEventBusOptions = {}) {
    this.#keepEvents = options.keepEvents ?? true;
    const max = options.maxEventsPerSession ?? DEFAULT_MAX_EVENTS_PER_SESSION;
    if (!(max === Number.POSITIVE_INFINITY || (Number.isInteger(max) && max > 0))) {
      throw everrunsError(
        'INVALID_INPUT',
        'maxEventsPerSession must be a positive integer or Infinity',
        { details: { maxEventsPerSession: max } },
      );
    }
    this.#maxEventsPerSession = max;
    this.#onListenerError = options.onListenerError;
  }

  /** Numbers, stamps, keeps and delivers one event (an ephemeral one is only stamped and delivered). */
  async emit(request: EventRequest): Promise<RuntimeEvent> {
    return this.emitSync(request);
  }

  /**
   * {@link emit} without the promise: numbers, stamps, keeps and delivers the event before it
   * returns it, and throws what `emit` would reject with. The reason step streams its deltas
   * through it (one promise less per delta), and the runtime's stream tap its events; a subclass
   * that overrides `emit` overrides `emitSync` the same way.
   */
  emitSync(request: EventRequest): RuntimeEvent {
    const ephemeral = isEphemeralEventType(request.type);
    let seq = this.#seqs.get(request.sessionId) ?? 0;
    if (!ephemeral) {
      seq += 1;
      this.#seqs.set(request.sessionId, seq);
      this.#ephemeralIdBase = undefined;
    }
    // The event is built here, so only its data needs copying; the event itself is frozen as is.
    // A kept event's id is written into its log's words as it is made (see `SessionLog`).
    const log = ephemeral || !this.#keepEvents ? undefined : this.#logFor(request.sessionId, seq);
    const id = ephemeral
      ? this.#ephemeralId()
      : log === undefined
        ? newId('evt')
        : newIdWithWords('evt', log.words, log.count * WORDS_PER_EVENT);
    const ts = request.ts === undefined ? isoNow() : eventTimeOf(request);
    const data = copyData(request.data);
    const { type, sessionId, turnId } = request;
    // Every field in the literal (no property added afterwards): a kept event then takes no
    // more memory than it must.
    let event: RuntimeEvent;
    if (turnId === undefined) {
      event = ephemeral
        ? { id, type, sessionId, seq, ts, data, ephemeral: true }
        : { id, type, sessionId, seq, ts, data };
    } else {
      event = ephemeral
        ? { id, type, sessionId, seq, ts, data, turnId, ephemeral: true }
        : { id, type, sessionId, seq, ts, data, turnId };
    }
    Object.freeze(event);
    if (log !== undefined) this.#keep(log, event);
    // A snapshot replaced on (un)subscribe: a listener (un)subscribing during delivery changes
    // the next emit's listeners, not this one's.
    const listeners = this.#listenerList;
    for (let index = 0; index < listeners.length; index++) {
      try {
        (listeners[index] as (event: RuntimeEvent) => void)(event);
      } catch (error) {
        try {
          this.#onListenerError?.(error, event);
        } catch {
          // A failing error handler must not break emit either.
        }
      }
    }
    return event;
  }

  /**
   * An id for an ephemeral event, of the same form as `newId('evt')` and as unique, made cheaply:
   * the deltas between two kept events share the first 24 hex digits of one fresh id and count
   * up in the last 8, so ids still sort in emission order.
   */
  #ephemeralId(): string {
    if (this.#ephemeralIdBase === undefined || this.#ephemeralCount > 0xffffffff) {
      this.#ephemeralIdBase = newId('evt').slice(0, -8);
      this.#ephemeralCount = 0;
    }
    const count = this.#ephemeralCount++;
    return (
      this.#ephemeralIdBase +
      HEX[(count >>> 24) & 0xff] +
      HEX[(count >>> 16) & 0xff] +
      HEX[(count >>> 8) & 0xff] +
      HEX[count & 0xff]
    );
  }

  /**
   * Adds a kept event to its session's log (see {@link SessionLog}). Past the bound, the oldest
   * events are dropped in batches of half the bound (so a drop costs O(1) per event), and reads
   * show only the latest `maxEventsPerSession`.
   */
  #keep(log: SessionLog, event: RuntimeEvent): void {
    const index = log.count;
    if (log.seqs !== undefined) log.seqs.push(event.seq);
    else if (event.seq !== log.firstSeq + index) {
      log.seqs = Array.from({ length: index }, (_, at) => log.firstSeq + at);
      log.seqs.push(event.seq);
    }
    // The id's words were written by `newIdWithWords`; the rest follows them.
    const words = log.words;
    const at = index * WORDS_PER_EVENT;
    let typeCode = TYPE_CODES.get(event.type);
    if (typeCode === undefined) {
      typeCode = OTHER_TYPE;
      log.otherTypes ??= new Map();
      log.otherTypes.set(index, event.type);
    }
    const millis = this.#millisOf(event.ts);
    words[at + 4] = ((typeCode << 16) | Math.floor(millis / 0x100000000)) >>> 0;
    words[at + 5] = millis >>> 0;
    const { turnId } = event;
    let turn = 0;
    if (turnId !== undefined) {
      const turnIds = log.turnIds;
      if (turnIds[turnIds.length - 1] !== turnId) turnIds.push(turnId);
      turn = turnIds.length;
    }
    words[at + 6] = turn;
    log.datas[index] = event.data;
    log.count = index + 1;
    ++this.#order;
    log.orders?.push(this.#order);
    const max = this.#maxEventsPerSession;
    if (log.count >= max + Math.ceil(max / 2)) this.#drop(log, log.count - max);
  }

  /** Forgets the oldest `drop` events of a log. */
  #drop(log: SessionLog, drop: number): void {
    const words = log.words;
    const count = log.count;
    words.copyWithin(0, drop * WORDS_PER_EVENT, count * WORDS_PER_EVENT);
    log.datas.copyWithin(0, drop, count);
    log.datas.fill(undefined, count - drop, count);
    // Turn ids no kept event refers to any more: those before the first kept event's.
    const firstTurn = words[6] as number;
    const unused = firstTurn === 0 ? countTurnsBefore(words, count - drop) : firstTurn - 1;
    if (unused > 0) {
      log.turnIds.splice(0, unused);
      for (let index = 0; index < count - drop; index++) {
        const at = index * WORDS_PER_EVENT + 6;
        if ((words[at] as number) !== 0) words[at] = (words[at] as number) - unused;
      }
    }
    if (log.otherTypes !== undefined) {
      const shifted = new Map<number, string>();
      for (const [index, type] of log.otherTypes)
        if (index >= drop) shifted.set(index - drop, type);
      log.otherTypes = shifted.size === 0 ? undefined : shifted;
    }
    log.orders?.splice(0, drop);
    log.seqs?.splice(0, drop);
    log.firstSeq += drop;
    log.count = count - drop;
  }

  /**
   * The log of `sessionId`, made when its first event (numbered `seq`) is kept, with room for one
   * more event's words.
   */
  #logFor(sessionId: string, seq: number): SessionLog {
    let log = this.#bySession.get(sessionId);
    if (log === undefined) {
      // A second log: the first gets its numbers now (its events were the bus's latest).
      for (const other of this.#bySession.values()) other.orders ??= this.#ordersOf(other);
      log = {
        sessionId,
        firstSeq: seq,
        seqs: undefined,
        count: 0,
        // Room for the 13 events of a math turn; a typed array is dear to make, so one at first.
        words: new Uint32Array(WORDS_PER_EVENT * 16),
        datas: new Array(16),
        turnIds: [],
        otherTypes: undefined,
        orders: this.#bySession.size === 0 ? undefined : [],
      };
      this.#bySession.set(sessionId, log);
    }
    const index = log.count;
    if (log.datas.length <= index) {
      // A quarter more (and 16): a log of 130 events has room for 131.
      const room = index + (index >> 2) + 16;
      const words = new Uint32Array(WORDS_PER_EVENT * room);
      words.set(log.words);
      log.words = words;
      const datas = new Array(room);
      for (let at = 0; at < index; at++) datas[at] = log.datas[at];
      log.datas = datas;
    }
    return log;
  }

  /** The millisecond of a time stamp from `isoNow`, parsed once for the events of one millisecond. */
  #millisOf(ts: string): number {
    if (ts !== this.#lastTs) {
      // `isoNow` stamps are `toISOString` of a millisecond, which `Date.parse` gives back exactly.
      const millis = Date.parse(ts);
      if (!Number.isSafeInteger(millis) || millis < 0) {
        throw everrunsError('INTERNAL', `An event time the log cannot keep: ${ts}`);
      }
      this.#lastTs = ts;
      this.#lastMillis = millis;
    }
    return this.#lastMillis;
  }

  /** The event at `index` of `log`, rebuilt as it was emitted (a frozen object). */
  #eventAt(log: SessionLog, index: number): RuntimeEvent {
    const words = log.words;
    const at = index * WORDS_PER_EVENT;
    const id = idFromWords('evt', words, at);
    const typeWord = words[at + 4] as number;
    const millis = (typeWord & 0xffff) * 0x100000000 + (words[at + 5] as number);
    if (millis !== this.#readMillis) {
      this.#readMillis = millis;
      this.#readTs = isoFromMillis(millis);
    }
    const ts = this.#readTs;
    const typeCode = typeWord >>> 16;
    const type = (
      typeCode === OTHER_TYPE ? log.otherTypes?.get(index) : EVENT_TYPES[typeCode]
    ) as EventType;
    const turn = words[at + 6] as number;
    const turnId = turn === 0 ? undefined : log.turnIds[turn - 1];
    const data = log.datas[index] as Record<string, unknown>;
    const { sessionId } = log;
    const seq = log.seqs === undefined ? log.firstSeq + index : (log.seqs[index] as number);
    const event: RuntimeEvent =
      turnId === undefined
        ? { id, type, sessionId, seq, ts, data }
        : { id, type, sessionId, seq, ts, data, turnId };
    return Object.freeze(event);
  }

  /** The emission numbers of a log's events: its own, or (the only log) the bus's latest ones. */
  #ordersOf(log: SessionLog): number[] {
    if (log.orders !== undefined) return log.orders;
    const first = this.#order - log.count + 1;
    return Array.from({ length: log.count }, (_, index) => first + index);
  }

  /**
   * Events kept so far in emission order, of one session or of all: at most the latest
   * `maxEventsPerSession` of each session. Each read rebuilds them: equal (and frozen) objects,
   * not the very ones that were emitted.
   */
  collectedEvents(sessionId?: string): RuntimeEvent[] {
    if (sessionId !== undefined) {
      const log = this.#bySession.get(sessionId);
      if (log === undefined) return [];
      const events: RuntimeEvent[] = [];
      for (let index = this.#firstVisible(log); index < log.count; index++) {
        events.push(this.#eventAt(log, index));
      }
      return events;
    }
    const numbered: { order: number; log: SessionLog; index: number }[] = [];
    for (const log of this.#bySession.values()) {
      const orders = this.#ordersOf(log);
      for (let index = this.#firstVisible(log); index < log.count; index++) {
        numbered.push({ order: orders[index] as number, log, index });
      }
    }
    numbered.sort((left, right) => left.order - right.order);
    return numbered.map((entry) => this.#eventAt(entry.log, entry.index));
  }

  /** The index of a log's first event that reads show (its latest `maxEventsPerSession`). */
  #firstVisible(log: SessionLog): number {
    return Math.max(0, log.count - this.#maxEventsPerSession);
  }

  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe(listener: (event: RuntimeEvent) => void): () => void {
    // Wrap so that subscribing the same function twice yields two independent subscriptions.
    const wrapper = (event: RuntimeEvent) => listener(event);
    this.#listeners ??= new Set();
    const listeners = this.#listeners;
    listeners.add(wrapper);
    this.#listenerList = [...listeners];
    return () => {
      if (listeners.delete(wrapper)) this.#listenerList = [...listeners];
    };
  }

  /** Forgets the kept events (sequence numbers keep counting). */
  clear(): void {
    this.#bySession.clear();
  }
}

// This bus's `emit` is its `emitSync` made a promise: callers that may emit through `emitSync`
// instead do (see `EMIT_THROUGH_SYNC`). A subclass that overrides `emit` has its own function,
// unmarked, and is called through it.
markEmitThroughSync(CollectingEventBus.prototype.emit);

/**
 * How many of a log's turn ids its first `kept` events do not refer to: those before the first
 * turn one of them has (all of them, when none has one).
 */
function countTurnsBefore(words: Uint32Array, kept: number): number {
  for (let index = 0; index < kept; index++) {
    const turn = words[index * WORDS_PER_EVENT + 6] as number;
    if (turn !== 0) return turn - 1;
  }
  return Number.POSITIVE_INFINITY;
}
