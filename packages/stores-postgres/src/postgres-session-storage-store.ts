import { everrunsError, type SessionStorageStore } from '@everruns-ts/core';
import { keyHeadRange, keyPrefixCondition, keyPrefixParams } from './key-range.js';
import type { JointRows } from './postgres-message-store.js';
import { checkSize, compareStrings, requireString, type StoreContext } from './store-context.js';
import { decodeText, encodeText, endsInHighSurrogate, textDigest } from './text-codec.js';

/** The session storage stores made by this package (wrappers around them are not in it). */
const ownStores = new WeakSet<object>();

/**
 * Per-session key/value storage (`session_values`) and secrets (`session_secrets`). Secrets are
 * encrypted with AES-256-GCM under the configured key, whose id is stored beside each value; the
 * ciphertext is bound to its session and key, so it cannot be moved to another row. Prefix
 * listings compare the prefix literally (`starts_with`), so `%`, `_` and `\` are plain characters,
 * and read a range of the key-head index (see `key-range.ts`).
 */
export class PostgresSessionStorageStore implements SessionStorageStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
    ownStores.add(this);
  }

  /**
   * `store` itself when it is a session storage store of this package (not a wrapper around one)
   * on the same database connection and schema as `context`, else `null`.
   * @internal
   */
  static sameBackend(store: unknown, context: StoreContext): PostgresSessionStorageStore | null {
    if (typeof store !== 'object' || store === null || !ownStores.has(store)) return null;
    const own = store as PostgresSessionStorageStore;
    return own.#context.db === context.db ? own : null;
  }

  /**
   * {@link setValueIfAbsent} with, when `rows` is given, the rows it prepares written in the same
   * statement, only when the value was set (for the event bus of the same backend:
   * `PostgresEventBus.setValueIfAbsentAndEmit`). Resolves whether the value was set and the final
   * SELECT's row when the rows were written (in this statement, or by an earlier attempt that
   * committed before its connection dropped).
   * @internal
   */
  async setValueIfAbsentJointly(
    sessionId: string,
    key: string,
    value: string,
    rows: JointRows | null,
  ): Promise<{ set: boolean; joined: Record<string, unknown> | null }> {
    const { encodedKey, encodedValue } = this.#encodeValue(sessionId, key, value);
    if (rows?.ready) await rows.ready;
    const { db } = this.#context;
    const sessionHash = textDigest(sessionId);
    const keyHash = textDigest(key);
    const insert = `INSERT INTO ${db.table('session_values')} (session_hash, key_hash, key, value)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (session_hash, key_hash) DO NOTHING`;
    return db.run('setValueIfAbsent', async (client, attempt) => {
      let inserted: boolean;
      let joined: Record<string, unknown> | null = null;
      if (rows === null) {
        inserted =
          ((await client.query(insert, [sessionHash, keyHash, encodedKey, encodedValue]))
            .rowCount ?? 0) > 0;
      } else {
        const result = await client.query<{ set: boolean } & Record<string, unknown>>(
          `WITH claimed AS (${insert} RETURNING 1),
           ${rows.ctes(5, 'claimed')}
           SELECT EXISTS (SELECT 1 FROM claimed) AS set, ${rows.select}`,
          [sessionHash, keyHash, encodedKey, encodedValue, ...rows.params],
        );
        inserted = result.rows[0]?.set === true;
        if (inserted) joined = result.rows[0]!;
      }
      if (inserted) return { set: true, joined };
      if (!attempt.afterConnectionLoss) return { set: false, joined: null };
      // An earlier attempt may have committed before its connection dropped: the row holding
      // exactly our value is then ours (claims carry a unique value, such as a timestamp), and
      // it wrote the joint rows with it.
      const stored = await client.query<{ value: string }>(
        `SELECT value FROM ${db.table('session_values')} WHERE session_hash = $1 AND key_hash = $2`,
        [sessionHash, keyHash],
      );
      if (stored.rows[0]?.value !== encodedValue) return { set: false, joined: null };
      return { set: true, joined: rows === null ? null : await rows.committed(client) };
    });
  }

  /**
   * The rows that set `value` under `key` where the key has none, written in the statement of
   * another write (see `JointRows`; the session digest is `$1`): `value_claimed` in the final
   * SELECT says whether they set it. An earlier attempt whose answer was lost set it when the row
   * holds exactly `value` (claims carry a unique value). For the event bus of the same backend.
   * @internal
   */
  claimRows(sessionId: string, key: string, value: string): JointRows {
    const { encodedKey, encodedValue } = this.#encodeValue(sessionId, key, value);
    const { db } = this.#context;
    const keyHash = textDigest(key);
    return {
      shape: 'claim',
      ctes: (first, driver) => `value_claimed AS (
             INSERT INTO ${db.table('session_values')} (session_hash, key_hash, key, value)
             SELECT $1, $${first}::bytea, $${first + 1}::text, $${first + 2}::text
              WHERE EXISTS (SELECT 1 FROM ${driver})
             ON CONFLICT (session_hash, key_hash) DO NOTHING
             RETURNING 1
           )`,
      select: 'EXISTS (SELECT 1 FROM value_claimed) AS value_claimed',
      params: [keyHash, encodedKey, encodedValue],
      committed: async (client) => {
        const stored = await client.query<{ value: string }>(
          `SELECT value FROM ${db.table('session_values')} WHERE session_hash = $1 AND key_hash = $2`,
          [textDigest(sessionId), keyHash],
        );
        return { value_claimed: stored.rows[0]?.value === encodedValue };
      },
    };
  }

  /** Checks a value's session, key and value and encodes them (`VALUE_TOO_LARGE` above the limit). */
  #encodeValue(
    sessionId: string,
    key: string,
    value: string,
  ): { encodedKey: string; encodedValue: string } {
    requireString(sessionId, 'sessionId');
    requireString(key, 'key');
    requireString(value, 'value');
    const encodedKey = encodeText(key);
    const encodedValue = encodeText(value);
    checkSize(this.#context, encodedKey, 'Storage key');
    checkSize(this.#context, encodedValue, `Value of ${key}`);
    return { encodedKey, encodedValue };
  }

  /** The value under `key`, or `null`. */
  async getValue(sessionId: string, key: string): Promise<string | null> {
    requireString(sessionId, 'sessionId');
    requireString(key, 'key');
    const { db } = this.#context;
    const result = await db.run('getValue', (client) =>
      client.query<{ value: string }>(
        `SELECT value FROM ${db.table('session_values')} WHERE session_hash = $1 AND key_hash = $2`,
        [textDigest(sessionId), textDigest(key)],
      ),
    );
    const row = result.rows[0];
    return row ? decodeText(row.value) : null;
  }

  /** Creates or replaces the value under `key`. Throws `VALUE_TOO_LARGE` above the limit. */
  async setValue(sessionId: string, key: string, value: string): Promise<void> {
    const { encodedKey, encodedValue } = this.#encodeValue(sessionId, key, value);
    const { db } = this.#context;
    await db.run('setValue', (client) =>
      client.query(
        `INSERT INTO ${db.table('session_values')} (session_hash, key_hash, key, value)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (session_hash, key_hash) DO UPDATE SET value = EXCLUDED.value`,
        [textDigest(sessionId), textDigest(key), encodedKey, encodedValue],
      ),
    );
  }

  /**
   * Stores the value only when `key` has none, in one statement (`ON CONFLICT DO NOTHING`), so
   * of several writers racing on one key exactly one gets `true`. Throws `VALUE_TOO_LARGE` above
   * the limit.
   */
  async setValueIfAbsent(sessionId: string, key: string, value: string): Promise<boolean> {
    return (await this.setValueIfAbsentJointly(sessionId, key, value, null)).set;
  }

  /**
   * Deletes every value whose key starts with `prefix` (literally) in one statement and returns
   * how many were deleted. Throws `INVALID_INPUT` for an empty prefix.
   */
  async deleteValuesWithPrefix(sessionId: string, prefix: string): Promise<number> {
    requireString(sessionId, 'sessionId');
    requireString(prefix, 'prefix');
    if (prefix === '') {
      throw everrunsError('INVALID_INPUT', 'deleteValuesWithPrefix needs a non-empty prefix');
    }
    if (endsInHighSurrogate(prefix)) {
      // The encoded prefix cannot express a cut inside a surrogate pair: delete key by key.
      let deleted = 0;
      for (const key of await this.listKeys(sessionId, prefix)) {
        if (await this.deleteValue(sessionId, key)) deleted++;
      }
      return deleted;
    }
    const { db } = this.#context;
    const range = keyHeadRange(prefix)!;
    const result = await db.run('deleteValuesWithPrefix', (client) =>
      client.query(
        `DELETE FROM ${db.table('session_values')}
          WHERE session_hash = $1 AND ${keyPrefixCondition(range, 2, 3, 4)}`,
        [textDigest(sessionId), ...keyPrefixParams(range)],
      ),
    );
    return result.rowCount ?? 0;
  }

  /** Deletes the value; false when nothing was stored. */
  deleteValue(sessionId: string, key: string): Promise<boolean> {
    return this.#delete('deleteValue', 'session_values', sessionId, key);
  }

  /** Value keys starting with `prefix` (literally), sorted. */
  listKeys(sessionId: string, prefix?: string): Promise<string[]> {
    return this.#list('listKeys', 'session_values', sessionId, prefix);
  }

  /**
   * The secret under `key`, or `null`. Throws `SECRET_KEY_MISMATCH` when it was encrypted with a
   * key that is not configured or differs from the configured key of the same id.
   */
  async getSecret(sessionId: string, key: string): Promise<string | null> {
    requireString(sessionId, 'sessionId');
    requireString(key, 'key');
    const { db, cipher } = this.#context;
    const sessionHash = textDigest(sessionId);
    const keyHash = textDigest(key);
    const result = await db.run('getSecret', (client) =>
      client.query<{ key_id: string; sealed: Buffer }>(
        `SELECT key_id, sealed FROM ${db.table('session_secrets')}
          WHERE session_hash = $1 AND key_hash = $2`,
        [sessionHash, keyHash],
      ),
    );
    const row = result.rows[0];
    if (!row) return null;
    return cipher.open(
      { keyId: row.key_id, sealed: row.sealed },
      secretContext(sessionHash, keyHash),
      `Secret ${key}`,
    );
  }

  /** Encrypts and stores the secret under `key`, replacing any earlier one. */
  async setSecret(sessionId: string, key: string, value: string): Promise<void> {
    requireString(sessionId, 'sessionId');
    requireString(key, 'key');
    requireString(value, 'value');
    const encodedKey = encodeText(key);
    checkSize(this.#context, encodedKey, 'Secret key');
    checkSize(this.#context, encodeText(value), `Secret ${key}`);
    const sessionHash = textDigest(sessionId);
    const keyHash = textDigest(key);
    const sealed = this.#context.cipher.seal(value, secretContext(sessionHash, keyHash));
    const { db } = this.#context;
    await db.run('setSecret', (client) =>
      client.query(
        `INSERT INTO ${db.table('session_secrets')} (session_hash, key_hash, key, key_id, sealed)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (session_hash, key_hash) DO UPDATE
           SET key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed`,
        [sessionHash, keyHash, encodedKey, sealed.keyId, sealed.sealed],
      ),
    );
  }

  /** Deletes the secret; false when nothing was stored. */
  deleteSecret(sessionId: string, key: string): Promise<boolean> {
    return this.#delete('deleteSecret', 'session_secrets', sessionId, key);
  }

  /** Secret keys starting with `prefix` (literally), sorted. */
  listSecretKeys(sessionId: string, prefix?: string): Promise<string[]> {
    return this.#list('listSecretKeys', 'session_secrets', sessionId, prefix);
  }

  async #delete(
    operation: string,
    table: string,
    sessionId: string,
    key: string,
  ): Promise<boolean> {
    requireString(sessionId, 'sessionId');
    requireString(key, 'key');
    const { db } = this.#context;
    const result = await db.run(operation, (client) =>
      client.query(`DELETE FROM ${db.table(table)} WHERE session_hash = $1 AND key_hash = $2`, [
        textDigest(sessionId),
        textDigest(key),
      ]),
    );
    return (result.rowCount ?? 0) > 0;
  }

  async #list(
    operation: string,
    table: string,
    sessionId: string,
    prefix: string | undefined,
  ): Promise<string[]> {
    requireString(sessionId, 'sessionId');
    if (prefix !== undefined) requireString(prefix, 'prefix');
    const { db } = this.#context;
    const range = prefix === undefined ? null : keyHeadRange(prefix);
    const result = await db.run(operation, (client) =>
      range === null
        ? client.query<{ key: string }>(
            `SELECT key FROM ${db.table(table)} WHERE session_hash = $1`,
            [textDigest(sessionId)],
          )
        : client.query<{ key: string }>(
            `SELECT key FROM ${db.table(table)}
              WHERE session_hash = $1 AND ${keyPrefixCondition(range, 2, 3, 4)}`,
            [textDigest(sessionId), ...keyPrefixParams(range)],
          ),
    );
    const keys = result.rows.map((row) => decodeText(row.key));
    return (prefix ? keys.filter((key) => key.startsWith(prefix)) : keys).sort(compareStrings);
  }
}

function secretContext(sessionHash: Buffer, keyHash: Buffer): Buffer {
  return Buffer.concat([Buffer.from('session-secret\u0000', 'utf8'), sessionHash, keyHash]);
}
