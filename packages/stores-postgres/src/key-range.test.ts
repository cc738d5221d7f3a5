import { randomBytes } from 'node:crypto';
import { makeSession } from '@everruns-ts/store-conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_HEAD_LENGTH, keyHeadRange, keyPrefixCondition, keyPrefixParams } from './key-range.js';
import type { PostgresBackends } from './postgres-backends.js';
import { compareStrings } from './store-context.js';
import { adminQuery, createTestBackends, destroyTestBackends } from './test-support/database.js';
import { textDigest } from './text-codec.js';

const random = () => randomBytes(8).toString('hex');

describe('keyHeadRange', () => {
  it('bounds the heads of the keys that start with a prefix', () => {
    expect(keyHeadRange('')).toBeNull();
    expect(keyHeadRange('abc')).toEqual({ prefix: 'abc', low: 'abc', high: 'abd' });
    const long = 'k'.repeat(KEY_HEAD_LENGTH + 10);
    expect(keyHeadRange(long)).toEqual({
      prefix: long,
      low: 'k'.repeat(KEY_HEAD_LENGTH),
      high: `${'k'.repeat(KEY_HEAD_LENGTH - 1)}l`,
    });
  });

  it('counts characters as the database does and steps over the surrogate range', () => {
    const astral = '😀'.repeat(KEY_HEAD_LENGTH + 1);
    const range = keyHeadRange(astral)!;
    expect(Array.from(range.low)).toHaveLength(KEY_HEAD_LENGTH);
    expect(range.high).toBe(`${'😀'.repeat(KEY_HEAD_LENGTH - 1)}😁`);
    expect(keyHeadRange('a\ud7ff')!.high).toBe('a\ue000');
    expect(keyHeadRange('a\u{10ffff}\u{10ffff}')!.high).toBe('b');
    expect(keyHeadRange('\u{10ffff}')!.high).toBeNull();
    // A prefix cut inside a surrogate pair is widened to the whole characters before the cut.
    expect(keyHeadRange('ab\ud83d')).toEqual({ prefix: 'ab', low: 'ab', high: 'ac' });
  });
});

describe('prefix listings on PostgreSQL', () => {
  let backends: PostgresBackends;
  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  const head = 'h'.repeat(KEY_HEAD_LENGTH - 2);
  // Keys around every edge of the head range: the cut at 64 characters, astral characters across
  // it, the last code point below the surrogates, the largest code point, NUL and the escape.
  const keys = [
    `${head}ab`,
    `${head}ab/1`,
    `${head}ab😀`,
    `${head}ac`,
    `${head}a`,
    `${head}b`,
    `${head}😀x`,
    `${head}😀y/long${'z'.repeat(200)}`,
    `${head}😁`,
    'a\ud7ffz',
    'a\ud7ff',
    'a\ue000',
    'a\u{10ffff}',
    'a\u{10ffff}q',
    'b',
    'nul\u0000one',
    'nul\u0000two',
    'nul\u0001',
    'esc\u0001x',
    '',
    'x%_\\',
    'x%',
  ];
  const prefixes = [
    '',
    head,
    `${head}a`,
    `${head}ab`,
    `${head}ab/`,
    `${head}😀`,
    `${head}\ud83d`,
    'a\ud7ff',
    'a\u{10ffff}',
    'a',
    'nul\u0000',
    'esc\u0001',
    'x%',
    'x%_',
    'zzz',
  ];
  const matching = (prefix: string) =>
    keys.filter((key) => key.startsWith(prefix)).sort(compareStrings);

  it('lists, loads and deletes exactly the keys starting with the prefix', async () => {
    for (const prefix of prefixes) {
      const id = `session_${random()}`;
      await backends.sessions.createSession(makeSession({ id }));
      for (const key of keys) await backends.storage.setValue(id, key, 'v');
      for (const key of keys) await backends.storage.setSecret(id, key, 's');
      const expected = matching(prefix);
      expect(await backends.storage.listKeys(id, prefix), JSON.stringify(prefix)).toEqual(expected);
      expect(await backends.storage.listSecretKeys(id, prefix)).toEqual(expected);
      expect(
        (await backends.loadSessionSetup(id, { storageKeyPrefix: prefix }))?.storageKeys,
      ).toEqual(expected);
      if (prefix === '') continue;
      expect(await backends.storage.deleteValuesWithPrefix(id, prefix)).toBe(expected.length);
      const left = keys.filter((key) => !key.startsWith(prefix)).sort(compareStrings);
      expect(await backends.storage.listKeys(id)).toEqual(left);

      for (const key of expected) await backends.storage.setValue(id, key, 'again');
      const lease = await backends.sessions.claimTurnLease(id, 'holder', 60_000);
      expect(lease).not.toBeNull();
      expect(await backends.releaseTurnLeaseAndDeleteValues(id, 'holder', prefix)).toBe(true);
      expect(await backends.storage.listKeys(id)).toEqual(left);
    }
  });

  it('reads only the range of its prefix, however many keys were deleted under another', async () => {
    const id = `session_${random()}`;
    await backends.sessions.createSession(makeSession({ id }));
    await backends.storage.setValue(id, 'everruns:runtime/waiting-turn/t1', 'w');
    // As a long session's tool-call journal does: one entry written and deleted per turn. Without
    // a vacuum, each deleted row stays in the table and in its indexes.
    await adminQuery(
      `INSERT INTO "${backends.schema}".session_values (session_hash, key_hash, key, value)
       SELECT $1, sha256(convert_to('journal/' || n, 'UTF8')), 'everruns:runtime/tool-started/' || n, 'x'
         FROM generate_series(1, 3000) n`,
      [textDigest(id)],
    );
    await adminQuery(
      `DELETE FROM "${backends.schema}".session_values
        WHERE session_hash = $1 AND key LIKE 'everruns:runtime/tool-started/%'`,
      [textDigest(id)],
    );
    const range = keyHeadRange('everruns:runtime/waiting-turn/')!;
    const plan = await adminQuery<{ 'QUERY PLAN': unknown }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
       SELECT key FROM "${backends.schema}".session_values
        WHERE session_hash = $1 AND ${keyPrefixCondition(range, 2, 3, 4)}`,
      [textDigest(id), ...keyPrefixParams(range)],
    );
    const top = (plan.rows[0]!['QUERY PLAN'] as Array<{ Plan: Record<string, number> }>)[0]!.Plan;
    expect(top['Actual Rows']).toBe(1);
    // The 3,000 dead rows fill dozens of pages; the range touches the index's few pages around
    // the prefix and the one live row's page.
    expect(top['Shared Hit Blocks']! + top['Shared Read Blocks']!).toBeLessThan(12);
    expect(await backends.storage.listKeys(id, 'everruns:runtime/waiting-turn/')).toEqual([
      'everruns:runtime/waiting-turn/t1',
    ]);
  });
});
