import type { DurableHostSettings } from './durable-host.js';

/**
 * The example's settings from the environment: `DATABASE_URL`, `EVERRUNS_SCHEMA` (the stores'
 * schema; the host uses `<schema>_host`) and `EVERRUNS_SECRET_KEY` (64 hex digits). The default key
 * is for this demo only.
 */
export function settingsFromEnvironment(): DurableHostSettings {
  const schema = process.env.EVERRUNS_SCHEMA ?? 'everruns_durable_example';
  return {
    connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    storesSchema: schema,
    hostSchema: `${schema}_host`,
    secretKeyHex: process.env.EVERRUNS_SECRET_KEY ?? '00'.repeat(32),
  };
}
