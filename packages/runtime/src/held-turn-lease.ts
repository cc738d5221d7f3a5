import {
  EverrunsError,
  LazySignal,
  type RuntimeSessionStore,
  type TurnLease,
  turnInProgressError,
} from '@everruns-ts/core';

/** How long a turn's lease lasts without renewal, by default: 60 seconds. */
export const DEFAULT_TURN_LEASE_DURATION_MS = 60_000;

/** How a runtime leases the sessions it runs turns on (see `RuntimeSessionStore.claimTurnLease`). */
export interface TurnLeaseOptions {
  /**
   * How long a claimed or renewed lease lasts, in milliseconds. A runtime that dies mid-turn
   * blocks the session for at most this long. Default {@link DEFAULT_TURN_LEASE_DURATION_MS}.
   */
  durationMs?: number;
  /**
   * How often a running turn renews its lease, in milliseconds; less than `durationMs`. Default a
   * third of `durationMs`, so two renewals may fail before the lease lapses.
   */
  renewEveryMs?: number;
}

/** {@link TurnLeaseOptions} with the defaults filled in. */
export interface ResolvedTurnLeaseOptions {
  durationMs: number;
  renewEveryMs: number;
}

/** Fills in the defaults and checks the values. Throws `INVALID_INPUT`. */
export function resolveTurnLeaseOptions(options: TurnLeaseOptions = {}): ResolvedTurnLeaseOptions {
  const durationMs = options.durationMs ?? DEFAULT_TURN_LEASE_DURATION_MS;
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `turnLease.durationMs must be a positive integer, got ${String(durationMs)}`,
    });
  }
  const renewEveryMs = options.renewEveryMs ?? Math.max(1, Math.floor(durationMs / 3));
  if (!Number.isSafeInteger(renewEveryMs) || renewEveryMs <= 0 || renewEveryMs >= durationMs) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `turnLease.renewEveryMs must be a positive integer below durationMs (${durationMs}), got ${String(renewEveryMs)}`,
    });
  }
  return { durationMs, renewEveryMs };
}

/**
 * A session's turn lease held by one running turn: claimed before the turn writes anything,
 * renewed on an unref'd timer while it runs, released when it ends. When a renewal finds the
 * lease gone (it lapsed and another process took it over), {@link signal} fires with a
 * `TURN_IN_PROGRESS` reason so the turn stops.
 */
export class HeldTurnLease {
  readonly #sessions: RuntimeSessionStore;
  readonly #options: ResolvedTurnLeaseOptions;
  /** Made on the first read of {@link signal}; a turn listens through {@link whenLost} instead. */
  /** Aborted when the lease is found lost; its signal is made only if {@link signal} is read. */
  readonly #lost = new LazySignal();
  #lease: TurnLease;
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing = false;
  #released = false;

  private constructor(
    sessions: RuntimeSessionStore,
    lease: TurnLease,
    options: ResolvedTurnLeaseOptions,
  ) {
    this.#sessions = sessions;
    this.#lease = lease;
    this.#options = options;
    this.#timer = setInterval(() => void this.#renew(), options.renewEveryMs);
    this.#timer.unref?.();
  }

  /**
   * Claims the lease of `sessionId` for `holderId` and starts renewing it. Throws what the store
   * throws: `TURN_IN_PROGRESS` (another holder's lease runs), `SESSION_NOT_FOUND`.
   */
  static async claim(
    sessions: RuntimeSessionStore,
    sessionId: string,
    holderId: string,
    options: ResolvedTurnLeaseOptions,
  ): Promise<HeldTurnLease> {
    const lease = await sessions.claimTurnLease(sessionId, holderId, options.durationMs);
    return HeldTurnLease.held(sessions, lease, options);
  }

  /** Holds a lease claimed by other means (a claim that loaded more in the same round trip). */
  static held(
    sessions: RuntimeSessionStore,
    lease: TurnLease,
    options: ResolvedTurnLeaseOptions,
  ): HeldTurnLease {
    return new HeldTurnLease(sessions, lease, options);
  }

  /** The lease as last claimed or renewed. */
  get lease(): TurnLease {
    return this.#lease;
  }

  /** Fires when the lease was lost to another holder; its reason is a `TURN_IN_PROGRESS` error. */
  get signal(): AbortSignal {
    return this.#lost.signal;
  }

  /** True once the lease was found lost. */
  get isLost(): boolean {
    return this.#lost.aborted;
  }

  /** Why the lease was lost (a `TURN_IN_PROGRESS` error), once it was. */
  get lostReason(): unknown {
    return this.#lost.reason;
  }

  /**
   * Calls `listener` with the reason when the lease is found lost (as {@link signal} fires), without
   * making a signal. Returns the function that stops listening.
   */
  whenLost(listener: (reason: unknown) => void): () => void {
    return this.#lost.onAbort(listener);
  }

  #markLostWith(reason: unknown): void {
    this.#lost.abort(reason);
  }

  /**
   * Stops renewing and releases the lease, through `releaser` when given (a release that does
   * more in the same round trip, such as forgetting the turn's tool-call journal), else the
   * session store's `releaseTurnLease`. Never throws: when the store cannot be reached the lease
   * lapses on its own after `durationMs`.
   */
  async release(
    releaser?: (sessionId: string, holderId: string) => Promise<unknown>,
  ): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    const { sessionId, holderId } = this.#lease;
    try {
      await (releaser
        ? releaser(sessionId, holderId)
        : this.#sessions.releaseTurnLease(sessionId, holderId));
    } catch {
      // The lease lapses by itself.
    }
  }

  /**
   * Records that the lease was released by a write that did it in the same step (the turn's
   * last status write): stops renewing; {@link release} then sends nothing.
   */
  markReleased(): void {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
  }

  /**
   * Records that the lease was found lost elsewhere (a write's renewal found it taken over):
   * stops renewing and fires {@link signal} with `error` (a `TURN_IN_PROGRESS` error).
   */
  markLost(error: unknown): void {
    if (this.#released || this.#lost.aborted) return;
    this.#stop();
    this.#markLostWith(error);
  }

  async #renew(): Promise<void> {
    if (this.#renewing || this.#released) return;
    this.#renewing = true;
    try {
      const { sessionId, holderId } = this.#lease;
      const renewed = await this.#sessions.renewTurnLease(
        sessionId,
        holderId,
        this.#options.durationMs,
      );
      if (this.#released) return;
      if (renewed) {
        this.#lease = renewed;
        return;
      }
      this.#stop();
      const current = await this.#sessions.getTurnLease(sessionId).catch(() => null);
      this.#markLostWith(
        turnInProgressError(
          {
            sessionId,
            ...(current ? { holder: current.holderId, expiresAt: current.expiresAt } : {}),
          },
          { cause: new Error(`The turn lease of ${holderId} lapsed and was taken over`) },
        ),
      );
    } catch {
      // A failed renewal is retried at the next tick; the lease holds for `durationMs`.
    } finally {
      this.#renewing = false;
    }
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** A signal that fires with either of two signals, and a way to stop listening to them. */
export interface CombinedSignal {
  signal: AbortSignal;
  /** Removes the listeners from the given signals (call it when the turn ends). */
  dispose(): void;
}

/**
 * Combines the caller's signal (if any) with a lease's (`AbortSignal.any` is missing before
 * Node 20.3, and its listeners would outlive the turn on a long-lived caller signal).
 */
export function combineSignals(
  caller: AbortSignal | undefined,
  lease: AbortSignal,
): CombinedSignal {
  const controller = new AbortController();
  const sources = caller ? [caller, lease] : [lease];
  const listeners = sources.map((source) => {
    const listener = () => controller.abort(source.reason);
    return { source, listener };
  });
  const fired = sources.find((source) => source.aborted);
  if (fired) controller.abort(fired.reason);
  else for (const { source, listener } of listeners) source.addEventListener('abort', listener);
  return {
    signal: controller.signal,
    dispose() {
      for (const { source, listener } of listeners) source.removeEventListener('abort', listener);
    },
  };
}
