import { type TurnStreamPart, turnStreamPartSchema } from '@everruns-ts/runtime/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnvironment, type TestEnvironment } from './test-support/environment.js';
import { type FixtureHost, STREAMED_ANSWER, startFixtureHost } from './test-support/fixture.js';
import { startWorker, type WorkerProcess } from './test-support/processes.js';

// The test process only submits; every step runs in one of two worker processes, so each part the
// handle yields crossed processes through the PostgreSQL event bus (LISTEN/NOTIFY).

let environment: TestEnvironment;
let submitter: FixtureHost;
let workers: WorkerProcess[] = [];

beforeAll(async () => {
  environment = await createTestEnvironment('hoststream');
  const config = environment.configFor();
  submitter = await startFixtureHost({ ...config, poolSize: 6 });
  // Two worker processes share the steps; a turn's steps may run in either.
  workers = [
    startWorker({ ...config, concurrency: 2 }),
    startWorker({ ...config, concurrency: 2 }),
  ];
  await Promise.all(workers.map((worker) => worker.ready));
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.stop()));
  await submitter?.close().catch(() => {});
  await environment?.destroy();
});

async function readAll(parts: AsyncIterable<TurnStreamPart>): Promise<TurnStreamPart[]> {
  const read: TurnStreamPart[] = [];
  for await (const part of parts) read.push(part);
  return read;
}

const joined = (parts: TurnStreamPart[], type: 'text-delta', iteration: number) =>
  parts
    .filter((part) => part.type === type && part.iteration === iteration)
    .map((part) => (part as { text: string }).text)
    .join('');

describe('PgBossHost streaming handles', () => {
  it('yields the parts of a turn whose steps run in another process, from turn-start to turn-finish', async () => {
    const sessionId = await environment.createSession();
    const handle = await submitter.host.submitTextTurn(sessionId, 'stream big please', {
      stream: true,
    });
    const parts = await readAll(handle);
    const result = await handle.result();
    expect(result).toMatchObject({ success: true, response: STREAMED_ANSWER, iterations: 2 });
    await expect(handle.stream.result).resolves.toEqual(result);

    for (const part of parts) expect(turnStreamPartSchema.safeParse(part).success).toBe(true);
    expect(parts[0]).toEqual({ type: 'turn-start', sessionId, turnId: handle.turnId });
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result });
    // The answers arrive in pieces: the first step's text and tool calls, the second's long text
    // (one piece larger than a NOTIFY payload).
    expect(joined(parts, 'text-delta', 1)).toBe('working');
    expect(joined(parts, 'text-delta', 2)).toBe(STREAMED_ANSWER);
    const argumentText = parts
      .filter((part) => part.type === 'tool-call-delta' && part.toolCallId === 'append')
      .map((part) => (part as { argumentsDelta: string }).argumentsDelta)
      .join('');
    expect(JSON.parse(argumentText)).toEqual({ line: 'x' });
    const skeleton = parts
      .filter((part) => part.type !== 'text-delta' && part.type !== 'tool-call-delta')
      .map((part) => ('toolCallId' in part ? `${part.type}:${part.toolCallId}` : `${part.type}`));
    expect(skeleton).toEqual([
      'turn-start',
      'step-start',
      'tool-call-start:append',
      'tool-call-start:flag',
      'tool-call:append',
      'tool-call:flag',
      'step-finish',
      'tool-result:append',
      'tool-result:flag',
      'step-start',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts.filter((part) => part.type === 'tool-result')).toEqual([
      expect.objectContaining({ toolCallId: 'append', result: 'appended x', isError: false }),
      expect.objectContaining({ toolCallId: 'flag', result: 'set y', isError: false }),
    ]);

    // Every model call ran in a worker process.
    const { rows } = await environment.pool.query<{ pid: number }>(
      `SELECT pid FROM "${environment.configFor().testSchema}".model_calls WHERE session_id = $1`,
      [sessionId],
    );
    expect(rows).toHaveLength(2);
    const workerPids = workers.map((worker) => worker.child.pid);
    expect(rows.every((row) => workerPids.includes(row.pid))).toBe(true);
    // Deltas are never stored.
    const stored = await environment.backends.events.loadEvents(sessionId);
    expect(stored.some((event) => event.type.endsWith('.delta'))).toBe(false);
  }, 60_000);

  it('stores the same messages whether the turn streamed or not', async () => {
    const streamedSession = await environment.createSession();
    const plainSession = await environment.createSession();
    const streamed = await submitter.host.submitTextTurn(streamedSession, 'stream big', {
      stream: true,
    });
    await readAll(streamed);
    const plain = await submitter.host.submitTextTurn(plainSession, 'stream big');
    await plain.result({ timeoutMs: 30_000 });
    const shape = async (sessionId: string) =>
      (await environment.backends.messages.load(sessionId)).map((message) => ({
        role: message.role,
        content: message.content,
      }));
    expect(await shape(streamedSession)).toEqual(await shape(plainSession));
  }, 60_000);

  it('reports a failed model call as an error part, then turn-finish with success false', async () => {
    const sessionId = await environment.createSession();
    const handle = await submitter.host.submitTextTurn(sessionId, 'driver error please', {
      stream: true,
    });
    const parts = await readAll(handle);
    expect(parts.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'error',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts.at(-1)).toMatchObject({
      type: 'turn-finish',
      result: { success: false, stopReason: 'llm_error' },
    });
  }, 60_000);

  it('refuses invalid stream options before recording anything', async () => {
    const sessionId = await environment.createSession();
    await expect(
      submitter.host.submitTextTurn(sessionId, 'stream big', { stream: 'yes' as never }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(
      submitter.host.submitTextTurn(sessionId, 'stream big', { stream: true, highWaterMark: 0 }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await environment.backends.messages.count(sessionId)).toBe(0);
  });
});
