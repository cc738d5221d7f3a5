import {
  checkAfterSeq,
  checkLatestLimit,
  EverrunsError,
  everrunsError,
  type InputMessage,
  type JointMessageOptions,
  type Message,
  type MessageFilter,
  type MessagePage,
  type MessagePageRequest,
  type MessageRole,
  type MessageSearchPage,
  type MessageSearchRequest,
  type MessageWriteLease,
  type MessageWriteOptions,
  type ModelUsageTotal,
  messagePageStart,
  messageSearchText,
  type NewMessage,
  newId,
  parseMessageSearchRequest,
  type RuntimeMessageStore,
  type SessionStatus,
  type StoreMessageOptions,
  type SumUsageOptions,
  type TurnSnapshot,
  UsageTally,
} from '@everruns-ts/core';
import { keyHeadRange, keyPrefixCondition, keyPrefixParams } from './key-range.js';
import type { Attempt, Queryable } from './postgres-database.js';
import { sleep } from './postgres-database.js';
import { violatedConstraint } from './postgres-errors.js';
import {
  checkLeaseRequest,
  releasedLeaseCte,
  renewedLeaseCte,
  renewLeaseOrRefuse,
  turnLeaseRefusal,
} from './postgres-session-store.js';
import {
  checkSize,
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

const ROLES: ReadonlySet<MessageRole> = new Set(['user', 'agent', 'tool_result']);
const MAX_PAGE_SIZE = 1000;
/** The largest `seq` the `integer` column holds. */
const MAX_SEQ = 2 ** 31 - 1;
/**
 * A JSON escape PostgreSQL's `json` cannot read (`\u0000`, or any surrogate: `JSON.stringify`
 * escapes only unpaired ones), as a POSIX regular expression.
 */
const UNSUPPORTED_ESCAPE = '\\\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})';

/** Positions a search reads per statement at most. */
const SEARCH_CHUNK = 5000;
/** Rows filled per statement by a search that finds rows without `search_text`. */
const FILL_BATCH = 500;

/**
 * The statement that finds a search's candidate positions: `$1` session hash, `$2` after this
 * seq, `$3` the LIKE pattern, `$4` roles or NULL, `$5` whether every row's text comes back for a
 * check in JavaScript (else only rows holding an escape), `$6` the row limit. Exported for the
 * test that EXPLAINs it.
 */
export function searchCandidatesSql(table: string): string {
  return `SELECT seq,
                 CASE WHEN $5::boolean OR strpos(search_text, chr(1)) > 0 THEN search_text END
                   AS check_text
            FROM ${table}
           WHERE session_hash = $1 AND seq > $2 AND search_text LIKE $3
             AND ($4::text[] IS NULL OR role = ANY($4::text[]))
           ORDER BY seq LIMIT $6`;
}

/** The `search_text` of a message: its search text lower-cased by JavaScript, encoded. */
function storedSearchText(content: unknown): string {
  const parts = Array.isArray(content)
    ? content.filter((part) => part !== null && typeof part === 'object')
    : [];
  return encodeText(messageSearchText({ content: parts as Message['content'] }).toLowerCase());
}

/**
 * The LIKE pattern of a lower-cased query. A query that starts with a low surrogate or ends with
 * a high surrogate may match half of a stored pair, which the encoded text keeps whole: that code
 * unit is left out of the pattern and every candidate is checked in JavaScript.
 */
export function searchPattern(needle: string): { pattern: string; verifyAll: boolean } {
  let core = needle;
  let verifyAll = false;
  const first = core.charCodeAt(0);
  if (first >= 0xdc00 && first <= 0xdfff) {
    core = core.slice(1);
    verifyAll = true;
  }
  if (endsInHighSurrogate(core)) {
    core = core.slice(0, -1);
    verifyAll = true;
  }
  return { pattern: `%${encodeText(core).replace(/[\\%_]/g, '\\$&')}%`, verifyAll };
}

/** A row of {@link PostgresMessageStore.sumUsage}'s aggregate (sums as numeric text). */
interface UsageRow {
  model: string | null;
  calls: number;
  input: string | null;
  output: string | null;
  cached: string | null;
  cache_write: string | null;
  reasoning: string | null;
}

/** Columns a message is read from. */
export const MESSAGE_COLUMNS =
  'seq, id, idempotency_key, turn_id, role, content, metadata, created_at';

/** A row of the `messages` table as {@link MESSAGE_COLUMNS} selects it. */
export interface MessageRow {
  seq: number;
  id: string;
  idempotency_key: string | null;
  turn_id: string | null;
  role: string;
  content: string;
  metadata: string | null;
  created_at: string;
}

/** Builds a message from its row. */
export function messageFromRow(sessionId: string, row: MessageRow): Message {
  const message: Message = {
    id: decodeText(row.id),
    sessionId,
    seq: row.seq,
    role: row.role as MessageRole,
    content: parseStored<Message['content']>(row.content, 'message content'),
    createdAt: decodeText(row.created_at),
  };
  if (row.turn_id !== null) message.turnId = decodeText(row.turn_id);
  if (row.idempotency_key !== null) message.idempotencyKey = decodeText(row.idempotency_key);
  if (row.metadata !== null) {
    message.metadata = parseStored<Record<string, unknown>>(row.metadata, 'message metadata');
  }
  return message;
}

/**
 * Rows written in the statement of another write (a message's INSERT, see
 * `PostgresMessageStore.storeJointly`; a status UPDATE): CTEs placed after the write's CTE
 * `driver` (one row when it wrote, none otherwise, which must then leave them without effect;
 * for a message, its `seq` in column `seq`), numbering their parameters from the given one, and
 * the expressions they add to the final SELECT.
 * @internal
 */
export interface JointRows {
  ctes(firstParam: number, driver: string): string;
  /**
   * What `ctes` and `select` depend on besides the first parameter's number and the driver (rows
   * of the same shape give the same texts for those), so the statement's text is built once per
   * shape and kept. Left out: the statement is built on every call.
   */
  shape?: string;
  /** Named expressions of the final SELECT (`… AS name`, comma-separated). */
  select: string;
  params: unknown[];
  /** Awaited before the statement. */
  ready?: Promise<void>;
  /**
   * After an attempt that lost its connection found the message stored: the final SELECT's row
   * as the earlier attempt's statement would have returned it when that attempt wrote the rows,
   * `null` when it did not.
   */
  committed(client: Queryable): Promise<Record<string, unknown> | null>;
}

/**
 * A turn snapshot read in the statement of a message's write (see `JointMessageOptions`'s
 * `loadTurnSnapshot`): its statement parts, and how its rows become the snapshot. Built by the
 * event bus from the turn-snapshot module.
 * @internal
 */
export interface JointSnapshot {
  /**
   * CTEs, rows SELECT and parameters, numbered from `firstParam` (the session digest is `$1`);
   * `shape` as {@link JointRows.shape}.
   */
  query(firstParam: number): { ctes: string; select: string; params: unknown[]; shape?: string };
  /**
   * The snapshot from the statement's rows (ordered by kind descending, then `ord`), which were
   * read before the write: `appended` and the status set are what they do not show. `null` when
   * they cannot give it (the caller then loads it on its own).
   */
  read(
    rows: readonly Record<string, unknown>[],
    write: { appended: Message; status?: { status: SessionStatus; updatedAt: string } },
  ): Promise<TurnSnapshot | null>;
}

/** Options of {@link PostgresMessageStore}. */
export interface PostgresMessageStoreOptions {
  /**
   * How many times an append without `expectedSeq` tries again after another writer took the
   * position it computed. Default 100; then it throws `STORE_CONFLICT`.
   */
  maxAppendAttempts?: number;
}

/** A message validated and encoded, ready for its INSERT. */
interface PreparedMessage {
  id: string;
  idHash: Buffer;
  idempotencyKey: string | undefined;
  idempotencyHash: Buffer | null;
  row: Omit<MessageRow, 'seq'>;
  /** The `search_text` column: the lower-cased search text, encoded. */
  searchText: string;
}

/** The message stores made by this package (wrappers around them are not in it). */
const ownStores = new WeakSet<object>();

const CONSTRAINT_SEQ = 'messages_session_seq';
const CONSTRAINT_ID = 'messages_session_id';
const CONSTRAINT_IDEMPOTENCY = 'messages_session_idempotency';

/**
 * Append-only messages in the `messages` table. The primary key `(session, seq)` makes two writers
 * unable to take the same position: an append computes `max(seq) + 1` inside its INSERT; when
 * another writer got there first the INSERT fails on the key and the append is retried (or, with
 * `expectedSeq`, reported as `STORE_CONFLICT` with nothing written). Idempotency keys and message
 * ids are unique per session, so a retried write after a lost connection never duplicates.
 * A write with `options.lease` renews the session's turn lease in the same statement as its
 * INSERT (a data-modifying CTE on the `sessions` table of the same schema).
 */
export class PostgresMessageStore implements RuntimeMessageStore {
  /** Writes honour `options.lease`: the lease renewal and the INSERT are one statement. */
  readonly leaseConditionedWrites = true;
  readonly #context: StoreContext;
  readonly #maxAppendAttempts: number;

  constructor(context: StoreContext, options: PostgresMessageStoreOptions = {}) {
    this.#context = context;
    this.#maxAppendAttempts = Math.max(1, options.maxAppendAttempts ?? 100);
    ownStores.add(this);
  }

  /**
   * `store` itself when it is a message store of this package (not a wrapper around one) on the
   * same database connection and schema as `context`, else `null`.
   * @internal
   */
  static sameBackend(store: unknown, context: StoreContext): PostgresMessageStore | null {
    if (typeof store !== 'object' || store === null || !ownStores.has(store)) return null;
    const own = store as PostgresMessageStore;
    return own.#context.db === context.db ? own : null;
  }

  /** Appends the user's input as a `user` message (`options` as {@link storeMessage}'s). */
  addInputMessage(
    sessionId: string,
    input: InputMessage,
    turnId?: string,
    options: MessageWriteOptions = {},
  ): Promise<Message> {
    const message: NewMessage = { role: 'user', content: input.content };
    if (turnId !== undefined) message.turnId = turnId;
    if (input.metadata !== undefined) message.metadata = input.metadata;
    return this.storeMessage(sessionId, message, options.lease ? { lease: options.lease } : {});
  }

  /**
   * Appends a message at the next position, or returns the existing message with the same
   * idempotency key. Throws `STORE_CONFLICT` (retryable, nothing written) when
   * `options.expectedSeq` is not the next position, `DUPLICATE_ID` when a message with the given
   * id exists in the session, `INVALID_INPUT` for a malformed message and `VALUE_TOO_LARGE` above
   * the size limit. With `options.lease`, the lease is renewed in the INSERT's statement, and
   * `TURN_IN_PROGRESS` (nothing written) when its holder no longer holds it.
   */
  async storeMessage(
    sessionId: string,
    message: NewMessage,
    options: StoreMessageOptions = {},
  ): Promise<Message> {
    return (await this.storeJointly(sessionId, message, options)).message;
  }

  /**
   * {@link storeMessage} with, when `joint` is given, the rows it prepares written in
   * the same statement as the INSERT (only when the message is appended: an answered write, a
   * refused one or a failed one writes none of them). Resolves with the message and the final
   * SELECT's row when the joint rows were written (in this statement, or by an earlier attempt
   * that committed before its connection dropped), `null` otherwise. For the event bus of the same
   * backend (`PostgresEventBus.storeMessageAndEmit`). `joint` gets the message as it would be
   * stored at a given `seq` (the rows may depend on it); `null` from it writes no joint rows.
   * @internal
   */
  async storeJointly(
    sessionId: string,
    message: NewMessage,
    options: JointMessageOptions = {},
    joint?: (storedAt: (seq: number) => Message) => JointRows | null,
    jointSnapshot?: JointSnapshot,
  ): Promise<{
    message: Message;
    joined: Record<string, unknown> | null;
    statusSet: boolean;
    turnSnapshot?: TurnSnapshot;
    leaseReleased?: boolean;
  }> {
    requireString(sessionId, 'sessionId');
    const { expectedSeq, lease, sessionStatus, releaseLease } = options;
    if (sessionStatus !== undefined) requireString(sessionStatus, 'sessionStatus');
    if (expectedSeq !== undefined && (!Number.isInteger(expectedSeq) || expectedSeq < 1)) {
      throw everrunsError('INVALID_INPUT', 'expectedSeq must be a positive integer', {
        details: { expectedSeq },
      });
    }
    if (lease !== undefined) checkWriteLease(lease);
    const prepared = this.#prepare(sessionId, message, new Date().toISOString());
    // The message as stored at `seq`, parsed from its row: a new object on each call, sharing
    // nothing with any other (the message this write returns, its turn snapshot's).
    const parseStoredAt = (seq: number): Message =>
      messageFromRow(sessionId, { ...prepared.row, seq });
    // For the joint rows' builder (which asks for it at two `seq`s): its content and metadata
    // parsed once for both.
    let parsed: Message | undefined;
    const storedAt = (seq: number): Message => {
      parsed ??= parseStoredAt(seq);
      return { ...parsed, seq };
    };
    // The status goes with the joint rows only, and never with an expected position (the
    // renewal that carries it runs whether or not that position was free).
    const rows =
      sessionStatus !== undefined && expectedSeq !== undefined ? null : (joint?.(storedAt) ?? null);
    const setStatus = rows !== null && sessionStatus !== undefined;
    const prefix = releaseLease?.deleteValuesWithPrefix;
    if (prefix !== undefined) requireString(prefix, 'releaseLease.deleteValuesWithPrefix');
    // The lease is released (instead of renewed) with the status only, and the values deleted
    // only for a prefix the key-head range can express exactly (as a status write's release).
    const release =
      setStatus &&
      lease !== undefined &&
      releaseLease !== undefined &&
      prefix !== '' &&
      !(prefix !== undefined && endsInHighSurrogate(prefix));
    const range = release && prefix !== undefined ? keyHeadRange(prefix) : null;
    if (rows?.ready) await rows.ready;
    const sessionHash = textDigest(sessionId);
    const { db } = this.#context;
    // With a lease: the renewal, then the INSERT only when it renewed, in one statement; `held`
    // tells a refused lease from a position that was not the expected one. Joint rows come in
    // CTEs after the INSERT's, written only when it inserted.
    // A release takes the holder only, a renewal the holder and the duration.
    const firstJointParam = lease === undefined ? 13 : release ? 14 : 15;
    // The status's parameters come after the joint rows'.
    const statusParam = firstJointParam + (rows?.params.length ?? 0);
    // The turn snapshot read in the same statement (its rows joined to the write's row): it sees
    // the tables as they were before the statement, which the message appended and the status set
    // are the only differences from (filled in by readSnapshot).
    const snapshot =
      rows !== null &&
      jointSnapshot !== undefined &&
      options.loadTurnSnapshot === true &&
      expectedSeq === undefined
        ? jointSnapshot.query(statusParam + (setStatus ? 2 : 0))
        : null;
    const rangeParam = statusParam + (setStatus ? 2 : 0) + (snapshot?.params.length ?? 0);
    const buildText = (): string => {
      const insert = `INSERT INTO ${db.table('messages')}
               (session_hash, seq, id_hash, id, idempotency_hash, idempotency_key, turn_id, role,
                content, metadata, created_at, search_text)
             SELECT $1, COALESCE($2::integer, COALESCE(MAX(seq), 0) + 1), $3, $4, $5, $6, $7, $8,
                    $9, $10, $11, $12
               FROM ${db.table('messages')} WHERE session_hash = $1
             HAVING ($2::integer IS NULL OR COALESCE(MAX(seq), 0) + 1 = $2::integer)`;
      if (rows === null) {
        return lease === undefined
          ? `${insert} RETURNING seq`
          : `WITH ${renewedLeaseCte(db.table('sessions'), 1, 13, 14)},
           inserted AS (
             ${insert} AND EXISTS (SELECT 1 FROM renewed)
             RETURNING seq
           )
           SELECT (SELECT seq FROM inserted) AS seq, EXISTS (SELECT 1 FROM renewed) AS held`;
      }
      const statusSet = setStatus
        ? `status = $${statusParam}, updated_at = $${statusParam + 1}`
        : '';
      const leaseCte =
        lease === undefined
          ? ''
          : release
            ? releasedLeaseCte(db.table('sessions'), 1, 13, statusSet)
            : renewedLeaseCte(db.table('sessions'), 1, 13, 14, statusSet);
      const forgotten = range
        ? `,
           forgotten AS (
             DELETE FROM ${db.table('session_values')}
              WHERE session_hash = $1 AND ${keyPrefixCondition(range, rangeParam, rangeParam + 1, rangeParam + 2)}
                AND EXISTS (SELECT 1 FROM inserted)
             RETURNING 1
           )`
        : '';
      return `WITH ${snapshot ? 'RECURSIVE ' : ''}${lease === undefined ? '' : `${leaseCte},`}
           inserted AS (
             ${insert}${lease === undefined ? '' : ' AND EXISTS (SELECT 1 FROM renewed)'}
             RETURNING seq
           ),
           ${rows.ctes(firstJointParam, 'inserted')}${
             setStatus && lease === undefined
               ? `,
           status_set AS (
             UPDATE ${db.table('sessions')} SET ${statusSet}
              WHERE id_hash = $1 AND EXISTS (SELECT 1 FROM inserted)
             RETURNING 1
           )`
               : ''
           }
           ${snapshot ? `, ${snapshot.ctes}` : ''}${forgotten}
           ${snapshot ? 'SELECT written.*, snapshot.* FROM (' : ''}SELECT (SELECT seq FROM inserted) AS seq${
             lease === undefined ? '' : ', EXISTS (SELECT 1 FROM renewed) AS held'
           }, ${rows.select}${
             snapshot
               ? `) written LEFT JOIN LATERAL (${snapshot.select}) snapshot ON true
           ORDER BY snapshot.kind DESC, snapshot.ord`
               : ''
           }`;
    };
    // Everything the text depends on (the schema's tables are this store's): with it, the text
    // is built once per shape and kept, the same string every time.
    const lockKind = lease === undefined ? 'none' : release ? 'release' : 'renew';
    const textKey =
      rows === null
        ? `plain|${lockKind}`
        : rows.shape === undefined || (snapshot !== null && snapshot.shape === undefined)
          ? undefined
          : `${lockKind}|${rows.shape}|${rows.params.length}|${setStatus ? 1 : 0}|${
              snapshot === null ? '-' : `${snapshot.shape}|${snapshot.params.length}`
            }|${range === null ? '-' : range.high === null ? 'low' : 'low-high'}`;
    const text = db.text(textKey, buildText);
    const written: {
      message: Message;
      joined: Record<string, unknown> | null;
      statusSet: boolean;
      leaseReleased?: boolean;
      snapshotRows?: Record<string, unknown>[] | undefined;
    } = await db.run('storeMessage', async (client, attempt) => {
      for (let round = 1; ; round++) {
        try {
          const result = await client.query<
            { seq: number | null; held?: boolean } & Record<string, unknown>
          >(text, [
            sessionHash,
            expectedSeq ?? null,
            prepared.idHash,
            prepared.row.id,
            prepared.idempotencyHash,
            prepared.row.idempotency_key,
            prepared.row.turn_id,
            prepared.row.role,
            prepared.row.content,
            prepared.row.metadata,
            prepared.row.created_at,
            prepared.searchText,
            ...(lease === undefined
              ? []
              : release
                ? [encodeText(lease.holderId)]
                : [encodeText(lease.holderId), lease.durationMs]),
            ...(rows === null ? [] : rows.params),
            ...(setStatus ? [sessionStatus, prepared.row.created_at] : []),
            ...(snapshot ? snapshot.params : []),
            ...(range ? keyPrefixParams(range) : []),
          ]);
          const inserted = result.rows[0];
          if (inserted?.held === false) {
            // An earlier attempt that committed released the lease with its rows (its answer was
            // lost): the lease is gone because the write stands.
            if (release && attempt.afterConnectionLoss) {
              const earlier = await this.#existingForKey(client, sessionHash, sessionId, prepared);
              const joined = earlier?.id === prepared.id ? await rows!.committed(client) : null;
              if (joined !== null) {
                return { message: earlier!, joined, statusSet: true, leaseReleased: true };
              }
            }
            throw await turnLeaseRefusal(client, db.table('sessions'), sessionId);
          }
          if (inserted && inserted.seq !== null) {
            return {
              message: parseStoredAt(inserted.seq),
              joined: rows === null ? null : inserted,
              statusSet: setStatus,
              leaseReleased: release,
              snapshotRows: snapshot ? result.rows : undefined,
            };
          }
          // Only with expectedSeq: the next position is not the expected one.
          const existing = await this.#existingForKey(client, sessionHash, sessionId, prepared);
          if (existing) return { message: existing, joined: null, statusSet: false };
          throw await this.#seqConflict(client, sessionHash, sessionId, expectedSeq!);
        } catch (error) {
          const constraint = violatedConstraint(error);
          if (constraint === undefined) throw error;
          // The statement, renewal included, was undone: the lease is checked before the answer.
          if (lease !== undefined) await this.#renewOrRefuse(client, sessionId, lease);
          const existing = await this.#resolveViolation(
            client,
            attempt,
            constraint,
            sessionHash,
            sessionId,
            prepared,
          );
          if (existing) {
            // An earlier attempt may have committed the joint rows with the message.
            const joined =
              rows !== null && attempt.afterConnectionLoss && existing.id === prepared.id
                ? await rows.committed(client)
                : null;
            // The earlier attempt's status went with its rows.
            return { message: existing, joined, statusSet: setStatus && joined !== null };
          }
          if (expectedSeq !== undefined) {
            throw await this.#seqConflict(client, sessionHash, sessionId, expectedSeq, error);
          }
          if (round >= this.#maxAppendAttempts) {
            throw everrunsError(
              'STORE_CONFLICT',
              `Appending to session ${sessionId} lost the race for a position ${round} times`,
              { retryable: true, cause: error, details: { sessionId, attempts: round } },
            );
          }
          await sleep(Math.random() * Math.min(20, round));
        }
      }
    });
    const { snapshotRows, ...result } = written;
    if (!snapshot || !snapshotRows) return result;
    // A snapshot that cannot be read is left to the reader's own load, which reports the problem
    // where it does; the write stands.
    // The snapshot gets a message of its own (the caller holds `result.message`).
    const turnSnapshot = await jointSnapshot!
      .read(snapshotRows, {
        appended: parseStoredAt(result.message.seq),
        ...(setStatus
          ? { status: { status: sessionStatus!, updatedAt: prepared.row.created_at } }
          : {}),
      })
      .catch(() => null);
    return turnSnapshot ? { ...result, turnSnapshot } : result;
  }

  /**
   * Appends several messages in order, all or none, in one statement. A message whose
   * idempotency key exists is not appended again: its stored copy takes its place in the result.
   * With `options.lease`, the lease is renewed in the INSERT's statement (in a statement of its
   * own when nothing is left to insert), and `TURN_IN_PROGRESS` (nothing written) when its
   * holder no longer holds it.
   */
  async storeMessages(
    sessionId: string,
    messages: NewMessage[],
    options: MessageWriteOptions = {},
  ): Promise<Message[]> {
    requireString(sessionId, 'sessionId');
    if (!Array.isArray(messages)) throw new TypeError('messages must be an array');
    const { lease } = options;
    if (lease !== undefined) checkWriteLease(lease);
    const now = new Date().toISOString();
    const prepared = messages.map((message) => this.#prepare(sessionId, message, now));
    const sessionHash = textDigest(sessionId);
    const { db } = this.#context;
    if (prepared.length === 0) {
      if (lease !== undefined) {
        await db.run('storeMessages', (client) => this.#renewOrRefuse(client, sessionId, lease));
      }
      return [];
    }
    const keyHashes = prepared.flatMap((entry) =>
      entry.idempotencyHash === null ? [] : [entry.idempotencyHash],
    );
    const insert = `INSERT INTO ${db.table('messages')}
               (session_hash, seq, id_hash, id, idempotency_hash, idempotency_key, turn_id, role,
                content, metadata, created_at, search_text)
             SELECT $1, base.last_seq + input.ordinality, input.id_hash, input.id,
                    input.idempotency_hash, input.idempotency_key, input.turn_id, input.role,
                    input.content, input.metadata, input.created_at, input.search_text
               FROM base,
                    unnest($2::bytea[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::text[], $11::text[])
                      WITH ORDINALITY AS input(id_hash, id, idempotency_hash, idempotency_key,
                                               turn_id, role, content, metadata, created_at,
                                               search_text, ordinality)`;
    const base = `base AS (
               SELECT COALESCE(MAX(seq), 0) AS last_seq FROM ${db.table('messages')}
                WHERE session_hash = $1
             )`;
    // With a lease: the renewal, then the INSERT only when it renewed (no row comes back when
    // the lease is gone: a batch inserts all its rows or fails).
    const text =
      lease === undefined
        ? `WITH ${base} ${insert} RETURNING seq`
        : `WITH ${renewedLeaseCte(db.table('sessions'), 1, 12, 13)}, ${base},
           inserted AS (${insert} WHERE EXISTS (SELECT 1 FROM renewed) RETURNING seq)
           SELECT seq FROM inserted`;
    return db.run('storeMessages', async (client, attempt) => {
      for (let round = 1; ; round++) {
        const existingByKey = new Map<string, Message>();
        if (keyHashes.length > 0) {
          const found = await client.query<MessageRow>(
            `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
              WHERE session_hash = $1 AND idempotency_hash = ANY($2::bytea[])`,
            [sessionHash, keyHashes],
          );
          for (const row of found.rows) {
            const stored = messageFromRow(sessionId, row);
            existingByKey.set(stored.idempotencyKey!, stored);
          }
        }
        const fresh: PreparedMessage[] = [];
        const plan: Array<{ existing: Message } | { fresh: number }> = [];
        const batchKeys = new Map<string, number>();
        const batchIds = new Set<string>();
        for (const entry of prepared) {
          const key = entry.idempotencyKey;
          if (key !== undefined) {
            const existing = existingByKey.get(key);
            if (existing) {
              plan.push({ existing });
              continue;
            }
            const earlier = batchKeys.get(key);
            if (earlier !== undefined) {
              plan.push({ fresh: earlier });
              continue;
            }
            batchKeys.set(key, fresh.length);
          }
          if (batchIds.has(entry.id)) {
            throw everrunsError('DUPLICATE_ID', `Message ${entry.id} appears twice in the batch`, {
              details: { sessionId, messageId: entry.id },
            });
          }
          batchIds.add(entry.id);
          plan.push({ fresh: fresh.length });
          fresh.push(entry);
        }
        if (fresh.length === 0) {
          if (lease !== undefined) await this.#renewOrRefuse(client, sessionId, lease);
          return plan.map((step) => ('existing' in step ? step.existing : unreachable()));
        }
        try {
          const result = await client.query<{ seq: number }>(text, [
            sessionHash,
            fresh.map((entry) => entry.idHash),
            fresh.map((entry) => entry.row.id),
            fresh.map((entry) => entry.idempotencyHash),
            fresh.map((entry) => entry.row.idempotency_key),
            fresh.map((entry) => entry.row.turn_id),
            fresh.map((entry) => entry.row.role),
            fresh.map((entry) => entry.row.content),
            fresh.map((entry) => entry.row.metadata),
            fresh.map((entry) => entry.row.created_at),
            fresh.map((entry) => entry.searchText),
            ...(lease === undefined ? [] : [encodeText(lease.holderId), lease.durationMs]),
          ]);
          if (lease !== undefined && result.rows.length === 0) {
            throw await turnLeaseRefusal(client, db.table('sessions'), sessionId);
          }
          const seqs = result.rows.map((row) => row.seq).sort((left, right) => left - right);
          const stored = fresh.map((entry, index) =>
            messageFromRow(sessionId, { ...entry.row, seq: seqs[index]! }),
          );
          return plan.map((step) => ('existing' in step ? step.existing : stored[step.fresh]!));
        } catch (error) {
          const constraint = violatedConstraint(error);
          if (constraint === undefined) throw error;
          // The statement, renewal included, was undone: the lease is checked before the answer.
          if (lease !== undefined) await this.#renewOrRefuse(client, sessionId, lease);
          if (constraint === CONSTRAINT_ID) {
            if (attempt.afterConnectionLoss) {
              const committed = await this.#loadByIds(client, sessionHash, sessionId, fresh);
              if (committed) {
                return plan.map((step) =>
                  'existing' in step ? step.existing : committed[step.fresh]!,
                );
              }
            }
            throw everrunsError(
              'DUPLICATE_ID',
              `A message of the batch already exists in session ${sessionId}`,
              { cause: error, details: { sessionId } },
            );
          }
          // A position or an idempotency key was taken meanwhile: look again and retry.
          if (round >= this.#maxAppendAttempts) {
            throw everrunsError(
              'STORE_CONFLICT',
              `Appending a batch to session ${sessionId} lost the race ${round} times`,
              { retryable: true, cause: error, details: { sessionId, attempts: round } },
            );
          }
          await sleep(Math.random() * Math.min(20, round));
        }
      }
    });
  }

  /** One message, or `null`. */
  async get(sessionId: string, messageId: string): Promise<Message | null> {
    requireString(sessionId, 'sessionId');
    requireString(messageId, 'messageId');
    const { db } = this.#context;
    const result = await db.run('get', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')} WHERE session_hash = $1 AND id_hash = $2`,
        [textDigest(sessionId), textDigest(messageId)],
      ),
    );
    const row = result.rows[0];
    return row ? messageFromRow(sessionId, row) : null;
  }

  /** The message stored with this idempotency key, or `null`. */
  async getByIdempotencyKey(sessionId: string, idempotencyKey: string): Promise<Message | null> {
    requireString(sessionId, 'sessionId');
    requireString(idempotencyKey, 'idempotencyKey');
    const { db } = this.#context;
    const result = await db.run('getByIdempotencyKey', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1 AND idempotency_hash = $2`,
        [textDigest(sessionId), textDigest(idempotencyKey)],
      ),
    );
    const row = result.rows[0];
    return row ? messageFromRow(sessionId, row) : null;
  }

  /** The whole history in `seq` order. */
  async load(sessionId: string): Promise<Message[]> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run('load', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')} WHERE session_hash = $1 ORDER BY seq`,
        [textDigest(sessionId)],
      ),
    );
    return result.rows.map((row) => messageFromRow(sessionId, row));
  }

  /** A page in `seq` order. Throws `INVALID_INPUT` for a limit outside 1..1000 or a negative `afterSeq`. */
  async loadPage(sessionId: string, page: MessagePageRequest): Promise<MessagePage> {
    requireString(sessionId, 'sessionId');
    const afterSeq = messagePageStart(page);
    const { limit } = page;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw everrunsError('INVALID_INPUT', `limit must be an integer in 1..${MAX_PAGE_SIZE}`, {
        details: { limit },
      });
    }
    if (!Number.isInteger(afterSeq) || afterSeq < 0) {
      throw everrunsError('INVALID_INPUT', 'afterSeq must be a non-negative integer', {
        details: { afterSeq },
      });
    }
    const { db } = this.#context;
    const result = await db.run('loadPage', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
        [textDigest(sessionId), Math.min(afterSeq, 2 ** 31 - 1), limit + 1],
      ),
    );
    const rows = result.rows.slice(0, limit);
    const messages = rows.map((row) => messageFromRow(sessionId, row));
    return {
      messages,
      nextAfterSeq: result.rows.length > limit ? afterSeq + limit : null,
    };
  }

  /** Messages with one of `filter.roles` and the given `filter.turnId`, in `seq` order. */
  async loadFiltered(sessionId: string, filter: MessageFilter): Promise<Message[]> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run('loadFiltered', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1
            AND ($2::text[] IS NULL OR role = ANY($2::text[]))
            AND ($3::text IS NULL OR turn_id = $3::text)
          ORDER BY seq`,
        [
          textDigest(sessionId),
          filter.roles === undefined ? null : filter.roles.map(String),
          encodeOptionalText(filter.turnId),
        ],
      ),
    );
    return result.rows.map((row) => messageFromRow(sessionId, row));
  }

  /** Number of messages in the session (its last `seq`: positions have no gaps). */
  async count(sessionId: string): Promise<number> {
    requireString(sessionId, 'sessionId');
    const { db } = this.#context;
    const result = await db.run('count', (client) =>
      client.query<{ last: number | null }>(
        `SELECT MAX(seq) AS last FROM ${db.table('messages')} WHERE session_hash = $1`,
        [textDigest(sessionId)],
      ),
    );
    return result.rows[0]?.last ?? 0;
  }

  /**
   * Every message after `afterSeq`, in `seq` order: one range scan of the primary key
   * `(session, seq)`. Throws `INVALID_INPUT` for a bad `afterSeq`.
   */
  async loadAfter(sessionId: string, afterSeq: number): Promise<Message[]> {
    requireString(sessionId, 'sessionId');
    checkAfterSeq(afterSeq);
    const { db } = this.#context;
    const result = await db.run('loadAfter', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1 AND seq > $2 ORDER BY seq`,
        [textDigest(sessionId), Math.min(afterSeq, MAX_SEQ)],
      ),
    );
    return result.rows.map((row) => messageFromRow(sessionId, row));
  }

  /**
   * The last `limit` messages, in `seq` order: a backward scan of the primary key that stops
   * after `limit` rows. Throws `INVALID_INPUT` for a bad `limit`.
   */
  async loadLatest(sessionId: string, limit: number): Promise<Message[]> {
    requireString(sessionId, 'sessionId');
    checkLatestLimit(limit);
    const { db } = this.#context;
    const result = await db.run('loadLatest', (client) =>
      client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1 ORDER BY seq DESC LIMIT $2`,
        [textDigest(sessionId), Math.min(limit, MAX_SEQ)],
      ),
    );
    return result.rows.reverse().map((row) => messageFromRow(sessionId, row));
  }

  /**
   * The session's model calls summed per model (see `RuntimeMessageStore.sumUsage`): one
   * aggregate statement over the session's agent rows, which returns one row per model and
   * never the messages. PostgreSQL's `json` refuses the `\u0000` and unpaired-surrogate escapes
   * that `JSON.stringify` may write, so those escapes are read as `\u0001` first: usage numbers
   * are unaffected, and a model name holding such a character is grouped under the name with
   * U+0001 in its place.
   */
  async sumUsage(sessionId: string, options: SumUsageOptions = {}): Promise<ModelUsageTotal[]> {
    requireString(sessionId, 'sessionId');
    if (options.turnId !== undefined) requireString(options.turnId, 'turnId');
    const turnFilter = options.turnId === undefined ? '' : ' AND turn_id = $5';
    const { db } = this.#context;
    const number = (field: string) =>
      `SUM(CASE WHEN json_typeof(u -> '${field}') = 'number' THEN (u ->> '${field}')::numeric END)::text`;
    const result = await db.run('sumUsage', (client) =>
      client.query<UsageRow>(
        `SELECT CASE WHEN json_typeof(m) = 'string' THEN m::text END AS model,
                COUNT(*)::integer AS calls,
                ${number('inputTokens')} AS input,
                ${number('outputTokens')} AS output,
                ${number('cachedInputTokens')} AS cached,
                ${number('cacheWriteInputTokens')} AS cache_write,
                ${number('reasoningTokens')} AS reasoning
           FROM (SELECT doc -> 'usage' AS u, doc -> 'model' AS m
                   FROM (SELECT (CASE WHEN strpos(metadata, $2) > 0
                                      THEN regexp_replace(metadata, $3, $4, 'g')
                                      ELSE metadata END)::json AS doc
                           FROM ${db.table('messages')}
                          WHERE session_hash = $1 AND role = 'agent' AND metadata IS NOT NULL${turnFilter}
                        ) AS docs
                  WHERE json_typeof(doc -> 'usage') = 'object') AS calls
          GROUP BY 1`,
        [
          textDigest(sessionId),
          '\\u',
          UNSUPPORTED_ESCAPE,
          '\\\\u0001',
          ...(options.turnId === undefined ? [] : [options.turnId]),
        ],
      ),
    );
    const tally = new UsageTally();
    for (const row of result.rows) {
      const usage: ModelUsageTotal['usage'] = {
        inputTokens: Number(row.input ?? 0),
        outputTokens: Number(row.output ?? 0),
      };
      if (row.cached !== null) usage.cachedInputTokens = Number(row.cached);
      if (row.cache_write !== null) usage.cacheWriteInputTokens = Number(row.cache_write);
      if (row.reasoning !== null) usage.reasoningTokens = Number(row.reasoning);
      const model = row.model === null ? null : (JSON.parse(row.model) as string);
      tally.addTotal({ model, usage, modelCalls: row.calls });
    }
    return tally.totals();
  }

  /**
   * Messages whose search text (`messageSearchText` of core: text parts, tool results, tool call
   * names and JSON arguments) contains the query, case-insensitively, oldest first, paged (see
   * `RuntimeMessageStore.searchMessages`). Throws `INVALID_INPUT` for a bad request.
   *
   * Each row keeps its search text lower-cased by JavaScript in `search_text` (written with the
   * message; rows from before schema version 3 are filled here on the session's first search),
   * and the query, lower-cased the same way, is matched with `LIKE '%…%'`, which the trigram
   * index `messages_search_trgm` serves; only the matching positions are read, then the page's
   * messages. A row whose stored text holds an escape (NUL, U+0001, a lone surrogate) is checked
   * again in JavaScript, so the answers are exactly the reference's.
   */
  async searchMessages(
    sessionId: string,
    request: MessageSearchRequest,
  ): Promise<MessageSearchPage> {
    requireString(sessionId, 'sessionId');
    const { query, roles, offset, limit } = parseMessageSearchRequest(request);
    const needle = query.toLowerCase();
    const { pattern, verifyAll } = searchPattern(needle);
    const sessionHash = textDigest(sessionId);
    const { db } = this.#context;
    const chunk = Math.min(Math.max(offset + limit + 1, 100), SEARCH_CHUNK);
    return db.run('searchMessages', async (client) => {
      await this.#fillSearchText(client, sessionHash);
      const matched: number[] = [];
      let skipped = 0;
      let afterSeq = 0;
      for (;;) {
        const result = await client.query<{ seq: number; check_text: string | null }>(
          searchCandidatesSql(db.table('messages')),
          [sessionHash, afterSeq, pattern, roles ?? null, verifyAll, chunk],
        );
        for (const row of result.rows) {
          if (row.check_text !== null && !decodeText(row.check_text).includes(needle)) continue;
          if (skipped < offset) {
            skipped++;
            continue;
          }
          matched.push(row.seq);
          if (matched.length > limit) break;
        }
        if (matched.length > limit || result.rows.length < chunk) break;
        afterSeq = result.rows[result.rows.length - 1]!.seq;
      }
      const seqs = matched.slice(0, limit);
      if (seqs.length === 0) return { messages: [], hasMore: false };
      const rows = await client.query<MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
          WHERE session_hash = $1 AND seq = ANY($2::integer[]) ORDER BY seq`,
        [sessionHash, seqs],
      );
      return {
        messages: rows.rows.map((row) => messageFromRow(sessionId, row)),
        hasMore: matched.length > limit,
      };
    });
  }

  /** Fills `search_text` of the session's rows written without it (before schema version 3). */
  async #fillSearchText(client: Queryable, sessionHash: Buffer): Promise<void> {
    const { db } = this.#context;
    for (;;) {
      const pending = await client.query<{ seq: number; content: string }>(
        `SELECT seq, content FROM ${db.table('messages')}
          WHERE session_hash = $1 AND search_text IS NULL ORDER BY seq LIMIT ${FILL_BATCH}`,
        [sessionHash],
      );
      if (pending.rows.length === 0) return;
      await client.query(
        `UPDATE ${db.table('messages')} AS m SET search_text = v.search_text
           FROM unnest($2::integer[], $3::text[]) AS v(seq, search_text)
          WHERE m.session_hash = $1 AND m.seq = v.seq AND m.search_text IS NULL`,
        [
          sessionHash,
          pending.rows.map((row) => row.seq),
          pending.rows.map((row) =>
            storedSearchText(parseStored<unknown>(row.content, 'message content')),
          ),
        ],
      );
      if (pending.rows.length < FILL_BATCH) return;
    }
  }

  #prepare(sessionId: string, message: NewMessage, now: string): PreparedMessage {
    if (message === null || typeof message !== 'object') {
      throw everrunsError('INVALID_INPUT', 'A message must be an object');
    }
    if (!ROLES.has(message.role) || !Array.isArray(message.content)) {
      throw everrunsError('INVALID_INPUT', 'A message needs a known role and a content array', {
        details: { sessionId, role: message.role },
      });
    }
    const id = message.id ?? newId('msg');
    requireString(id, 'message.id');
    const content = stringifyForStore(message.content, 'message content');
    const metadata =
      message.metadata === undefined
        ? null
        : stringifyForStore(message.metadata, 'message metadata');
    checkSize(this.#context, content, 'Message content');
    if (metadata !== null) checkSize(this.#context, metadata, 'Message metadata');
    const key = message.idempotencyKey;
    if (key !== undefined) requireString(key, 'message.idempotencyKey');
    return {
      id,
      idHash: textDigest(id),
      idempotencyKey: key,
      idempotencyHash: key === undefined ? null : textDigest(key),
      row: {
        id: encodeText(id),
        idempotency_key: encodeOptionalText(key),
        turn_id: encodeOptionalText(message.turnId),
        role: message.role,
        content,
        metadata,
        created_at: encodeText(message.createdAt ?? now),
      },
      searchText: storedSearchText(message.content),
    };
  }

  /** Renews `lease` in a statement of its own; `TURN_IN_PROGRESS` when its holder lost it. */
  #renewOrRefuse(client: Queryable, sessionId: string, lease: MessageWriteLease): Promise<void> {
    return renewLeaseOrRefuse(
      client,
      this.#context.db.table('sessions'),
      sessionId,
      lease.holderId,
      lease.durationMs,
    );
  }

  /** The stored message with the prepared message's idempotency key, if any. */
  async #existingForKey(
    client: Queryable,
    sessionHash: Buffer,
    sessionId: string,
    prepared: PreparedMessage,
  ): Promise<Message | null> {
    if (prepared.idempotencyHash === null) return null;
    const { db } = this.#context;
    const result = await client.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
        WHERE session_hash = $1 AND idempotency_hash = $2`,
      [sessionHash, prepared.idempotencyHash],
    );
    const row = result.rows[0];
    return row ? messageFromRow(sessionId, row) : null;
  }

  /**
   * After a unique violation: the existing message when the write is a repeat (same idempotency
   * key, or our own id after a lost connection), `null` when the position was taken (retry), or a
   * `DUPLICATE_ID` error.
   */
  async #resolveViolation(
    client: Queryable,
    attempt: Attempt,
    constraint: string,
    sessionHash: Buffer,
    sessionId: string,
    prepared: PreparedMessage,
  ): Promise<Message | null> {
    const existing = await this.#existingForKey(client, sessionHash, sessionId, prepared);
    if (existing) return existing;
    if (constraint === CONSTRAINT_ID) {
      if (attempt.afterConnectionLoss) {
        const { db } = this.#context;
        const result = await client.query<MessageRow>(
          `SELECT ${MESSAGE_COLUMNS} FROM ${db.table('messages')}
            WHERE session_hash = $1 AND id_hash = $2`,
          [sessionHash, prepared.idHash],
        );
        const row = result.rows[0];
        if (row) return messageFromRow(sessionId, row);
      }
      throw everrunsError(
        'DUPLICATE_ID',
        `Message ${prepared.id} already exists in session ${sessionId}`,
        { details: { sessionId, messageId: prepared.id } },
      );
    }
    if (constraint !== CONSTRAINT_SEQ && constraint !== CONSTRAINT_IDEMPOTENCY) {
      throw everrunsError('INTERNAL', `Unexpected unique violation on ${constraint}`, {
        details: { sessionId, constraint },
      });
    }
    return null;
  }

  async #seqConflict(
    client: Queryable,
    sessionHash: Buffer,
    sessionId: string,
    expectedSeq: number,
    cause?: unknown,
  ): Promise<EverrunsError> {
    const { db } = this.#context;
    const result = await client.query<{ last: number | null }>(
      `SELECT MAX(seq) AS last FROM ${db.table('messages')} WHERE session_hash = $1`,
      [sessionHash],
    );
    const actualSeq = (result.rows[0]?.last ?? 0) + 1;
    return everrunsError(
      'STORE_CONFLICT',
      `Expected to append at seq ${expectedSeq} but the next seq of session ${sessionId} is ${actualSeq}`,
      { retryable: true, cause, details: { sessionId, expectedSeq, actualSeq } },
    );
  }

  /** The batch's messages by id when all of them are stored (an earlier attempt committed). */
  async #loadByIds(
    client: Queryable,
    sessionHash: Buffer,
    sessionId: string,
    fresh: PreparedMessage[],
  ): Promise<Message[] | null> {
    const { db } = this.#context;
    const result = await client.query<MessageRow & { id_hash: Buffer }>(
      `SELECT ${MESSAGE_COLUMNS}, id_hash FROM ${db.table('messages')}
        WHERE session_hash = $1 AND id_hash = ANY($2::bytea[])`,
      [sessionHash, fresh.map((entry) => entry.idHash)],
    );
    if (result.rows.length !== fresh.length) return null;
    const byHash = new Map(result.rows.map((row) => [row.id_hash.toString('hex'), row]));
    const messages: Message[] = [];
    for (const entry of fresh) {
      const row = byHash.get(entry.idHash.toString('hex'));
      if (!row) return null;
      messages.push(messageFromRow(sessionId, row));
    }
    return messages;
  }
}

/** Checks the lease of a leased write: `INVALID_INPUT` for a malformed one. */
function checkWriteLease(lease: MessageWriteLease): void {
  if (lease === null || typeof lease !== 'object') {
    throw everrunsError(
      'INVALID_INPUT',
      'A write lease must be an object { holderId, durationMs }',
    );
  }
  checkLeaseRequest(lease.holderId, lease.durationMs);
}

function unreachable(): never {
  throw new EverrunsError({ code: 'INTERNAL', message: 'unreachable' });
}
