import {
  type Agent,
  COMPACTION_STORAGE_KEY,
  type CompactionRecord,
  EverrunsError,
  type Harness,
  type LoadSessionSetupOptions,
  type Message,
  type ModelWithProvider,
  parseCompactionRecord,
  type Session,
  type TurnLease,
} from '@everruns-ts/core';
import { keyHeadRange, keyPrefixCondition, keyPrefixParams } from './key-range.js';
import { openMcpSecrets } from './mcp-secrets.js';
import { COMMIT_WITHOUT_FLUSH } from './postgres-database.js';
import { type ChainRow, foldHarnessChain, harnessChainCte } from './postgres-harness-store.js';
import {
  type JointSnapshot,
  messageFromRow,
  PostgresMessageStore,
} from './postgres-message-store.js';
import { defaultModelFromRow } from './postgres-provider-store.js';
import {
  checkLeaseRequest,
  type PostgresSessionStore,
  sessionFromRow,
} from './postgres-session-store.js';
import { compareStrings, parseStored, requireString, type StoreContext } from './store-context.js';
import { decodeText, encodeText, textDigest } from './text-codec.js';

/**
 * A session's turn setup (session, harness chain, agent), loaded together with the default model
 * and, when asked for, storage keys.
 */
export interface SessionSetupSnapshot
  extends Pick<TurnSnapshot, 'session' | 'harnessChain' | 'agent' | 'defaultModel'> {
  /**
   * The session storage's value keys starting with the `storageKeyPrefix` asked for, sorted (as
   * `listKeys`); set only when a prefix was given.
   */
  storageKeys?: string[];
}

/** Everything a turn reads about its session, loaded together. */
export interface TurnSnapshot {
  session: Session;
  /**
   * The session's harness chain, root first; `null` when its harness or an ancestor is missing
   * (as `resolveTurnSetup` in core treats `HARNESS_NOT_FOUND`).
   */
  harnessChain: Harness[] | null;
  /** The session's agent; `null` when it has none or it is missing. */
  agent: Agent | null;
  /**
   * The history in `seq` order: the whole history, or, when `compaction` is a record, only the
   * messages after its `throughSeq`. Frozen, array and messages alike: the backend keeps the
   * same array for the session's next snapshot.
   */
  messages: Message[];
  /**
   * Stands for the list `messages` was read from (core's `TurnSnapshot.messagesSource`): the same
   * object while the session's history after the same cut only grows. Set when the backend keeps
   * the history between snapshots.
   */
  messagesSource?: object;
  /**
   * The session's compaction record (`compaction/current` in the session storage; `null` for
   * none or a malformed one), read in the same statement. Set by `loadTurnSnapshot` only.
   */
  compaction?: CompactionRecord | null;
  /**
   * The default model (`null` when none is set); left out when its API key cannot be decrypted,
   * so the runtime asks the provider store, which reports the typed error where it did before.
   */
  defaultModel?: ModelWithProvider | null;
}

/** A row of a snapshot's SELECT (`kind` null: a write's row that carried none). @internal */
export interface SnapshotRow {
  kind:
    | 'agent'
    | 'compaction'
    | 'default_model'
    | 'harness'
    | 'known'
    | 'lease'
    | 'message'
    | 'session'
    | 'storage_key'
    | null;
  ord: number;
  a: string | null;
  b: string | null;
  c: string | null;
  d: string | null;
  e: string | null;
  f: string | null;
  g: string | null;
  flag: boolean | null;
}

/** What a {@link HistoryCache} keeps of one session: its messages after `cut`, deep-frozen. */
interface CachedHistory {
  /** The compaction cut these messages follow (0 for none). */
  cut: number;
  /**
   * The messages after `cut`, in `seq` order, each deep-frozen: the first `length` entries of
   * this array. The array is the cache's own (never handed out) and may be shared with the entry
   * that replaced this one, which appended to it in place: entries past `length` are not this
   * entry's.
   */
  messages: Message[];
  /** How many entries of `messages` this entry holds. */
  length: number;
  /** The `seq` and id of the last message read (0 and `null` before the first). */
  lastSeq: number;
  lastId: string | null;
  /**
   * Stands for the list these messages were read from (`TurnSnapshot.messagesSource`): kept while
   * the list only grows after the same cut, replaced when the history is read again.
   */
  source: object;
}

/**
 * The cache's array of `cached`'s messages after `cut` (at or after `cached.cut`) followed by
 * `added`: `cached`'s own array grown in place when no later entry has grown it already, else a
 * new array with its part of it.
 */
function extendCachedHistory(cached: CachedHistory, cut: number, added: Message[]): Message[] {
  let history: Message[];
  if (cut > cached.cut) {
    history = [];
    for (let index = 0; index < cached.length; index++) {
      const message = cached.messages[index]!;
      if (message.seq > cut) history.push(message);
    }
  } else if (cached.messages.length === cached.length) {
    history = cached.messages;
  } else {
    history = cached.messages.slice(0, cached.length);
  }
  for (const message of added) history.push(message);
  return history;
}

/** Sessions whose history a {@link HistoryCache} keeps (least recently used dropped first). */
const CACHED_SESSIONS = 256;
/** A history longer than this is not kept (it is read whole on each snapshot instead). */
const CACHED_MESSAGES_PER_SESSION = 50_000;

/**
 * The histories `loadTurnSnapshot` read last, per session, so the next snapshot of a session
 * reads only the messages stored since (one index range scan), not its whole history again: the
 * store only ever appends messages, and a later `seq` only becomes visible after every earlier
 * one. Before reusing a history the snapshot checks, in the same statement, that the last message
 * it holds is still stored at its `seq` with its id (else the history is read again). The
 * messages handed out are deep-frozen and shared between snapshots (the in-memory store hands out
 * frozen messages as well); each snapshot gets an array of its own (a plain copy: freezing one
 * shared array took V8's slow path, O(history) per step at several times the copy's cost), and the cache appends the
 * messages read since to its array in place.
 */
export class HistoryCache {
  readonly #sessions = new Map<string, CachedHistory>();

  /** The kept history of `sessionId` (marked as recently used), if any. */
  get(sessionId: string): CachedHistory | undefined {
    const cached = this.#sessions.get(sessionId);
    if (cached) {
      this.#sessions.delete(sessionId);
      this.#sessions.set(sessionId, cached);
    }
    return cached;
  }

  /**
   * Keeps `messages` (after `cut`) as the history of `sessionId`, read from the list `source`
   * stands for.
   */
  set(sessionId: string, cut: number, messages: Message[], source: object): void {
    this.#sessions.delete(sessionId);
    if (messages.length > CACHED_MESSAGES_PER_SESSION) return;
    const last = messages[messages.length - 1];
    this.#sessions.set(sessionId, {
      cut,
      messages,
      length: messages.length,
      lastSeq: last?.seq ?? 0,
      lastId: last?.id ?? null,
      source,
    });
    if (this.#sessions.size > CACHED_SESSIONS) {
      this.#sessions.delete(this.#sessions.keys().next().value as string);
    }
  }

  /** Forgets every kept history. */
  clear(): void {
    this.#sessions.clear();
  }
}

const historyCaches = new WeakMap<object, HistoryCache>();

/**
 * The {@link HistoryCache} of a backend (one per database handle), shared by `loadTurnSnapshot`
 * and the snapshots read with message writes.
 * @internal
 */
export function historyCacheOf(context: StoreContext): HistoryCache {
  let cache = historyCaches.get(context.db);
  if (!cache) {
    cache = new HistoryCache();
    historyCaches.set(context.db, cache);
  }
  return cache;
}

/**
 * The turn snapshot a message write of `sessionId` reads in its own statement (see
 * `PostgresMessageStore.storeJointly`), kept in the backend's history cache.
 * @internal
 */
export function jointTurnSnapshot(context: StoreContext, sessionId: string): JointSnapshot {
  let query: SnapshotQuery | undefined;
  return {
    query(firstParam) {
      query = snapshotQuery(context, sessionId, true, firstParam, historyCacheOf(context));
      return query;
    },
    async read(rows, write) {
      if (!query) return null;
      return readSnapshot(context, sessionId, rows as unknown as SnapshotRow[], query, write);
    },
  };
}

/** Freezes `value` and everything reachable from it; returns it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * Loads a session, its harness chain, its agent, its compaction record, its messages (after the
 * record's `throughSeq` only, so a compacted long session reads its window, not its whole
 * history) and the default model in one statement (one round trip), consistent with each other
 * (one snapshot). Returns `null` for an unknown session; throws `INVALID_INPUT` when the harness
 * parents form a cycle.
 */
export function loadTurnSnapshot(
  context: StoreContext,
  sessionId: string,
  cache?: HistoryCache,
): Promise<TurnSnapshot | null> {
  return loadSnapshot(context, sessionId, true, cache);
}

/**
 * Loads a session, its harness chain, its agent, the default model and, with
 * `options.storageKeyPrefix`, the session storage keys starting with it (no history) in one
 * statement; `null` for an unknown session, `INVALID_INPUT` for a harness cycle or a prefix that
 * is not a string. The default model is left out when its API key cannot be decrypted (the
 * provider store then reports the typed error).
 */
export async function loadSessionSetup(
  context: StoreContext,
  sessionId: string,
  options: LoadSessionSetupOptions = {},
): Promise<SessionSetupSnapshot | null> {
  const prefix = options.storageKeyPrefix;
  if (prefix !== undefined) requireString(prefix, 'storageKeyPrefix');
  const snapshot = await loadSnapshot(context, sessionId, false, undefined, prefix);
  if (!snapshot) return null;
  return setupOf(snapshot);
}

/** The setup part of a snapshot read without history. */
function setupOf(snapshot: TurnSnapshot & { storageKeys?: string[] }): SessionSetupSnapshot {
  const setup: SessionSetupSnapshot = {
    session: snapshot.session,
    harnessChain: snapshot.harnessChain,
    agent: snapshot.agent,
  };
  if (snapshot.defaultModel !== undefined) setup.defaultModel = snapshot.defaultModel;
  if (snapshot.storageKeys !== undefined) setup.storageKeys = snapshot.storageKeys;
  return setup;
}

/**
 * Claims the session's turn lease for `holderId` and loads its setup (as {@link loadSessionSetup})
 * in one statement. When the claim is refused there, `sessions.claimTurnLease` claims again on
 * its own (a lease released or lapsed meanwhile is taken) or throws its typed error
 * (`TURN_IN_PROGRESS`, `SESSION_NOT_FOUND`); the setup read stands either way. A setup that
 * cannot be read or parsed comes back `null` (the lease is still claimed).
 */
export async function claimTurnLeaseAndLoadSetup(
  context: StoreContext,
  sessions: PostgresSessionStore,
  sessionId: string,
  holderId: string,
  durationMs: number,
  options: LoadSessionSetupOptions = {},
): Promise<{ lease: TurnLease; setup: SessionSetupSnapshot | null }> {
  requireString(sessionId, 'sessionId');
  checkLeaseRequest(holderId, durationMs);
  const prefix = options.storageKeyPrefix;
  if (prefix !== undefined) requireString(prefix, 'storageKeyPrefix');
  let snapshot: Awaited<ReturnType<typeof loadSnapshot>>;
  try {
    snapshot = await loadSnapshot(context, sessionId, false, undefined, prefix, {
      holder: encodeText(holderId),
      durationMs,
    });
  } catch {
    // The statement failed, or its setup did not parse (a harness cycle…) after it claimed: the
    // plain claim takes the lease (or renews this holder's) or says why not; the setup is left
    // to the single stores, which report what is wrong with it where they do.
    return { lease: await sessions.claimTurnLease(sessionId, holderId, durationMs), setup: null };
  }
  const lease = snapshot?.lease ?? (await sessions.claimTurnLease(sessionId, holderId, durationMs));
  if (!snapshot) return { lease, setup: null };
  return { lease, setup: setupOf(snapshot) };
}

/** What {@link snapshotQuery} built: SQL parts, parameters and what reading the rows needs. */
export interface SnapshotQuery {
  /** CTEs (comma-separated, for a `WITH RECURSIVE` list; a claim's first). */
  ctes: string;
  /** The rows' SELECT (a `UNION ALL` of {@link SnapshotRow}s), without `ORDER BY`. */
  select: string;
  /** Parameters numbered from the `firstParam` given (the session's digest is always `$1`). */
  params: unknown[];
  /** Everything `ctes` and `select` depend on (see `PostgresDatabase.text`). */
  shape: string;
  withHistory: boolean;
  cache: HistoryCache | undefined;
  cached: CachedHistory | undefined;
  knownSeq: number;
  storageKeyPrefix: string | undefined;
}

/**
 * Builds the snapshot's statement parts, for a statement of its own ({@link loadSnapshot}) or
 * riding in a write's (`PostgresMessageStore.storeJointly`): the session's digest is `$1`, the
 * other parameters are numbered from `firstParam`.
 * @internal
 */
export function snapshotQuery(
  context: StoreContext,
  sessionId: string,
  withHistory: boolean,
  firstParam: number,
  cache?: HistoryCache,
  storageKeyPrefix?: string,
  claim?: { holder: string; durationMs: number },
): SnapshotQuery {
  const { db } = context;
  const cached = withHistory ? cache?.get(sessionId) : undefined;
  const knownSeq = cached?.lastId ? cached.lastSeq : 0;
  const params: unknown[] = [];
  const param = (value: unknown): string => {
    params.push(value);
    return `$${firstParam + params.length - 1}`;
  };
  // The cut is read from the record's JSON in SQL without casting the document (a malformed
  // value must not fail the statement); the record parsed in JS must agree with it, else the
  // messages are read again (see readSnapshot).
  // The messages after the cut, from the kept history's last one when it comes after the cut
  // (that one by its id only, as a 'known' row, to check that it is still the one kept). The
  // read is ordered by seq so the server always reads the primary key's range: this is a named
  // statement, and a plan made while the table had no statistics (a new schema, autovacuum off)
  // would otherwise pick any index that starts with the session and read the whole history on
  // every turn.
  const compactionKey = withHistory ? param(textDigest(COMPACTION_STORAGE_KEY)) : '';
  const known = withHistory ? param(knownSeq) : '';
  const compactionCte = withHistory
    ? `, compaction_row AS (
         SELECT value, COALESCE(
                  substring(value from '"throughSeq":([0-9]{1,9})[,}]')::integer, 0) AS through_seq
           FROM ${db.table('session_values')} WHERE session_hash = $1 AND key_hash = ${compactionKey}
       )`
    : '';
  const defaultModelRow = `UNION ALL
       SELECT 'default_model', 0, data, api_key_id, encode(api_key_sealed, 'base64'), NULL, NULL,
              NULL, NULL, NULL
         FROM ${db.table('default_model')} WHERE EXISTS (SELECT 1 FROM snapshot_session)`;
  // The setup (no history) reads the default model too, and the storage keys asked for (a range
  // of the key-head index; every key for an empty prefix).
  const storageKeyRange =
    storageKeyPrefix === undefined || withHistory ? undefined : keyHeadRange(storageKeyPrefix);
  let storageKeyRows = '';
  if (storageKeyRange !== undefined) {
    let condition = 'true';
    if (storageKeyRange !== null) {
      const range = keyPrefixParams(storageKeyRange);
      const first = firstParam + params.length;
      params.push(...range);
      condition = keyPrefixCondition(storageKeyRange, first, first + 1, first + 2);
    }
    storageKeyRows = `UNION ALL
       SELECT 'storage_key', 0, key, NULL, NULL, NULL, NULL, NULL, NULL, NULL
         FROM ${db.table('session_values')}
        WHERE session_hash = $1 AND ${condition}
          AND EXISTS (SELECT 1 FROM snapshot_session)`;
  }
  const setupRows = withHistory
    ? ''
    : `${defaultModelRow}
       ${storageKeyRows}`;
  const historyRows = withHistory
    ? `UNION ALL
       SELECT 'compaction', through_seq, value, NULL, NULL, NULL, NULL, NULL, NULL, NULL
         FROM compaction_row WHERE EXISTS (SELECT 1 FROM snapshot_session)
       ${defaultModelRow}
       UNION ALL
       SELECT CASE WHEN seq = ${known}::integer THEN 'known' ELSE 'message' END, seq,
              CASE WHEN seq = ${known}::integer THEN NULL ELSE content END, id, idempotency_key,
              turn_id, role, metadata, created_at, NULL
         FROM (
           SELECT seq, content, id, idempotency_key, turn_id, role, metadata, created_at
             FROM ${db.table('messages')}
            WHERE session_hash = $1
              AND seq > GREATEST(COALESCE((SELECT through_seq FROM compaction_row), 0),
                                 ${known}::integer - 1)
            ORDER BY seq
         ) window_messages`
    : '';
  // A turn lease claimed in the same statement (as `claimTurnLease` claims it: free, lapsed or
  // already this holder's); the snapshot reads the session as it was before, which the lease
  // columns it does not read are the only difference from.
  let claimCte = '';
  let claimRow = '';
  if (claim) {
    const holder = param(claim.holder);
    const duration = param(claim.durationMs);
    claimCte = `claimed AS (
         UPDATE ${db.table('sessions')}
            SET turn_lease_holder = ${holder},
                turn_lease_expires_at = date_trunc('milliseconds',
                  now() + ${duration}::float8 * interval '1 millisecond')
          WHERE id_hash = $1
            AND (turn_lease_holder IS NULL OR turn_lease_holder = ${holder}
                 OR turn_lease_expires_at <= now())
            AND ${COMMIT_WITHOUT_FLUSH}
         RETURNING turn_lease_holder,
                   (extract(epoch FROM turn_lease_expires_at) * 1000)::float8 AS expires_ms
       ),`;
    claimRow = `UNION ALL
       SELECT 'lease', 0, turn_lease_holder, expires_ms::text, NULL, NULL, NULL, NULL, NULL, NULL
         FROM claimed`;
  }
  const ctes = `${claimCte} snapshot_session AS (
         SELECT harness_hash, agent_hash, title, status, capabilities, updated_at, data
           FROM ${db.table('sessions')} WHERE id_hash = $1
       ),
       ${harnessChainCte(db.table('harnesses'), '(SELECT harness_hash FROM snapshot_session)')}
       ${compactionCte}`;
  const select = `SELECT 'session' AS kind, 0 AS ord, data AS a, title AS b, status AS c,
              capabilities AS d, updated_at AS e, NULL::text AS f, NULL::text AS g,
              NULL::boolean AS flag
         FROM snapshot_session
       UNION ALL
       SELECT 'harness', depth, data, NULL, NULL, NULL, NULL, NULL, NULL, cycle
         FROM chain WHERE EXISTS (SELECT 1 FROM snapshot_session)
       UNION ALL
       SELECT 'agent', 0, agent.data, NULL, NULL, NULL, NULL, NULL, NULL, NULL
         FROM snapshot_session JOIN ${db.table('agents')} agent
           ON agent.id_hash = snapshot_session.agent_hash
       ${historyRows}
       ${setupRows}
       ${claimRow}`;
  const shape = `snapshot|${withHistory ? 'history' : 'setup'}|${firstParam}|${
    storageKeyRange === undefined
      ? '-'
      : storageKeyRange === null
        ? 'all'
        : storageKeyRange.high === null
          ? 'low'
          : 'low-high'
  }|${claim ? 'claim' : '-'}`;
  return { ctes, select, params, shape, withHistory, cache, cached, knownSeq, storageKeyPrefix };
}

async function loadSnapshot(
  context: StoreContext,
  sessionId: string,
  withHistory: boolean,
  cache?: HistoryCache,
  storageKeyPrefix?: string,
  claim?: { holder: string; durationMs: number },
): Promise<(TurnSnapshot & { storageKeys?: string[]; lease?: TurnLease }) | null> {
  requireString(sessionId, 'sessionId');
  const { db } = context;
  const query = snapshotQuery(context, sessionId, withHistory, 2, cache, storageKeyPrefix, claim);
  const text = db.text(
    query.shape,
    () => `WITH RECURSIVE ${query.ctes}
       ${query.select}
       ORDER BY kind DESC, ord`,
  );
  const result = await db.run('loadTurnSnapshot', (client) =>
    client.query<SnapshotRow>(text, [textDigest(sessionId), ...query.params]),
  );
  return readSnapshot(context, sessionId, result.rows, query);
}

/** What a write that carried a snapshot's rows changed that the rows cannot show. */
export interface SnapshotWrite {
  /**
   * The message the write appended (after every message the rows hold): the snapshot's own
   * object, which nothing else holds (it is frozen and kept in the history cache as it is).
   */
  appended: Message;
  /** The session's status and `updatedAt` the write set, if it set them. */
  status?: { status: Session['status']; updatedAt: string };
}

/**
 * Reads the rows of a {@link snapshotQuery} (sorted by kind descending, then `ord`) into the
 * snapshot, keeping the history in the query's cache; `null` when they hold no session. With
 * `write`, the rows were read in the statement of that write (which they do not show): its
 * message is appended to the history and its status set on the session.
 * @internal
 */
export async function readSnapshot(
  context: StoreContext,
  sessionId: string,
  rows: readonly SnapshotRow[],
  query: SnapshotQuery,
  write?: SnapshotWrite,
): Promise<(TurnSnapshot & { storageKeys?: string[]; lease?: TurnLease }) | null> {
  const { withHistory, cache, cached, knownSeq, storageKeyPrefix } = query;
  let lease: TurnLease | undefined;
  const storageKeys: string[] = [];
  let session: Session | null = null;
  const chainRows: ChainRow[] = [];
  let agent: Agent | null = null;
  const messages: Message[] = [];
  let defaultModel: ModelWithProvider | null | undefined = null;
  let compaction: CompactionRecord | null = null;
  let cut = 0;
  let knownId: string | null = null;
  for (const row of rows) {
    if (row.kind === null) continue;
    if (row.kind === 'session') {
      session = sessionFromRow(
        {
          data: row.a!,
          title: row.b,
          status: row.c!,
          capabilities: row.d!,
          updated_at: row.e!,
        },
        context,
      );
    } else if (row.kind === 'harness') {
      chainRows.push({ depth: row.ord, data: row.a, cycle: row.flag === true });
    } else if (row.kind === 'default_model') {
      try {
        defaultModel = defaultModelFromRow(context, {
          data: row.a!,
          api_key_id: row.b,
          api_key_sealed: row.c === null ? null : Buffer.from(row.c, 'base64'),
        });
      } catch {
        defaultModel = undefined;
      }
    } else if (row.kind === 'compaction') {
      compaction = parseCompactionRecord(decodeText(row.a!));
      cut = Number(row.ord);
    } else if (row.kind === 'lease') {
      lease = {
        sessionId,
        holderId: decodeText(row.a ?? ''),
        expiresAt: new Date(Math.round(Number(row.b))).toISOString(),
      };
    } else if (row.kind === 'known') {
      knownId = decodeText(row.b!);
    } else if (row.kind === 'storage_key') {
      const key = decodeText(row.a!);
      // The encoded prefix may stop short of a trailing high surrogate: checked here.
      if (key.startsWith(storageKeyPrefix!)) storageKeys.push(key);
    } else if (row.kind === 'agent') {
      agent = openMcpSecrets(context, 'agent', parseStored<Agent>(row.a!, 'agent'));
    } else {
      messages.push(
        messageFromRow(sessionId, {
          seq: row.ord,
          content: row.a!,
          id: row.b!,
          idempotency_key: row.c,
          turn_id: row.d,
          role: row.e!,
          metadata: row.f,
          created_at: row.g!,
        }),
      );
    }
  }
  if (session === null) return null;
  if (write?.status) {
    session.status = write.status.status;
    session.updatedAt = write.status.updatedAt;
  }
  let harnessChain: Harness[] | null;
  try {
    harnessChain = foldHarnessChain(session.harnessId, chainRows, context);
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'HARNESS_NOT_FOUND')) throw error;
    harnessChain = null;
  }
  const snapshot: TurnSnapshot = { session, harnessChain, agent, messages };
  if (withHistory) {
    // The rows were read before the write's INSERT: its message comes after all of them. A
    // write's snapshot is the kept history and these rows, or none (the paths below that would
    // read the history again give it up), so the message joins the rows.
    if (write) messages.push(cache ? deepFreeze(write.appended) : write.appended);
    snapshot.compaction = compaction;
    const recordCut = compaction?.throughSeq ?? 0;
    // The cache's own array of the history when the kept one was reused (the caller's
    // `snapshot.messages` is a copy of it).
    let history: Message[] | undefined;
    let source: object | undefined;
    if (cut !== recordCut) {
      // The value is not a record the core accepts, or its JSON put `throughSeq` where the
      // pattern did not find it: the history is read again after the cut the record gives (a
      // write's snapshot is then left to a read of its own).
      if (write) return null;
      snapshot.messages = await new PostgresMessageStore(context).loadAfter(sessionId, recordCut);
    } else if (knownSeq > 0) {
      // A cut at or after the kept history's last message leaves none of it to check.
      if (knownId === null && cut >= knownSeq) knownId = cached?.lastId ?? null;
      if (cached && knownId === cached.lastId && cut >= cached.cut) {
        // Only the messages stored since the kept history were read; the caller gets a copy.
        for (const message of messages) deepFreeze(message);
        history = extendCachedHistory(cached, cut, messages);
        snapshot.messages = history.slice();
        // The same list grown: it keeps its source. Cut further, it is another list.
        if (cut === cached.cut) source = cached.source;
      } else {
        // The kept history no longer matches the store (or the cut moved back): read it whole.
        if (write) return null;
        snapshot.messages = await new PostgresMessageStore(context).loadAfter(sessionId, cut);
      }
    }
    if (cache) {
      if (history === undefined) {
        for (const message of snapshot.messages) deepFreeze(message);
        history = snapshot.messages.slice();
      }
      source ??= {};
      snapshot.messagesSource = source;
      cache.set(sessionId, recordCut, history, source);
    }
  }
  if (defaultModel !== undefined) snapshot.defaultModel = defaultModel;
  const withLease = lease === undefined ? snapshot : { ...snapshot, lease };
  if (storageKeyPrefix === undefined) return withLease;
  return { ...withLease, storageKeys: storageKeys.sort(compareStrings) };
}
