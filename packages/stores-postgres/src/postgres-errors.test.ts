// Which driver errors mean the connection is gone: a protocol violation the server answers with an
// ERROR leaves the connection serving (no retry as if it were lost, the connection kept).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionError, translateError } from './postgres-errors.js';
import { assertPostgresReachable, DATABASE_URL } from './test-support/database.js';

describe('connection errors', () => {
  let client: pg.Client;

  beforeAll(async () => {
    await assertPostgresReachable();
    client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
  });
  afterAll(() => client.end());

  it('a bind with the wrong number of parameters is a statement error; the connection goes on', async () => {
    const error = await client
      .query({ name: 'two_parameters', text: 'SELECT $1::int + $2::int AS sum', values: [1] })
      .then(
        () => expect.fail('the server accepted a bind with a parameter missing'),
        (caught: unknown) => caught,
      );
    expect(error).toMatchObject({ code: '08P01', severity: 'ERROR' });
    expect(isConnectionError(error)).toBe(false);
    const translated = translateError(error, 'storeMessage');
    expect(translated.code).not.toBe('STORE_UNAVAILABLE');
    expect(translated.message).not.toMatch(/could not be reached/);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('a protocol violation that ends the connection, and the lost connections, are connection errors', () => {
    const fatal = Object.assign(new Error('invalid frontend message type 0'), {
      code: '08P01',
      severity: 'FATAL',
    });
    expect(isConnectionError(fatal)).toBe(true);
    expect(isConnectionError(Object.assign(new Error('terminated'), { code: '57P01' }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(
      true,
    );
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(Object.assign(new Error('duplicate'), { code: '23505' }))).toBe(false);
  });
});
