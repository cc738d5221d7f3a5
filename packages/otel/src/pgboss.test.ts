import { randomBytes } from 'node:crypto';
import {
  CapabilityRegistry,
  DriverRegistry,
  defineCapability,
  defineTool,
  LLMSIM_DEFAULT_MODEL,
  newId,
  PlatformDefinition,
} from '@everruns-ts/core';
import { PgBossHost } from '@everruns-ts/host-pgboss';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/runtime';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { instrumentEventBus, TRACE_CONTEXT_KEY_PREFIX } from './index.js';

// Two PgBossHost workers with their own pools, buses and tracer providers stand for two worker
// processes. The turn's first steps run on worker A; its act step waits on a gate until A has
// been told to stop, so the next reason step and the turn's end run on worker B.

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const suffix = randomBytes(4).toString('hex');
const SCHEMAS = {
  stores: `otel_stores_${suffix}`,
  boss: `otel_boss_${suffix}`,
  host: `otel_host_${suffix}`,
};
const SECRET_KEY = randomBytes(32).toString('hex');

interface Worker {
  name: string;
  backends: PostgresBackends;
  exporter: InMemorySpanExporter;
  host: PgBossHost;
}

let admin: pg.Pool;
let setup: PostgresBackends;
let harnessId: string;
const workers: Worker[] = [];
let gateEntered: () => void;
const entered = new Promise<void>((resolve) => {
  gateEntered = resolve;
});
let releaseGate: () => void;
const released = new Promise<void>((resolve) => {
  releaseGate = resolve;
});

/** The model: a call of `wait_gate`, then (once a tool result is in the context) an answer. */
const model = LlmSimConfig.fromFunction((request) =>
  request.messages.at(-1)?.role === 'tool_result'
    ? { text: 'The gate opened.', toolCalls: [] }
    : { text: '', toolCalls: [{ id: 'call_gate', name: 'wait_gate', arguments: {} }] },
);

const gateCapability = defineCapability({
  id: 'gate',
  name: 'Gate',
  description: 'A tool that waits until the test opens the gate.',
  tools: [
    defineTool({
      name: 'wait_gate',
      description: 'Waits for the gate.',
      inputSchema: z.strictObject({}),
      execute: async () => {
        gateEntered();
        await released;
        return { opened: true };
      },
    }),
  ],
});

async function startWorker(name: string): Promise<Worker> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const backends = postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema: SCHEMAS.stores, secretKey: { id: 'k1', key: SECRET_KEY } },
  );
  const traced = {
    ...backends,
    events: instrumentEventBus(backends.events, {
      tracerProvider: provider,
      storage: backends.storage,
    }),
  };
  const host = await PgBossHost.start({
    connectionString: DATABASE_URL,
    backends: traced,
    platform: new PlatformDefinition(
      new CapabilityRegistry().register(gateCapability),
      new DriverRegistry().register(new LlmSimDriver(model)),
    ),
    queue: `otel-steps-${suffix}`,
    schema: SCHEMAS.host,
    bossSchema: SCHEMAS.boss,
    pollingIntervalSeconds: 0.5,
    retry: { limit: 2, delaySeconds: 0, backoff: false },
  });
  const worker = { name, backends, exporter, host };
  workers.push(worker);
  return worker;
}

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  setup = postgresBackends(
    { pool: admin },
    { schema: SCHEMAS.stores, secretKey: { id: 'k1', key: SECRET_KEY } },
  );
  await setup.migrate();
  await setup.providers.setDefaultModel({ ...LLMSIM_DEFAULT_MODEL });
  harnessId = newId('harness');
  const now = new Date().toISOString();
  await setup.harnesses.addHarness({
    id: harnessId,
    name: 'gate',
    systemPrompt: 'You open gates.',
    tags: [],
    capabilities: [{ id: 'gate' }],
    initialFiles: [],
    status: 'active',
    createdAt: now,
    updatedAt: now,
  });
}, 60_000);

afterAll(async () => {
  for (const worker of workers) {
    await worker.host.stop().catch(() => {});
    await worker.backends.close().catch(() => {});
  }
  for (const schema of Object.values(SCHEMAS)) {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
  await admin.end();
});

async function until<T>(read: () => T | undefined): Promise<T> {
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('instrumentEventBus on host-pgboss workers', () => {
  it("joins the spans of a turn's steps on two workers into one trace", async () => {
    const a = await startWorker('a');
    const b = await startWorker('b');
    const now = new Date().toISOString();
    const session = await setup.sessions.createSession({
      id: newId('session'),
      tools: [],
      harnessId,
      tags: [],
      capabilities: [],
      initialFiles: [],
      status: 'started',
      createdAt: now,
      updatedAt: now,
    });
    void a.host.work({ concurrency: 1 });
    const handle = await a.host.submitTextTurn(session.id, 'Open the gate.');
    await entered;
    // While A runs the act step, B starts working and A stops taking steps: the next reason
    // step (enqueued when the act step ends) and the turn's end run on B.
    void b.host.work({ concurrency: 1 });
    const stopping = a.host.stop({ timeoutMs: 20_000 });
    await new Promise((resolve) => setImmediate(resolve));
    releaseGate();
    await stopping;
    const result = await b.host.turn(handle.turnId, session.id).result();
    expect(result).toMatchObject({ success: true, response: 'The gate opened.' });

    // A's turn span ends when A's bus hears B's turn.completed (LISTEN/NOTIFY).
    const turn = await until(() =>
      a.exporter.getFinishedSpans().find((span) => span.name === 'invoke_agent'),
    );
    const onA = a.exporter.getFinishedSpans();
    const onB = b.exporter.getFinishedSpans();
    const chats = (spans: ReadableSpan[]) =>
      spans.filter((span) => span.attributes['gen_ai.operation.name'] === 'chat');
    expect(chats(onA).map((span) => span.attributes['everruns.iteration'])).toEqual([1]);
    expect(chats(onB).map((span) => span.attributes['everruns.iteration'])).toEqual([2]);
    expect(onA.filter((span) => span.name === 'execute_tool wait_gate')).toHaveLength(1);
    expect(onB.some((span) => span.name === 'invoke_agent')).toBe(false);

    const traceId = turn.spanContext().traceId;
    for (const span of [...onA, ...onB]) {
      expect(span.spanContext().traceId, span.name).toBe(traceId);
      if (span !== turn)
        expect(span.parentSpanContext?.spanId, span.name).toBe(turn.spanContext().spanId);
    }
    // B's span hangs under a parent from another process.
    expect(chats(onB)[0]?.parentSpanContext?.isRemote).toBe(true);
    expect(turn.attributes).toMatchObject({
      'everruns.turn.id': handle.turnId,
      'everruns.turn.iterations': 2,
      'everruns.turn.tool_calls': 1,
      'everruns.turn.stop_reason': result.stopReason,
    });
    // The trace context is kept only while the turn runs.
    expect(
      await setup.storage.getValue(session.id, `${TRACE_CONTEXT_KEY_PREFIX}${handle.turnId}`),
    ).toBeNull();
  }, 60_000);
});
