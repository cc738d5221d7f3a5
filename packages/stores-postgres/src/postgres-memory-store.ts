import type { MemoryEntry, MemoryStore } from '@everruns-ts/core';
import {
  checkSize,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { decodeText, encodeText, textDigest } from './text-codec.js';

interface MemoryRow {
  key: string;
  content: string;
  tags: string;
  created_at: string;
  updated_at: string;
}

/**
 * The memory capability's entries in the `memories` table. Each write takes a number from a
 * sequence, so "most recently written first" is exact even within one millisecond.
 * `recall` matches case-insensitively in JavaScript (as the in-memory store does), over the
 * scope's entries read newest first; it is meant for the few hundred entries a scope holds.
 */
export class PostgresMemoryStore implements MemoryStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
  }

  /** Creates or replaces the entry under `entry.key`, keeping the original `createdAt`. */
  async remember(
    scope: string,
    entry: { key: string; content: string; tags?: string[] },
  ): Promise<MemoryEntry> {
    requireString(scope, 'scope');
    requireString(entry?.key, 'entry.key');
    requireString(entry.content, 'entry.content');
    const key = encodeText(entry.key);
    const content = encodeText(entry.content);
    const tags = stringifyForStore(entry.tags ?? [], 'memory tags');
    checkSize(this.#context, key, 'Memory key');
    checkSize(this.#context, content, `Memory ${entry.key}`);
    checkSize(this.#context, tags, `Tags of memory ${entry.key}`);
    const now = new Date().toISOString();
    const { db } = this.#context;
    const result = await db.run('remember', (client) =>
      client.query<MemoryRow>(
        `INSERT INTO ${db.table('memories')}
           (scope_hash, key_hash, key, content, tags, created_at, updated_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $6, nextval($7::regclass))
         ON CONFLICT (scope_hash, key_hash) DO UPDATE
           SET content = EXCLUDED.content, tags = EXCLUDED.tags,
               updated_at = EXCLUDED.updated_at, revision = EXCLUDED.revision
         RETURNING key, content, tags, created_at, updated_at`,
        [
          textDigest(scope),
          textDigest(entry.key),
          key,
          content,
          tags,
          now,
          db.table('memory_revisions'),
        ],
      ),
    );
    return memoryFromRow(result.rows[0]!);
  }

  /**
   * Entries whose key, content or a tag contains `query` (case-insensitive), most recently
   * written first, at most `limit` of them (all by default).
   */
  async recall(scope: string, query?: string, limit?: number): Promise<MemoryEntry[]> {
    requireString(scope, 'scope');
    const { db } = this.#context;
    const needle = query?.toLowerCase() ?? '';
    const max = limit === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(limit));
    if (max === 0) return [];
    const result = await db.run('recall', (client) =>
      client.query<MemoryRow>(
        `SELECT key, content, tags, created_at, updated_at FROM ${db.table('memories')}
          WHERE scope_hash = $1 ORDER BY revision DESC
          ${needle === '' && Number.isFinite(max) ? 'LIMIT $2' : ''}`,
        needle === '' && Number.isFinite(max) ? [textDigest(scope), max] : [textDigest(scope)],
      ),
    );
    const found: MemoryEntry[] = [];
    for (const row of result.rows) {
      const entry = memoryFromRow(row);
      if (
        needle === '' ||
        entry.key.toLowerCase().includes(needle) ||
        entry.content.toLowerCase().includes(needle) ||
        entry.tags.some((tag) => tag.toLowerCase().includes(needle))
      ) {
        found.push(entry);
        if (found.length >= max) break;
      }
    }
    return found;
  }

  /** Deletes the entry; false when nothing was stored under `key`. */
  async forget(scope: string, key: string): Promise<boolean> {
    requireString(scope, 'scope');
    requireString(key, 'key');
    const { db } = this.#context;
    const result = await db.run('forget', (client) =>
      client.query(`DELETE FROM ${db.table('memories')} WHERE scope_hash = $1 AND key_hash = $2`, [
        textDigest(scope),
        textDigest(key),
      ]),
    );
    return (result.rowCount ?? 0) > 0;
  }
}

function memoryFromRow(row: MemoryRow): MemoryEntry {
  return {
    key: decodeText(row.key),
    content: decodeText(row.content),
    tags: parseStored<string[]>(row.tags, 'memory tags'),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
