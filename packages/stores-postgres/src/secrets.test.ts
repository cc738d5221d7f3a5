import { randomBytes } from 'node:crypto';
import { EverrunsError } from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresBackends, postgresBackends } from './postgres-backends.js';
import {
  adminQuery,
  createTestBackends,
  DATABASE_URL,
  destroyTestBackends,
} from './test-support/database.js';

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

/** Every row of every table of the schema as text (bytea as hex), like a data dump. */
async function dumpSchema(schema: string): Promise<string> {
  const tables = await adminQuery<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    [schema],
  );
  let dump = '';
  for (const { table_name } of tables.rows) {
    const rows = await adminQuery<{ row: string }>(
      `SELECT t::text AS row FROM "${schema}"."${table_name}" t`,
    );
    for (const { row } of rows.rows) dump += `${table_name}: ${row}\n`;
  }
  return dump;
}

describe('postgres stores: secrets encrypted at rest', () => {
  const key1 = { id: 'key-2024', key: randomBytes(32) };
  let backends: PostgresBackends;

  /** Another bundle on the same schema with other keys. */
  const reopen = (secretKey: Parameters<typeof postgresBackends>[1]['secretKey']) =>
    postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 1 } },
      { schema: backends.schema, secretKey },
    );

  beforeAll(async () => {
    backends = await createTestBackends({ secretKey: key1 });
  });
  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('stores no plaintext secret or API key: a dump of every table shows only ciphertext and the key id', async () => {
    const sessionId = `session_${random()}`;
    const secret = `sk-live-${random()}-plaintext-secret`;
    const apiKey = `api-key-${random()}-plaintext`;
    await backends.storage.setSecret(sessionId, 'openai', secret);
    await backends.providers.addModel('gpt', { model: 'gpt-x', providerType: 'openai', apiKey });
    await backends.providers.setDefaultModel({ model: 'm', providerType: 'openai', apiKey });
    const dump = await dumpSchema(backends.schema);
    expect(dump).toContain('openai');
    expect(dump).toContain(key1.id);
    for (const plaintext of [secret, apiKey]) {
      expect(dump).not.toContain(plaintext);
      expect(dump).not.toContain(Buffer.from(plaintext, 'utf8').toString('hex'));
      expect(dump).not.toContain(Buffer.from(plaintext, 'utf8').toString('base64'));
    }
    expect(await backends.storage.getSecret(sessionId, 'openai')).toBe(secret);
    expect((await backends.providers.getModelWithProvider('gpt'))?.apiKey).toBe(apiKey);
    expect((await backends.providers.getDefaultModel())?.apiKey).toBe(apiKey);
  });

  it('refuses a different key under the same id with SECRET_KEY_MISMATCH, never an empty or garbled secret', async () => {
    const sessionId = `session_${random()}`;
    await backends.storage.setSecret(sessionId, 'token', 'the real token');
    await backends.providers.addModel('with-key', {
      model: 'x',
      providerType: 'openai',
      apiKey: 'the real key',
    });
    const wrong = reopen({ id: key1.id, key: randomBytes(32) });
    try {
      const error = await expectCode(
        wrong.storage.getSecret(sessionId, 'token'),
        'SECRET_KEY_MISMATCH',
      );
      expect(error.message).not.toContain('the real token');
      await expectCode(wrong.providers.getModelWithProvider('with-key'), 'SECRET_KEY_MISMATCH');
      // Keys are listed without decrypting; a missing secret is still null.
      expect(await wrong.storage.listSecretKeys(sessionId)).toEqual(['token']);
      expect(await wrong.storage.getSecret(sessionId, 'other')).toBeNull();
    } finally {
      await wrong.close();
    }
  });

  it('refuses a secret sealed with a key id that is not configured, naming both ids', async () => {
    const sessionId = `session_${random()}`;
    await backends.storage.setSecret(sessionId, 'token', 'value');
    const other = reopen({ id: 'key-2025', key: randomBytes(32) });
    try {
      const error = await expectCode(
        other.storage.getSecret(sessionId, 'token'),
        'SECRET_KEY_MISMATCH',
      );
      expect(error.message).toContain('key-2024');
      expect(error.message).toContain('key-2025');
    } finally {
      await other.close();
    }
  });

  it('reads old secrets with a previous key of the keyring and seals new ones with the current key', async () => {
    const sessionId = `session_${random()}`;
    await backends.storage.setSecret(sessionId, 'old', 'sealed with 2024');
    const key2 = { id: 'key-2025', key: randomBytes(32).toString('hex') };
    const rotated = reopen({ current: key2, previous: [key1] });
    try {
      expect(await rotated.storage.getSecret(sessionId, 'old')).toBe('sealed with 2024');
      await rotated.storage.setSecret(sessionId, 'new', 'sealed with 2025');
      const rows = await adminQuery<{ key: string; key_id: string }>(
        `SELECT key, key_id FROM "${backends.schema}".session_secrets WHERE key IN ('old', 'new') ORDER BY key`,
      );
      expect(rows.rows.filter((row) => row.key === 'new' || row.key === 'old')).toEqual(
        expect.arrayContaining([
          { key: 'new', key_id: 'key-2025' },
          { key: 'old', key_id: 'key-2024' },
        ]),
      );
      await expectCode(backends.storage.getSecret(sessionId, 'new'), 'SECRET_KEY_MISMATCH');
    } finally {
      await rotated.close();
    }
  });

  it('refuses a ciphertext moved to another session or key, or altered', async () => {
    const [one, two] = [`session_${random()}`, `session_${random()}`];
    await backends.storage.setSecret(one, 'a', 'secret of one');
    await backends.storage.setSecret(two, 'b', 'secret of two');
    await backends.storage.setSecret(one, 'c', 'another of one');
    const table = `"${backends.schema}".session_secrets`;
    // Copy one's ciphertext over two's row, and over one's other key.
    await adminQuery(
      `UPDATE ${table} SET sealed = (SELECT sealed FROM ${table} WHERE key = 'a') WHERE key IN ('b', 'c')`,
    );
    await expectCode(backends.storage.getSecret(two, 'b'), 'SECRET_KEY_MISMATCH');
    await expectCode(backends.storage.getSecret(one, 'c'), 'SECRET_KEY_MISMATCH');
    expect(await backends.storage.getSecret(one, 'a')).toBe('secret of one');
    // Flip one bit of the ciphertext.
    await adminQuery(
      `UPDATE ${table} SET sealed = set_byte(sealed, length(sealed) - 1, get_byte(sealed, length(sealed) - 1) # 1) WHERE key = 'a'`,
    );
    await expectCode(backends.storage.getSecret(one, 'a'), 'SECRET_KEY_MISMATCH');
  });

  it('accepts the key as bytes, 64 hex digits or base64, and refuses other lengths', () => {
    const bytes = randomBytes(32);
    for (const key of [bytes, bytes.toString('hex'), bytes.toString('base64')]) {
      const bundle = postgresBackends(
        { connectionString: DATABASE_URL },
        { schema: 'unused', secretKey: { id: 'k', key } },
      );
      void bundle.close();
    }
    for (const key of [randomBytes(31), randomBytes(33), 'too short', '']) {
      let caught: unknown;
      try {
        postgresBackends({ connectionString: DATABASE_URL }, { secretKey: { id: 'k', key } });
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.hasCode(caught, 'CONFIGURATION'), String(caught)).toBe(true);
    }
  });
});
