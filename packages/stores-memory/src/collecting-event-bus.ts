import {
  type EventBus,
  type EventRequest,
  isEphemeralEventType,
  isoNow,
  newId,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { freezeCopy } from './freeze-copy.js';

/** Options of {@link CollectingEventBus}. */
export interface CollectingEventBusOptions {
  /** Keep emitted events for {@link CollectingEventBus.collectedEvents}. Default true. */
  keepEvents?: boolean;
  /**
   * Called when a listener throws. The error never reaches the emitter. By default it is
   * ignored.
   */
  onListenerError?: (error: unknown, event: RuntimeEvent) => void;
}

/**
 * An event bus that numbers events per session (`seq` 1, 2, 3 …), keeps them in memory and
 * calls subscribers synchronously. A listener that throws does not stop the others or the
 * emitter. Ephemeral events (the streamed deltas, see `EPHEMERAL_EVENT_TYPES`) are delivered to
 * subscribers with `ephemeral: true` and the `seq` of the session's last kept event (0 before the
 * first), never kept and never numbered.
 */
export class CollectingEventBus implements EventBus {
  readonly #events: RuntimeEvent[] = [];
  readonly #bySession = new Map<string, RuntimeEvent[]>();
  readonly #seqs = new Map<string, number>();
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  readonly #keepEvents: boolean;
  readonly #onListenerError: ((error: unknown, event: RuntimeEvent) => void) | undefined;

  constructor(options: CollectingEventBusOptions = {}) {
    this.#keepEvents = options.keepEvents ?? true;
    this.#onListenerError = options.onListenerError;
  }

  /** Numbers, stamps, keeps and delivers one event (an ephemeral one is only stamped and delivered). */
  async emit(request: EventRequest): Promise<RuntimeEvent> {
    const ephemeral = isEphemeralEventType(request.type);
    let seq = this.#seqs.get(request.sessionId) ?? 0;
    if (!ephemeral) {
      seq += 1;
      this.#seqs.set(request.sessionId, seq);
    }
    const event: RuntimeEvent = {
      id: newId('evt'),
      type: request.type,
      sessionId: request.sessionId,
      seq,
      ts: isoNow(),
      data: request.data ?? {},
    };
    if (request.turnId !== undefined) event.turnId = request.turnId;
    if (ephemeral) event.ephemeral = true;
    const frozen = freezeCopy(event);
    if (this.#keepEvents && !ephemeral) {
      this.#events.push(frozen);
      let sessionEvents = this.#bySession.get(request.sessionId);
      if (sessionEvents === undefined) {
        sessionEvents = [];
        this.#bySession.set(request.sessionId, sessionEvents);
      }
      sessionEvents.push(frozen);
    }
    for (const listener of [...this.#listeners]) {
      try {
        listener(frozen);
      } catch (error) {
        try {
          this.#onListenerError?.(error, frozen);
        } catch {
          // A failing error handler must not break emit either.
        }
      }
    }
    return frozen;
  }

  /** Events kept so far in emission order, of one session or of all. */
  collectedEvents(sessionId?: string): RuntimeEvent[] {
    if (sessionId === undefined) return this.#events.slice();
    return (this.#bySession.get(sessionId) ?? []).slice();
  }

  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe(listener: (event: RuntimeEvent) => void): () => void {
    // Wrap so that subscribing the same function twice yields two independent subscriptions.
    const wrapper = (event: RuntimeEvent) => listener(event);
    this.#listeners.add(wrapper);
    return () => {
      this.#listeners.delete(wrapper);
    };
  }

  /** Forgets the kept events (sequence numbers keep counting). */
  clear(): void {
    this.#events.length = 0;
    this.#bySession.clear();
  }
}
