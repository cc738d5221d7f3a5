import { quoteIdentifier } from '@everruns-ts/stores-postgres';
import type pg from 'pg';

/** Version of the host tables this code writes. */
export const HOST_TABLES_VERSION = 3;

/**
 * Creates the host's tables when missing, under a transaction-scoped advisory lock so that many
 * processes may start at once:
 * - `turns`: one row per submitted turn with its status, the next step (checkpoint), its result; a
 *   fencing token (`fence`, raised each time a step job claims the turn, so a stale step's
 *   writes match no row) and the ending being delivered (`ending` with its progress
 *   `ending_started` / `ending_done`, so end events go out once); `job_order`, set while a step
 *   job runs its turn's later steps itself, is the order of that job's own step (the job a retry
 *   claims the turn with); a partial unique index allows one running turn per session;
 * - `tool_calls`: the tool-call journal (a primary key makes each claim an atomic insert).
 */
export async function createHostTables(pool: pg.Pool, schema: string): Promise<void> {
  const quoted = quoteIdentifier(schema);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`everruns-host:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${quoted}.turns (
        turn_id text PRIMARY KEY,
        session_id text NOT NULL,
        status text NOT NULL,
        step jsonb NOT NULL,
        step_order integer NOT NULL DEFAULT 0,
        generation integer NOT NULL DEFAULT 0,
        finishing_job text,
        result jsonb,
        error jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(`ALTER TABLE ${quoted}.turns ADD COLUMN IF NOT EXISTS finishing_job text`);
    await client.query(`
      ALTER TABLE ${quoted}.turns
        ADD COLUMN IF NOT EXISTS fence bigint NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS ending jsonb,
        ADD COLUMN IF NOT EXISTS ending_started integer NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS ending_done integer NOT NULL DEFAULT 0,
        ADD COLUMN IF NOT EXISTS job_order integer`);
    await client.query(`
      CREATE UNIQUE INDEX IF NOT EXISTS turns_one_running_turn_per_session
        ON ${quoted}.turns (session_id) WHERE status = 'running'`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${quoted}.tool_calls (
        session_id text NOT NULL,
        turn_id text NOT NULL,
        tool_call_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (session_id, turn_id, tool_call_id)
      )`);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
