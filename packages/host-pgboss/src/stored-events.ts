import type { EventRequest, RuntimeBackends, RuntimeEvent } from '@everruns-ts/core';

const PAGE = 1000;

/**
 * The stored event equal to `request` (type, turn and data), when the bus can load a session's
 * events; `null` when it is not stored or the bus cannot tell.
 */
export async function findStoredEvent(
  bus: RuntimeBackends['events'],
  request: EventRequest,
): Promise<RuntimeEvent | null> {
  const loader = (bus as { loadEvents?: unknown }).loadEvents;
  if (typeof loader !== 'function') return null;
  const load = loader as (
    sessionId: string,
    page: { afterSeq: number; limit: number },
  ) => Promise<RuntimeEvent[]>;
  const wanted = canonicalJson(request.data ?? {});
  let afterSeq = 0;
  for (;;) {
    const page = await load.call(bus, request.sessionId, { afterSeq, limit: PAGE });
    for (const event of page) {
      if (
        event.type === request.type &&
        event.turnId === request.turnId &&
        canonicalJson(event.data) === wanted
      ) {
        return event;
      }
    }
    const last = page[page.length - 1];
    if (page.length < PAGE || !last) return null;
    afterSeq = last.seq;
  }
}

/** JSON with object keys sorted, so two equal values compare equal whatever their key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(
          Object.entries(item as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : item,
  );
}
