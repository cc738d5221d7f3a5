import { createHash } from 'node:crypto';
import {
  EverrunsError,
  type EverrunsLogger,
  errorLogFields,
  silentLogger,
} from '@everruns-ts/core';
import type pg from 'pg';
import { isConnectionError, isTransactionRetryable, translateError } from './postgres-errors.js';

/** How failed statements are retried. */
export interface PostgresRetryOptions {
  /**
   * Attempts per operation (the first included) when the database reports a serialization
   * failure (`40001`), a deadlock (`40P01`) or a lost connection. Default 8.
   */
  maxAttempts?: number;
  /** Delay before the second attempt; it doubles each time, with jitter. Default 20 ms. */
  initialDelayMs?: number;
  /** Upper bound of one delay. Default 1,000 ms. */
  maxDelayMs?: number;
}

/** Something that runs one SQL statement. */
export interface Queryable {
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<Row>>;
}

/** Facts about the current attempt of a retried operation. */
export interface Attempt {
  /** 1 for the first attempt. */
  number: number;
  /**
   * True when an earlier attempt lost its connection: its write may have been committed even
   * though no answer arrived, so a unique violation on an id this operation generated means the
   * earlier attempt succeeded.
   */
  afterConnectionLoss: boolean;
}

const NOOP = () => {};

/** Statement texts a {@link PostgresDatabase} keeps by shape (see `PostgresDatabase.text`). */
const MAX_KEPT_TEXTS = 256;

/** At most this many distinct statement texts are prepared by name (per process). */
const MAX_NAMED_STATEMENTS = 2000;
/** Statement text → its prepared-statement name; `null` for a text never sent by name. */
const statementNames = new Map<string, string | null>();

/**
 * The name a statement with parameters is prepared under on each connection (so the server parses
 * and plans it once per connection instead of on every call): derived from its text, so one text
 * has one name in every pool and schema. `undefined` for a text sent unnamed: one without
 * parameters (`pg` sends it with the simple protocol; it may hold several statements), one seen
 * after {@link MAX_NAMED_STATEMENTS} distinct texts, or one whose prepared plan the server refused.
 */
function statementName(text: string, values: readonly unknown[] | undefined): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const known = statementNames.get(text);
  if (known !== undefined) return known ?? undefined;
  if (statementNames.size >= MAX_NAMED_STATEMENTS) return undefined;
  const name = `everruns_${createHash('sha256').update(text).digest('base64url').slice(0, 24)}`;
  statementNames.set(text, name);
  return name;
}

/**
 * Runs one statement on `target` (a pool or a checked-out client) as the stores do: a text with
 * parameters goes as a named prepared statement (the name derives from the text), so the server
 * parses and plans it once per connection instead of on every call; a text without parameters
 * goes unnamed. For code that shares the stores' database and wants the same (the durable host
 * sends its own statements and pg-boss's through it). When the server refuses a prepared plan
 * because a table it reads changed shape (`0A000`, "cached plan must not change result type"),
 * the text is sent unnamed from then on, and this call is sent again unnamed unless it ran inside
 * a transaction (`inTransaction`), which the refusal aborted. Errors are `pg`'s, untranslated.
 */
export async function sendStatement<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  target: Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>,
  text: string,
  values?: readonly unknown[],
  inTransaction = false,
): Promise<pg.QueryResult<Row>> {
  const parameters = values as unknown[] | undefined;
  const name = statementName(text, parameters);
  if (name === undefined) return target.query<Row>(text, parameters);
  try {
    return await target.query<Row>({ name, text, values: parameters });
  } catch (error) {
    if ((error as { code?: unknown })?.code !== '0A000') throw error;
    statementNames.set(text, null);
    if (inTransaction) throw error;
    return target.query<Row>(text, parameters);
  }
}

/**
 * A condition that is always true and lets the transaction it is evaluated in commit without
 * waiting for its WAL to reach disk (`synchronous_commit` off for that transaction only; the
 * setting returns to the connection's own at its end). For writes that need no flush of their own:
 * a turn lease's claim or renewal. PostgreSQL writes WAL in order, so the first later commit that
 * waits (a turn's message) makes the claim durable with it; a server crash before that loses only
 * the claim, and every durable write of a turn re-checks the holder in its own statement, so a
 * lost claim fences its holder instead of letting two writers in. Saves one disk flush per turn.
 */
export const COMMIT_WITHOUT_FLUSH =
  "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL";

/** Waits `milliseconds`. */
export function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Quotes an SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The pool, the schema and the retry policy every store shares. Every statement goes through
 * {@link PostgresDatabase.run} or {@link PostgresDatabase.transaction}, which retry and translate
 * driver errors into `EverrunsError`s.
 */
export class PostgresDatabase {
  readonly pool: pg.Pool;
  /** Schema name as given. */
  readonly schemaName: string;
  /** Schema name quoted for SQL. */
  readonly schema: string;
  readonly #maxAttempts: number;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  #queries = 0;
  #closed = false;
  /** Table name → its schema-qualified, quoted form (statements are built on every call). */
  readonly #tables = new Map<string, string>();
  readonly #texts = new Map<string, string>();

  /** Where retries are reported (`warn`); silent by default. */
  logger: EverrunsLogger = silentLogger;

  constructor(pool: pg.Pool, schemaName: string, retry: PostgresRetryOptions = {}) {
    this.pool = pool;
    this.schemaName = schemaName;
    this.schema = quoteIdentifier(schemaName);
    this.#maxAttempts = Math.max(1, retry.maxAttempts ?? 8);
    this.#initialDelayMs = Math.max(0, retry.initialDelayMs ?? 20);
    this.#maxDelayMs = Math.max(this.#initialDelayMs, retry.maxDelayMs ?? 1000);
  }

  /** Number of statements sent so far (round trips to the server). */
  get queryCount(): number {
    return this.#queries;
  }

  /** A table of the store's schema, quoted. */
  table(name: string): string {
    let qualified = this.#tables.get(name);
    if (qualified === undefined) {
      qualified = `${this.schema}.${quoteIdentifier(name)}`;
      this.#tables.set(name, qualified);
    }
    return qualified;
  }

  /**
   * The statement text `build` gives for `shape` (a key naming everything the text depends on
   * besides this database's schema), built on the first call and kept: later calls get the very
   * same string, whose hash the named-statement lookup then finds ready, where a text built again
   * is hashed again character by character. Without a shape `build` runs every time. At most
   * {@link MAX_KEPT_TEXTS} shapes are kept.
   */
  text(shape: string | undefined, build: () => string): string {
    if (shape === undefined) return build();
    let text = this.#texts.get(shape);
    if (text === undefined) {
      text = build();
      if (this.#texts.size < MAX_KEPT_TEXTS) this.#texts.set(shape, text);
    }
    return text;
  }

  /** Marks the database closed: later operations fail with `STORE_UNAVAILABLE`. */
  markClosed(): void {
    this.#closed = true;
  }

  /**
   * Runs `work` (statements sent one by one through the pool, each in its own implicit
   * transaction) with retries.
   */
  run<T>(operation: string, work: (db: Queryable, attempt: Attempt) => Promise<T>): Promise<T> {
    const db: Queryable = {
      query: (text, values) => {
        this.#queries++;
        return sendStatement(this.pool, text, values, false);
      },
    };
    return this.#withRetries(operation, (attempt) => work(db, attempt));
  }

  /** Runs `work` inside one transaction on one connection, with retries of the whole transaction. */
  transaction<T>(
    operation: string,
    work: (client: Queryable, attempt: Attempt) => Promise<T>,
    options: { isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
  ): Promise<T> {
    return this.#withRetries(operation, async (attempt) => {
      const client = await this.pool.connect();
      client.on('error', NOOP);
      let broken: Error | undefined;
      const db: Queryable = {
        query: (text, values) => {
          this.#queries++;
          return sendStatement(client, text, values, true);
        },
      };
      try {
        await db.query(
          options.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation.toUpperCase()}` : 'BEGIN',
        );
        const result = await work(db, attempt);
        await db.query('COMMIT');
        return result;
      } catch (error) {
        if (isConnectionError(error)) broken = error instanceof Error ? error : new Error('lost');
        else {
          try {
            await db.query('ROLLBACK');
          } catch (rollbackError) {
            broken = rollbackError instanceof Error ? rollbackError : new Error('rollback failed');
          }
        }
        throw error;
      } finally {
        client.off('error', NOOP);
        client.release(broken);
      }
    });
  }

  async #withRetries<T>(operation: string, work: (attempt: Attempt) => Promise<T>): Promise<T> {
    let afterConnectionLoss = false;
    for (let number = 1; ; number++) {
      if (this.#closed) {
        throw new EverrunsError({
          code: 'STORE_UNAVAILABLE',
          message: `PostgreSQL store: ${operation} called after close()`,
          details: { operation },
        });
      }
      try {
        return await work({ number, afterConnectionLoss });
      } catch (error) {
        const connectionLost = isConnectionError(error);
        const retryable = connectionLost || isTransactionRetryable(error);
        if (!retryable || number >= this.#maxAttempts || this.#closed) {
          const translated = translateError(error, operation);
          if (retryable && !EverrunsError.isInstance(error)) {
            translated.details.attempts = number;
          }
          throw translated;
        }
        if (connectionLost) afterConnectionLoss = true;
        const delayMs = this.backoff(number);
        this.logger.warn(
          {
            operation,
            attempt: number,
            delayMs,
            reason: connectionLost ? 'connection_lost' : 'transaction_conflict',
            error: errorLogFields(error),
          },
          'PostgreSQL store: retrying a statement',
        );
        await sleep(delayMs);
      }
    }
  }

  /** Delay after failed attempt `number`: exponential with jitter, bounded. */
  backoff(number: number): number {
    const ceiling = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** (number - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
}
