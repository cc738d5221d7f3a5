import { createHash } from 'node:crypto';
import type pg from 'pg';

/** At most this many distinct statement texts are prepared by name (per process). */
const MAX_NAMED_STATEMENTS = 1000;
/** Statement text → its prepared-statement name; `null` for a text never sent by name again. */
const statementNames = new Map<string, string | null>();

/** Something that runs one statement: a pool or a checked-out client. */
type Target = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/**
 * Runs `text` on `target`, as a named prepared statement when it has parameters, so the server
 * parses and plans it once per connection instead of on every call: the host's own statements and
 * pg-boss's (the job fetch, insert and completion run several times per step). The name derives
 * from the text, so one text has one name on every connection. A text without parameters (it may
 * hold several statements), or one seen after {@link MAX_NAMED_STATEMENTS} others, goes unnamed.
 * When the server refuses a prepared plan because a table changed shape (`0A000`), the text goes
 * unnamed from then on, and this call is sent again unnamed unless it ran inside a transaction
 * (`inTransaction`), which the refusal aborted.
 */
export async function sendStatement<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  target: Target,
  text: string,
  values?: readonly unknown[],
  inTransaction = false,
): Promise<pg.QueryResult<Row>> {
  const name = values !== undefined && values.length > 0 ? statementName(text) : undefined;
  if (name === undefined) return target.query<Row>(text, values as unknown[] | undefined);
  try {
    return await target.query<Row>({ name, text, values: values as unknown[] });
  } catch (error) {
    if ((error as { code?: unknown })?.code !== '0A000') throw error;
    statementNames.set(text, null);
    if (inTransaction) throw error;
    return target.query<Row>(text, values as unknown[]);
  }
}

function statementName(text: string): string | undefined {
  const known = statementNames.get(text);
  if (known !== undefined) return known ?? undefined;
  if (statementNames.size >= MAX_NAMED_STATEMENTS) return undefined;
  const name = `everruns_host_${createHash('sha256').update(text).digest('base64url').slice(0, 24)}`;
  statementNames.set(text, name);
  return name;
}
