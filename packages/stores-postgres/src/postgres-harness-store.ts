import { everrunsError, type Harness, type RuntimeHarnessStore } from '@everruns-ts/core';
import { DocumentTable } from './document-table.js';
import { openMcpSecrets, sealMcpSecrets } from './mcp-secrets.js';
import { parseStored, requireString, type StoreContext } from './store-context.js';
import { textDigest } from './text-codec.js';

/** Longest parent chain followed before giving up (a guard; cycles are detected exactly). */
export const MAX_HARNESS_CHAIN_DEPTH = 1000;

/** Harness definitions in the `harnesses` table, one JSON document per harness. */
export class PostgresHarnessStore implements RuntimeHarnessStore {
  readonly #context: StoreContext;
  readonly #harnesses: DocumentTable<Harness>;

  constructor(context: StoreContext) {
    this.#context = context;
    this.#harnesses = new DocumentTable<Harness>(context, 'harnesses', 'harness', {
      toStored: (harness) => sealMcpSecrets(context, 'harness', harness),
      fromStored: (harness) => openMcpSecrets(context, 'harness', harness),
    });
  }

  /** The harness, or `null`. */
  async getHarness(harnessId: string): Promise<Harness | null> {
    requireString(harnessId, 'harnessId');
    return this.#harnesses.get(harnessId, 'getHarness');
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
    return foldHarnessChain(harnessId, result.rows, this.#context);
  }

  /** Stores a new harness. Throws `DUPLICATE_ID` when the id exists. */
  async addHarness(harness: Harness): Promise<void> {
    requireString(harness?.id, 'harness.id');
    await this.#harnesses.insert(harness, 'addHarness', {
      parent_hash:
        harness.parentHarnessId === undefined ? null : textDigest(harness.parentHarnessId),
    });
  }

  /** Stores the harness, replacing one with the same id. */
  async upsertHarness(harness: Harness): Promise<void> {
    requireString(harness?.id, 'harness.id');
    await this.#harnesses.upsert(harness, 'upsertHarness', {
      parent_hash:
        harness.parentHarnessId === undefined ? null : textDigest(harness.parentHarnessId),
    });
  }

  /** Every harness, sorted by id. */
  async listHarnesses(): Promise<Harness[]> {
    return this.#harnesses.list('listHarnesses');
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
 * Turns {@link ChainRow}s into the chain, root first, opening the sealed MCP server secrets with
 * `context`'s cipher. Throws `HARNESS_NOT_FOUND` for a missing harness and `INVALID_INPUT` for a
 * cycle, as the in-memory store does.
 */
export function foldHarnessChain(
  harnessId: string,
  rows: readonly ChainRow[],
  context: StoreContext,
): Harness[] {
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
    const stored = parseStored<Harness>(row.data, 'harness');
    if (row.cycle) {
      throw everrunsError('INVALID_INPUT', `Harness ${stored.id} is its own ancestor`, {
        details: { harnessId, cycleAt: stored.id },
      });
    }
    chain.push(openMcpSecrets(context, 'harness', stored));
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
