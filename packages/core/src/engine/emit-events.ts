import type { Session, SessionStatus } from '../domain.js';
import type { EventBus, EventRequest, RuntimeEvent } from '../event.js';
import type { Message, NewMessage } from '../message.js';
import type {
  BatchingEventBus,
  MessageEventBus,
  RuntimeBackends,
  StatusEventBus,
  StoredMessageAndEvents,
  StoreMessageOptions,
  UpdateSessionStatusOptions,
} from '../stores.js';

/**
 * Emits events in order: in one call when the bus is a {@link BatchingEventBus}, otherwise one
 * by one (each stored before the next is emitted).
 */
export async function emitEvents(bus: EventBus, requests: EventRequest[]): Promise<RuntimeEvent[]> {
  const batching = bus as Partial<BatchingEventBus>;
  if (requests.length > 1 && typeof batching.emitMany === 'function') {
    return batching.emitMany.call(bus, requests);
  }
  const events: RuntimeEvent[] = [];
  for (const request of requests) events.push(await bus.emit(request));
  return events;
}

/**
 * Stores a message and then emits the events `events(stored)` builds (as `storeMessage` then
 * {@link emitEvents}): in one round trip when the bus is a {@link MessageEventBus} that can write
 * both together, otherwise as the two calls. `events` must build the same requests from equal
 * messages (it may be called more than once).
 */
export async function storeMessageAndEmit(
  backends: Pick<RuntimeBackends, 'messages' | 'events'>,
  sessionId: string,
  message: NewMessage,
  events: (stored: Message) => EventRequest[],
  options?: StoreMessageOptions,
): Promise<StoredMessageAndEvents> {
  const bus = backends.events as Partial<MessageEventBus>;
  const joint =
    typeof bus.storeMessageAndEmit === 'function'
      ? await bus.storeMessageAndEmit.call(
          backends.events,
          backends.messages,
          sessionId,
          message,
          events,
          options,
        )
      : null;
  if (joint?.events) return { message: joint.message, events: joint.events };
  const stored =
    joint !== null
      ? joint.message
      : options === undefined
        ? await backends.messages.storeMessage(sessionId, message)
        : await backends.messages.storeMessage(sessionId, message, options);
  return { message: stored, events: await emitEvents(backends.events, events(stored)) };
}

/**
 * Sets a session's status and then emits `events` (as `updateSessionStatus` then
 * {@link emitEvents}): in one round trip when the bus is a {@link StatusEventBus} that can write
 * both together, otherwise as the two calls.
 */
export async function updateSessionStatusAndEmit(
  backends: Pick<RuntimeBackends, 'sessions' | 'events'>,
  sessionId: string,
  status: SessionStatus,
  events: EventRequest[],
  options?: UpdateSessionStatusOptions,
): Promise<{ session: Session; events: RuntimeEvent[] }> {
  const bus = backends.events as Partial<StatusEventBus>;
  const joint =
    typeof bus.updateSessionStatusAndEmit === 'function'
      ? await bus.updateSessionStatusAndEmit.call(
          backends.events,
          backends.sessions,
          sessionId,
          status,
          events,
          options,
        )
      : null;
  if (joint?.events) return { session: joint.session, events: joint.events };
  const session =
    joint !== null
      ? joint.session
      : options === undefined
        ? await backends.sessions.updateSessionStatus(sessionId, status)
        : await backends.sessions.updateSessionStatus(sessionId, status, options);
  return { session, events: await emitEvents(backends.events, events) };
}
