import { everrunsError, type SessionStorageStore } from '@everruns-ts/core';
import { sortedKeysWithPrefix } from './freeze-copy.js';

/**
 * Per-session key/value storage and secrets in memory. Values and secrets live in separate maps,
 * so a secret never shows up in `listKeys` or `getValue`. Prefixes are compared literally.
 */
export class InMemorySessionStorageStore implements SessionStorageStore {
  readonly #values = new Map<string, Map<string, string>>();
  /** Made on the first secret: most sessions store none. */
  #secrets: Map<string, Map<string, string>> | undefined;

  /** The value under `key`, or `null`. */
  async getValue(sessionId: string, key: string): Promise<string | null> {
    return this.#values.get(sessionId)?.get(key) ?? null;
  }

  /** Creates or replaces the value under `key`. */
  async setValue(sessionId: string, key: string, value: string): Promise<void> {
    mapOf(this.#values, sessionId).set(key, value);
  }

  /** Stores the value only when `key` has none; `false` (and no change) when one exists. */
  async setValueIfAbsent(sessionId: string, key: string, value: string): Promise<boolean> {
    const values = mapOf(this.#values, sessionId);
    if (values.has(key)) return false;
    values.set(key, value);
    return true;
  }

  /** Deletes every value whose key starts with `prefix` (non-empty); returns how many. */
  async deleteValuesWithPrefix(sessionId: string, prefix: string): Promise<number> {
    if (typeof prefix !== 'string' || prefix === '') {
      throw everrunsError('INVALID_INPUT', 'deleteValuesWithPrefix needs a non-empty prefix');
    }
    const values = this.#values.get(sessionId);
    if (!values) return 0;
    let deleted = 0;
    for (const key of [...values.keys()]) {
      if (key.startsWith(prefix) && values.delete(key)) deleted++;
    }
    return deleted;
  }

  /** Deletes the value; false when nothing was stored. */
  async deleteValue(sessionId: string, key: string): Promise<boolean> {
    return this.#values.get(sessionId)?.delete(key) ?? false;
  }

  /** Value keys starting with `prefix`, sorted. */
  async listKeys(sessionId: string, prefix?: string): Promise<string[]> {
    return sortedKeysWithPrefix(this.#values.get(sessionId), prefix);
  }

  /** The secret under `key`, or `null`. */
  async getSecret(sessionId: string, key: string): Promise<string | null> {
    return this.#secrets?.get(sessionId)?.get(key) ?? null;
  }

  /** Creates or replaces the secret under `key`. */
  async setSecret(sessionId: string, key: string, value: string): Promise<void> {
    this.#secrets ??= new Map();
    mapOf(this.#secrets, sessionId).set(key, value);
  }

  /** Deletes the secret; false when nothing was stored. */
  async deleteSecret(sessionId: string, key: string): Promise<boolean> {
    return this.#secrets?.get(sessionId)?.delete(key) ?? false;
  }

  /** Secret keys starting with `prefix`, sorted. */
  async listSecretKeys(sessionId: string, prefix?: string): Promise<string[]> {
    return sortedKeysWithPrefix(this.#secrets?.get(sessionId), prefix);
  }
}

function mapOf(maps: Map<string, Map<string, string>>, sessionId: string): Map<string, string> {
  let map = maps.get(sessionId);
  if (map === undefined) {
    map = new Map();
    maps.set(sessionId, map);
  }
  return map;
}
