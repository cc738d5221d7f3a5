import {
  type EventRequest,
  EverrunsError,
  isEphemeralEventType,
  type JointStatusOptions,
  type RuntimeBackends,
  type RuntimeEvent,
  type Session,
  type SessionStatus,
  type StatusEventBus,
} from '@everruns-ts/core';
import {
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
  settleTurn,
  type TurnResult,
} from '@everruns-ts/runtime/host';
import { intercept } from './fenced-step-adapter.js';
import { StaleStepError } from './host-errors.js';
import { releaseTurnLease, turnLeaseHolder } from './host-turn-lease.js';
import { findStoredEvent } from './stored-events.js';
import type { HostTurnStatusName, PendingEnding, TurnRecords } from './turn-records.js';
import { closeUnansweredToolCalls } from './unanswered-tool-calls.js';

/** A turn's recorded ending and how far its delivery got (see `TurnRecords.claimStep`). */
export interface EndingDelivery {
  turnId: string;
  sessionId: string;
  /** The deliverer's fencing token. */
  fence: number;
  ending: PendingEnding;
  /** Effects begun by earlier deliverers. */
  endingStarted: number;
  /** Effects known done. */
  endingDone: number;
  /**
   * True for the caller whose `beginEnding` has just recorded the ending: that statement marked
   * the first effect begun (so it is not marked again) and nothing has happened yet.
   */
  firstEffectBegun?: boolean;
}

/**
 * Delivers a turn's recorded ending once, then ends the turn's row: the runtime's own settle or
 * lifecycle code runs on stores whose writes (status writes, events, session storage) are
 * numbered effects. Before each effect the turns row records that it begins, under the
 * deliverer's fencing token; a deliverer that resumes a crashed delivery skips the effects known
 * done, and for the one effect that may have happened before the crash it looks the event up when
 * the bus can load events (as `PostgresEventBus.loadEvents`) instead of emitting it again. Status
 * and storage writes are idempotent and are simply repeated. In an ending this version recorded
 * (`numbering` 2), a status the bus writes with its events in one statement is one effect, looked
 * up by its first event.
 *
 * Throws {@link StaleStepError} when the token is taken over (the new holder delivers the rest).
 */
export async function deliverEnding(
  adapter: RuntimeHostAdapter,
  turns: TurnRecords,
  delivery: EndingDelivery,
): Promise<void> {
  const { turnId, sessionId, fence, ending } = delivery;
  const { sessions, events, storage } = adapter.backends;
  let next = 0;
  const effect = async <T>(
    run: () => Promise<T>,
    skipped: (found: RuntimeEvent | null) => T | Promise<T>,
    lookUp?: () => Promise<RuntimeEvent | null>,
  ): Promise<T> => {
    const index = next++;
    if (index < delivery.endingDone) return skipped(null);
    const mayHaveHappened =
      index === delivery.endingDone && delivery.endingStarted > delivery.endingDone;
    const marked = index === 0 && delivery.firstEffectBegun === true;
    if (!marked && !(await turns.beginEffect(turnId, fence, index))) {
      throw new StaleStepError(turnId);
    }
    if (mayHaveHappened && lookUp) {
      const found = await lookUp();
      if (found) return skipped(found);
    }
    return run();
  };
  const skippedEvent = (request: EventRequest, found: RuntimeEvent | null): RuntimeEvent =>
    found ?? {
      id: '',
      type: request.type,
      sessionId: request.sessionId,
      ...(request.turnId !== undefined ? { turnId: request.turnId } : {}),
      seq: 0,
      ts: new Date().toISOString(),
      data: request.data,
    };
  const batching = events as { emitMany?: (requests: EventRequest[]) => Promise<RuntimeEvent[]> };
  const statusBus = events as Partial<StatusEventBus>;
  // An ending this version recorded writes a status with its events as one effect, where the bus
  // does so atomically with these very stores (it says so beforehand: `writesJointlyWith`, as
  // `PostgresEventBus`) and can look its events up: the event found (the first, the batch is
  // stored whole) tells whether the effect happened. Elsewhere the two are two effects.
  const jointStatus =
    ending.numbering === 2 &&
    typeof statusBus.updateSessionStatusAndEmit === 'function' &&
    typeof (events as { loadEvents?: unknown }).loadEvents === 'function' &&
    (events as { writesJointlyWith?: (store: unknown) => boolean }).writesJointlyWith?.(
      sessions,
    ) === true;
  /** True once the turn's status write released the session's lease with it. */
  let leaseReleased = false;
  /**
   * The joint status write. The turn's last one (it asks `releaseLease`) releases the session's
   * lease in the same statement, as the turn's holder (which the write then also requires); when
   * another holder has the session (this turn's lease lapsed and was taken), it is written as
   * before, without the holder, and the lease is left to the other holder.
   */
  const writeStatusReleasingLease = async (
    id: string,
    status: SessionStatus,
    requests: EventRequest[],
    options: JointStatusOptions | undefined,
  ) => {
    const write =
      statusBus.updateSessionStatusAndEmit as StatusEventBus['updateSessionStatusAndEmit'];
    if (!options?.releaseLease) return write.call(events, sessions, id, status, requests, options);
    const { releaseLease, ...plain } = options;
    try {
      const written = await write.call(events, sessions, id, status, requests, {
        ...plain,
        leaseHolder: turnLeaseHolder(turnId),
        releaseLease,
      });
      if (written?.leaseReleased === true) leaseReleased = true;
      return written;
    } catch (error) {
      if (!EverrunsError.hasCode(error, 'TURN_IN_PROGRESS')) throw error;
      return write.call(events, sessions, id, status, requests, plain);
    }
  };
  /** Whether the bus writes `requests` with the status (kept events of the session, some). */
  const writtenWithStatus = (id: string, requests: EventRequest[]) =>
    requests.length > 0 &&
    requests.every((request) => request.sessionId === id && !isEphemeralEventType(request.type));
  const backends: RuntimeBackends = {
    ...adapter.backends,
    sessions: intercept(sessions, {
      updateSessionStatus: (...args: Parameters<typeof sessions.updateSessionStatus>) =>
        effect(
          () => sessions.updateSessionStatus(...args),
          async () =>
            (await sessions.getSession(args[0])) as Awaited<
              ReturnType<typeof sessions.updateSessionStatus>
            >,
        ),
    }),
    events: intercept(events, {
      // A status set with its events in one step (`StatusEventBus`): one effect in an ending
      // that numbers it so, else hidden (the status and the events go as two effects, as the
      // code that recorded the ending numbered them). The store itself gets the sessions store
      // as it is (a wrapped one would make it write nothing jointly).
      updateSessionStatusAndEmit: jointStatus
        ? (
            _sessions: unknown,
            id: string,
            status: SessionStatus,
            requests: EventRequest[],
            options?: JointStatusOptions,
          ) =>
            effect(
              () => writeStatusReleasingLease(id, status, requests, options),
              async () => ({
                session: (await sessions.getSession(id)) as Session,
                events: writtenWithStatus(id, requests)
                  ? requests.map((request) => skippedEvent(request, null))
                  : null,
              }),
              async () =>
                writtenWithStatus(id, requests) && requests[0]
                  ? findStoredEvent(events, requests[0])
                  : null,
            )
        : undefined,
      setValueIfAbsentAndEmit: undefined,
      emit: (request: EventRequest) =>
        effect(
          () => events.emit(request),
          (found) => skippedEvent(request, found),
          () => findStoredEvent(events, request),
        ),
      ...(typeof batching.emitMany === 'function'
        ? {
            emitMany: (requests: EventRequest[]) =>
              effect(
                () => batching.emitMany?.call(events, requests) as Promise<RuntimeEvent[]>,
                () => requests.map((request) => skippedEvent(request, null)),
                // A batch is stored whole or not at all: its first event tells.
                async () => (requests[0] ? findStoredEvent(events, requests[0]) : null),
              ),
          }
        : {}),
    }),
    storage: intercept(storage, {
      setValue: (...args: Parameters<typeof storage.setValue>) =>
        effect(
          () => storage.setValue(...args),
          () => undefined,
        ),
      deleteValue: (...args: Parameters<typeof storage.deleteValue>) =>
        effect(
          () => storage.deleteValue(...args),
          () => false,
        ),
    }),
  };
  const journal = adapter.toolCallJournal;
  const toolCallJournal =
    journal?.forgetTurn === undefined
      ? journal
      : intercept(journal, {
          forgetTurn: (...args: [string, string]) =>
            effect(
              async () => journal.forgetTurn?.(...args),
              () => undefined,
            ),
        });
  const fenced: RuntimeHostAdapter = {
    ...adapter,
    backends,
    ...(toolCallJournal ? { toolCallJournal } : {}),
  };
  let status: Exclude<HostTurnStatusName, 'running'>;
  let result: TurnResult | null = null;
  let error: { code: string; message: string } | null = null;
  if (ending.kind === 'settle') {
    result = await settleTurn(fenced, ending.plan);
    status = ending.plan.kind === 'waitForToolResults' ? 'waiting_for_tool_results' : 'completed';
  } else if (ending.kind === 'reject') {
    // The turn never started: nothing to announce, the session keeps its status.
    status = 'failed';
    error = ending.error;
  } else {
    // A failed turn leaves no tool call without a result (stored once, by its key).
    await closeUnansweredToolCalls(adapter, sessionId, turnId);
    await new RuntimeSessionLifecycle(fenced, sessionId).turnEnded(ending.state, ending.outcome);
    status = 'failed';
    error = ending.error;
  }
  // Every end effect is out: another turn may start on the session (a waiting turn holds no
  // lease). Released before the row ends, so whoever sees the turn ended finds the session free.
  if (!leaseReleased) await releaseTurnLease(sessions, sessionId, turnId);
  if (!(await turns.finishEnding(turnId, fence, status, result, error))) {
    throw new StaleStepError(turnId);
  }
}
