import type { EventBus, EventRequest, RuntimeEvent } from '../event.js';
import type { BatchingEventBus } from '../stores.js';

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
