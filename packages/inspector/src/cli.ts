#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createInspectorDemo } from './demo.js';
import type { InspectorSource } from './inspector-source.js';
import { openPostgresSource, parseSecretKey } from './postgres-source.js';
import { startInspectorServer } from './server.js';

const HELP = `everruns-ts inspector: a local web page to look inside sessions and turns.

Usage: everruns-inspector [options]   (npx @everruns-ts/inspector [options])

  --database-url <url>   read sessions from PostgreSQL (stores-postgres) instead of the demo
  --schema <name>        PostgreSQL schema of the stores (default everruns)
  --secret-key <key>     the 32-byte key the stores encrypt model API keys with (hex or base64;
                         default EVERRUNS_SECRET_KEY); only needed to show contexts of models
                         that carry an API key
  --secret-key-id <id>   the id of that key (default EVERRUNS_SECRET_KEY_ID, else k1)
  --port <n>             port (default 4780; 0 picks a free one)
  --host <address>       address to listen on (default 127.0.0.1, this machine only)
  --allow-approvals      let the page approve or deny pending file operations (default: read-only)
  -h, --help             this help

Without --database-url the inspector starts its demo: an in-memory runtime with a finished math
turn and a workspace turn waiting for approval to delete a file. Prefer EVERRUNS_SECRET_KEY to
--secret-key on shared machines (a command line is visible to other users).

The page follows sessions live over GET /api/events (server-sent events): running turns grow as
the model streams, and the lists update without a refresh (with PostgreSQL, for turns any process
runs on the database).`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'database-url': { type: 'string' },
      schema: { type: 'string' },
      'secret-key': { type: 'string' },
      'secret-key-id': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'allow-approvals': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const port = values.port === undefined ? 4780 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be an integer in 0..65535, got ${values.port}`);
  }
  let source: InspectorSource;
  let closeDemo: (() => Promise<void>) | undefined;
  if (values['database-url']) {
    source = await openPostgresSource({
      connectionString: values['database-url'],
      ...(values.schema ? { schema: values.schema } : {}),
      ...(values['secret-key']
        ? {
            secretKey: parseSecretKey(
              values['secret-key'],
              values['secret-key-id'] ?? process.env.EVERRUNS_SECRET_KEY_ID ?? 'k1',
            ),
          }
        : {}),
    });
  } else {
    const demo = await createInspectorDemo();
    source = demo.source;
    closeDemo = () => demo.close();
  }
  const server = await startInspectorServer({
    source,
    port,
    ...(values.host ? { host: values.host } : {}),
    allowApprovals: values['allow-approvals'] === true,
  });
  console.log(`Inspector (${source.label}) at ${server.url}`);
  console.log(
    values['allow-approvals']
      ? 'Approvals are enabled: the page can approve or deny pending file operations.'
      : 'Read-only: start with --allow-approvals to decide pending file operations.',
  );
  const stop = async () => {
    await server.close();
    await closeDemo?.();
    await source.close?.();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
