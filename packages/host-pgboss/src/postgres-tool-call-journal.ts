import type { ToolCallJournal } from '@everruns-ts/runtime/host';
import { quoteIdentifier, sendStatement } from '@everruns-ts/stores-postgres';
import type pg from 'pg';

/**
 * A tool-call journal in the host's `tool_calls` table. A claim is one `INSERT … ON CONFLICT DO
 * NOTHING`, so of any number of workers racing on one call exactly one may run it. Entries are
 * kept after the turn ends (a late duplicate step must still see them); remove old ones with
 * {@link PostgresToolCallJournal.prune}.
 */
export class PostgresToolCallJournal implements ToolCallJournal {
  readonly #pool: pg.Pool;
  readonly #table: string;

  /** @param schema the host schema holding the `tool_calls` table. */
  constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.#table = `${quoteIdentifier(schema)}.tool_calls`;
  }

  /** Claims a tool call: true for the first claim of it, false for every later one. */
  async claim(sessionId: string, turnId: string, toolCallId: string): Promise<boolean> {
    const result = await sendStatement(
      this.#pool,
      `INSERT INTO ${this.#table} (session_id, turn_id, tool_call_id) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING`,
      [sessionId, turnId, toolCallId],
    );
    return result.rowCount === 1;
  }

  /** Deletes the entries claimed before `before`; returns how many were deleted. */
  async prune(before: Date): Promise<number> {
    const result = await sendStatement(
      this.#pool,
      `DELETE FROM ${this.#table} WHERE claimed_at < $1`,
      [before],
    );
    return result.rowCount ?? 0;
  }
}
