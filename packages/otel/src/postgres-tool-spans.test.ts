// On PostgreSQL a call of a tool that is not idempotent is claimed in the tool-call journal in
// the same statement that stores its `tool.started` (`setValueIfAbsentAndEmit` of the bus): the
// instrumented bus must still see that event, or the call's `execute_tool` span is lost.
import { randomBytes } from 'node:crypto';
import { defineCapability, defineTool } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { instrumentRuntime } from './index.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describe('instrumentRuntime on PostgreSQL', () => {
  let backends: PostgresBackends;
  const schema = `otel_tools_${randomBytes(5).toString('hex')}`;

  beforeAll(async () => {
    backends = postgresBackends(
      { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
      { schema, secretKey: { id: 'k1', key: randomBytes(32) } },
    );
    await backends.migrate();
  });
  afterAll(async () => {
    await backends.close();
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  it('records the execute_tool span of a tool that is not idempotent (claimed with its tool.started)', async () => {
    const notes = defineCapability({
      id: 'notes',
      name: 'Notes',
      description: 'Writes a note',
      tools: [
        defineTool({
          name: 'write_note',
          description: 'Writes a note',
          inputSchema: z.object({ text: z.string() }),
          execute: ({ text }) => `noted: ${text}`,
        }),
      ],
    });
    const runtime = await new InProcessRuntimeBuilder()
      .capability(notes)
      .backends(backends)
      .llmSim(
        LlmSimConfig.sequence(['', 'Done.']).withToolCallSequence([
          [{ id: 'call_note_1', name: 'write_note', arguments: { text: 'hi' } }],
          [],
        ]),
      )
      .harness({ id: 'notes_harness', name: 'notes', capabilities: [{ id: 'notes' }] })
      .build();
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const traced = instrumentRuntime(runtime, { tracerProvider: provider });
    try {
      const session = await runtime.createSession({ harnessId: 'notes_harness' });
      const result = await runtime.runTextTurn(session.id, 'Write a note.');
      await traced.flush();
      expect(result.success).toBe(true);
      const tools = exporter
        .getFinishedSpans()
        .filter((span) => span.name === 'execute_tool write_note');
      expect(tools).toHaveLength(1);
      expect(tools[0]?.attributes['gen_ai.tool.call.id']).toBe('call_note_1');
      // The claim was made: the journal's record was written (and dropped with the turn's end).
      const started = (await backends.events.loadEvents(session.id)).filter(
        (event) => event.type === 'tool.started',
      );
      expect(started).toHaveLength(1);
    } finally {
      traced.stop();
      await runtime.close();
    }
  });
});
