import { randomBytes } from 'node:crypto';
import { EverrunsError, type Session } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { DEFAULT_MAX_VALUE_BYTES } from './store-context.js';
import { adminQuery, createTestBackends, destroyTestBackends } from './test-support/database.js';
import { decodeText, encodePrefix, encodeText } from './text-codec.js';

const random = () => randomBytes(8).toString('hex');

async function expectCode(promise: Promise<unknown>, code: string): Promise<EverrunsError> {
  const error = await promise.then(
    () => expect.fail(`expected ${code}, nothing was thrown`),
    (caught: unknown) => caught,
  );
  expect(EverrunsError.isInstance(error), `an EverrunsError, got ${String(error)}`).toBe(true);
  expect((error as EverrunsError).code, (error as EverrunsError).message).toBe(code);
  return error as EverrunsError;
}

/** Compares long strings without printing megabytes on failure. */
function expectSameString(actual: string | null | undefined, expected: string): void {
  expect(typeof actual).toBe('string');
  expect((actual as string).length).toBe(expected.length);
  expect(actual === expected, 'strings differ').toBe(true);
}

/** Text of about `bytes` UTF-8 bytes mixing ASCII, NUL, control characters and astral characters. */
function bigText(bytes: number): string {
  const unit = `abc\u0000\u0001\u001f"\\'%_😀日本\ud83d\ude00\r\n`;
  const unitBytes = Buffer.byteLength(unit, 'utf8');
  return unit.repeat(Math.ceil(bytes / unitBytes));
}

const LONE_SURROGATES = 'lone high \ud800 and lone low \udc00 and reversed \udc00\ud800 end\ud83d';

function session(id: string, extra: Partial<Session> = {}): Session {
  const now = new Date().toISOString();
  return {
    id,
    harnessId: `harness_${random()}`,
    tags: [],
    capabilities: [],
    initialFiles: [],
    status: 'started',
    createdAt: now,
    updatedAt: now,
    ...extra,
  };
}

describe('text encoding for PostgreSQL text columns', () => {
  it('round-trips NUL, the escape character, lone surrogates and ordinary text', () => {
    for (const value of [
      '',
      'plain',
      '\u0000',
      '\u0001',
      '\u00010',
      'a\u0000b\u0001c',
      LONE_SURROGATES,
      '😀 paired surrogates stay',
      '\ud800\u0000\udc00',
    ]) {
      const encoded = encodeText(value);
      expect(encoded).not.toContain('\u0000');
      expect(Buffer.from(encoded, 'utf8').toString('utf8')).toBe(encoded);
      expect(decodeText(encoded)).toBe(value);
    }
    expect(encodeText('nothing to escape')).toBe('nothing to escape');
  });

  it('keeps prefixes: encodePrefix(p) starts encode(s) whenever s starts with p, and encode(p) exactly when p does not end in a high surrogate', () => {
    const alphabet = ['a', '\u0000', '\u0001', '0', '1', 'u', '\ud800', '\udc00', '😀'];
    const strings: string[] = [''];
    for (let length = 1; length <= 3; length++) {
      const next: string[] = [];
      for (const prefix of strings.filter((value) => [...value].length === length - 1)) {
        for (const char of alphabet) next.push(prefix + char);
      }
      strings.push(...next);
    }
    const failures: string[] = [];
    for (const value of strings) {
      const encoded = encodeText(value);
      for (const prefix of strings) {
        const starts = value.startsWith(prefix);
        if (starts && !encoded.startsWith(encodePrefix(prefix)))
          failures.push(`${value}|${prefix}`);
        if (!prefix.endsWith('\ud800') && encoded.startsWith(encodeText(prefix)) !== starts) {
          failures.push(`${value}|${prefix}`);
        }
      }
    }
    expect(failures.map((failure) => JSON.stringify(failure))).toEqual([]);
  });
});

describe('postgres stores: values at the edges', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('round-trips a 10 MB message (NUL, controls, Unicode) byte-exact', async () => {
    const sessionId = `session_${random()}`;
    const text = bigText(10 * 1024 * 1024);
    expect(Buffer.byteLength(text, 'utf8')).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    const stored = await backends.messages.storeMessage(sessionId, {
      role: 'agent',
      content: [{ type: 'text', text }],
      metadata: { echo: text.slice(0, 1000) },
    });
    const [loaded] = await backends.messages.load(sessionId);
    const part = loaded?.content[0];
    expect(part?.type).toBe('text');
    expectSameString((part as { text: string }).text, text);
    expect(loaded?.metadata).toEqual({ echo: text.slice(0, 1000) });
    expect(loaded?.id).toBe(stored.id);
  }, 60_000);

  it('round-trips a 10 MB value and a 10 MB secret byte-exact', async () => {
    const sessionId = `session_${random()}`;
    const value = bigText(10 * 1024 * 1024);
    await backends.storage.setValue(sessionId, 'big', value);
    expectSameString(await backends.storage.getValue(sessionId, 'big'), value);
    await backends.storage.setSecret(sessionId, 'big', value);
    expectSameString(await backends.storage.getSecret(sessionId, 'big'), value);
  }, 60_000);

  it('documents its default size limit of 64 MiB', () => {
    expect(DEFAULT_MAX_VALUE_BYTES).toBe(64 * 1024 * 1024);
  });

  it('refuses values above the configured limit with VALUE_TOO_LARGE and writes nothing', async () => {
    const small = await createTestBackends({ maxValueBytes: 1024 * 1024 });
    try {
      const sessionId = `session_${random()}`;
      const limitText = 'x'.repeat(1024 * 1024 - 32);
      const ok = await small.messages.storeMessage(sessionId, {
        role: 'agent',
        content: [{ type: 'text', text: limitText }],
      });
      expect(ok.seq).toBe(1);
      const error = await expectCode(
        small.messages.storeMessage(sessionId, {
          role: 'agent',
          content: [{ type: 'text', text: 'y'.repeat(1024 * 1024) }],
        }),
        'VALUE_TOO_LARGE',
      );
      expect(error.details).toMatchObject({ limit: 1024 * 1024 });
      await expectCode(
        small.messages.storeMessages(sessionId, [
          { role: 'agent', content: [{ type: 'text', text: 'fine' }] },
          { role: 'agent', content: [{ type: 'text', text: '€'.repeat(400_000) }] },
        ]),
        'VALUE_TOO_LARGE',
      );
      expect(await small.messages.count(sessionId)).toBe(1);
      await expectCode(
        small.storage.setValue(sessionId, 'k', 'z'.repeat(1024 * 1024 + 1)),
        'VALUE_TOO_LARGE',
      );
      await expectCode(
        small.storage.setSecret(sessionId, 'k', 'z'.repeat(1024 * 1024 + 1)),
        'VALUE_TOO_LARGE',
      );
      await expectCode(
        small.memory.remember('scope', { key: 'k', content: 'z'.repeat(1024 * 1024 + 1) }),
        'VALUE_TOO_LARGE',
      );
      await expectCode(
        small.events.emit({
          type: 'turn.started',
          sessionId,
          data: { text: 'z'.repeat(1024 * 1024) },
        }),
        'VALUE_TOO_LARGE',
      );
      expect(await small.storage.getValue(sessionId, 'k')).toBeNull();
      expect(await small.storage.listSecretKeys(sessionId)).toEqual([]);
    } finally {
      await destroyTestBackends(small);
    }
  });

  it('round-trips lone surrogates and NUL in ids, keys, values, titles and memory', async () => {
    const sessionId = `session_\u0000${LONE_SURROGATES}${random()}`;
    const key = `key\u0000\u0001${LONE_SURROGATES}`;
    await backends.storage.setValue(sessionId, key, LONE_SURROGATES);
    expect(await backends.storage.getValue(sessionId, key)).toBe(LONE_SURROGATES);
    expect(await backends.storage.listKeys(sessionId, 'key\u0000')).toEqual([key]);
    expect(await backends.storage.listKeys(sessionId, 'key\u0001')).toEqual([]);
    await backends.storage.setSecret(sessionId, key, LONE_SURROGATES);
    expect(await backends.storage.getSecret(sessionId, key)).toBe(LONE_SURROGATES);
    const message = await backends.messages.storeMessage(sessionId, {
      role: 'agent',
      idempotencyKey: key,
      turnId: `turn\u0000${LONE_SURROGATES}`,
      content: [{ type: 'text', text: LONE_SURROGATES }],
    });
    expect(await backends.messages.load(sessionId)).toEqual([message]);
    expect(await backends.messages.getByIdempotencyKey(sessionId, key)).toEqual(message);
    expect(
      await backends.messages.loadFiltered(sessionId, { turnId: `turn\u0000${LONE_SURROGATES}` }),
    ).toEqual([message]);
    await backends.sessions.createSession(session(sessionId, { title: LONE_SURROGATES }));
    expect((await backends.sessions.getSession(sessionId))?.title).toBe(LONE_SURROGATES);
    const updated = await backends.sessions.updateSessionTitle(
      sessionId,
      `\u0000${LONE_SURROGATES}`,
    );
    expect(updated.title).toBe(`\u0000${LONE_SURROGATES}`);
    const entry = await backends.memory.remember(sessionId, {
      key,
      content: LONE_SURROGATES,
      tags: [LONE_SURROGATES],
    });
    expect(await backends.memory.recall(sessionId)).toEqual([entry]);
    expect(entry.content).toBe(LONE_SURROGATES);
  });

  it('treats hostile ids, keys and prefixes as data: no statement is built from them', async () => {
    const before = await adminQuery<{ count: string }>(
      'SELECT count(*) FROM information_schema.tables WHERE table_schema = $1',
      [backends.schema],
    );
    const hostile = [
      `'; DROP TABLE "${backends.schema}".messages; --`,
      `"; DROP SCHEMA "${backends.schema}" CASCADE; --`,
      "\\'; SELECT pg_sleep(10); --",
      `$1 $2 $$ $tag$ ${random()}`,
      '🧪'.repeat(3000),
      'k'.repeat(10 * 1024),
    ];
    for (const value of hostile) {
      const sessionId = `${value}${random()}`;
      await backends.sessions.createSession(session(sessionId, { harnessId: value }));
      expect((await backends.sessions.getSession(sessionId))?.harnessId).toBe(value);
      const stored = await backends.messages.storeMessage(sessionId, {
        id: value,
        role: 'agent',
        idempotencyKey: value,
        turnId: value,
        content: [{ type: 'text', text: value }],
      });
      expect(await backends.messages.get(sessionId, value)).toEqual(stored);
      await backends.storage.setValue(sessionId, value, value);
      expect(await backends.storage.listKeys(sessionId, value)).toEqual([value]);
      expect(await backends.storage.getValue(sessionId, value)).toBe(value);
      await backends.providers.addModel(value, { model: value, providerType: 'llmsim' });
      expect(await backends.providers.getModelWithProvider(value)).toEqual({
        model: value,
        providerType: 'llmsim',
      });
    }
    const after = await adminQuery<{ count: string }>(
      'SELECT count(*) FROM information_schema.tables WHERE table_schema = $1',
      [backends.schema],
    );
    expect(after.rows[0]?.count).toBe(before.rows[0]?.count);
  });

  it('matches prefixes literally: session_ is not session1_x, 50% is literal, \\ and _ are plain', async () => {
    const sessionId = `session_${random()}`;
    const keys = [
      'session_a',
      'session1_x',
      'sessionXa',
      '50%',
      '50% off',
      '500',
      '5',
      'a\\b',
      'a\\\\b',
      'ab',
      '_',
      'x_',
      'Session_A',
      '\ud83d\ude00 pair',
      '\ud800 lone',
    ];
    for (const key of keys) await backends.storage.setValue(sessionId, key, key);
    for (const key of keys) await backends.storage.setSecret(sessionId, key, key);
    const expectations: Array<[string, string[]]> = [
      ['session_', ['session_a']],
      ['50%', ['50%', '50% off']],
      ['5', ['5', '50%', '50% off', '500']],
      ['a\\', ['a\\\\b', 'a\\b']],
      ['_', ['_']],
      ['%', []],
      ['', [...keys].sort()],
      ['\ud83d', ['\ud83d\ude00 pair']],
      ['\ud83d\ude00', ['\ud83d\ude00 pair']],
      ['\ud800', ['\ud800 lone']],
    ];
    for (const [prefix, expected] of expectations) {
      expect(await backends.storage.listKeys(sessionId, prefix), prefix).toEqual(expected);
      expect(await backends.storage.listSecretKeys(sessionId, prefix), prefix).toEqual(expected);
    }
  });

  it('raises a typed error, never a raw driver error, for a value JSON cannot carry', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expectCode(
      backends.messages.storeMessage(`session_${random()}`, {
        role: 'agent',
        content: [{ type: 'tool_call', id: 'c', name: 'n', arguments: circular }],
      }),
      'INVALID_INPUT',
    );
    await expectCode(
      backends.messages.storeMessage(`session_${random()}`, {
        role: 'agent',
        content: [{ type: 'tool_call', id: 'c', name: 'n', arguments: { big: 10n } }],
      }),
      'INVALID_INPUT',
    );
  });
});
