import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INTERRUPTED_TOOL_RESULT_TEXT, type Message } from '@everruns-ts/core';
import type { TurnResult } from '@everruns-ts/runtime/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TurnHandle } from './index.js';
import {
  createTestEnvironment,
  historyProblems,
  type TestEnvironment,
  toolResult,
} from './test-support/environment.js';
import { type KillPointName, startFixtureHost } from './test-support/fixture.js';
import { startWorker, type WorkerProcess } from './test-support/processes.js';

/**
 * Real worker processes on the real PostgreSQL: a worker is killed with SIGKILL at a chosen
 * moment of a turn, a fresh worker takes over, and the turn must finish with every write stored
 * exactly once.
 */

let environment: TestEnvironment;
const workers = new Set<WorkerProcess>();

beforeAll(async () => {
  environment = await createTestEnvironment('hostkill');
}, 60_000);

afterAll(async () => {
  await Promise.all([...workers].map((worker) => worker.stop()));
  await environment?.destroy();
}, 60_000);

function track(worker: WorkerProcess): WorkerProcess {
  workers.add(worker);
  void worker.exited.then(() => workers.delete(worker));
  return worker;
}

interface Expectation {
  /** Model calls per iteration: 2 where the killed worker had the answer but had not stored it. */
  modelCalls: number[];
  /** How often each tool call's side effect happened. */
  effects: Record<string, number>;
  /** Whether `append` ended with the synthetic "interrupted" result. */
  appendInterrupted: boolean;
}

const MATRIX: Array<[KillPointName, Expectation]> = [
  [
    'after-input-stored',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'before-model-call',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-model-call',
    { modelCalls: [2, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-model-response-stored',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-tool-started',
    { modelCalls: [1, 1], effects: { append: 0, flag: 1 }, appendInterrupted: true },
  ],
  [
    'after-tool-side-effect',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: true },
  ],
  [
    'after-idempotent-tool-side-effect',
    { modelCalls: [1, 1], effects: { append: 1, flag: 2 }, appendInterrupted: false },
  ],
  [
    'mid-multi-message-append',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-turn-completed-emitted',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-session-idle-status',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
  [
    'after-session-idled-emitted',
    { modelCalls: [1, 1], effects: { append: 1, flag: 1 }, appendInterrupted: false },
  ],
];
const RUNS_PER_POINT = 3;

// The matrix runs with the host's default `checkpointIntervalSeconds`: the fixture's steps take
// milliseconds, so the killed job has not moved its checkpoint and the rescuer replays the turn
// from its input step. These points run once more with a checkpoint before every step.
const MOVING_CHECKPOINT: KillPointName[] = [
  'after-model-response-stored',
  'after-tool-side-effect',
];

describe.concurrent('kill-point matrix', () => {
  it.each(MATRIX)(
    'a worker killed %s: the turn finishes, nothing lost or duplicated',
    async (point, expected) => {
      const runs = await Promise.all(
        Array.from({ length: RUNS_PER_POINT }, () => limited(() => killAndRecover(point))),
      );
      for (const { messages, result, modelCalls, effects, ends, sessionStatus } of runs) {
        expect(result).toMatchObject({ success: true, response: 'done', iterations: 2 });
        // The turn ended once, whatever moment the kill hit (the end events included).
        expect(ends).toEqual({ completed: 1, failed: 0, idled: 1 });
        expect(sessionStatus).toBe('idle');
        expect(historyProblems(messages)).toEqual([]);
        expect(messages.map((message) => message.role)).toEqual([
          'user',
          'agent',
          'tool_result',
          'tool_result',
          'agent',
        ]);
        expect(
          [1, 2].map(
            (iteration) => modelCalls.filter((call) => call.iteration === iteration).length,
          ),
        ).toEqual(expected.modelCalls);
        expect(modelCalls.filter((call) => call.answerAlreadyStored)).toEqual([]);
        expect({
          append: effects.filter((effect) => effect.toolCallId === 'append').length,
          flag: effects.filter((effect) => effect.toolCallId === 'flag').length,
        }).toEqual(expected.effects);
        const append = toolResult(messages, 'append');
        if (expected.appendInterrupted) {
          expect(append).toMatchObject({ content: INTERRUPTED_TOOL_RESULT_TEXT, isError: true });
        } else {
          expect(append).toMatchObject({ content: 'appended x', isError: false });
        }
        expect(toolResult(messages, 'flag')).toMatchObject({ content: 'set y', isError: false });
      }
    },
    120_000,
  );
});

describe.concurrent('kill points with a checkpoint before every step', () => {
  it.each(MOVING_CHECKPOINT)(
    'a worker killed %s with checkpointIntervalSeconds 0: the turn finishes the same',
    async (point) => {
      const expected = MATRIX.find(([name]) => name === point)?.[1];
      const { messages, result, modelCalls, effects, ends } = await limited(() =>
        killAndRecover(point, { checkpointIntervalSeconds: 0 }),
      );
      expect(result).toMatchObject({ success: true, response: 'done', iterations: 2 });
      expect(ends).toEqual({ completed: 1, failed: 0, idled: 1 });
      expect(historyProblems(messages)).toEqual([]);
      expect(
        [1, 2].map((iteration) => modelCalls.filter((call) => call.iteration === iteration).length),
      ).toEqual(expected?.modelCalls);
      expect({
        append: effects.filter((effect) => effect.toolCallId === 'append').length,
        flag: effects.filter((effect) => effect.toolCallId === 'flag').length,
      }).toEqual(expected?.effects);
    },
    120_000,
  );
});

/** At most this many kill-and-recover runs at once (each holds two processes and their pools). */
const PARALLEL_RUNS = 6;
let running = 0;
const queued: Array<() => void> = [];

async function limited<T>(task: () => Promise<T>): Promise<T> {
  if (running >= PARALLEL_RUNS) await new Promise<void>((resolve) => queued.push(resolve));
  running += 1;
  try {
    return await task();
  } finally {
    running -= 1;
    queued.shift()?.();
  }
}

async function killAndRecover(
  point: KillPointName,
  options: {
    text?: string;
    maxIterations?: number;
    iteration?: number;
    checkpointIntervalSeconds?: number;
  } = {},
) {
  const config = environment.configFor(
    options.checkpointIntervalSeconds === undefined
      ? {}
      : { checkpointIntervalSeconds: options.checkpointIntervalSeconds },
  );
  const sessionId = await environment.createSession(
    options.maxIterations ? { maxIterations: options.maxIterations } : {},
  );
  const submitter = await startFixtureHost(config);
  try {
    const doomed = track(
      startWorker({
        ...config,
        killPoint: { name: point, ...(options.iteration ? { iteration: options.iteration } : {}) },
        concurrency: 1,
      }),
    );
    await doomed.ready;
    const handle = await submitter.host.submitTextTurn(
      sessionId,
      options.text ?? 'append and flag',
    );
    const exit = await doomed.exited;
    expect(exit.signal, doomed.stderr()).toBe('SIGKILL');
    const rescuer = track(startWorker({ ...config, concurrency: 1 }));
    await rescuer.ready;
    let result: TurnResult;
    try {
      result = await handle.result({ timeoutMs: 60_000 });
    } finally {
      await rescuer.stop();
    }
    const messages: Message[] = await environment.backends.messages.load(sessionId);
    return {
      sessionId,
      result,
      messages,
      ends: await endEvents(sessionId),
      sessionStatus: (await environment.backends.sessions.getSession(sessionId))?.status,
      modelCalls: await environment.modelCalls(sessionId),
      effects: await environment.effects(sessionId),
    };
  } finally {
    await submitter.close();
  }
}

describe('limits, races and approvals across processes', () => {
  it('keeps maxIterations = 5 across a crash after iteration 3: two more iterations, not five', async () => {
    const { result, messages, modelCalls } = await killAndRecover('after-tool-result-stored', {
      text: 'loop',
      maxIterations: 5,
      iteration: 3,
    });
    expect(result).toMatchObject({ success: true, stopReason: 'max_iterations', iterations: 5 });
    expect(modelCalls.map((call) => call.iteration)).toEqual([1, 2, 3, 4, 5]);
    expect(modelCalls.filter((call) => call.answerAlreadyStored)).toEqual([]);
    expect(historyProblems(messages)).toEqual([]);
    expect(messages.filter((message) => message.role === 'agent')).toHaveLength(5);
  }, 120_000);

  it('lets two workers resume the same turns at once, 100 trials: no duplicate rows, one outcome', async () => {
    const config = environment.configFor();
    const first = track(startWorker({ ...config, concurrency: 4 }));
    const second = track(startWorker({ ...config, concurrency: 4 }));
    const submitter = await startFixtureHost(config);
    try {
      await Promise.all([first.ready, second.ready]);
      const trials = await Promise.all(
        Array.from({ length: 100 }, async (_, trial) => {
          const sessionId = await environment.createSession();
          const handle = await submitter.host.submitTextTurn(sessionId, `race ${trial}`);
          // Two more generations of the same turn, started together (after a short pause for
          // some trials), race the first one through the steps still to run: the model waits for
          // the gate race-<turnId>, opened once both were started, so the turn still runs then.
          if (trial % 2 === 1) await new Promise((resolve) => setTimeout(resolve, trial % 20));
          await Promise.all([
            submitter.host.resumeTurn(handle.turnId),
            submitter.host.resumeTurn(handle.turnId),
          ]);
          await environment.pool.query(
            `INSERT INTO "${config.testSchema}".gates (name) VALUES ($1) ON CONFLICT DO NOTHING`,
            [`race-${handle.turnId}`],
          );
          const result = await handle.result({ timeoutMs: 90_000 });
          return { sessionId, handle, result };
        }),
      );
      const problems: string[] = [];
      for (const { sessionId, handle, result } of trials) {
        const messages = await environment.backends.messages.load(sessionId);
        const status = await handle.status();
        const effects = await environment.effects(sessionId);
        const appends = effects.filter((effect) => effect.toolCallId === 'append').length;
        const roles = messages.map((message) => message.role).join(',');
        const events = await environment.backends.events.loadEvents(sessionId);
        const ends = events.filter(
          (event) => event.type === 'turn.completed' || event.type === 'turn.failed',
        ).length;
        const idled = events.filter((event) => event.type === 'session.idled').length;
        const issues = [
          ...historyProblems(messages),
          ...(roles === 'user,agent,tool_result,tool_result,agent' ? [] : [`roles ${roles}`]),
          ...(appends === 1 ? [] : [`append ran ${appends} times`]),
          ...(status.status === 'completed' && result.success && result.response === 'done'
            ? []
            : [`outcome ${JSON.stringify(status)}`]),
          ...(JSON.stringify(status.result) === JSON.stringify(result) ? [] : ['two outcomes']),
          ...(ends === 1 ? [] : [`the turn ended ${ends} times`]),
          ...(idled === 1 ? [] : [`the session idled ${idled} times`]),
        ];
        if (issues.length > 0) problems.push(`${sessionId}: ${issues.join('; ')}`);
      }
      expect(problems).toEqual([]);
      // The generations really raced: every turn got two more generations, each with a job of
      // its own (whose later steps may run in that job). A generation that lost its claim stops
      // at once (its writes are fenced).
      const jobs = await environment.pool.query<{ count: string; resumed: string }>(
        `SELECT count(*), count(*) FILTER (WHERE (data->>'generation')::int > 0) AS resumed
           FROM "${config.bossSchema}".job WHERE name = $1`,
        [config.queue],
      );
      expect(Number(jobs.rows[0]?.resumed)).toBeGreaterThanOrEqual(200);
      expect(Number(jobs.rows[0]?.count)).toBeGreaterThanOrEqual(300);
      for (const { handle } of trials) expect((await handle.status()).generation).toBe(2);
      // Both processes did their share of the work.
      const pids = await environment.pool.query(
        `SELECT DISTINCT pid FROM "${config.testSchema}".model_calls WHERE session_id = ANY($1)`,
        [trials.map((trial) => trial.sessionId)],
      );
      expect(pids.rowCount).toBe(2);
    } finally {
      await submitter.close();
      await Promise.all([first.stop(), second.stop()]);
    }
  }, 180_000);

  it('keeps a delete waiting for approval across a worker kill: same approval id, nothing runs before the decision', async () => {
    const workspaces = await mkdtemp(join(tmpdir(), 'everruns-host-pgboss-'));
    const config = environment.configFor({
      workspacesDirectory: workspaces,
      stepTimeoutSeconds: 5,
    });
    const sessionId = await environment.createSession();
    const notes = join(workspaces, sessionId, 'notes.txt');
    await mkdir(join(workspaces, sessionId));
    await writeFile(notes, 'keep?');
    const submitter = await startFixtureHost(config);
    const count = async (type: string) =>
      (await environment.backends.events.loadEvents(sessionId)).filter(
        (event) => event.type === type,
      ).length;
    try {
      const doomed = track(startWorker({ ...config, concurrency: 1 }));
      await doomed.ready;
      const handle = await submitter.host.submitTextTurn(sessionId, 'cleanup the notes');
      const [pending] = await poll(async () => {
        const list = await submitter.approvals.pending(sessionId);
        return list.length > 0 ? list : undefined;
      });
      expect(pending).toMatchObject({
        approvalId: `${sessionId}/${handle.turnId}/remove/deleteFile`,
        operation: 'deleteFile',
        path: '/notes.txt',
      });
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      expect(await readFile(notes, 'utf8')).toBe('keep?');

      const rescuer = track(startWorker({ ...config, concurrency: 1 }));
      try {
        await rescuer.ready;
        // The rescuer re-ran the (idempotent) call and waits on the same request.
        await poll(async () => ((await count('tool.started')) >= 2 ? true : undefined));
        expect(
          (await submitter.approvals.pending(sessionId)).map((record) => record.approvalId),
        ).toEqual([pending?.approvalId]);
        expect(await count('approval.requested')).toBe(1);
        expect(await readFile(notes, 'utf8')).toBe('keep?');

        await submitter.approvals.decide(sessionId, pending?.approvalId as string, 'approve');
        expect(await handle.result({ timeoutMs: 60_000 })).toMatchObject({
          success: true,
          response: 'cleaned',
        });
      } finally {
        await rescuer.stop();
      }
      await expect(readFile(notes, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await count('approval.decided')).toBe(1);
      const messages = await environment.backends.messages.load(sessionId);
      expect(historyProblems(messages)).toEqual([]);
      expect(toolResult(messages, 'remove')).toMatchObject({ content: 'removed /notes.txt' });
    } finally {
      await submitter.close();
      await rm(workspaces, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('turn endings under kills', () => {
  it('fails a turn once when its worker is killed right after emitting turn.failed', async () => {
    const config = environment.configFor({
      failAgentStores: 100,
      retry: { limit: 1, delaySeconds: 0, backoff: false },
    });
    const sessionId = await environment.createSession();
    const submitter = await startFixtureHost(config);
    try {
      const doomed = track(
        startWorker({
          ...config,
          killPoint: { name: 'after-turn-failed-emitted' },
          concurrency: 1,
        }),
      );
      await doomed.ready;
      const handle = await submitter.host.submitTextTurn(sessionId, 'doomed');
      expect((await doomed.exited).signal, doomed.stderr()).toBe('SIGKILL');
      // The end events go as one batch: the kill after turn.failed finds session.idled stored too.
      expect(await endEvents(sessionId)).toEqual({ completed: 0, failed: 1, idled: 1 });
      const rescuer = track(startWorker({ ...config, concurrency: 1 }));
      try {
        await rescuer.ready;
        await expect(handle.result({ timeoutMs: 60_000 })).rejects.toMatchObject({
          code: 'STORE_UNAVAILABLE',
        });
      } finally {
        await rescuer.stop();
      }
      expect(await endEvents(sessionId)).toEqual({ completed: 0, failed: 1, idled: 1 });
      expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
      expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
    } finally {
      await submitter.close();
    }
  }, 120_000);

  it('pauses a turn once when its worker is killed while pausing it, and the client resumes it', async () => {
    const config = environment.configFor();
    const sessionId = await environment.createSession();
    const submitter = await startFixtureHost(config);
    try {
      const doomed = track(
        startWorker({ ...config, killPoint: { name: 'after-waiting-status' }, concurrency: 1 }),
      );
      await doomed.ready;
      const handle = await submitter.host.submitTextTurn(sessionId, 'ask the client');
      expect((await doomed.exited).signal, doomed.stderr()).toBe('SIGKILL');
      // Killed after the session was marked waiting, before the turn's row said so.
      expect(await handle.status()).toMatchObject({ status: 'running' });
      const rescuer = track(startWorker({ ...config, concurrency: 1 }));
      try {
        await rescuer.ready;
        expect(await handle.result({ timeoutMs: 60_000 })).toMatchObject({
          stopReason: 'waiting_for_tool_results',
        });
        await submitter.host.submitToolResults(sessionId, handle.turnId, [
          { toolCallId: 'ask1', content: 'blue' },
        ]);
        expect(await handle.result({ timeoutMs: 60_000 })).toMatchObject({
          response: 'answered blue',
          stopReason: 'end_turn',
        });
      } finally {
        await rescuer.stop();
      }
      expect(await endEvents(sessionId)).toEqual({ completed: 1, failed: 0, idled: 1 });
      expect((await environment.backends.sessions.getSession(sessionId))?.status).toBe('idle');
      expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
    } finally {
      await submitter.close();
    }
  }, 120_000);

  it('ends each of 60 turns exactly once while 24 workers are killed at random moments', async () => {
    const config = environment.configFor({
      retry: { limit: 40, delaySeconds: 0, backoff: false },
    });
    const submitter = await startFixtureHost(config);
    const KILLS = 24;
    let kills = 0;
    // Two doomed workers at a time, each killed 0.1–1.5 s after it starts working.
    const chaos = async () => {
      while (kills < KILLS) {
        const worker = track(
          startWorker({
            ...config,
            concurrency: 4,
            killAfterMs: 100 + Math.floor(Math.random() * 1400),
          }),
        );
        const exit = await worker.exited;
        if (exit.signal !== 'SIGKILL') throw new Error(`worker exited: ${worker.stderr()}`);
        kills += 1;
      }
    };
    try {
      const chaosRuns = Promise.all([chaos(), chaos()]);
      // Turns arrive while the workers die: every 300 ms.
      const trials: Array<{ sessionId: string; handle: TurnHandle }> = [];
      for (let trial = 0; trial < 60; trial++) {
        const sessionId = await environment.createSession();
        trials.push({ sessionId, handle: await submitter.host.submitTextTurn(sessionId, 'work') });
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      await chaosRuns;
      expect(kills).toBeGreaterThanOrEqual(KILLS);
      const rescuer = track(startWorker({ ...config, concurrency: 4 }));
      const problems: string[] = [];
      try {
        await rescuer.ready;
        for (const { sessionId, handle } of trials) {
          const result = await handle.result({ timeoutMs: 90_000 });
          const messages = await environment.backends.messages.load(sessionId);
          const appends = (await environment.effects(sessionId)).filter(
            (effect) => effect.toolCallId === 'append',
          ).length;
          const ends = await endEvents(sessionId);
          const status = (await environment.backends.sessions.getSession(sessionId))?.status;
          const issues = [
            ...historyProblems(messages),
            ...(result.success && result.response === 'done' ? [] : ['not done']),
            ...(ends.completed === 1 && ends.failed === 0 && ends.idled === 1
              ? []
              : [`end events ${JSON.stringify(ends)}`]),
            ...(status === 'idle' ? [] : [`session ${status}`]),
            ...(appends <= 1 ? [] : [`append ran ${appends} times`]),
          ];
          if (issues.length > 0) problems.push(`${sessionId}: ${issues.join('; ')}`);
        }
      } finally {
        await rescuer.stop();
      }
      expect(problems).toEqual([]);
    } finally {
      await submitter.close();
    }
  }, 300_000);
});

/** How many end events each kind of a session's events has. */
async function endEvents(sessionId: string) {
  const events = await environment.backends.events.loadEvents(sessionId, { limit: 10_000 });
  const count = (type: string) => events.filter((event) => event.type === type).length;
  return {
    completed: count('turn.completed'),
    failed: count('turn.failed'),
    idled: count('session.idled'),
  };
}

async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
