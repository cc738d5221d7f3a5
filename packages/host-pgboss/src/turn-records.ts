import { EverrunsError } from '@everruns-ts/core';
import type { RuntimeTurnStep, TurnResult } from '@everruns-ts/runtime/host';
import { errorState, quoteIdentifier, violatedConstraint } from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import { unknownTurnError } from './host-errors.js';

/** Where a turn of the durable host stands. */
export type HostTurnStatusName =
  /** Queued or being worked on. */
  | 'running'
  /** Paused until a client submits results of client-side tools. */
  | 'waiting_for_tool_results'
  /** Finished: `result` says how (a model failure is a completed turn with `success: false`). */
  | 'completed'
  /** The host gave up on it (a step failed every retry, or its persisted state did not parse). */
  | 'failed';

/** A turn as the host's `turns` table has it. */
export interface HostTurnStatus {
  turnId: string;
  sessionId: string;
  status: HostTurnStatusName;
  /** The step the turn will run next (or ran last), `turnId/activity/iteration`. */
  step: string;
  /** How many times the turn was resumed with `resumeTurn`. */
  generation: number;
  /** Set once `status` is `completed` or `waiting_for_tool_results`. */
  result?: TurnResult;
  /** Set when `status` is `failed`; while running, the last error a step retried after. */
  error?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
}

/** The columns of a row, with the persisted step as stored. */
export interface TurnRow extends HostTurnStatus {
  stepValue: unknown;
}

interface RawRow {
  turn_id: string;
  session_id: string;
  status: HostTurnStatusName;
  step: unknown;
  generation: number;
  result: TurnResult | null;
  error: { code: string; message: string } | null;
  created_at: Date;
  updated_at: Date;
}

/** The order of steps within a turn: a checkpoint never moves back. */
export function stepOrder(step: RuntimeTurnStep): number {
  const offset = step.activity === 'input' ? 0 : step.activity === 'reason' ? 1 : 2;
  return step.state.iteration * 3 + offset;
}

function stepName(step: unknown): string {
  const value = step as { activity?: unknown; state?: { turnId?: unknown; iteration?: unknown } };
  return `${String(value?.state?.turnId)}/${String(value?.activity)}/${String(value?.state?.iteration)}`;
}

/** The channel turn changes are announced on (payload `schema:turnId`). */
export const TURN_CHANNEL = 'everruns_host_turn';

/** The host's `turns` table. */
export class TurnRecords {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #table: string;

  constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#table = `${quoteIdentifier(schema)}.turns`;
  }

  /** Records a new running turn. Throws `TURN_IN_PROGRESS` or `DUPLICATE_ID`. */
  async insert(turnId: string, sessionId: string, step: RuntimeTurnStep): Promise<void> {
    try {
      await this.#pool.query(
        `INSERT INTO ${this.#table} (turn_id, session_id, status, step, step_order)
         VALUES ($1, $2, 'running', $3, $4)`,
        [turnId, sessionId, JSON.stringify(step), stepOrder(step)],
      );
    } catch (error) {
      throw uniqueViolation(error, sessionId, turnId) ?? error;
    }
  }

  /** Removes a turn that never got its first job. */
  async delete(turnId: string): Promise<void> {
    await this.#pool.query(`DELETE FROM ${this.#table} WHERE turn_id = $1`, [turnId]);
  }

  /** The turn's row, or `null` for an unknown turn. */
  async get(turnId: string): Promise<TurnRow | null> {
    const { rows } = await this.#pool.query<RawRow>(
      `SELECT turn_id, session_id, status, step, generation, result, error, created_at, updated_at
         FROM ${this.#table} WHERE turn_id = $1`,
      [turnId],
    );
    const row = rows[0];
    if (!row) return null;
    const status: TurnRow = {
      turnId: row.turn_id,
      sessionId: row.session_id,
      status: row.status,
      step: stepName(row.step),
      generation: row.generation,
      stepValue: row.step,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
    if (row.result) status.result = row.result;
    if (row.error) status.error = row.error;
    return status;
  }

  /** Moves the checkpoint of a running turn forward (never back). */
  async checkpoint(turnId: string, step: RuntimeTurnStep): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.#table} SET step = $2, step_order = $3, updated_at = now()
        WHERE turn_id = $1 AND status = 'running' AND step_order < $3`,
      [turnId, JSON.stringify(step), stepOrder(step)],
    );
  }

  /** Notes the error a step will be retried after. */
  async recordError(turnId: string, error: { code: string; message: string }): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.#table} SET error = $2, updated_at = now()
        WHERE turn_id = $1 AND status = 'running'`,
      [turnId, JSON.stringify(error)],
    );
  }

  /**
   * Claims the ending of a running turn for one job: true for the first job to ask, and again for
   * that same job when pg-boss retries it after a crash; false for every other job. So racing
   * generations end a turn (and emit its lifecycle events) once.
   */
  async claimEnding(turnId: string, jobId: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `UPDATE ${this.#table} SET finishing_job = $2, updated_at = now()
        WHERE turn_id = $1 AND status = 'running' AND (finishing_job IS NULL OR finishing_job = $2)`,
      [turnId, jobId],
    );
    return rowCount === 1;
  }

  /**
   * Ends a running turn. Returns false when it had ended already (another worker won): the first
   * outcome stays. Announces the change on {@link TURN_CHANNEL}.
   */
  async finish(
    turnId: string,
    status: Exclude<HostTurnStatusName, 'running'>,
    result: TurnResult | null,
    error: { code: string; message: string } | null,
  ): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `WITH ended AS (
         UPDATE ${this.#table}
            SET status = $2, result = $3, error = $4, updated_at = now()
          WHERE turn_id = $1 AND status = 'running'
          RETURNING turn_id
       )
       SELECT pg_notify($5, $6) FROM ended`,
      [
        turnId,
        status,
        result === null ? null : JSON.stringify(result),
        error === null ? null : JSON.stringify(error),
        TURN_CHANNEL,
        `${this.#schema}:${turnId}`,
      ],
    );
    return rowCount === 1;
  }

  /** The id of the turn running on a session, or `null`. */
  async runningTurnOf(sessionId: string): Promise<string | null> {
    const { rows } = await this.#pool.query<{ turn_id: string }>(
      `SELECT turn_id FROM ${this.#table} WHERE session_id = $1 AND status = 'running'`,
      [sessionId],
    );
    return rows[0]?.turn_id ?? null;
  }

  /**
   * Moves a turn that waits for client tool results back to running with `step` as its
   * checkpoint, clearing its result and ending claim. Returns the turn's generation, or `null` when
   * the turn was not waiting (another caller resumed it first). Throws `TURN_IN_PROGRESS` when
   * another turn runs on the session.
   */
  async resumeWaiting(turnId: string, step: RuntimeTurnStep): Promise<number | null> {
    let rows: Array<{ generation: number; session_id: string }>;
    try {
      ({ rows } = await this.#pool.query(
        `UPDATE ${this.#table}
            SET status = 'running', step = $2, step_order = $3, result = NULL, error = NULL,
                finishing_job = NULL, updated_at = now()
          WHERE turn_id = $1 AND status = 'waiting_for_tool_results'
          RETURNING generation, session_id`,
        [turnId, JSON.stringify(step), stepOrder(step)],
      ));
    } catch (error) {
      throw uniqueViolation(error, step.state.sessionId, turnId) ?? error;
    }
    return rows[0]?.generation ?? null;
  }

  /**
   * Opens a new generation of a running or failed turn and returns it with the checkpoint; `null`
   * when the turn has completed or waits for tool results. Throws `INVALID_INPUT` for an unknown
   * turn and `TURN_IN_PROGRESS` when reopening a failed turn while another runs on its session.
   */
  async nextGeneration(turnId: string): Promise<{ generation: number; step: unknown } | null> {
    let rows: Array<{ generation: number; step: unknown }>;
    try {
      ({ rows } = await this.#pool.query(
        `UPDATE ${this.#table}
            SET generation = generation + 1, status = 'running', error = NULL, updated_at = now()
          WHERE turn_id = $1 AND status IN ('running', 'failed')
          RETURNING generation, step`,
        [turnId],
      ));
    } catch (error) {
      const current = await this.get(turnId);
      throw uniqueViolation(error, current?.sessionId ?? '', turnId) ?? error;
    }
    if (rows[0]) return rows[0];
    if (!(await this.get(turnId))) throw unknownTurnError(turnId);
    return null;
  }
}

function uniqueViolation(error: unknown, sessionId: string, turnId: string): EverrunsError | null {
  if (errorState(error) !== '23505') return null;
  if (violatedConstraint(error) === 'turns_pkey') {
    return new EverrunsError({
      code: 'DUPLICATE_ID',
      message: `Turn ${turnId} exists already`,
      details: { turnId },
      cause: error,
    });
  }
  return new EverrunsError({
    code: 'TURN_IN_PROGRESS',
    message: `A turn is already running on session ${sessionId}`,
    details: { sessionId },
    cause: error,
  });
}
