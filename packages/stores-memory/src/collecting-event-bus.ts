import {
  type EventBus,
  type EventRequest,
  everrunsError,
  isEphemeralEventType,
  isoNow,
  newId,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { freezeCopy, plainObjectFor } from './freeze-copy.js';

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
  const keys = Object.keys(data);
  // Sized for its keys: no separate property array past four keys (see `plainObjectFor`).
  const copy = plainObjectFor(keys.length);
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index] as string;
    const value = data[key];
    // Nested data, or a key that needs defining rather than assigning: the deep copy.
    if ((value !== null && typeof value === 'object') || key === '__proto__') {
      return freezeCopy(data);
    }
    copy[key] = value;
  }
  return Object.freeze(copy);
}

/** The default of {@link CollectingEventBusOptions.maxEventsPerSession}: 1,000 events. */
export const DEFAULT_MAX_EVENTS_PER_SESSION = 1000;

/**
 * The kept events of one session, with the bus-wide emission number of each. While the bus keeps
 * a single session's log, `orders` is left out (its events are the bus's latest, numbered on
 * demand), which saves a number per event for a runtime of one session.
 */
interface SessionLog {
  readonly events: RuntimeEvent[];
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
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  /** {@link #listeners} as an array, replaced (never changed) when a listener comes or goes. */
  #listenerList: ReadonlyArray<(event: RuntimeEvent) => void> = [];
  /** See {@link #ephemeralId}; reset by every kept event. */
  #ephemeralIdBase: string | undefined;
  #ephemeralCount = 0;
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
    const id = ephemeral ? this.#ephemeralId() : newId('evt');
    const ts = isoNow();
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
    if (this.#keepEvents && !ephemeral) this.#keep(event);
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
   * Adds a kept event to its session's log. Past the bound, the oldest events are dropped in
   * batches of half the bound (so a drop costs O(1) per event), and reads show only the latest
   * `maxEventsPerSession`.
   */
  #keep(event: RuntimeEvent): void {
    let log = this.#bySession.get(event.sessionId);
    if (log === undefined) {
      // A second log: the first gets its numbers now (its events were the bus's latest).
      for (const other of this.#bySession.values()) other.orders ??= this.#ordersOf(other);
      log = { events: [], orders: this.#bySession.size === 0 ? undefined : [] };
      this.#bySession.set(event.sessionId, log);
    }
    log.events.push(event);
    ++this.#order;
    log.orders?.push(this.#order);
    const max = this.#maxEventsPerSession;
    if (log.events.length >= max + Math.ceil(max / 2)) {
      const drop = log.events.length - max;
      log.events.splice(0, drop);
      log.orders?.splice(0, drop);
    }
  }

  /** The emission numbers of a log's events: its own, or (the only log) the bus's latest ones. */
  #ordersOf(log: SessionLog): number[] {
    if (log.orders !== undefined) return log.orders;
    const first = this.#order - log.events.length + 1;
    return Array.from({ length: log.events.length }, (_, index) => first + index);
  }

  /** The kept events of a session's log that reads show (its latest `maxEventsPerSession`). */
  #visible(log: SessionLog): { events: RuntimeEvent[]; orders: number[] } {
    const from = Math.max(0, log.events.length - this.#maxEventsPerSession);
    return { events: log.events.slice(from), orders: this.#ordersOf(log).slice(from) };
  }

  /**
   * Events kept so far in emission order, of one session or of all: at most the latest
   * `maxEventsPerSession` of each session.
   */
  collectedEvents(sessionId?: string): RuntimeEvent[] {
    if (sessionId !== undefined) {
      const log = this.#bySession.get(sessionId);
      if (log === undefined) return [];
      return log.events.slice(Math.max(0, log.events.length - this.#maxEventsPerSession));
    }
    const numbered: { order: number; event: RuntimeEvent }[] = [];
    for (const log of this.#bySession.values()) {
      const { events, orders } = this.#visible(log);
      for (let index = 0; index < events.length; index++) {
        numbered.push({ order: orders[index] as number, event: events[index] as RuntimeEvent });
      }
    }
    numbered.sort((left, right) => left.order - right.order);
    return numbered.map((entry) => entry.event);
  }

  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe(listener: (event: RuntimeEvent) => void): () => void {
    // Wrap so that subscribing the same function twice yields two independent subscriptions.
    const wrapper = (event: RuntimeEvent) => listener(event);
    this.#listeners.add(wrapper);
    this.#listenerList = [...this.#listeners];
    return () => {
      if (this.#listeners.delete(wrapper)) this.#listenerList = [...this.#listeners];
    };
  }

  /** Forgets the kept events (sequence numbers keep counting). */
  clear(): void {
    this.#bySession.clear();
  }
}
