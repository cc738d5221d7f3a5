import {
  type CapabilityConfig,
  type EverrunsError,
  everrunsError,
  type JointStatusOptions,
  type RuntimeSessionStore,
  type Session,
  type SessionStatus,
  type TurnLease,
  turnInProgressError,
  type UpdateSessionStatusOptions,
} from '@everruns-ts/core';
import { keyHeadRange, keyPrefixCondition, keyPrefixParams } from './key-range.js';
import { openMcpSecrets, sealMcpSecrets } from './mcp-secrets.js';
import { COMMIT_WITHOUT_FLUSH, type Queryable } from './postgres-database.js';
import { violatedConstraint } from './postgres-errors.js';
import type { JointRows } from './postgres-message-store.js';
import {
  checkSize,
  compareStrings,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import {
  decodeText,
  encodeOptionalText,
  encodeText,
  endsInHighSurrogate,
  textDigest,
} from './text-codec.js';

/** Columns a session is read from. */
export const SESSION_COLUMNS = 'title, status, capabilities, updated_at, data';

/** A row of the `sessions` table as {@link SESSION_COLUMNS} selects it. */
export interface SessionRow {
  title: string | null;
  status: string;
  capabilities: string;
  updated_at: string;
  data: string;
}

/**
 * Builds a session from its row. The fields the store updates (title, status, capabilities,
 * updatedAt) have their own columns, so each update is one statement; the rest is one JSON
 * document, the env and header values of its MCP servers sealed (opened here with `context`'s
 * cipher).
 */
export function sessionFromRow(row: SessionRow, context: StoreContext): Session {
  const session = openMcpSecrets(context, 'session', parseStored<Session>(row.data, 'session'));
  if (row.title !== null) session.title = decodeText(row.title);
  session.status = row.status as SessionStatus;
  session.capabilities = parseStored<CapabilityConfig[]>(row.capabilities, 'session capabilities');
  session.updatedAt = row.updated_at;
  return session;
}

/** The expiry of a lease claimed or renewed now for `$3` milliseconds, whole milliseconds. */
const LEASE_EXPIRY = "date_trunc('milliseconds', now() + $3::float8 * interval '1 millisecond')";

/** The lease columns, the expiry as milliseconds since the epoch. */
const LEASE_COLUMNS =
  'turn_lease_holder, (extract(epoch FROM turn_lease_expires_at) * 1000)::float8 AS expires_ms';

interface LeaseRow {
  turn_lease_holder: string | null;
  expires_ms: number | null;
}

function leaseFromRow(sessionId: string, row: LeaseRow): TurnLease {
  return {
    sessionId,
    holderId: decodeText(row.turn_lease_holder ?? ''),
    expiresAt: new Date(Math.round(row.expires_ms ?? 0)).toISOString(),
  };
}

/**
 * The data-modifying CTE `renewed` (one row when it renewed) that extends the turn lease of the
 * session whose `id_hash` is parameter `$<session>` while the holder `$<holder>` (encoded) holds
 * it, to `$<duration>` milliseconds from now. A message write conditioned on the lease puts it
 * before its INSERT and inserts only `WHERE EXISTS (SELECT 1 FROM renewed)`: the row lock of the
 * renewal makes a racing claim wait for the write, and a lease taken over lets nothing through.
 * `alsoSet` (`column = $n, …`) sets more of the row in the same UPDATE (a turn's first write sets
 * the status there: a row is updated once per statement).
 */
export function renewedLeaseCte(
  sessionsTable: string,
  session: number,
  holder: number,
  duration: number,
  alsoSet = '',
): string {
  return `renewed AS (
       UPDATE ${sessionsTable}
          SET turn_lease_expires_at =
                date_trunc('milliseconds', now() + $${duration}::float8 * interval '1 millisecond')${
                  alsoSet === '' ? '' : `, ${alsoSet}`
                }
        WHERE id_hash = $${session} AND turn_lease_holder = $${holder}
       RETURNING 1 AS held
     )`;
}

/**
 * The CTE `released` counterpart of {@link renewedLeaseCte} for a turn's last write: it ends the
 * lease of the holder (parameter `holder`) instead of extending it, setting `alsoSet` too, and
 * returns a row (`held`) only when that holder held it. Named `renewed` so the write's other CTEs
 * are conditioned on it the same way.
 */
export function releasedLeaseCte(
  sessionsTable: string,
  session: number,
  holder: number,
  alsoSet = '',
): string {
  return `renewed AS (
       UPDATE ${sessionsTable}
          SET turn_lease_holder = NULL, turn_lease_expires_at = NULL${
            alsoSet === '' ? '' : `, ${alsoSet}`
          }
        WHERE id_hash = $${session} AND turn_lease_holder = $${holder}
       RETURNING 1 AS held
     )`;
}

/**
 * Renews the lease of `holderId` on `client` (one statement, as `renewTurnLease`) and throws the
 * `TURN_IN_PROGRESS` error of {@link turnLeaseRefusal} when it does not hold it. For a leased
 * write answered without its INSERT (a stored message with the same idempotency key).
 */
export async function renewLeaseOrRefuse(
  client: Queryable,
  sessionsTable: string,
  sessionId: string,
  holderId: string,
  durationMs: number,
): Promise<void> {
  const idHash = textDigest(sessionId);
  const result = await client.query(
    `UPDATE ${sessionsTable} SET turn_lease_expires_at = ${LEASE_EXPIRY}
      WHERE id_hash = $1 AND turn_lease_holder = $2`,
    [idHash, encodeText(holderId), durationMs],
  );
  if (result.rowCount !== 1) throw await turnLeaseRefusal(client, sessionsTable, sessionId);
}

/**
 * The `TURN_IN_PROGRESS` error of a leased write whose holder no longer holds the lease: reads
 * the current lease (details `{ sessionId, holder?, expiresAt? }` name its holder while it runs).
 */
export async function turnLeaseRefusal(
  client: Queryable,
  sessionsTable: string,
  sessionId: string,
): Promise<EverrunsError> {
  const current = await client.query<LeaseRow & { live: boolean | null }>(
    `SELECT ${LEASE_COLUMNS}, turn_lease_expires_at > now() AS live
       FROM ${sessionsTable} WHERE id_hash = $1`,
    [textDigest(sessionId)],
  );
  const found = current.rows[0];
  const lease =
    found?.live === true && found.turn_lease_holder !== null
      ? leaseFromRow(sessionId, found)
      : null;
  return turnInProgressError({
    sessionId,
    ...(lease ? { holder: lease.holderId, expiresAt: lease.expiresAt } : {}),
  });
}

/**
 * Releases the turn lease of `holderId` and deletes the session's storage values whose keys start
 * with `prefix`, in one statement (two data-modifying CTEs, each run to completion whatever the
 * other found); `true` when the lease was released. Throws `INVALID_INPUT` for an empty prefix.
 * A prefix ending in a high surrogate cannot be cut in the encoded keys: the values then go key
 * by key through `storage`'s `deleteValuesWithPrefix`, and the release in a statement of its own.
 */
export async function releaseTurnLeaseAndDeleteValues(
  context: StoreContext,
  sessions: RuntimeSessionStore,
  storage: { deleteValuesWithPrefix(sessionId: string, prefix: string): Promise<number> },
  sessionId: string,
  holderId: string,
  prefix: string,
): Promise<boolean> {
  requireString(sessionId, 'sessionId');
  requireString(holderId, 'holderId');
  requireString(prefix, 'prefix');
  if (prefix === '') {
    throw everrunsError(
      'INVALID_INPUT',
      'releaseTurnLeaseAndDeleteValues needs a non-empty prefix',
    );
  }
  if (endsInHighSurrogate(prefix)) {
    await storage.deleteValuesWithPrefix(sessionId, prefix);
    return sessions.releaseTurnLease(sessionId, holderId);
  }
  const { db } = context;
  const sessionHash = textDigest(sessionId);
  const range = keyHeadRange(prefix)!;
  const result = await db.run('releaseTurnLeaseAndDeleteValues', (client) =>
    client.query<{ released: boolean }>(
      `WITH released AS (
         UPDATE ${db.table('sessions')}
            SET turn_lease_holder = NULL, turn_lease_expires_at = NULL
          WHERE id_hash = $1 AND turn_lease_holder = $2
         RETURNING 1
       ), deleted AS (
         DELETE FROM ${db.table('session_values')}
          WHERE session_hash = $1 AND ${keyPrefixCondition(range, 3, 4, 5)}
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM released) AS released`,
      [sessionHash, encodeText(holderId), ...keyPrefixParams(range)],
    ),
  );
  return result.rows[0]?.released === true;
}

/**
 * Checks a lease request: `INVALID_INPUT` for an empty holder id or a duration that is not a
 * positive safe integer of milliseconds.
 */
export function checkLeaseRequest(holderId: string, durationMs: number): void {
  if (typeof holderId !== 'string' || holderId.length === 0) {
    throw everrunsError('INVALID_INPUT', 'A turn lease holderId must be a non-empty string');
  }
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw everrunsError(
      'INVALID_INPUT',
      `A turn lease duration must be a positive integer of milliseconds, got ${String(durationMs)}`,
    );
  }
}

/** The session stores made by this package (wrappers around them are not in it). */
const ownStores = new WeakSet<object>();

/** Sessions in the `sessions` table. */
export class PostgresSessionStore implements RuntimeSessionStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
    ownStores.add(this);
  }

  /**
   * `store` itself when it is a session store of this package (not a wrapper around one) on the
   * same database connection and schema as `context`, else `null`.
   * @internal
   */
  static sameBackend(store: unknown, context: StoreContext): PostgresSessionStore | null {
    if (typeof store !== 'object' || store === null || !ownStores.has(store)) return null;
    const own = store as PostgresSessionStore;
    return own.#context.db === context.db ? own : null;
  }

  /** The session, or `null`. */
  async getSession(sessionId: string): Promise<Session | null> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run('getSession', (client) =>
      client.query<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM ${db.table('sessions')} WHERE id_hash = $1`,
        [textDigest(sessionId)],
      ),
    );
    const row = result.rows[0];
    return row ? sessionFromRow(row, this.#context) : null;
  }

  /** Stores a new session and returns the stored copy. Throws `DUPLICATE_ID` when the id exists. */
  async createSession(session: Session): Promise<Session> {
    const row = this.#sessionRow(session);
    const { db } = this.#context;
    await db.run('createSession', async (client, attempt) => {
      try {
        await client.query(
          `INSERT INTO ${db.table('sessions')}
             (id_hash, id, harness_hash, agent_hash, title, status, capabilities, updated_at, data)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          sessionRowParameters(session, row),
        );
      } catch (error) {
        if (violatedConstraint(error) === undefined) throw error;
        if (attempt.afterConnectionLoss) {
          const stored = await this.getSession(session.id);
          if (
            stored &&
            stringifyForStore(stored, 'session') ===
              stringifyForStore(sessionFromRow(row, this.#context), 'session')
          )
            return;
        }
        throw everrunsError('DUPLICATE_ID', `Session ${session.id} already exists`, {
          details: { sessionId: session.id },
        });
      }
    });
    return sessionFromRow(row, this.#context);
  }

  /**
   * Stores the session, replacing one with the same id, in one `INSERT … ON CONFLICT DO UPDATE`;
   * the turn lease columns are left as they are.
   */
  async upsertSession(session: Session): Promise<Session> {
    const row = this.#sessionRow(session);
    const { db } = this.#context;
    await db.run('upsertSession', (client) =>
      client.query(
        `INSERT INTO ${db.table('sessions')}
           (id_hash, id, harness_hash, agent_hash, title, status, capabilities, updated_at, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id_hash) DO UPDATE SET harness_hash = EXCLUDED.harness_hash,
           agent_hash = EXCLUDED.agent_hash, title = EXCLUDED.title, status = EXCLUDED.status,
           capabilities = EXCLUDED.capabilities, updated_at = EXCLUDED.updated_at,
           data = EXCLUDED.data`,
        sessionRowParameters(session, row),
      ),
    );
    return sessionFromRow(row, this.#context);
  }

  /**
   * The stored columns of a session (sealed MCP secrets, size-checked), for `createSession` and
   * `upsertSession`. Throws `INVALID_INPUT` for a missing id, `LIMIT_EXCEEDED` for a row too big.
   */
  #sessionRow(session: Session): SessionRow {
    requireString(session?.id, 'session.id');
    const { title, status, capabilities, updatedAt, ...rest } = session;
    const data = stringifyForStore(
      sealMcpSecrets(this.#context, 'session', { ...rest, id: session.id }),
      'session',
    );
    const capabilitiesJson = stringifyForStore(capabilities ?? [], 'session capabilities');
    checkSize(this.#context, data, `Session ${session.id}`);
    checkSize(this.#context, capabilitiesJson, `Capabilities of session ${session.id}`);
    return {
      title: encodeOptionalText(title),
      status: status ?? 'started',
      capabilities: capabilitiesJson,
      updated_at: updatedAt ?? new Date().toISOString(),
      data,
    };
  }

  /** Sets the title. Throws `SESSION_NOT_FOUND`. */
  updateSessionTitle(sessionId: string, title: string): Promise<Session> {
    requireString(title, 'title');
    const encoded = encodeText(title);
    checkSize(this.#context, encoded, `Title of session ${sessionId}`);
    return this.#update('updateSessionTitle', sessionId, 'title', encoded);
  }

  /**
   * Sets the status. Throws `SESSION_NOT_FOUND`. With `options.leaseHolder`, one
   * `UPDATE … WHERE turn_lease_holder = <holder>`: the lease check and the write are one
   * statement, so a holder that lost the lease never lands a write; a refusal reads why in a
   * second statement and throws `TURN_IN_PROGRESS` (or `SESSION_NOT_FOUND`).
   */
  async updateSessionStatus(
    sessionId: string,
    status: SessionStatus,
    options: UpdateSessionStatusOptions = {},
  ): Promise<Session> {
    requireString(status, 'status');
    const { leaseHolder } = options;
    if (leaseHolder === undefined) {
      return this.#update('updateSessionStatus', sessionId, 'status', status);
    }
    requireString(sessionId, 'sessionId');
    requireString(leaseHolder, 'leaseHolder');
    const { db } = this.#context;
    const idHash = textDigest(sessionId);
    const result = await db.run('updateSessionStatusHeld', (client) =>
      client.query<SessionRow>(
        `UPDATE ${db.table('sessions')} SET status = $2, updated_at = $3
          WHERE id_hash = $1 AND turn_lease_holder = $4 RETURNING ${SESSION_COLUMNS}`,
        [idHash, status, new Date().toISOString(), encodeText(leaseHolder)],
      ),
    );
    const row = result.rows[0];
    if (row) return sessionFromRow(row, this.#context);
    const current = await db.run('updateSessionStatusHeld', (client) =>
      client.query<LeaseRow & { live: boolean | null }>(
        `SELECT ${LEASE_COLUMNS}, turn_lease_expires_at > now() AS live
           FROM ${db.table('sessions')} WHERE id_hash = $1`,
        [idHash],
      ),
    );
    const found = current.rows[0];
    if (!found) {
      throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
        details: { sessionId },
      });
    }
    const lease =
      found.live === true && found.turn_lease_holder !== null
        ? leaseFromRow(sessionId, found)
        : null;
    throw turnInProgressError({
      sessionId,
      ...(lease ? { holder: lease.holderId, expiresAt: lease.expiresAt } : {}),
    });
  }

  /**
   * {@link updateSessionStatus} with the `joint` rows written in the UPDATE's statement (CTEs
   * after the CTE `updated`, see `JointRows`): resolves with the session and the final SELECT's
   * row when the rows were written (in this statement, or by an earlier attempt that committed
   * before its connection dropped), `null` without `joint`. For the event bus of the same
   * backend (`PostgresEventBus.updateSessionStatusAndEmit`).
   * @internal
   */
  async updateStatusJointly(
    sessionId: string,
    status: SessionStatus,
    options: JointStatusOptions = {},
    joint: JointRows | null,
  ): Promise<{
    session: Session;
    joined: Record<string, unknown> | null;
    leaseReleased: boolean;
  }> {
    const { releaseLease, ...update } = options;
    if (joint === null) {
      const session = await this.updateSessionStatus(sessionId, status, update);
      return { session, joined: null, leaseReleased: false };
    }
    requireString(status, 'status');
    requireString(sessionId, 'sessionId');
    const { leaseHolder } = update;
    if (leaseHolder !== undefined) requireString(leaseHolder, 'leaseHolder');
    const prefix = releaseLease?.deleteValuesWithPrefix;
    if (prefix !== undefined) requireString(prefix, 'releaseLease.deleteValuesWithPrefix');
    // The lease goes with the status only for its holder, and the values only for a prefix the
    // key-head range can express exactly (not an empty one, not one cut inside a surrogate pair).
    const release =
      releaseLease !== undefined &&
      leaseHolder !== undefined &&
      prefix !== '' &&
      !(prefix !== undefined && endsInHighSurrogate(prefix));
    const range = release && prefix !== undefined ? keyHeadRange(prefix) : null;
    if (joint.ready) await joint.ready;
    const { db } = this.#context;
    const idHash = textDigest(sessionId);
    const first = leaseHolder === undefined ? 4 : 5;
    const rangeFirst = first + joint.params.length;
    const text = `WITH updated AS (
         UPDATE ${db.table('sessions')} SET status = $2, updated_at = $3${
           release ? ', turn_lease_holder = NULL, turn_lease_expires_at = NULL' : ''
         }
          WHERE id_hash = $1${leaseHolder === undefined ? '' : ' AND turn_lease_holder = $4'}
         RETURNING ${SESSION_COLUMNS}
       ),
       ${joint.ctes(first, 'updated')}${
         range
           ? `,
       forgotten AS (
         DELETE FROM ${db.table('session_values')}
          WHERE session_hash = $1 AND ${keyPrefixCondition(range, rangeFirst, rangeFirst + 1, rangeFirst + 2)}
            AND EXISTS (SELECT 1 FROM updated)
         RETURNING 1
       )`
           : ''
       }
       SELECT updated.*, ${joint.select} FROM updated`;
    const params = [
      idHash,
      status,
      new Date().toISOString(),
      ...(leaseHolder === undefined ? [] : [encodeText(leaseHolder)]),
      ...joint.params,
      ...(range ? keyPrefixParams(range) : []),
    ];
    const result = await db.run('updateSessionStatusAndEmit', async (client, attempt) => {
      const earlier = async () => {
        // An earlier attempt committed (status and events) before its connection dropped.
        const joined = await joint.committed(client);
        if (joined === null) return null;
        const row = await client.query<SessionRow>(
          `SELECT ${SESSION_COLUMNS} FROM ${db.table('sessions')} WHERE id_hash = $1`,
          [idHash],
        );
        return { rows: row.rows.map((found) => ({ ...found, ...joined })) };
      };
      let written: { rows: (SessionRow & Record<string, unknown>)[] };
      try {
        written = await client.query<SessionRow & Record<string, unknown>>(text, params);
      } catch (error) {
        if (violatedConstraint(error) !== 'events_id' || !attempt.afterConnectionLoss) throw error;
        return (await earlier()) ?? { rows: [] };
      }
      // An earlier attempt that released the lease leaves nothing for this one to match.
      if (written.rows.length === 0 && release && attempt.afterConnectionLoss) {
        return (await earlier()) ?? written;
      }
      return written;
    });
    const row = result.rows[0];
    if (row) {
      return { session: sessionFromRow(row, this.#context), joined: row, leaseReleased: release };
    }
    // Nothing updated: the session is unknown or the holder lost the lease; the plain update
    // tells which, writing nothing (it finds the same).
    const session = await this.updateSessionStatus(sessionId, status, update);
    return { session, joined: null, leaseReleased: false };
  }

  /** Replaces the session's capabilities. Throws `SESSION_NOT_FOUND`. */
  updateSessionCapabilities(sessionId: string, capabilities: CapabilityConfig[]): Promise<Session> {
    const json = stringifyForStore(capabilities, 'session capabilities');
    checkSize(this.#context, json, `Capabilities of session ${sessionId}`);
    return this.#update('updateSessionCapabilities', sessionId, 'capabilities', json);
  }

  /** Every session, sorted by id. */
  async listSessions(): Promise<Session[]> {
    const { db } = this.#context;
    const result = await db.run('listSessions', (client) =>
      client.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM ${db.table('sessions')}`),
    );
    return result.rows
      .map((row) => sessionFromRow(row, this.#context))
      .sort((left, right) => compareStrings(left.id, right.id));
  }

  /**
   * Claims the turn lease in one `UPDATE … WHERE <free, lapsed or ours>`: the row lock makes
   * racing claims wait and re-check the condition, so exactly one wins; the expiry comes from the
   * database's clock. On a refusal a second statement reads why (unknown session or the current
   * holder). Throws `TURN_IN_PROGRESS`, `SESSION_NOT_FOUND`, `INVALID_INPUT`.
   */
  async claimTurnLease(
    sessionId: string,
    holderId: string,
    durationMs: number,
  ): Promise<TurnLease> {
    requireString(sessionId, 'sessionId');
    checkLeaseRequest(holderId, durationMs);
    const { db } = this.#context;
    const idHash = textDigest(sessionId);
    const holder = encodeText(holderId);
    // A lease released or lapsed between the refused claim and the read is claimed again.
    for (let attempt = 1; ; attempt++) {
      const claimed = await db.run('claimTurnLease', (client) =>
        client.query<LeaseRow>(
          `UPDATE ${db.table('sessions')}
              SET turn_lease_holder = $2,
                  turn_lease_expires_at = ${LEASE_EXPIRY}
            WHERE id_hash = $1
              AND (turn_lease_holder IS NULL OR turn_lease_holder = $2
                   OR turn_lease_expires_at <= now())
              AND ${COMMIT_WITHOUT_FLUSH}
            RETURNING ${LEASE_COLUMNS}`,
          [idHash, holder, durationMs],
        ),
      );
      const row = claimed.rows[0];
      if (row) return leaseFromRow(sessionId, row);
      const current = await db.run('claimTurnLease', (client) =>
        client.query<LeaseRow & { live: boolean }>(
          `SELECT ${LEASE_COLUMNS}, turn_lease_expires_at > now() AS live
             FROM ${db.table('sessions')} WHERE id_hash = $1`,
          [idHash],
        ),
      );
      const found = current.rows[0];
      if (!found) {
        throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
          details: { sessionId },
        });
      }
      if ((found.live && found.turn_lease_holder !== null) || attempt >= 3) {
        const lease = found.turn_lease_holder === null ? null : leaseFromRow(sessionId, found);
        throw turnInProgressError({
          sessionId,
          ...(lease ? { holder: lease.holderId, expiresAt: lease.expiresAt } : {}),
        });
      }
    }
  }

  /** Extends the lease of `holderId` in one statement; `null` when it does not hold it. */
  async renewTurnLease(
    sessionId: string,
    holderId: string,
    durationMs: number,
  ): Promise<TurnLease | null> {
    requireString(sessionId, 'sessionId');
    checkLeaseRequest(holderId, durationMs);
    const { db } = this.#context;
    const result = await db.run('renewTurnLease', (client) =>
      client.query<LeaseRow>(
        `UPDATE ${db.table('sessions')} SET turn_lease_expires_at = ${LEASE_EXPIRY}
          WHERE id_hash = $1 AND turn_lease_holder = $2 AND ${COMMIT_WITHOUT_FLUSH}
          RETURNING ${LEASE_COLUMNS}`,
        [textDigest(sessionId), encodeText(holderId), durationMs],
      ),
    );
    const row = result.rows[0];
    return row ? leaseFromRow(sessionId, row) : null;
  }

  /** Releases the lease when `holderId` holds it, in one statement; `false` otherwise. */
  async releaseTurnLease(sessionId: string, holderId: string): Promise<boolean> {
    requireString(sessionId, 'sessionId');
    requireString(holderId, 'holderId');
    const { db } = this.#context;
    const result = await db.run('releaseTurnLease', (client) =>
      client.query(
        `UPDATE ${db.table('sessions')}
            SET turn_lease_holder = NULL, turn_lease_expires_at = NULL
          WHERE id_hash = $1 AND turn_lease_holder = $2`,
        [textDigest(sessionId), encodeText(holderId)],
      ),
    );
    return result.rowCount === 1;
  }

  /** The lease while it has not lapsed (database clock), or `null`. */
  async getTurnLease(sessionId: string): Promise<TurnLease | null> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run('getTurnLease', (client) =>
      client.query<LeaseRow>(
        `SELECT ${LEASE_COLUMNS} FROM ${db.table('sessions')}
          WHERE id_hash = $1 AND turn_lease_holder IS NOT NULL AND turn_lease_expires_at > now()`,
        [textDigest(sessionId)],
      ),
    );
    const row = result.rows[0];
    return row ? leaseFromRow(sessionId, row) : null;
  }

  /** One `UPDATE … RETURNING`: atomic without a transaction, safe to repeat. */
  async #update(
    operation: string,
    sessionId: string,
    column: 'title' | 'status' | 'capabilities',
    value: string,
  ): Promise<Session> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run(operation, (client) =>
      client.query<SessionRow>(
        `UPDATE ${db.table('sessions')} SET ${column} = $2, updated_at = $3
          WHERE id_hash = $1 RETURNING ${SESSION_COLUMNS}`,
        [textDigest(sessionId), value, new Date().toISOString()],
      ),
    );
    const row = result.rows[0];
    if (!row) {
      throw everrunsError('SESSION_NOT_FOUND', `Session ${sessionId} not found`, {
        details: { sessionId },
      });
    }
    return sessionFromRow(row, this.#context);
  }
}

/** The insert parameters of a session row: `$1`–`$9` of `createSession` and `upsertSession`. */
function sessionRowParameters(session: Session, row: SessionRow): unknown[] {
  return [
    textDigest(session.id),
    encodeText(session.id),
    textDigest(String(session.harnessId)),
    session.agentId === undefined ? null : textDigest(session.agentId),
    row.title,
    row.status,
    row.capabilities,
    row.updated_at,
    row.data,
  ];
}
