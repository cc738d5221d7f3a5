import { type EverrunsLogger, type RuntimeSessionStore, silentLogger } from '@everruns-ts/core';

/** How long a host turn's session lease lasts without renewal, by default: 60 seconds. */
export const DEFAULT_HOST_TURN_LEASE_MS = 60_000;

/**
 * The holder id of a host turn's session lease: the same in every process, so whichever worker
 * runs the turn's next step renews it and whichever ends the turn releases it.
 */
export function turnLeaseHolder(turnId: string): string {
  return `pgboss/${turnId}`;
}

/**
 * Claims the session's turn lease for a host turn (see `RuntimeSessionStore.claimTurnLease`), so
 * no other runtime on the same stores runs a turn on the session meanwhile. Throws
 * `TURN_IN_PROGRESS` when another holder's lease runs, `SESSION_NOT_FOUND`.
 */
export async function claimTurnLease(
  sessions: RuntimeSessionStore,
  sessionId: string,
  turnId: string,
  durationMs: number,
): Promise<void> {
  await sessions.claimTurnLease(sessionId, turnLeaseHolder(turnId), durationMs);
}

/**
 * Renews a host turn's lease for a step about to run, or claims it again when it lapsed and
 * nobody took it, then keeps renewing it every third of `durationMs` until the returned function
 * is called. Throws `TURN_IN_PROGRESS` (retryable for the step: the other runtime's turn ends
 * first) when another holder has taken the session. With `justClaimed` (the lease was claimed
 * for this turn a small part of `durationMs` ago, so it has most of its time left), the first
 * renewal is left to the timer.
 */
export async function holdTurnLease(
  sessions: RuntimeSessionStore,
  sessionId: string,
  turnId: string,
  durationMs: number,
  logger: EverrunsLogger = silentLogger,
  justClaimed = false,
): Promise<() => void> {
  const holder = turnLeaseHolder(turnId);
  if (!justClaimed) {
    const renewed = await sessions.renewTurnLease(sessionId, holder, durationMs);
    if (!renewed) await sessions.claimTurnLease(sessionId, holder, durationMs);
  }
  let lost = false;
  const renew = async () => {
    const lease = await sessions.renewTurnLease(sessionId, holder, durationMs).catch(() => null);
    if (lease !== null || lost) return;
    // Released or taken over: reported once, with the holder now on the session, if any.
    lost = true;
    const current = await sessions.getTurnLease(sessionId).catch(() => null);
    if (current?.holderId === holder) return;
    logger.warn(
      { sessionId, turnId, holder, ...(current ? { takenBy: current.holderId } : {}) },
      'host turn lease taken over by another holder; the step can no longer write to the session',
    );
  };
  const timer = setInterval(() => void renew(), Math.max(1, Math.floor(durationMs / 3)));
  timer.unref?.();
  return () => clearInterval(timer);
}

/** Releases a host turn's lease; never throws (an unreleased lease lapses by itself). */
export async function releaseTurnLease(
  sessions: RuntimeSessionStore,
  sessionId: string,
  turnId: string,
): Promise<void> {
  await sessions.releaseTurnLease(sessionId, turnLeaseHolder(turnId)).catch(() => false);
}
