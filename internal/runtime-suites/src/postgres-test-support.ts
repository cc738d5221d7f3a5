import { randomBytes } from 'node:crypto';
import type { RuntimeBackends, RuntimeEvent } from '@everruns-ts/core';
import pg from 'pg';

// For tests of capability packages that run on PostgreSQL stores: the test server, fresh schema
// names, dropping them, and reading a session's events back from either backend.

/** The server the PostgreSQL tests use: `DATABASE_URL`, default the machine's local one. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh schema name nobody else uses. */
export function randomSchemaName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Drops schemas and everything in them (`IF EXISTS`). */
export async function dropSchemas(...schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
}

interface PagedEventBus {
  loadEvents(
    sessionId: string,
    page?: { afterSeq?: number; limit?: number },
  ): Promise<RuntimeEvent[]>;
}

/** Every event of a session as its backend keeps it (stored on PostgreSQL, collected in memory). */
export async function storedEvents(
  backends: RuntimeBackends,
  sessionId: string,
): Promise<RuntimeEvent[]> {
  const bus = backends.events as RuntimeBackends['events'] & Partial<PagedEventBus>;
  if (typeof bus.loadEvents !== 'function') return bus.collectedEvents?.(sessionId) ?? [];
  const events: RuntimeEvent[] = [];
  for (;;) {
    const page = await bus.loadEvents(sessionId, {
      afterSeq: events.at(-1)?.seq ?? 0,
      limit: 1000,
    });
    events.push(...page);
    if (page.length < 1000) return events;
  }
}
