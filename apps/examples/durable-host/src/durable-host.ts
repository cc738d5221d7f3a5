import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { EverrunsError, harnessSchema, type Message, PlatformDefinition } from '@everruns-ts/core';
import { PgBossHost } from '@everruns-ts/host-pgboss';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/runtime';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';

/** Where the example keeps its data; every process of it uses the same settings. */
export interface DurableHostSettings {
  /** For example `postgres://postgres@127.0.0.1:5432/test`. */
  connectionString: string;
  /** Schema of the stores' tables. */
  storesSchema: string;
  /** Schema of the host's tables (`turns`, `tool_calls`); pg-boss uses `<hostSchema>_boss`. */
  hostSchema: string;
  /** 64 hex digits: the key that encrypts secrets. */
  secretKeyHex: string;
}

/** The session every run of the example uses (created when missing). */
export const EXAMPLE_HARNESS_ID = 'harness_durable_math';

/**
 * The simulated model, stateless so that any worker can answer any step: after a tool result it
 * answers with the result, otherwise it asks for `add(2, 2)`.
 */
export function mathModel(): LlmSimDriver {
  return new LlmSimDriver(
    LlmSimConfig.fromFunction((request) => {
      const last = request.messages.at(-1);
      if (last?.role === 'tool_result') {
        const part = last.content.find((entry) => entry.type === 'tool_result');
        const value = part?.type === 'tool_result' ? JSON.parse(part.content).result : '?';
        return { text: String(value) };
      }
      return {
        text: 'Let me calculate that.',
        toolCalls: [{ name: 'add', arguments: { a: 2, b: 2 } }],
      };
    }),
  );
}

/** The stores of one process (a small pool of its own). */
export function openBackends(settings: DurableHostSettings): PostgresBackends {
  return postgresBackends(
    { connectionString: settings.connectionString, poolConfig: { max: 6 } },
    { schema: settings.storesSchema, secretKey: { id: 'example', key: settings.secretKeyHex } },
  );
}

/** The host of one process: every worker and the client build the same one. */
export function startHost(
  settings: DurableHostSettings,
  backends: PostgresBackends,
  options: { supervise?: boolean } = {},
): Promise<PgBossHost> {
  const platform = new PlatformDefinition();
  platform.capabilities.register(testMathCapability);
  platform.drivers.register(mathModel());
  return PgBossHost.start({
    pool: backends.pool,
    backends,
    platform,
    schema: settings.hostSchema,
    bossSchema: `${settings.hostSchema}_boss`,
    pollingIntervalSeconds: 0.5,
    stepTimeoutSeconds: 60,
    ...(options.supervise === undefined ? {} : { supervise: options.supervise }),
  });
}

/** Creates the schema, the default model and the harness (once; safe to repeat). */
export async function prepareDatabase(backends: PostgresBackends): Promise<void> {
  await backends.migrate();
  await backends.providers.setDefaultModel({ model: 'llmsim-model', providerType: 'llmsim' });
  if (!(await backends.harnesses.getHarness(EXAMPLE_HARNESS_ID))) {
    const harness = harnessSchema.parse({
      id: EXAMPLE_HARNESS_ID,
      name: 'durable-math',
      systemPrompt: 'You are a math assistant. Use the tools.',
      capabilities: [{ id: 'test_math' }],
    });
    // Another process may have added it meanwhile.
    await backends.harnesses.addHarness(harness).catch((error: unknown) => {
      if (!EverrunsError.hasCode(error, 'DUPLICATE_ID')) throw error;
    });
  }
}

/** One line per message, as the example prints them. */
export function describeMessage(message: Message): string {
  const parts = message.content.map((part) => {
    if (part.type === 'text') return JSON.stringify(part.text);
    if (part.type === 'tool_call') return `${part.name}(${JSON.stringify(part.arguments)})`;
    if (part.type === 'tool_result') return `result ${part.content}`;
    return part.type;
  });
  return `${message.seq}. ${message.role}: ${parts.join(' ')}`;
}
