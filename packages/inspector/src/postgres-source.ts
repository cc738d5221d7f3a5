import { randomBytes } from 'node:crypto';
import { registerBuiltins } from '@everruns-ts/builtins';
import { CapabilityRegistry, everrunsError } from '@everruns-ts/core';
import { DurableFileApprovals } from '@everruns-ts/runtime/host';
import { postgresBackends, type SecretKey } from '@everruns-ts/stores-postgres';
import { durableApprovalsView } from './inspector-approvals.js';
import { backendsInspectorSource, type InspectorSource } from './inspector-source.js';

/** Options of {@link openPostgresSource}. */
export interface PostgresSourceOptions {
  /** For example `postgres://postgres@127.0.0.1:5432/app`. */
  connectionString: string;
  /** Schema of the stores. Default `everruns`. */
  schema?: string;
  /**
   * The key the stores were written with; only needed to show contexts whose model carries an
   * API key. Default: `EVERRUNS_SECRET_KEY` / `EVERRUNS_SECRET_KEY_ID`, else a throwaway key.
   */
  secretKey?: SecretKey;
  /**
   * The capabilities the sessions use, to assemble their contexts. Default: the built-in
   * capabilities of `@everruns-ts/builtins` (`BUILTIN_CAPABILITIES`).
   */
  capabilities?: CapabilityRegistry;
}

/**
 * Opens the PostgreSQL stores of `@everruns-ts/stores-postgres` for the inspector. It never
 * migrates (a database without the schema shows an error instead of being changed) and writes
 * only decisions on file approvals, and only when the server allows approvals: the runtime's
 * `DurableFileApprovals` records in session storage, so a decision releases a gate waiting in
 * any process (a durable host's worker). The page follows sessions live: the PostgreSQL event bus
 * delivers the events of every process on the database (`LISTEN`/`NOTIFY`), deltas included.
 */
export async function openPostgresSource(options: PostgresSourceOptions): Promise<InspectorSource> {
  const backends = postgresBackends(
    { connectionString: options.connectionString, poolConfig: { max: 4 } },
    {
      ...(options.schema ? { schema: options.schema } : {}),
      secretKey: options.secretKey ?? secretKeyFromEnvironment(),
    },
  );
  return backendsInspectorSource({
    backends,
    capabilities: options.capabilities ?? registerBuiltins(new CapabilityRegistry()),
    label: `postgres (${backends.schema})`,
    // The bus hears other processes' events (deltas included) over LISTEN/NOTIFY: the page
    // follows sessions that run anywhere on this database.
    approvals: durableApprovalsView(
      new DurableFileApprovals({ storage: backends.storage, events: backends.events }),
      backends,
    ),
    close: () => backends.close(),
  });
}

function secretKeyFromEnvironment(): SecretKey {
  const value = process.env.EVERRUNS_SECRET_KEY;
  if (!value) return { id: 'inspector-throwaway', key: randomBytes(32) };
  return parseSecretKey(value, process.env.EVERRUNS_SECRET_KEY_ID ?? 'k1');
}

/**
 * A stores secret key from its text form: 64 hex digits or base64 of 32 bytes (what
 * `EVERRUNS_SECRET_KEY` holds). Throws `INVALID_INPUT` for anything else.
 */
export function parseSecretKey(value: string, id: string): SecretKey {
  const key = /^[0-9a-f]{64}$/i.test(value)
    ? Buffer.from(value, 'hex')
    : Buffer.from(value, 'base64');
  if (key.length !== 32) {
    throw everrunsError(
      'INVALID_INPUT',
      'The secret key must be 32 bytes, written as 64 hex digits or base64',
    );
  }
  return { id, key };
}
