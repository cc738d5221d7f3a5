import type { PostgresExampleOptions } from './example.js';

/**
 * The example's settings from the environment: `DATABASE_URL`, `EVERRUNS_SCHEMA` and
 * `EVERRUNS_SECRET_KEY` (64 hex digits). The default key is for this demo only: a real deployment
 * keeps its key in a secret manager.
 */
export function settingsFromEnvironment(): PostgresExampleOptions {
  return {
    connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    schema: process.env.EVERRUNS_SCHEMA ?? 'everruns_example',
    secretKeyHex: process.env.EVERRUNS_SECRET_KEY ?? '00'.repeat(32),
  };
}
