import { EverrunsError } from '@everruns-ts/core';
import type {
  RuntimeTurnOutcome,
  RuntimeTurnPlan,
  RuntimeTurnState,
  RuntimeTurnStep,
  TurnResult,
} from '@everruns-ts/runtime/host';
import {
  errorState,
  quoteIdentifier,
  sendStatement,
  violatedConstraint,
} from '@everruns-ts/stores-postgres';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import { unknownTurnError } from './host-errors.js';
import { fromJsonbValue, jsonbText } from './jsonb-text.js';

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

/**
 * How a turn ends, recorded before any of its end effects (events, status writes) is delivered:
 * `settle` applies a final plan of the planner (complete, or wait for client tool results);
 * `reject` fails a turn that never started; `fail` ends the turn with `turn.failed` because its steps could not succeed.
 */
export type PendingEnding = (
  | { kind: 'settle'; plan: RuntimeTurnPlan }
  /** The turn was refused before it wrote anything: it fails with `error` and emits nothing. */
  | { kind: 'reject'; error: { code: string; message: string } }
  | {
      kind: 'fail';
      state: RuntimeTurnState;
      outcome: RuntimeTurnOutcome;
      error: { code: string; message: string };
    }
) & {
  /**
   * How its effects are numbered (see `deliverEnding`): 2 when a status is written with its
   * events as one effect (set by {@link TurnRecords.beginEnding}); absent in an ending older code
   * recorded, whose status and events are two effects.
   */
  numbering?: 2;
};

/** A step job's claim on its running turn (see {@link TurnRecords.claimStep}). */
export interface StepClaim {
  turnId: string;
  sessionId: string;
  generation: number;
  /** The turn's checkpoint, as stored. */
  step: unknown;
  /** The fencing token: the claim's writes apply only while it is the turn's. */
  fence: number;
  /** The last error a step retried after. */
  error: { code: string; message: string } | null;
  /** The ending being delivered, or `null`. */
  ending: PendingEnding | null;
  /** Effects of the ending begun. */
  endingStarted: number;
  /** Effects of the ending known done. */
  endingDone: number;
}

interface RawClaim {
  session_id: string;
  generation: number;
  step: unknown;
  fence: string;
  error: { code: string; message: string } | null;
  ending: PendingEnding | null;
  ending_started: number;
  ending_done: number;
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

/**
 * The channel turn changes are announced on. Payload: `schema:turnId`; when the change completed
 * the turn and its result fits in a `NOTIFY` payload (under 8,000 bytes in all), followed by a
 * newline and the result as the turn's row holds it (its JSON text), so a waiting handle needs no
 * read of the row.
 */
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

  /**
   * Records a new running turn unless a turn of the session waits for client tool results: then
   * records nothing and returns that turn's id (else `null`). With `enqueue`, the turn's first job
   * is sent with the row, atomically (one statement where pg-boss's `INSERT` is known, as
   * {@link advance}): the job exists if and only if the row does. Throws `TURN_IN_PROGRESS` or
   * `DUPLICATE_ID`.
   */
  async insert(
    turnId: string,
    sessionId: string,
    step: RuntimeTurnStep,
    enqueue?: (db: PgBoss.Db) => Promise<void>,
  ): Promise<string | null> {
    const insert = `INSERT INTO ${this.#table} (turn_id, session_id, status, step, step_order)
         SELECT $1, $2, 'running', $3, $4
          WHERE NOT EXISTS (
            SELECT 1 FROM ${this.#table}
             WHERE session_id = $2 AND status = 'waiting_for_tool_results')`;
    const values = [turnId, sessionId, jsonbText(step), stepOrder(step)];
    let inserted: boolean;
    try {
      if (enqueue) inserted = await this.#writeThenEnqueue(insert, values, enqueue);
      else inserted = (await sendStatement(this.#pool, insert, values)).rowCount === 1;
    } catch (error) {
      throw uniqueViolation(error, sessionId, turnId) ?? error;
    }
    if (inserted) return null;
    const { rows } = await sendStatement<{ turn_id: string }>(
      this.#pool,
      `SELECT turn_id FROM ${this.#table}
        WHERE session_id = $1 AND status = 'waiting_for_tool_results' ORDER BY created_at LIMIT 1`,
      [sessionId],
    );
    // The waiting turn continued meanwhile: insert again.
    return rows[0]?.turn_id ?? this.insert(turnId, sessionId, step, enqueue);
  }

  /** The turn's row, or `null` for an unknown turn. */
  async get(turnId: string): Promise<TurnRow | null> {
    const { rows } = await sendStatement<RawRow>(
      this.#pool,
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
      stepValue: fromJsonbValue(row.step),
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
    if (row.result) status.result = fromJsonbValue(row.result);
    if (row.error) status.error = fromJsonbValue(row.error);
    return status;
  }

  /**
   * Claims a running turn for a step job and returns the claim with its new fencing token; `null`
   * (claiming nothing) when the turn is not running, runs another generation, or is not the job's
   * of step `order` (the job is stale): the turn is the job's whose step its checkpoint is, or
   * the job's that went on to run the steps after its own itself (`job_order`, see
   * {@link TurnRecords.move}); the claim then carries the checkpoint to go on from. Every claim
   * raises the turn's `fence`, so the writes of the step that held it before (a step still
   * running past `stepTimeoutSeconds`, an older generation) match no row from then on.
   * `generation` and `order` may be `null` for a step that does not parse.
   */
  async claimStep(
    turnId: string,
    generation: number | null,
    order: number | null,
  ): Promise<StepClaim | null> {
    const { rows } = await sendStatement<RawClaim>(
      this.#pool,
      `UPDATE ${this.#table} SET fence = fence + 1, updated_at = now()
        WHERE turn_id = $1 AND status = 'running'
          AND ($2::integer IS NULL OR generation = $2)
          AND ($3::integer IS NULL OR COALESCE(job_order, step_order) = $3)
        RETURNING session_id, generation, step, fence, error, ending, ending_started, ending_done`,
      [turnId, generation, order],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      turnId,
      sessionId: row.session_id,
      generation: row.generation,
      step: fromJsonbValue(row.step),
      fence: Number(row.fence),
      error: fromJsonbValue(row.error),
      ending: fromJsonbValue(row.ending),
      endingStarted: row.ending_started,
      endingDone: row.ending_done,
    };
  }

  /** True while `fence` is the turn's fencing token and the turn runs. */
  async holdsFence(turnId: string, fence: number): Promise<boolean> {
    const { rowCount } = await sendStatement(
      this.#pool,
      `SELECT 1 FROM ${this.#table} WHERE turn_id = $1 AND fence = $2 AND status = 'running'`,
      [turnId, fence],
    );
    return rowCount === 1;
  }

  /**
   * Moves the checkpoint of a running turn to `step` and, in the same transaction, runs `enqueue`
   * (which sends the step's job through the given connection): the checkpoint moves if and only if
   * the job is enqueued. Returns false, writing nothing, when `fence` is no longer the turn's.
   */
  async advance(
    turnId: string,
    fence: number,
    step: RuntimeTurnStep,
    enqueue: (db: PgBoss.Db) => Promise<void>,
  ): Promise<boolean> {
    return this.#writeThenEnqueue(
      `UPDATE ${this.#table} SET step = $3, step_order = $4, job_order = NULL, updated_at = now()
        WHERE turn_id = $1 AND fence = $2 AND status = 'running' AND ending IS NULL`,
      [turnId, fence, jsonbText(step), stepOrder(step)],
      enqueue,
    );
  }

  /**
   * Moves the checkpoint of a running turn to `step` for the job that holds it under `fence` to
   * run next itself (no job is enqueued): the turn stays the job's (`job_order` keeps the order of
   * the job's own step, so that job, retried after its worker died, claims the turn again and goes
   * on from the checkpoint). Returns false, writing nothing, when `fence` is no longer the turn's.
   */
  async move(turnId: string, fence: number, step: RuntimeTurnStep): Promise<boolean> {
    const { rowCount } = await sendStatement(
      this.#pool,
      `UPDATE ${this.#table}
          SET step = $3, step_order = $4, job_order = COALESCE(job_order, step_order),
              updated_at = now()
        WHERE turn_id = $1 AND fence = $2 AND status = 'running' AND ending IS NULL`,
      [turnId, fence, jsonbText(step), stepOrder(step)],
    );
    return rowCount === 1;
  }

  /**
   * Runs `update`; when it changed one row, `enqueue` too, atomically. pg-boss's job `INSERT`
   * (the one statement its `send` runs through the `db` it is given) is sent together with
   * `update` as one statement whose `INSERT` runs only when the `UPDATE` found its row: one round
   * trip instead of four. A statement from pg-boss that is not that `INSERT` as this code knows it
   * (another pg-boss version) takes the transaction path: `BEGIN`, `update`, `enqueue`, `COMMIT`.
   */
  async #writeThenEnqueue(
    update: string,
    values: unknown[],
    enqueue: (db: PgBoss.Db) => Promise<void>,
  ): Promise<boolean> {
    let moved: boolean | undefined;
    const joint: PgBoss.Db = {
      executeSql: async (text, parameters) => {
        const insert = moved === undefined ? guardedJobInsert(text) : undefined;
        if (insert === undefined) throw new NotJointInsert();
        const offset = parameters.length;
        const { rows } = await sendStatement<{ moved: number; id: string | null }>(
          this.#pool,
          `WITH moved AS (${renumberParameters(update, offset)} RETURNING 1),
           job AS (${insert})
           SELECT (SELECT count(*) FROM moved)::integer AS moved, (SELECT id FROM job) AS id`,
          [...parameters, ...values],
        );
        const row = rows[0];
        moved = row?.moved === 1;
        // What pg-boss reads of its INSERT's answer: the new job's id, none when the id was taken.
        return { rows: row?.id ? [{ id: row.id }] : [] };
      },
    };
    try {
      await enqueue(joint);
    } catch (error) {
      if (!(error instanceof NotJointInsert)) throw error;
    }
    // Not sent jointly (a statement it does not know, or none at all): the transaction path.
    return moved ?? this.#writeThenEnqueueInTransaction(update, values, enqueue);
  }

  /** Runs `update`; when it changed one row, `enqueue` too, in the same transaction. */
  async #writeThenEnqueueInTransaction(
    update: string,
    values: unknown[],
    enqueue: (db: PgBoss.Db) => Promise<void>,
  ): Promise<boolean> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const { rowCount } = await sendStatement(client, update, values, true);
      if (rowCount !== 1) {
        await client.query('ROLLBACK');
        return false;
      }
      await enqueue({
        executeSql: (text, parameters) => sendStatement(client, text, parameters, true),
      });
      await client.query('COMMIT');
      return true;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** Notes the error a step will be retried after (only while `fence` holds). */
  async recordError(
    turnId: string,
    fence: number,
    error: { code: string; message: string },
  ): Promise<void> {
    await sendStatement(
      this.#pool,
      `UPDATE ${this.#table} SET error = $3, updated_at = now()
        WHERE turn_id = $1 AND fence = $2 AND status = 'running'`,
      [turnId, fence, jsonbText(error)],
    );
  }

  /**
   * Decides how a running turn ends: records `ending` (the effects still to deliver, numbered as
   * this version delivers them, the first marked begun) unless the turn has an ending already.
   * Resolves the ending as recorded for the one caller whose `fence` holds; `null`, writing
   * nothing, for a stale one.
   * The turn stays `running` until {@link finishEnding}. With `enqueue`, the job that will deliver
   * the ending is sent in the same transaction; with `reached`, the checkpoint moves to that step
   * in the same statement (a job that ran its turn's steps itself may not have moved it since).
   */
  async beginEnding(
    turnId: string,
    fence: number,
    ending: PendingEnding,
    {
      enqueue,
      reached,
    }: { enqueue?: (db: PgBoss.Db) => Promise<void>; reached?: RuntimeTurnStep } = {},
  ): Promise<PendingEnding | null> {
    const recorded: PendingEnding = { ...ending, numbering: 2 };
    // Its first effect is marked begun in the same statement (see `EndingDelivery`): a deliverer
    // that takes over treats it as one that may have happened, which every effect allows. The
    // checkpoint moves to the step the turn reached, as `move` would (the job keeps the turn).
    const values: unknown[] = [turnId, fence, jsonbText(recorded)];
    let checkpoint = '';
    if (reached !== undefined) {
      checkpoint = `step = $4, step_order = $5, job_order = COALESCE(job_order, step_order), `;
      values.push(jsonbText(reached), stepOrder(reached));
    }
    const update = `UPDATE ${this.#table}
          SET ${checkpoint}ending = $3, ending_started = 1, ending_done = 0, updated_at = now()
        WHERE turn_id = $1 AND fence = $2 AND status = 'running' AND ending IS NULL`;
    if (enqueue) return (await this.#writeThenEnqueue(update, values, enqueue)) ? recorded : null;
    const { rowCount } = await sendStatement(this.#pool, update, values);
    return rowCount === 1 ? recorded : null;
  }

  /**
   * Records that the ending's effects before `index` are done and effect `index` begins. False,
   * writing nothing, when `fence` no longer holds (the caller must not deliver the effect).
   */
  async beginEffect(turnId: string, fence: number, index: number): Promise<boolean> {
    const { rowCount } = await sendStatement(
      this.#pool,
      `UPDATE ${this.#table} SET ending_done = $3, ending_started = $3 + 1, updated_at = now()
        WHERE turn_id = $1 AND fence = $2 AND status = 'running' AND ending IS NOT NULL`,
      [turnId, fence, index],
    );
    return rowCount === 1;
  }

  /**
   * Ends a running turn whose ending was delivered, in one conditional statement: only while
   * `fence` holds. Returns false when it does not (nothing changes). Announces the change on
   * {@link TURN_CHANNEL} (a completed turn's result with it, when it fits).
   */
  async finishEnding(
    turnId: string,
    fence: number,
    status: Exclude<HostTurnStatusName, 'running'>,
    result: TurnResult | null,
    error: { code: string; message: string } | null,
  ): Promise<boolean> {
    const { rowCount } = await sendStatement(
      this.#pool,
      `WITH ended AS (
         UPDATE ${this.#table}
            SET status = $3, result = $4, error = $5, ending = NULL, ending_started = 0,
                ending_done = 0, updated_at = now()
          WHERE turn_id = $1 AND fence = $2 AND status = 'running' AND ending IS NOT NULL
          RETURNING status, result::text AS result_text
       )
       SELECT pg_notify($6, CASE
                WHEN status = 'completed' AND result_text IS NOT NULL
                     AND octet_length($7::text) + 1 + octet_length(result_text) < 8000
                THEN $7::text || chr(10) || result_text
                ELSE $7::text END)
         FROM ended`,
      [
        turnId,
        fence,
        status,
        result === null ? null : jsonbText(result),
        error === null ? null : jsonbText(error),
        TURN_CHANNEL,
        `${this.#schema}:${turnId}`,
      ],
    );
    return rowCount === 1;
  }

  /** The id of the turn running on a session, or `null`. */
  async runningTurnOf(sessionId: string): Promise<string | null> {
    const { rows } = await sendStatement<{ turn_id: string }>(
      this.#pool,
      `SELECT turn_id FROM ${this.#table} WHERE session_id = $1 AND status = 'running'`,
      [sessionId],
    );
    return rows[0]?.turn_id ?? null;
  }

  /**
   * Moves a turn that waits for client tool results back to running with `step` as its
   * checkpoint, clearing its result, and claims it (a new fencing token, as
   * {@link TurnRecords.claimStep}). Returns the turn's generation and token, or `null` when the
   * turn was not waiting (another caller resumed it first). Throws `TURN_IN_PROGRESS` when
   * another turn runs on the session.
   */
  async resumeWaiting(
    turnId: string,
    step: RuntimeTurnStep,
  ): Promise<{ generation: number; fence: number } | null> {
    let rows: Array<{ generation: number; fence: string }>;
    try {
      ({ rows } = await sendStatement(
        this.#pool,
        `UPDATE ${this.#table}
            SET status = 'running', step = $2, step_order = $3, job_order = NULL, result = NULL,
                error = NULL, fence = fence + 1, updated_at = now()
          WHERE turn_id = $1 AND status = 'waiting_for_tool_results'
          RETURNING generation, fence`,
        [turnId, jsonbText(step), stepOrder(step)],
      ));
    } catch (error) {
      throw uniqueViolation(error, step.state.sessionId, turnId) ?? error;
    }
    const row = rows[0];
    return row ? { generation: row.generation, fence: Number(row.fence) } : null;
  }

  /**
   * Opens a new generation of a running or failed turn and returns it with the checkpoint; `null`
   * when the turn has completed or waits for tool results. Raises the fencing token, so the steps
   * of older generations write nothing from then on. Throws `INVALID_INPUT` for an unknown
   * turn and `TURN_IN_PROGRESS` when reopening a failed turn while another runs on its session.
   */
  async nextGeneration(turnId: string): Promise<{ generation: number; step: unknown } | null> {
    let rows: Array<{ generation: number; step: unknown }>;
    try {
      ({ rows } = await sendStatement(
        this.#pool,
        `UPDATE ${this.#table}
            SET generation = generation + 1, fence = fence + 1, status = 'running', error = NULL,
                job_order = NULL, updated_at = now()
          WHERE turn_id = $1 AND status IN ('running', 'failed')
          RETURNING generation, step`,
        [turnId],
      ));
    } catch (error) {
      const current = await this.get(turnId);
      throw uniqueViolation(error, current?.sessionId ?? '', turnId) ?? error;
    }
    const row = rows[0];
    if (row) return { generation: row.generation, step: fromJsonbValue(row.step) };
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

/** Thrown to pg-boss by the joint `db` for a statement it cannot send with the update. */
class NotJointInsert extends Error {
  constructor() {
    super('not the job INSERT the host sends with its update');
  }
}

/**
 * How pg-boss 10's job INSERT ends: its job row joined with the queue's (group 1), then the
 * conflict clause (group 2).
 */
const JOB_INSERT_END =
  /(\)\s+j\s+JOIN\s+\S+\s+q\s+ON\s+j\.name\s*=\s*q\.name)(\s+ON CONFLICT DO NOTHING\s+RETURNING id\s*)$/;

/**
 * pg-boss's job `INSERT … SELECT … FROM (…) j JOIN <schema>.queue q ON j.name = q.name ON CONFLICT
 * DO NOTHING RETURNING id`, made to insert only when the `moved` CTE before it returned a row;
 * `undefined` for any other text.
 */
export function guardedJobInsert(text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^INSERT INTO \S+\.job\s*\(/.test(trimmed)) return undefined;
  const end = JOB_INSERT_END.exec(trimmed);
  if (!end) return undefined;
  return `${trimmed.slice(0, end.index)}${end[1]}\n    WHERE EXISTS (SELECT 1 FROM moved)${end[2]}`;
}

/** `text` with each parameter `$n` renumbered `$(n + offset)` (texts of this file: no `$` else). */
function renumberParameters(text: string, offset: number): string {
  return text.replace(/\$(\d+)/g, (_match, index: string) => `$${Number(index) + offset}`);
}
