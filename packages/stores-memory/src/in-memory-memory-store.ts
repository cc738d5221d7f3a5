import { isoNow, type MemoryEntry, type MemoryStore } from '@everruns-ts/core';
import { freezeCopy } from './freeze-copy.js';

interface StoredEntry {
  entry: MemoryEntry;
  /** Write order, to sort entries written within the same millisecond. */
  version: number;
}

/** The memory capability's long-lived entries, per scope, in memory (maps made on the first write). */
export class InMemoryMemoryStore implements MemoryStore {
  #scopes: Map<string, Map<string, StoredEntry>> | undefined;
  #version = 0;

  /** Creates or replaces the entry under `entry.key`, keeping the original `createdAt`. */
  async remember(
    scope: string,
    entry: { key: string; content: string; tags?: string[] },
  ): Promise<MemoryEntry> {
    this.#scopes ??= new Map();
    let entries = this.#scopes.get(scope);
    if (entries === undefined) {
      entries = new Map();
      this.#scopes.set(scope, entries);
    }
    const now = isoNow();
    const stored = freezeCopy({
      key: entry.key,
      content: entry.content,
      tags: entry.tags ?? [],
      createdAt: entries.get(entry.key)?.entry.createdAt ?? now,
      updatedAt: now,
    });
    // Re-inserting moves the key to the end of the map's order.
    entries.delete(entry.key);
    entries.set(entry.key, { entry: stored, version: ++this.#version });
    return stored;
  }

  /**
   * Entries whose key, content or a tag contains `query` (case-insensitive), most recently
   * written first, at most `limit` of them (all by default).
   */
  async recall(scope: string, query?: string, limit?: number): Promise<MemoryEntry[]> {
    const entries = this.#scopes?.get(scope);
    if (entries === undefined) return [];
    const needle = query?.toLowerCase() ?? '';
    const found: StoredEntry[] = [];
    for (const stored of entries.values()) {
      const { entry } = stored;
      if (
        needle === '' ||
        entry.key.toLowerCase().includes(needle) ||
        entry.content.toLowerCase().includes(needle) ||
        entry.tags.some((tag) => tag.toLowerCase().includes(needle))
      ) {
        found.push(stored);
      }
    }
    found.sort((left, right) => right.version - left.version);
    const max = limit === undefined ? found.length : Math.max(0, limit);
    return found.slice(0, max).map((stored) => stored.entry);
  }

  /** Deletes the entry; false when nothing was stored under `key`. */
  async forget(scope: string, key: string): Promise<boolean> {
    return this.#scopes?.get(scope)?.delete(key) ?? false;
  }
}
