import { everrunsError, type Harness, type RuntimeHarnessStore } from '@everruns-ts/core';
import { violatedConstraint } from './postgres-errors.js';
import {
  checkSize,
  compareStrings,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { encodeText, textDigest } from './text-codec.js';

/** Longest parent chain followed before giving up (a guard; cycles are detected exactly). */
export const MAX_HARNESS_CHAIN_DEPTH = 1000;

/** Harness definitions in the `harnesses` table, one JSON document per harness. */
export class PostgresHarnessStore implements RuntimeHarnessStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
  }

  /** The harness, or `null`. */
  async getHarness(harnessId: string): Promise<Harness | null> {
    requireString(harnessId, 'harnessId');
    const { db } = this.#context;
    const result = await db.run('getHarness', (client) =>
      client.query<{ data: string }>(
        `SELECT data FROM ${db.table('harnesses')} WHERE id_hash = $1`,
        [textDigest(harnessId)],
      ),
    );
    const row = result.rows[0];
    return row ? parseStored<Harness>(row.data, 'harness') : null;
  }

  /**
   * The harness and its ancestors, root first, in one query. Throws `HARNESS_NOT_FOUND` for a
   * missing harness or parent and `INVALID_INPUT` when the parents form a cycle.
   */
  async getHarnessChain(harnessId: string): Promise<Harness[]> {
    requireString(harnessId, 'harnessId');
    const { db } = this.#context;
    const result = await db.run('getHarnessChain', (client) =>
      client.query<ChainRow>(harnessChainSql(db.table('harnesses'), '$1::bytea'), [
        textDigest(harnessId),
      ]),
    );
    return foldHarnessChain(harnessId, result.rows);
  }

  /** Stores a new harness. Throws `DUPLICATE_ID` when the id exists. */
  async addHarness(harness: Harness): Promise<void> {
    requireString(harness?.id, 'harness.id');
    const data = stringifyForStore(harness, 'harness');
    checkSize(this.#context, data, `Harness ${harness.id}`);
    const { db } = this.#context;
    await db.run('addHarness', async (client, attempt) => {
      try {
        await client.query(
          `INSERT INTO ${db.table('harnesses')} (id_hash, id, parent_hash, data) VALUES ($1, $2, $3, $4)`,
          [
            textDigest(harness.id),
            encodeText(harness.id),
            harness.parentHarnessId === undefined ? null : textDigest(harness.parentHarnessId),
            data,
          ],
        );
      } catch (error) {
        if (violatedConstraint(error) === undefined) throw error;
        if (attempt.afterConnectionLoss && (await this.#storedDataIs(harness.id, data))) return;
        throw everrunsError('DUPLICATE_ID', `Harness ${harness.id} already exists`, {
          details: { harnessId: harness.id },
        });
      }
    });
  }

  /** Every harness, sorted by id. */
  async listHarnesses(): Promise<Harness[]> {
    const { db } = this.#context;
    const result = await db.run('listHarnesses', (client) =>
      client.query<{ data: string }>(`SELECT data FROM ${db.table('harnesses')}`),
    );
    return result.rows
      .map((row) => parseStored<Harness>(row.data, 'harness'))
      .sort((left, right) => compareStrings(left.id, right.id));
  }

  async #storedDataIs(harnessId: string, data: string): Promise<boolean> {
    const { db } = this.#context;
    const result = await db.run('addHarness', (client) =>
      client.query<{ data: string }>(
        `SELECT data FROM ${db.table('harnesses')} WHERE id_hash = $1`,
        [textDigest(harnessId)],
      ),
    );
    return result.rows[0]?.data === data;
  }
}

/** A row of {@link harnessChainSql}: a harness of the chain (or `data` null for a missing one). */
export interface ChainRow {
  depth: number;
  data: string | null;
  cycle: boolean;
}

/**
 * The recursive CTE `chain(depth, id_hash, parent_hash, data, path, cycle)` that walks a harness
 * chain from `startHash` (an SQL expression) up through the parents: one row per harness found,
 * leaf first (`depth` 0), then a row with `data` null when a harness of the chain is missing; a
 * row whose harness already appeared has `cycle` set and ends the walk.
 */
export function harnessChainCte(table: string, startHash: string): string {
  return `chain(depth, id_hash, parent_hash, data, path, cycle) AS (
      SELECT 0, h.id_hash, h.parent_hash, h.data, ARRAY[h.id_hash], false
        FROM (SELECT ${startHash} AS start_hash) s
        LEFT JOIN ${table} h ON h.id_hash = s.start_hash
      UNION ALL
      SELECT c.depth + 1, h.id_hash, h.parent_hash, h.data, c.path || h.id_hash,
             h.id_hash = ANY(c.path)
        FROM chain c
        LEFT JOIN ${table} h ON h.id_hash = c.parent_hash
       WHERE c.parent_hash IS NOT NULL AND c.data IS NOT NULL AND NOT c.cycle
         AND c.depth < ${MAX_HARNESS_CHAIN_DEPTH}
    )`;
}

/** SQL reading a whole harness chain in one statement; rows are {@link ChainRow}s. */
export function harnessChainSql(table: string, startHash: string): string {
  return `WITH RECURSIVE ${harnessChainCte(table, startHash)}
    SELECT depth, data, cycle FROM chain ORDER BY depth`;
}

/**
 * Turns {@link ChainRow}s into the chain, root first. Throws `HARNESS_NOT_FOUND` for a missing
 * harness and `INVALID_INPUT` for a cycle, as the in-memory store does.
 */
export function foldHarnessChain(harnessId: string, rows: readonly ChainRow[]): Harness[] {
  const chain: Harness[] = [];
  for (const row of rows) {
    if (row.data === null) {
      const missing = chain[chain.length - 1]?.parentHarnessId ?? harnessId;
      throw everrunsError(
        'HARNESS_NOT_FOUND',
        chain.length === 0
          ? `Harness ${harnessId} not found`
          : `Parent harness ${missing} of ${harnessId} not found`,
        { details: { harnessId: missing } },
      );
    }
    const harness = parseStored<Harness>(row.data, 'harness');
    if (row.cycle) {
      throw everrunsError('INVALID_INPUT', `Harness ${harness.id} is its own ancestor`, {
        details: { harnessId, cycleAt: harness.id },
      });
    }
    chain.push(harness);
  }
  if (chain.length > MAX_HARNESS_CHAIN_DEPTH) {
    throw everrunsError(
      'LIMIT_EXCEEDED',
      `Harness ${harnessId} has more than ${MAX_HARNESS_CHAIN_DEPTH} ancestors`,
      { details: { harnessId } },
    );
  }
  return chain.reverse();
}
