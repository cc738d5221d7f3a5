import { type DedicatedConnection, openDedicatedConnection } from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import { TURN_CHANNEL } from './turn-records.js';

/** The channel that announces new steps (payload `hostSchema:queue`). */
export const STEP_CHANNEL = 'everruns_host_step';

/** What {@link TurnNotifications} needs. */
export interface TurnNotificationsOptions {
  /** The pool dedicated connections come from (see `openDedicatedConnection`). */
  pool: pg.Pool;
  /** The host schema: turn notifications carry `schema:turnId`. */
  schema: string;
  /** The payload of step notifications meant for this host's queue. */
  stepPayload: string;
  /** Called when another process announces a step of this host's queue. */
  onStepAnnounced: () => void;
  /** Receives connection errors (polling covers a lost connection). */
  onError: (error: unknown) => void;
}

/**
 * The host's `NOTIFY` wake-ups: one `LISTEN` connection per host, opened on first use, wakes the
 * handles waiting for a turn to change ({@link TURN_CHANNEL}) and this process's idle step loops
 * when another process enqueues a step ({@link STEP_CHANNEL}). Waiters also wake on a timeout, so a
 * lost connection only slows them down.
 */
export class TurnNotifications {
  readonly #options: TurnNotificationsOptions;
  readonly #waiters = new Map<string, Set<() => void>>();
  #listener: Promise<DedicatedConnection | null> | undefined;

  constructor(options: TurnNotificationsOptions) {
    this.#options = options;
  }

  /** Opens the `LISTEN` connection unless it is open; resolves with `null` when that failed. */
  listen(): Promise<DedicatedConnection | null> {
    this.#listener ??= this.#connect();
    return this.#listener;
  }

  /**
   * Resolves when the turn's row changes (its notification arrives), after `timeoutMs`, or when
   * `signal` aborts, whichever comes first; never rejects.
   */
  waitForChange(turnId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(turnId);
      if (!waiters) {
        waiters = new Set();
        this.#waiters.set(turnId, waiters);
      }
      const set = waiters;
      const wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', wake);
        set.delete(wake);
        if (set.size === 0 && this.#waiters.get(turnId) === set) this.#waiters.delete(turnId);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', wake, { once: true });
      set.add(wake);
    });
  }

  /** Closes the `LISTEN` connection and wakes every waiter (for `stop()`). */
  async close(): Promise<void> {
    const listener = await this.#listener?.catch(() => null);
    await listener?.close();
    for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
  }

  async #connect(): Promise<DedicatedConnection | null> {
    const { onError } = this.#options;
    let connection: DedicatedConnection;
    try {
      connection = await openDedicatedConnection(this.#options.pool);
    } catch (error) {
      onError(error);
      this.#listener = undefined;
      return null;
    }
    const { client } = connection;
    client.on('error', (error) => {
      onError(error);
      this.#listener = undefined;
      void connection.close();
    });
    client.on('notification', (message) => this.#onNotification(message));
    try {
      await client.query(`LISTEN ${TURN_CHANNEL}; LISTEN ${STEP_CHANNEL}`);
      return connection;
    } catch (error) {
      onError(error);
      this.#listener = undefined;
      await connection.close();
      return null;
    }
  }

  #onNotification(message: pg.Notification): void {
    if (message.channel === STEP_CHANNEL) {
      if (message.payload === this.#options.stepPayload) this.#options.onStepAnnounced();
      return;
    }
    const prefix = `${this.#options.schema}:`;
    if (!message.payload?.startsWith(prefix)) return;
    const waiters = this.#waiters.get(message.payload.slice(prefix.length));
    for (const wake of [...(waiters ?? [])]) wake();
  }
}
