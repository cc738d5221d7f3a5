import { EverrunsError } from '@everruns-ts/core';
import type { PostgresDatabase, Queryable } from './postgres-database.js';

/** One schema change, applied once, in its own transaction. */
export interface PostgresMigration {
  /** 1, 2, 3 … without gaps. */
  version: number;
  /** Short description, stored in the migrations table. */
  name: string;
  /**
   * Whether code that knows only the versions before this one can no longer use the schema.
   * A database whose newest breaking migration is newer than the code is refused with
   * `SCHEMA_TOO_NEW`; newer non-breaking (purely additive) migrations are tolerated.
   */
  breaking: boolean;
  /** The statements; `{schema}` stands for the quoted schema name. */
  statements: string[];
}

/**
 * The migrations of this package, oldest first. Values and ids live in `text` columns in an
 * encoded form that holds any JavaScript string (see `text-codec.ts`); rows are found through
 * SHA-256 digests of ids and keys, so ids and keys of any length can be indexed.
 */
export const MIGRATIONS: readonly PostgresMigration[] = Object.freeze([
  {
    version: 1,
    name: 'initial stores',
    breaking: true,
    statements: [
      `CREATE TABLE {schema}.harnesses (
        id_hash bytea PRIMARY KEY,
        id text NOT NULL,
        parent_hash bytea,
        data text NOT NULL
      )`,
      `CREATE TABLE {schema}.agents (
        id_hash bytea PRIMARY KEY,
        id text NOT NULL,
        data text NOT NULL
      )`,
      `CREATE TABLE {schema}.sessions (
        id_hash bytea PRIMARY KEY,
        id text NOT NULL,
        harness_hash bytea NOT NULL,
        agent_hash bytea,
        title text,
        status text NOT NULL,
        capabilities text NOT NULL,
        updated_at text NOT NULL,
        data text NOT NULL
      )`,
      `CREATE TABLE {schema}.messages (
        session_hash bytea NOT NULL,
        seq integer NOT NULL CHECK (seq > 0),
        id_hash bytea NOT NULL,
        id text NOT NULL,
        idempotency_hash bytea,
        idempotency_key text,
        turn_id text,
        role text NOT NULL,
        content text NOT NULL,
        metadata text,
        created_at text NOT NULL,
        CONSTRAINT messages_session_seq PRIMARY KEY (session_hash, seq),
        CONSTRAINT messages_session_id UNIQUE (session_hash, id_hash),
        CONSTRAINT messages_session_idempotency UNIQUE (session_hash, idempotency_hash)
      )`,
      `CREATE TABLE {schema}.models (
        id_hash bytea PRIMARY KEY,
        model_id text NOT NULL,
        data text NOT NULL,
        api_key_id text,
        api_key_sealed bytea
      )`,
      `CREATE TABLE {schema}.default_model (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        data text NOT NULL,
        api_key_id text,
        api_key_sealed bytea
      )`,
      `CREATE TABLE {schema}.session_values (
        session_hash bytea NOT NULL,
        key_hash bytea NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (session_hash, key_hash)
      )`,
      `CREATE TABLE {schema}.session_secrets (
        session_hash bytea NOT NULL,
        key_hash bytea NOT NULL,
        key text NOT NULL,
        key_id text NOT NULL,
        sealed bytea NOT NULL,
        PRIMARY KEY (session_hash, key_hash)
      )`,
      'CREATE SEQUENCE {schema}.memory_revisions',
      `CREATE TABLE {schema}.memories (
        scope_hash bytea NOT NULL,
        key_hash bytea NOT NULL,
        key text NOT NULL,
        content text NOT NULL,
        tags text NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        revision bigint NOT NULL,
        PRIMARY KEY (scope_hash, key_hash)
      )`,
      'CREATE INDEX memories_scope_revision ON {schema}.memories (scope_hash, revision DESC)',
      `CREATE TABLE {schema}.event_sequences (
        session_hash bytea PRIMARY KEY,
        last_seq integer NOT NULL
      )`,
      `CREATE TABLE {schema}.events (
        session_hash bytea NOT NULL,
        seq integer NOT NULL,
        id text NOT NULL,
        session_id text NOT NULL,
        type text NOT NULL,
        turn_id text,
        ts text NOT NULL,
        data text NOT NULL,
        CONSTRAINT events_session_seq PRIMARY KEY (session_hash, seq),
        CONSTRAINT events_id UNIQUE (id)
      )`,
    ],
  },
  {
    version: 2,
    name: 'session turn leases',
    // Additive: code that knows only version 1 never reads or writes these columns.
    breaking: false,
    statements: [
      // The holder (encoded as every user string) and the lapse time, by the database's clock.
      `ALTER TABLE {schema}.sessions
         ADD COLUMN turn_lease_holder text,
         ADD COLUMN turn_lease_expires_at timestamptz`,
    ],
  },
  {
    version: 3,
    name: 'message search text',
    // Additive: older code never reads the column and leaves it NULL on the rows it writes; such
    // rows (and every row written before this version) are filled on their session's next search.
    breaking: false,
    statements: [
      // The message's search text (`messageSearchText` of core), lower-cased by JavaScript's
      // `toLowerCase` when the row is written, so the database's `lower()` never decides case.
      `ALTER TABLE {schema}.messages ADD COLUMN search_text text`,
      // The rows still to fill, found without reading the session's other rows.
      `CREATE INDEX messages_search_pending ON {schema}.messages (session_hash)
         WHERE search_text IS NULL`,
      // A trigram index for the search's LIKE '%…%'. pg_trgm is a trusted extension (PostgreSQL
      // 13+: a role with CREATE on the database may install it); when the role may not, or the
      // server lacks it, the migration goes on without the index and searches read the session's
      // rows through the primary key instead (still in SQL). An administrator can add it later:
      // CREATE EXTENSION pg_trgm; CREATE INDEX messages_search_trgm ON <schema>.messages
      // USING gin (search_text gin_trgm_ops);
      `DO $migration$
       DECLARE
         trgm_schema name;
       BEGIN
         BEGIN
           CREATE EXTENSION IF NOT EXISTS pg_trgm;
         EXCEPTION WHEN OTHERS THEN
           RAISE NOTICE 'pg_trgm could not be installed (%): message search runs without its index', SQLERRM;
         END;
         SELECT n.nspname INTO trgm_schema
           FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_trgm';
         IF trgm_schema IS NOT NULL THEN
           BEGIN
             EXECUTE $sql$CREATE INDEX messages_search_trgm ON {schema}.messages USING gin (search_text $sql$
               || quote_ident(trgm_schema) || $sql$.gin_trgm_ops)$sql$;
           EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
             RAISE NOTICE 'the trigram index could not be created (%): message search runs without it', SQLERRM;
           END;
         END IF;
       END
       $migration$`,
    ],
  },
  {
    version: 4,
    name: 'session key head index',
    // Additive: an index only. Older code lists keys without it, as before.
    breaking: false,
    statements: [
      // Prefix listings read a range of this index instead of every key of the session (dead
      // ones included until a vacuum): see key-range.ts. The first 64 characters keep the entries
      // small whatever a key's length; "C" orders them by code point, as the range needs.
      `CREATE INDEX session_values_key_head
         ON {schema}.session_values (session_hash, (left(key, 64) COLLATE "C"))`,
      `CREATE INDEX session_secrets_key_head
         ON {schema}.session_secrets (session_hash, (left(key, 64) COLLATE "C"))`,
    ],
  },
]);

/** The newest schema version this code knows. */
export const POSTGRES_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** What {@link migrate} did. */
export interface MigrationResult {
  /** Versions applied by this call (empty when another process applied them first). */
  applied: number[];
  /** The schema's version afterwards (the newest applied migration). */
  version: number;
}

const LOCK_NAMESPACE = 'everruns-ts/stores-postgres/migrations';

interface MigrationRow {
  version: number;
  name: string;
  breaking: boolean;
}

/**
 * Brings the schema up to date: creates the schema and the migrations table when missing, then
 * applies each missing migration in its own transaction. Every step holds a transaction-scoped
 * advisory lock on the schema, so concurrent calls from any number of processes are safe and each
 * migration is applied once. Refuses (`SCHEMA_TOO_NEW`) a database with a newer breaking migration
 * than {@link POSTGRES_SCHEMA_VERSION}.
 */
export async function migrate(
  database: PostgresDatabase,
  migrations: readonly PostgresMigration[] = MIGRATIONS,
): Promise<MigrationResult> {
  const known = migrations[migrations.length - 1]?.version ?? 0;
  const table = database.table('schema_migrations');
  const lock = async (db: Queryable) => {
    await db.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [
      LOCK_NAMESPACE,
      database.schemaName,
    ]);
  };
  const readApplied = async (db: Queryable): Promise<MigrationRow[]> =>
    (await db.query<MigrationRow>(`SELECT version, name, breaking FROM ${table} ORDER BY version`))
      .rows;

  let applied = await database.transaction('migrate', async (db) => {
    await lock(db);
    const exists = await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
      database.schemaName,
    ]);
    if (exists.rowCount === 0) await db.query(`CREATE SCHEMA ${database.schema}`);
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${table} (
        version integer PRIMARY KEY,
        name text NOT NULL,
        breaking boolean NOT NULL DEFAULT true,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    return readApplied(db);
  });
  assertNotTooNew(applied, known, database.schemaName);

  const appliedNow: number[] = [];
  for (const migration of migrations) {
    if (applied.some((row) => row.version === migration.version)) continue;
    const step = await database.transaction(
      `migrate to version ${migration.version}`,
      async (db) => {
        await lock(db);
        const rows = await readApplied(db);
        assertNotTooNew(rows, known, database.schemaName);
        if (rows.some((row) => row.version === migration.version)) return { rows, ran: false };
        for (const statement of migration.statements) {
          await db.query(statement.replaceAll('{schema}', database.schema));
        }
        await db.query(`INSERT INTO ${table} (version, name, breaking) VALUES ($1, $2, $3)`, [
          migration.version,
          migration.name,
          migration.breaking,
        ]);
        return { rows: [...rows, migration], ran: true };
      },
    );
    if (step.ran) appliedNow.push(migration.version);
    applied = step.rows;
  }
  const version = applied.reduce((max, row) => Math.max(max, row.version), 0);
  return { applied: appliedNow, version };
}

function assertNotTooNew(rows: MigrationRow[], known: number, schemaName: string): void {
  const newer = rows.filter((row) => row.version > known);
  const breaking = newer.filter((row) => row.breaking);
  if (breaking.length === 0) return;
  const newest = breaking[breaking.length - 1]!;
  throw new EverrunsError({
    code: 'SCHEMA_TOO_NEW',
    message:
      `PostgreSQL schema ${JSON.stringify(schemaName)} is at version ${newest.version} (${newest.name}), ` +
      `newer than version ${known}, the newest this @everruns-ts/stores-postgres knows; ` +
      'upgrade the package before using this database',
    details: { schema: schemaName, databaseVersion: newest.version, codeVersion: known },
  });
}
