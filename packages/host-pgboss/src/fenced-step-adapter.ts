import type { EventRequest, EventType, RuntimeBackends, RuntimeEvent } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from '@everruns-ts/runtime/host';
import { StaleStepError } from './host-errors.js';
import { findStoredEvent } from './stored-events.js';
import type { TurnRecords } from './turn-records.js';

/** Events that say where a session or turn stands: a stale step must not emit them. */
const LIFECYCLE_EVENTS = new Set<EventType>([
  'session.activated',
  'turn.started',
  'turn.completed',
  'turn.failed',
  'session.idled',
]);

/** Options of {@link fencedStepAdapter}. */
export interface FencedStepOptions {
  /**
   * True when the step may have run before (its claim is not the turn's first): the turn's start
   * events are then looked up before they are emitted, so they are emitted once per turn.
   */
  replay?: boolean;
}

/**
 * Events that start a turn (its input step emits them): emitted once per turn, so a replayed input
 * step finds them stored (when the bus can load events) and does not emit them again.
 */
const START_EVENTS = new Set<EventType>(['session.activated', 'turn.started']);

/**
 * The adapter a step runs with while it holds the turn's fencing token `fence`: before each
 * session status write and each lifecycle event, the token is checked in the host's `turns`
 * table, and a step that lost it throws {@link StaleStepError} instead of writing. Messages need no
 * fence: they are stored once by their idempotency keys. The session store has no conditional
 * write, so the check and the write are two statements; a step would have to lose its claim in
 * between for a stale write to land. `session.activated` and `turn.started` are emitted once per
 * turn: a replayed input step (`options.replay`) finds them stored and returns them (when the bus
 * can load events, as `PostgresEventBus`).
 */
export function fencedStepAdapter(
  adapter: RuntimeHostAdapter,
  turns: TurnRecords,
  turnId: string,
  fence: number,
  options: FencedStepOptions = {},
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
  const batching = events as {
    emitMany?: (requests: EventRequest[]) => Promise<RuntimeEvent[]>;
  };
  const storedStart = (request: EventRequest) =>
    options.replay && START_EVENTS.has(request?.type)
      ? findStoredEvent(events, request)
      : Promise.resolve(null);
  const fencedEvents = intercept(events, {
    // A status set with its events in one step (`StatusEventBus`) would skip the fence and the
    // start events' replay check: hidden, so the status and the events go through the above.
    updateSessionStatusAndEmit: undefined,
    setValueIfAbsentAndEmit: undefined,
    emit: async (request: EventRequest) => {
      if (LIFECYCLE_EVENTS.has(request?.type)) await check();
      return (await storedStart(request)) ?? events.emit(request);
    },
    ...(typeof batching.emitMany === 'function'
      ? {
          emitMany: async (requests: EventRequest[]) => {
            if (requests.some((request) => LIFECYCLE_EVENTS.has(request?.type))) await check();
            const stored = await Promise.all(requests.map(storedStart));
            const missing = requests.filter((_request, index) => stored[index] === null);
            const emitted =
              missing.length === 0 ? [] : ((await batching.emitMany?.call(events, missing)) ?? []);
            let next = 0;
            return stored.map((found) => found ?? (emitted[next++] as RuntimeEvent));
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
