import { everrunsError } from '@everruns-ts/core';
import { violatedConstraint } from './postgres-errors.js';
import {
  checkSize,
  compareStrings,
  parseStored,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { encodeText, textDigest } from './text-codec.js';

/** How a {@link DocumentTable}'s documents are written and read back (secrets sealed and opened). */
export interface DocumentCodec<T> {
  toStored(document: T): T;
  fromStored(stored: T): T;
}

/**
 * A table of JSON documents keyed by id (`id_hash`, `id`, `data`, plus extra indexed columns):
 * the shape of the harness and agent tables, with their read, list and insert statements.
 */
export class DocumentTable<T extends { id: string }> {
  readonly #context: StoreContext;
  readonly #table: string;
  readonly #kind: string;
  readonly #codec: DocumentCodec<T> | undefined;

  /**
   * @param table the table's name in the store's schema
   * @param kind the document kind in messages and error details (`harness`, `agent`)
   * @param codec turns a document into what is stored and back (secrets sealed), when given
   */
  constructor(context: StoreContext, table: string, kind: string, codec?: DocumentCodec<T>) {
    this.#context = context;
    this.#table = table;
    this.#kind = kind;
    this.#codec = codec;
  }

  /** The stored JSON text of a document, or `null`. */
  async data(id: string, operation: string): Promise<string | null> {
    const { db } = this.#context;
    const result = await db.run(operation, (client) =>
      client.query<{ data: string }>(
        `SELECT data FROM ${db.table(this.#table)} WHERE id_hash = $1`,
        [textDigest(id)],
      ),
    );
    return result.rows[0]?.data ?? null;
  }

  /** The document, or `null`. */
  async get(id: string, operation: string): Promise<T | null> {
    const data = await this.data(id, operation);
    return data === null ? null : this.#fromStored(data);
  }

  #fromStored(data: string): T {
    const stored = parseStored<T>(data, this.#kind);
    return this.#codec ? this.#codec.fromStored(stored) : stored;
  }

  /** Every document, sorted by id. */
  async list(operation: string): Promise<T[]> {
    const { db } = this.#context;
    const result = await db.run(operation, (client) =>
      client.query<{ data: string }>(`SELECT data FROM ${db.table(this.#table)}`),
    );
    return result.rows
      .map((row) => this.#fromStored(row.data))
      .sort((left, right) => compareStrings(left.id, right.id));
  }

  /**
   * Inserts a new document with extra column values. Throws `DUPLICATE_ID` when the id exists,
   * except when the same document is found after a retry that followed a lost connection (the
   * first attempt committed).
   */
  async insert(
    document: T,
    operation: string,
    extraColumns: Record<string, unknown> = {},
  ): Promise<void> {
    const data = stringifyForStore(
      this.#codec ? this.#codec.toStored(document) : document,
      this.#kind,
    );
    const label = `${this.#kind[0]?.toUpperCase()}${this.#kind.slice(1)}`;
    checkSize(this.#context, data, `${label} ${document.id}`);
    const columns = ['id_hash', 'id', ...Object.keys(extraColumns), 'data'];
    const values = [
      textDigest(document.id),
      encodeText(document.id),
      ...Object.values(extraColumns),
      data,
    ];
    const { db } = this.#context;
    await db.run(operation, async (client, attempt) => {
      try {
        await client.query(
          `INSERT INTO ${db.table(this.#table)} (${columns.join(', ')}) VALUES (${columns
            .map((_, index) => `$${index + 1}`)
            .join(', ')})`,
          values,
        );
      } catch (error) {
        if (violatedConstraint(error) === undefined) throw error;
        if (attempt.afterConnectionLoss && (await this.data(document.id, operation)) === data)
          return;
        throw everrunsError('DUPLICATE_ID', `${label} ${document.id} already exists`, {
          details: { [`${this.#kind}Id`]: document.id },
        });
      }
    });
  }

  /**
   * Inserts a document with extra column values, or replaces the document and those columns
   * when the id exists (one `INSERT … ON CONFLICT DO UPDATE` statement).
   */
  async upsert(
    document: T,
    operation: string,
    extraColumns: Record<string, unknown> = {},
  ): Promise<void> {
    const data = stringifyForStore(
      this.#codec ? this.#codec.toStored(document) : document,
      this.#kind,
    );
    const label = `${this.#kind[0]?.toUpperCase()}${this.#kind.slice(1)}`;
    checkSize(this.#context, data, `${label} ${document.id}`);
    const columns = ['id_hash', 'id', ...Object.keys(extraColumns), 'data'];
    const values = [
      textDigest(document.id),
      encodeText(document.id),
      ...Object.values(extraColumns),
      data,
    ];
    const updates = [...Object.keys(extraColumns), 'data']
      .map((column) => `${column} = EXCLUDED.${column}`)
      .join(', ');
    const { db } = this.#context;
    await db.run(operation, (client) =>
      client.query(
        `INSERT INTO ${db.table(this.#table)} (${columns.join(', ')}) VALUES (${columns
          .map((_, index) => `$${index + 1}`)
          .join(', ')}) ON CONFLICT (id_hash) DO UPDATE SET ${updates}`,
        values,
      ),
    );
  }
}
