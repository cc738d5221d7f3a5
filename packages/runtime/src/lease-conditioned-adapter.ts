import {
  EverrunsError,
  type MessageEventBus,
  type MessageWriteLease,
  type MessageWriteOptions,
  type RuntimeMessageStore,
  type RuntimeSessionStore,
  type StatusEventBus,
  turnInProgressError,
} from '@everruns-ts/core';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';

/** The lease a turn holds, as {@link leaseConditionedAdapter} needs it. */
export interface HeldLeaseIdentity {
  /** The holder id the turn claimed the lease with. */
  holderId: string;
  /** How long a renewal extends the lease, in milliseconds. */
  durationMs: number;
  /** Called with the `TURN_IN_PROGRESS` error when a write's renewal finds the lease taken over. */
  onLost?(error: unknown): void;
  /**
   * The turn's end: a status or message write that asks to release the lease (`releaseLease`,
   * the turn's last write) gets this holder and the values to delete with it,
   * `deleteValuesWithPrefix` (the turn's tool-call journal) when given; `onReleased` is called when the bus released it.
   * Without it such a request is dropped and the lease is released apart.
   */
  releaseWithTurnEnd?: {
    deleteValuesWithPrefix?: string;
    onReleased(): void;
  };
}

/**
 * The adapter a leased turn runs with. Every session status write it makes is conditional on the
 * turn still holding the session's turn lease (`updateSessionStatus(…, { leaseHolder })`, one
 * atomic step in the store), and every message write first renews the lease: when the renewal
 * finds the lease gone (another holder took it over), the write is refused with
 * `TURN_IN_PROGRESS` (and `onLost` is told, so the turn stops as when its renewal timer finds the
 * lease gone) instead of landing in the new holder's history. A renewal that fails (store
 * unreachable) lets the write go on, as the renewal timer does. When the message store offers
 * `leaseConditionedWrites`, the renewal is the write's own `lease` option instead (one atomic
 * step, one request): a write it refuses with `TURN_IN_PROGRESS` tells `onLost` the same way.
 * Everything else is the given adapter's.
 */
export function leaseConditionedAdapter(
  adapter: RuntimeHostAdapter,
  lease: HeldLeaseIdentity,
): RuntimeHostAdapter {
  const { sessions, messages } = adapter.backends;
  const { holderId, durationMs } = lease;
  const stillHeld = async (sessionId: string): Promise<void> => {
    const renewed = await sessions
      .renewTurnLease(sessionId, holderId, durationMs)
      .catch(() => undefined);
    if (renewed !== null) return;
    const current = await sessions.getTurnLease(sessionId).catch(() => null);
    const error = turnInProgressError(
      {
        sessionId,
        ...(current ? { holder: current.holderId, expiresAt: current.expiresAt } : {}),
      },
      { cause: new Error(`The turn lease of ${holderId} was taken over; the write was refused`) },
    );
    lease.onLost?.(error);
    throw error;
  };
  const conditionedSessions = replaceMethods(sessions, {
    updateSessionStatus: ((sessionId, status, options) =>
      sessions.updateSessionStatus(sessionId, status, {
        leaseHolder: holderId,
        ...options,
      })) satisfies RuntimeSessionStore['updateSessionStatus'],
  });
  const writeLease: MessageWriteLease = { holderId, durationMs };
  /** Runs a leased write; a `TURN_IN_PROGRESS` refusal means the lease was taken over. */
  const refused = (error: unknown): never => {
    if (EverrunsError.hasCode(error, 'TURN_IN_PROGRESS')) lease.onLost?.(error);
    throw error;
  };
  const leased = <T>(write: Promise<T>): Promise<T> => write.catch(refused);
  /**
   * The write's options with the lease. Not `{ ...options, lease }`: on Node 20 a spread followed by
   * more properties keeps young objects alive through scavenges (`bench/RESULTS.md`).
   */
  const withLease = (options: MessageWriteOptions | undefined): MessageWriteOptions => {
    const leasedOptions: MessageWriteOptions = Object.assign({}, options);
    leasedOptions.lease = writeLease;
    return leasedOptions;
  };
  const conditionedMessages = messages.leaseConditionedWrites
    ? replaceMethods(messages, {
        addInputMessage: ((sessionId, input, turnId, options) =>
          leased(
            messages.addInputMessage(sessionId, input, turnId, withLease(options)),
          )) satisfies RuntimeMessageStore['addInputMessage'],
        storeMessage: ((sessionId, message, options) =>
          leased(
            messages.storeMessage(sessionId, message, withLease(options)),
          )) satisfies RuntimeMessageStore['storeMessage'],
        storeMessages: ((sessionId, batch, options) =>
          leased(
            messages.storeMessages(sessionId, batch, withLease(options)),
          )) satisfies RuntimeMessageStore['storeMessages'],
      })
    : replaceMethods(messages, {
        addInputMessage: (async (sessionId, input, turnId) => {
          await stillHeld(sessionId);
          return messages.addInputMessage(sessionId, input, turnId);
        }) satisfies RuntimeMessageStore['addInputMessage'],
        storeMessage: (async (sessionId, message, options) => {
          await stillHeld(sessionId);
          return options === undefined
            ? messages.storeMessage(sessionId, message)
            : messages.storeMessage(sessionId, message, options);
        }) satisfies RuntimeMessageStore['storeMessage'],
        storeMessages: (async (sessionId, batch) => {
          await stillHeld(sessionId);
          return messages.storeMessages(sessionId, batch);
        }) satisfies RuntimeMessageStore['storeMessages'],
      });
  // A bus that stores a message with its events (`MessageEventBus`) writes through the message
  // store it is given: the lease goes with the write as with `storeMessage`. A store without
  // leased writes needs its renewal first, so its bus writes the two apart (the method hidden).
  // A bus that sets a status with its events (`StatusEventBus`) writes through the session store
  // it is given: conditioned on the holder as `updateSessionStatus` is.
  const { events } = adapter.backends;
  const joint = events as Partial<MessageEventBus & StatusEventBus>;
  const jointReplacements: Record<string, unknown> = {};
  if (typeof joint.storeMessageAndEmit === 'function') {
    jointReplacements.storeMessageAndEmit = messages.leaseConditionedWrites
      ? (((_messages, sessionId, message, build, options) => {
          // A write that ends the turn releases the lease as the status write below does.
          const { releaseLease, ...write } = options ?? {};
          const release = releaseLease ? lease.releaseWithTurnEnd : undefined;
          const written = leased(
            (joint.storeMessageAndEmit as MessageEventBus['storeMessageAndEmit']).call(
              events,
              messages,
              sessionId,
              message,
              build,
              {
                ...write,
                lease: writeLease,
                ...(release ? { releaseLease: releaseOf(release) } : {}),
              },
            ),
          );
          if (!release) return written;
          return written.then((result) => {
            if (result?.leaseReleased === true) release.onReleased();
            return result;
          });
        }) satisfies MessageEventBus['storeMessageAndEmit'])
      : undefined;
  }
  if (typeof joint.updateSessionStatusAndEmit === 'function') {
    jointReplacements.updateSessionStatusAndEmit = ((
      _sessions,
      sessionId,
      status,
      requests,
      options,
    ) => {
      const { releaseLease, ...update } = options ?? {};
      const release = releaseLease ? lease.releaseWithTurnEnd : undefined;
      const written = (
        joint.updateSessionStatusAndEmit as StatusEventBus['updateSessionStatusAndEmit']
      ).call(events, sessions, sessionId, status, requests, {
        leaseHolder: holderId,
        ...update,
        ...(release ? { releaseLease: releaseOf(release) } : {}),
      });
      if (!release) return written;
      return written.then((result) => {
        if (result?.leaseReleased === true) release.onReleased();
        return result;
      });
    }) satisfies StatusEventBus['updateSessionStatusAndEmit'];
  }
  const conditionedEvents =
    Object.keys(jointReplacements).length === 0
      ? events
      : replaceMethods(events, jointReplacements);
  // Copies by `Object.assign`, not spreads followed by properties (see `withLease`).
  const backends: RuntimeHostAdapter['backends'] = Object.assign({}, adapter.backends);
  backends.sessions = conditionedSessions;
  backends.messages = conditionedMessages;
  backends.events = conditionedEvents;
  const conditioned: RuntimeHostAdapter = Object.assign({}, adapter);
  conditioned.backends = backends;
  return conditioned;
}

/** The `releaseLease` option of a turn's last write: the journal's values go with the lease. */
function releaseOf(release: NonNullable<HeldLeaseIdentity['releaseWithTurnEnd']>): {
  deleteValuesWithPrefix?: string;
} {
  const { deleteValuesWithPrefix } = release;
  return deleteValuesWithPrefix === undefined ? {} : { deleteValuesWithPrefix };
}

/** `target` with some methods replaced; every other member is `target`'s (methods bound to it). */
function replaceMethods<T extends object>(target: T, replacements: Record<string, unknown>): T {
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
