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

/** See {@link TurnNotifications.watch}. */
export interface TurnWatch {
  /** True once the turn's notification arrived. */
  announced: boolean;
  /** False once the `LISTEN` connection was lost before the notification arrived. */
  live: boolean;
  /**
   * The turn's result as JSON, when its notification announced that it completed and carried the
   * result (see `TURN_CHANNEL`): a completed turn never changes again, so this is what a read of
   * its row would find.
   */
  completed?: string;
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
  /** True while the `LISTEN` connection is up (from its `LISTEN` to an error or `close`). */
  #listening = false;
  /** Watches of turns not yet announced (see {@link watch}); dropped when the connection is. */
  readonly #watches = new Map<string, TurnWatch>();

  constructor(options: TurnNotificationsOptions) {
    this.#options = options;
  }

  /** Opens the `LISTEN` connection unless it is open; resolves with `null` when that failed. */
  listen(): Promise<DedicatedConnection | null> {
    this.#listener ??= this.#connect();
    return this.#listener;
  }

  /**
   * A watch on the turn's announcements, made while the `LISTEN` connection is up (`null` when it
   * is not): `announced` turns true when the turn's notification arrives, and `live` stays true
   * until then unless the connection is lost (a notification may then be missed). Take it before
   * the write whose change will be announced: a `live` watch not `announced` then means the turn
   * has not been announced since, without reading its row.
   */
  watch(turnId: string): TurnWatch | null {
    if (!this.#listening) return null;
    const watch: TurnWatch = { announced: false, live: true };
    this.#watches.set(turnId, watch);
    return watch;
  }

  /** Drops the watch of a turn that was not submitted after all. */
  unwatch(turnId: string, watch: TurnWatch): void {
    if (this.#watches.get(turnId) === watch) this.#watches.delete(turnId);
    watch.live = false;
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
    this.#dropWatches();
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
      this.#dropWatches();
      void connection.close();
    });
    client.on('notification', (message) => this.#onNotification(message));
    try {
      await client.query(`LISTEN ${TURN_CHANNEL}; LISTEN ${STEP_CHANNEL}`);
      this.#listening = true;
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
    const payload = message.payload;
    if (!payload?.startsWith(prefix)) return;
    // `schema:turnId`, then the completed turn's result after a newline when it fits.
    const newline = payload.indexOf('\n', prefix.length);
    const turnId = payload.slice(prefix.length, newline === -1 ? undefined : newline);
    const watch = this.#watches.get(turnId);
    if (watch) {
      watch.announced = true;
      if (newline !== -1) watch.completed = payload.slice(newline + 1);
      this.#watches.delete(turnId);
    }
    const waiters = this.#waiters.get(turnId);
    for (const wake of [...(waiters ?? [])]) wake();
  }

  /** The connection is gone: notifications may be missed, so no watch holds any more. */
  #dropWatches(): void {
    this.#listening = false;
    for (const watch of this.#watches.values()) watch.live = false;
    this.#watches.clear();
  }
}
