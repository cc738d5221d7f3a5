import type { EventRequest, EventType, RuntimeBackends } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from '@everruns-ts/runtime/host';
import { StaleStepError } from './host-errors.js';
import type { TurnRecords } from './turn-records.js';

/** Events that say where a session or turn stands: a stale step must not emit them. */
const LIFECYCLE_EVENTS = new Set<EventType>([
  'session.activated',
  'turn.started',
  'turn.completed',
  'turn.failed',
  'session.idled',
]);

/**
 * The adapter a step runs with while it holds the turn's fencing token `fence`: before each
 * session status write and each lifecycle event, the token is checked in the host's `turns`
 * table, and a step that lost it throws {@link StaleStepError} instead of writing. Messages need no
 * fence: they are stored once by their idempotency keys. The session store has no conditional
 * write, so the check and the write are two statements; a step would have to lose its claim in
 * between for a stale write to land.
 */
export function fencedStepAdapter(
  adapter: RuntimeHostAdapter,
  turns: TurnRecords,
  turnId: string,
  fence: number,
): RuntimeHostAdapter {
  const check = async () => {
    if (!(await turns.holdsFence(turnId, fence))) throw new StaleStepError(turnId);
  };
  const { sessions, events } = adapter.backends;
  const fencedSessions = intercept(sessions, {
    updateSessionStatus: async (...args: Parameters<typeof sessions.updateSessionStatus>) => {
      await check();
      return sessions.updateSessionStatus(...args);
    },
  });
  const batching = events as { emitMany?: (requests: EventRequest[]) => Promise<unknown> };
  const fencedEvents = intercept(events, {
    emit: async (request: EventRequest) => {
      if (LIFECYCLE_EVENTS.has(request?.type)) await check();
      return events.emit(request);
    },
    ...(typeof batching.emitMany === 'function'
      ? {
          emitMany: async (requests: EventRequest[]) => {
            if (requests.some((request) => LIFECYCLE_EVENTS.has(request?.type))) await check();
            return batching.emitMany?.call(events, requests);
          },
        }
      : {}),
  });
  const backends: RuntimeBackends = {
    ...adapter.backends,
    sessions: fencedSessions,
    events: fencedEvents,
  };
  return { ...adapter, backends };
}

/**
 * `target` with some methods replaced; every other member is read from `target` (methods bound
 * to it), so stores that are class instances keep working.
 */
export function intercept<T extends object>(target: T, replacements: Record<string, unknown>): T {
  return new Proxy(target, {
    get(object, property) {
      if (typeof property === 'string' && Object.hasOwn(replacements, property)) {
        return replacements[property];
      }
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
