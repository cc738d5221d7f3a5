import type { Session, SessionStatus } from '../domain.js';
import { type EventBus, type EventRequest, type RuntimeEvent, syncEmitOf } from '../event.js';
import type { Message, NewMessage } from '../message.js';
import type {
  BatchingEventBus,
  ClaimEventBus,
  JointMessageOptions,
  JointMessageWrite,
  JointStatusOptions,
  MessageEventBus,
  RuntimeBackends,
  StatusEventBus,
  StoredMessageAndEvents,
} from '../stores.js';

/**
 * Emits events in order: in one call when the bus is a {@link BatchingEventBus}, through its
 * `emitSync` when its `emit` is marked as doing the same (`EMIT_THROUGH_SYNC`: the in-memory bus;
 * no promise per event), otherwise one by one (each stored before the next is emitted).
 */
export async function emitEvents(bus: EventBus, requests: EventRequest[]): Promise<RuntimeEvent[]> {
  return emitEventsNow(bus, requests);
}

/**
 * {@link emitEvents}, returning the events themselves (no promise) when the bus emitted them
 * through its `emitSync`.
 */
function emitEventsNow(
  bus: EventBus,
  requests: EventRequest[],
): RuntimeEvent[] | Promise<RuntimeEvent[]> {
  const batching = bus as Partial<BatchingEventBus>;
  if (requests.length > 1 && typeof batching.emitMany === 'function') {
    return batching.emitMany.call(bus, requests);
  }
  const emitSync = syncEmitOf(bus);
  if (emitSync !== undefined) {
    const events = new Array<RuntimeEvent>(requests.length);
    for (let index = 0; index < requests.length; index++) {
      events[index] = emitSync.call(bus, requests[index] as EventRequest);
    }
    return events;
  }
  return emitOneByOne(bus, requests);
}

async function emitOneByOne(bus: EventBus, requests: EventRequest[]): Promise<RuntimeEvent[]> {
  const events: RuntimeEvent[] = [];
  for (const request of requests) events.push(await bus.emit(request));
  return events;
}

/**
 * Stores a message and then emits the events `events(stored)` builds (as `storeMessage` then
 * {@link emitEvents}): in one round trip when the bus is a {@link MessageEventBus} that can write
 * both together, otherwise as the two calls. `events` must build the same requests from equal
 * messages (it may be called more than once). `options.sessionStatus` and
 * `options.loadTurnSnapshot`, `options.releaseLease` and `options.claimValue` are passed to such a
 * bus only (see {@link JointMessageOptions}); `statusSet` says whether it set the status (when
 * not, the caller sets it), `turnSnapshot` is the snapshot it read with the write,
 * `leaseReleased` whether it released the turn lease, `valueClaimed` whether it set the value.
 */
export async function storeMessageAndEmit(
  backends: Pick<RuntimeBackends, 'messages' | 'events'>,
  sessionId: string,
  message: NewMessage,
  events: (stored: Message) => EventRequest[],
  options?: JointMessageOptions,
): Promise<StoredMessageAndEvents> {
  // No promise to wait for on a bus without joint writes.
  const writing = jointMessageWrite(backends, sessionId, message, events, options);
  const joint = writing === null ? null : await writing;
  if (joint?.events) {
    const result: StoredMessageAndEvents = { message: joint.message, events: joint.events };
    if (joint.statusSet === true) result.statusSet = true;
    if (joint.turnSnapshot) result.turnSnapshot = joint.turnSnapshot;
    if (joint.leaseReleased === true) result.leaseReleased = true;
    if (joint.valueClaimed === true) result.valueClaimed = true;
    return result;
  }
  let stored: Message;
  if (joint !== null) {
    stored = joint.message;
  } else if (options === undefined) {
    stored = await backends.messages.storeMessage(sessionId, message);
  } else {
    const {
      sessionStatus: _status,
      loadTurnSnapshot: _snapshot,
      releaseLease: _release,
      claimValue: _claim,
      ...store
    } = options;
    stored = await backends.messages.storeMessage(sessionId, message, store);
  }
  const emitted = emitEventsNow(backends.events, events(stored));
  return { message: stored, events: Array.isArray(emitted) ? emitted : await emitted };
}

/**
 * The bus's own {@link MessageEventBus.storeMessageAndEmit} (message and events in one round
 * trip), or `null` (no promise) without calling anything when the bus has none: the one dispatch
 * {@link storeMessageAndEmit} and the input atom share.
 */
export function jointMessageWrite(
  backends: Pick<RuntimeBackends, 'messages' | 'events'>,
  sessionId: string,
  message: NewMessage,
  events: (stored: Message) => EventRequest[],
  options?: JointMessageOptions,
): Promise<JointMessageWrite | null> | null {
  const bus = backends.events as Partial<MessageEventBus>;
  return typeof bus.storeMessageAndEmit === 'function'
    ? bus.storeMessageAndEmit.call(
        backends.events,
        backends.messages,
        sessionId,
        message,
        events,
        options,
      )
    : null;
}

/**
 * Sets a session-storage value where its key has none and, only then, emits `events` (as
 * `storage.setValueIfAbsent` then {@link emitEvents}; a store without `setValueIfAbsent` reads
 * then writes): in one round trip when the bus is a {@link ClaimEventBus} that can write both
 * together. Resolves whether the value was set now, and the events emitted (none when not).
 */
export async function setValueIfAbsentAndEmit(
  backends: Pick<RuntimeBackends, 'storage' | 'events'>,
  sessionId: string,
  key: string,
  value: string,
  events: EventRequest[],
): Promise<{ set: boolean; events: RuntimeEvent[] }> {
  const bus = backends.events as Partial<ClaimEventBus>;
  const joint =
    typeof bus.setValueIfAbsentAndEmit === 'function'
      ? await bus.setValueIfAbsentAndEmit.call(
          backends.events,
          backends.storage,
          sessionId,
          key,
          value,
          events,
        )
      : null;
  if (joint !== null) {
    if (!joint.set) return { set: false, events: [] };
    if (joint.events) return { set: true, events: joint.events };
  } else {
    const { storage } = backends;
    let set: boolean;
    if (storage.setValueIfAbsent) {
      set = await storage.setValueIfAbsent(sessionId, key, value);
    } else {
      set = (await storage.getValue(sessionId, key)) === null;
      if (set) await storage.setValue(sessionId, key, value);
    }
    if (!set) return { set: false, events: [] };
  }
  const emitted = emitEventsNow(backends.events, events);
  return { set: true, events: Array.isArray(emitted) ? emitted : await emitted };
}

/**
 * Sets a session's status and then emits `events` (as `updateSessionStatus` then
 * {@link emitEvents}): in one round trip when the bus is a {@link StatusEventBus} that can write
 * both together, otherwise as the two calls. `options.releaseLease` is passed to such a bus only
 * (see {@link JointStatusOptions}); `leaseReleased` says whether it released the lease (when
 * `false` the caller still holds it).
 */
export async function updateSessionStatusAndEmit(
  backends: Pick<RuntimeBackends, 'sessions' | 'events'>,
  sessionId: string,
  status: SessionStatus,
  events: EventRequest[],
  options?: JointStatusOptions,
): Promise<{ session: Session; events: RuntimeEvent[]; leaseReleased: boolean }> {
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
  const leaseReleased = joint?.leaseReleased === true;
  if (joint?.events) return { session: joint.session, events: joint.events, leaseReleased };
  let session: Session;
  if (joint !== null) {
    session = joint.session;
  } else if (options === undefined) {
    session = await backends.sessions.updateSessionStatus(sessionId, status);
  } else {
    const { releaseLease: _release, ...update } = options;
    session = await backends.sessions.updateSessionStatus(sessionId, status, update);
  }
  const emitted = emitEventsNow(backends.events, events);
  return { session, events: Array.isArray(emitted) ? emitted : await emitted, leaseReleased };
}

/** The joint-write methods of a bus, as {@link wrapJointWrites} gives them. */
export type JointWriteMethods = Partial<
  Pick<MessageEventBus, 'storeMessageAndEmit'> &
    Pick<StatusEventBus, 'updateSessionStatusAndEmit'> &
    Pick<ClaimEventBus, 'setValueIfAbsentAndEmit'>
>;

/** Options of {@link wrapJointWrites}. */
export interface WrapJointWritesOptions {
  /** Called with the event requests of a status write before the bus is asked to write them. */
  beforeStatusWrite?: (requests: readonly EventRequest[]) => void;
  /**
   * Whether `onEvents` needs calling at all, asked on each write (a wrapper with no listeners
   * returns the bus's own promise).
   */
  active?: () => boolean;
}

/**
 * For a bus wrapper (a tap, a tracer) that acts on the events the bus emits: the bus's joint-write
 * methods ({@link MessageEventBus.storeMessageAndEmit}, {@link StatusEventBus.updateSessionStatusAndEmit},
 * {@link ClaimEventBus.setValueIfAbsentAndEmit}),
 * each calling the bus's own and then handing the events it wrote to `onEvents` (awaited when it
 * returns a promise) before resolving. A method the bus lacks is left out, so the wrapper hides it
 * as well. When the bus wrote no events (`events: null`) the caller emits them through `emit`,
 * which the wrapper already sees.
 */
export function wrapJointWrites(
  bus: EventBus,
  onEvents: (events: readonly RuntimeEvent[]) => void | Promise<void>,
  options: WrapJointWritesOptions = {},
): JointWriteMethods {
  const { beforeStatusWrite, active } = options;
  const after = <T extends { events: RuntimeEvent[] | null } | null>(written: Promise<T>) => {
    if (active !== undefined && !active()) return written;
    return written.then((result) => {
      if (!result?.events) return result;
      const pending = onEvents(result.events);
      return pending instanceof Promise ? pending.then(() => result) : result;
    });
  };
  const joint = bus as Partial<MessageEventBus & StatusEventBus & ClaimEventBus>;
  const methods: JointWriteMethods = {};
  const store = joint.storeMessageAndEmit;
  if (typeof store === 'function') {
    methods.storeMessageAndEmit = (...args) => after(store.apply(bus, args));
  }
  const claim = joint.setValueIfAbsentAndEmit;
  if (typeof claim === 'function') {
    methods.setValueIfAbsentAndEmit = (...args) => after(claim.apply(bus, args));
  }
  const update = joint.updateSessionStatusAndEmit;
  if (typeof update === 'function') {
    methods.updateSessionStatusAndEmit = (...args) => {
      beforeStatusWrite?.(args[3]);
      return after(update.apply(bus, args));
    };
  }
  return methods;
}
