import {
  EverrunsError,
  type LoadSessionSetupOptions,
  type RuntimeBackends,
  type TurnLease,
} from '@everruns-ts/core';
import pg from 'pg';
import { type MigrationResult, migrate } from './migrations.js';
import { PostgresAgentStore } from './postgres-agent-store.js';
import { PostgresDatabase, type PostgresRetryOptions } from './postgres-database.js';
import { PostgresEventBus, type PostgresEventBusOptions } from './postgres-event-bus.js';
import { PostgresHarnessStore } from './postgres-harness-store.js';
import { PostgresMemoryStore } from './postgres-memory-store.js';
import { PostgresMessageStore } from './postgres-message-store.js';
import { createPostgresPool, isValidSchemaName } from './postgres-pool.js';
import { PostgresProviderStore } from './postgres-provider-store.js';
import { PostgresSessionStorageStore } from './postgres-session-storage-store.js';
import { PostgresSessionStore, releaseTurnLeaseAndDeleteValues } from './postgres-session-store.js';
import { SecretCipher, type SecretKey, type SecretKeyring } from './secret-cipher.js';
import {
  DEFAULT_MAX_VALUE_BYTES,
  MAX_VALUE_BYTES_CEILING,
  type StoreContext,
} from './store-context.js';
import {
  claimTurnLeaseAndLoadSetup,
  historyCacheOf,
  loadSessionSetup,
  loadTurnSnapshot,
  type SessionSetupSnapshot,
  type TurnSnapshot,
} from './turn-snapshot.js';

/**
 * Where the stores connect: a connection string (the bundle creates, owns and closes its pool)
 * or a `pg.Pool` the caller owns (the bundle never ends it).
 */
export type PostgresConnection =
  | {
      /** For example `postgres://user@127.0.0.1:5432/app`. */
      connectionString: string;
      /** Further `pg.Pool` settings (`max`, `application_name`, `ssl`, …). */
      poolConfig?: Omit<pg.PoolConfig, 'connectionString'>;
    }
  | {
      /** A pool the caller owns. */
      pool: pg.Pool;
    };

/** Options of {@link postgresBackends}. */
export interface PostgresBackendsOptions {
  /**
   * The PostgreSQL schema holding every table (created by `migrate()`). Default `everruns`.
   * Letters, digits, `_` and `$`, at most 63 characters.
   */
  schema?: string;
  /**
   * The key (or keyring) that encrypts session secrets and model API keys with AES-256-GCM.
   * Keep it outside the database; a value encrypted with a key that is not configured is refused
   * with `SECRET_KEY_MISMATCH`.
   */
  secretKey: SecretKey | SecretKeyring;
  /**
   * Largest stored value in bytes (a message's content JSON, its metadata, a storage value, a
   * secret, a memory entry, event data), measured after encoding. A larger write throws
   * `VALUE_TOO_LARGE` and writes nothing. Default 64 MiB; at most 256 MiB.
   */
  maxValueBytes?: number;
  /** Retries after serialization failures, deadlocks and lost connections. */
  retry?: PostgresRetryOptions;
  /**
   * How many times an append without `expectedSeq` tries again after another writer took its
   * position. Default 100.
   */
  maxAppendAttempts?: number;
  /**
   * Event bus options. Their `logger` also receives the stores' statement retries (`warn`).
   */
  events?: PostgresEventBusOptions;
  /**
   * Called when an idle pooled connection fails (for example its server process was terminated).
   * The pool drops that connection and the next statement uses a new one; by default the error is
   * ignored, never thrown (an unhandled pool `error` event would end the process).
   */
  onPoolError?: (error: Error) => void;
}

/** The PostgreSQL stores as one {@link RuntimeBackends} bundle, with schema management. */
export interface PostgresBackends extends RuntimeBackends {
  harnesses: PostgresHarnessStore;
  agents: PostgresAgentStore;
  sessions: PostgresSessionStore;
  messages: PostgresMessageStore;
  providers: PostgresProviderStore;
  storage: PostgresSessionStorageStore;
  memory: PostgresMemoryStore;
  events: PostgresEventBus;
  /** The pool statements run on. */
  readonly pool: pg.Pool;
  /** The schema name. */
  readonly schema: string;
  /**
   * Creates or upgrades the schema; call once at start-up, before anything else. Safe to call
   * from many processes at once. Throws `SCHEMA_TOO_NEW` when the database was migrated by a
   * newer version of this package with a breaking change.
   */
  migrate(): Promise<MigrationResult>;
  /**
   * The session, its harness chain, its agent and its messages in one round trip; `null` for an
   * unknown session. The bundle keeps the last history it read of recent sessions, so a later
   * snapshot of the same session reads only the messages stored since; the messages are
   * deep-frozen and shared between snapshots.
   */
  loadTurnSnapshot(sessionId: string): Promise<TurnSnapshot | null>;
  /**
   * The session, its harness chain, its agent, the default model and, with
   * `options.storageKeyPrefix`, the session storage keys starting with it (no history) in one
   * round trip; `null` for an unknown session.
   */
  loadSessionSetup(
    sessionId: string,
    options?: LoadSessionSetupOptions,
  ): Promise<SessionSetupSnapshot | null>;
  /**
   * Claims the turn lease of `holderId` and loads the session's setup (as `loadSessionSetup`) in
   * one statement (see `RuntimeBackends.claimTurnLeaseAndLoadSetup`).
   */
  claimTurnLeaseAndLoadSetup(
    sessionId: string,
    holderId: string,
    durationMs: number,
    options?: LoadSessionSetupOptions,
  ): Promise<{ lease: TurnLease; setup: SessionSetupSnapshot | null }>;
  /**
   * Releases the turn lease of `holderId` and deletes the session storage values under `prefix`
   * in one statement; `true` when the lease was released (see
   * `RuntimeBackends.releaseTurnLeaseAndDeleteValues`).
   */
  releaseTurnLeaseAndDeleteValues(
    sessionId: string,
    holderId: string,
    prefix: string,
  ): Promise<boolean>;
  /** Statements sent to the server so far by this bundle (for benchmarks). */
  queryCount(): number;
  /** Ends the pool when the bundle created it; later calls fail with `STORE_UNAVAILABLE`. */
  close(): Promise<void>;
}

/**
 * Every store contract on PostgreSQL through node-postgres. Call `migrate()` once before use.
 *
 * ```ts
 * const backends = postgresBackends(
 *   { connectionString: process.env.DATABASE_URL! },
 *   { secretKey: { id: 'k1', key: process.env.EVERRUNS_SECRET_KEY! } },
 * );
 * await backends.migrate();
 * ```
 */
export function postgresBackends(
  connection: PostgresConnection,
  options: PostgresBackendsOptions,
): PostgresBackends {
  const schema = options.schema ?? 'everruns';
  if (!isValidSchemaName(schema)) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `Invalid PostgreSQL schema name ${JSON.stringify(schema)}: use letters, digits, "_" and "$", at most 63 characters, not starting with a digit`,
      details: { schema },
    });
  }
  const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  if (
    !Number.isInteger(maxValueBytes) ||
    maxValueBytes < 1 ||
    maxValueBytes > MAX_VALUE_BYTES_CEILING
  ) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `maxValueBytes must be an integer in 1..${MAX_VALUE_BYTES_CEILING}`,
      details: { maxValueBytes },
    });
  }
  if (options.secretKey === undefined || options.secretKey === null) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message:
        'postgresBackends needs a secretKey ({ id, key } with 32 key bytes) to encrypt secrets at rest',
    });
  }
  const cipher = new SecretCipher(options.secretKey);

  const ownsPool = 'connectionString' in connection;
  const pool = ownsPool
    ? createPostgresPool({
        connectionTimeoutMillis: 10_000,
        ...connection.poolConfig,
        connectionString: connection.connectionString,
      })
    : connection.pool;
  if (!(pool instanceof pg.Pool) && typeof (pool as { query?: unknown })?.query !== 'function') {
    throw new TypeError('connection.pool must be a pg.Pool');
  }
  const onPoolError = (error: Error) => {
    try {
      options.onPoolError?.(error);
    } catch {
      // A failing handler must not turn a dropped connection into a crash.
    }
  };
  pool.on('error', onPoolError);

  const db = new PostgresDatabase(pool, schema, options.retry);
  if (options.events?.logger) db.logger = options.events.logger;
  const context: StoreContext = { db, cipher, maxValueBytes };
  let closing: Promise<void> | undefined;

  const events = new PostgresEventBus(context, options.events);
  const histories = historyCacheOf(context);
  const sessions = new PostgresSessionStore(context);
  const storage = new PostgresSessionStorageStore(context);

  return {
    harnesses: new PostgresHarnessStore(context),
    agents: new PostgresAgentStore(context),
    sessions,
    messages: new PostgresMessageStore(context, {
      ...(options.maxAppendAttempts === undefined
        ? {}
        : { maxAppendAttempts: options.maxAppendAttempts }),
    }),
    providers: new PostgresProviderStore(context),
    storage,
    memory: new PostgresMemoryStore(context),
    events,
    pool,
    schema,
    migrate: () => migrate(db),
    loadTurnSnapshot: (sessionId) => loadTurnSnapshot(context, sessionId, histories),
    loadSessionSetup: (sessionId, setupOptions) =>
      loadSessionSetup(context, sessionId, setupOptions),
    claimTurnLeaseAndLoadSetup: (sessionId, holderId, durationMs, setupOptions) =>
      claimTurnLeaseAndLoadSetup(context, sessions, sessionId, holderId, durationMs, setupOptions),
    releaseTurnLeaseAndDeleteValues: (sessionId, holderId, prefix) =>
      releaseTurnLeaseAndDeleteValues(context, sessions, storage, sessionId, holderId, prefix),
    queryCount: () => db.queryCount,
    close() {
      closing ??= (async () => {
        await events.close();
        db.markClosed();
        histories.clear();
        if (ownsPool) {
          try {
            await pool.end();
          } catch {
            // Ending a pool whose connections are already gone is fine.
          }
        }
        pool.off('error', onPoolError);
      })();
      return closing;
    },
  };
}
