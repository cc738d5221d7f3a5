import pg from 'pg';

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * True when `schema` is a schema name the PostgreSQL packages accept: letters, digits, `_` and
 * `$`, at most 63 characters, not starting with a digit (so it needs no escaping in SQL).
 */
export function isValidSchemaName(schema: string): boolean {
  return SCHEMA_NAME.test(schema);
}

/** The settings of the pools {@link createPostgresPool} made, for dedicated connections. */
const poolSettings = new WeakMap<pg.Pool, pg.PoolConfig>();

const IGNORE_ERROR = () => {};

/**
 * Creates a `pg.Pool` with `config` and remembers the settings, so that
 * {@link openDedicatedConnection} can later open a connection outside the pool with the same
 * settings (node-postgres keeps a pool's settings to itself). The pool has no `error` listener:
 * add one (an idle connection that fails emits `error` on the pool, which ends the process when
 * nobody listens).
 */
export function createPostgresPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  poolSettings.set(pool, { ...config });
  return pool;
}

/**
 * A connection for session state that must stay off a shared pool's rotation: `LISTEN`, or a
 * session-level advisory lock.
 */
export interface DedicatedConnection {
  /** The connected client. Its `error` events are ignored unless you add a listener. */
  readonly client: pg.ClientBase;
  /**
   * Closes the connection; it never goes back into a pool, so its `LISTEN`s, locks and settings
   * end with it. Safe to call more than once; never throws.
   */
  close(): Promise<void>;
}

/**
 * Opens a {@link DedicatedConnection} to the server of `pool`: a new client with the pool's
 * settings when {@link createPostgresPool} made the pool (as `postgresBackends` does from a
 * connection string), otherwise one of the pool's own connections, held until `close()` and then
 * discarded (such a pool needs a connection to spare). Rejects with the driver's error when the
 * server cannot be reached.
 */
export async function openDedicatedConnection(pool: pg.Pool): Promise<DedicatedConnection> {
  const settings = poolSettings.get(pool);
  if (settings) {
    const client = new pg.Client(settings);
    client.on('error', IGNORE_ERROR);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(IGNORE_ERROR);
      throw error;
    }
    let closing: Promise<void> | undefined;
    return {
      client,
      close() {
        closing ??= client.end().catch(IGNORE_ERROR);
        return closing;
      },
    };
  }
  const client = await pool.connect();
  client.on('error', IGNORE_ERROR);
  let released = false;
  return {
    client,
    async close() {
      if (released) return;
      released = true;
      // `true` makes the pool close the connection instead of reusing it.
      client.release(true);
    },
  };
}
