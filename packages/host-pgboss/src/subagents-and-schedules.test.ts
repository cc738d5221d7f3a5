import {
  type Message,
  messageText,
  newId,
  SCHEDULED_MESSAGE_METADATA_KEY,
  type Session,
} from '@everruns-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduledTurnId, subagentTurnId } from './index.js';
import {
  createTestEnvironment,
  historyProblems,
  type TestEnvironment,
} from './test-support/environment.js';
import { type FixtureHost, startFixtureHost } from './test-support/fixture.js';
import { startWorker, type WorkerProcess } from './test-support/processes.js';

// Issue 18 in the durable host: `spawn_agent` (capabilities-subagents) runs its child's turn as
// jobs of the host, a worker killed in the middle of the child's turn resumes that child, and
// `create_schedule` (capabilities-schedule) delivers through pg-boss jobs: once, on cron, cancelled,
// and after a host restart. Real PostgreSQL, real pg-boss, a scripted model (test-support).

let environment: TestEnvironment;
const hosts = new Set<FixtureHost>();
const workers = new Set<WorkerProcess>();

beforeAll(async () => {
  environment = await createTestEnvironment('hostsub');
}, 60_000);

afterAll(async () => {
  await Promise.all([...workers].map((worker) => worker.stop()));
  await Promise.all([...hosts].map((host) => host.close().catch(() => {})));
  await environment?.destroy();
}, 60_000);

async function startHost(
  overrides: Parameters<TestEnvironment['configFor']>[0] = {},
): Promise<{ fixture: FixtureHost; config: ReturnType<TestEnvironment['configFor']> }> {
  const config = environment.configFor(overrides);
  const fixture = await startFixtureHost(config);
  hosts.add(fixture);
  return { fixture, config };
}

async function stopHost(fixture: FixtureHost): Promise<void> {
  hosts.delete(fixture);
  await fixture.close();
}

/** A session of the test harness with subagents and schedules switched on. */
async function createSession(): Promise<string> {
  const now = new Date().toISOString();
  const session = await environment.backends.sessions.createSession({
    id: newId('session'),
    harnessId: environment.harnessId,
    tags: [],
    capabilities: [{ id: 'subagents' }, { id: 'session_schedule' }],
    initialFiles: [],
    status: 'started',
    createdAt: now,
    updatedAt: now,
  });
  return session.id;
}

async function childrenOf(sessionId: string): Promise<Session[]> {
  const sessions = await environment.backends.sessions.listSessions();
  return sessions.filter((session) => session.parentSessionId === sessionId);
}

/** Polls `probe` every 50 ms until it returns a value (gives up after `timeoutMs`). */
async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function scheduledMessages(messages: Message[]): Message[] {
  return messages.filter((message) => message.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY]);
}

/** The answers (`got …`) of the scheduled turns stored so far. */
async function scheduledAnswers(sessionId: string): Promise<string[]> {
  const messages = await environment.backends.messages.load(sessionId);
  return messages
    .filter((message) => message.role === 'agent' && messageText(message).startsWith('got '))
    .map((message) => messageText(message));
}

describe('subagents on the pg-boss host', () => {
  it('spawn_agent runs the child turn as host jobs, links the child and returns its answer (one worker slot)', async () => {
    // concurrency 1: the parent's act job waits for its child while holding the only slot; the
    // slot it lends runs the child's steps.
    const { fixture } = await startHost();
    await fixture.host.work({ concurrency: 1 });
    const sessionId = await createSession();
    const handle = await fixture.host.submitTextTurn(sessionId, 'delegate the task');
    const result = await handle.result({ timeoutMs: 30_000 });
    expect(result.success).toBe(true);
    expect(result.response).toContain('"result":"child done"');

    const children = await childrenOf(sessionId);
    expect(children).toHaveLength(1);
    const child = children[0] as Session;
    expect(child).toMatchObject({ title: 'helper', systemPrompt: 'You help.' });
    expect(result.response).toContain(child.id);
    // The child's turn went through the host's table like any turn.
    expect(await fixture.host.turnStatus(subagentTurnId(child.id))).toMatchObject({
      status: 'completed',
      sessionId: child.id,
    });
    const childMessages = await environment.backends.messages.load(child.id);
    expect(childMessages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'agent',
    ]);
    const events = await environment.backends.events.loadEvents(sessionId);
    expect(
      events.filter((event) => event.type.startsWith('subagent.')).map((event) => event.type),
    ).toEqual(['subagent.started', 'subagent.completed']);
    await stopHost(fixture);
  }, 30_000);

  it('a worker killed in the middle of the child turn: the child resumes, one child exists, the parent completes', async () => {
    // A client host (it does not work the queue) submits; worker A dies before the child's
    // second model call; worker B takes over both the parent's act job and the child's step.
    const { fixture: client, config } = await startHost();
    const doomed = startWorker({
      ...config,
      stepTimeoutSeconds: 2,
      killPoint: { name: 'in-child-turn', iteration: 2 },
    });
    workers.add(doomed);
    await doomed.ready;
    const sessionId = await createSession();
    const handle = await client.host.submitTextTurn(sessionId, 'delegate the task');
    expect((await doomed.exited).signal).toBe('SIGKILL');
    workers.delete(doomed);
    const rescuer = startWorker({ ...config, stepTimeoutSeconds: 2, concurrency: 1 });
    workers.add(rescuer);
    await rescuer.ready;

    const result = await handle.result({ timeoutMs: 45_000 });
    expect(result.success).toBe(true);
    expect(result.response).toContain('"result":"child done"');
    const children = await childrenOf(sessionId);
    expect(children).toHaveLength(1);
    const child = children[0] as Session;
    // The child's first iteration ran once: it resumed rather than starting over.
    expect(await environment.effects(child.id)).toEqual([
      { toolCallId: 'childflag', tool: 'set_flag' },
    ]);
    expect((await environment.modelCalls(child.id)).map((call) => call.iteration)).toEqual([1, 2]);
    expect(historyProblems(await environment.backends.messages.load(child.id))).toEqual([]);
    expect(historyProblems(await environment.backends.messages.load(sessionId))).toEqual([]);
    const started = (await environment.backends.events.loadEvents(sessionId)).filter(
      (event) => event.type === 'subagent.started',
    );
    // The re-run of the parent's call found the child the first attempt created.
    expect(started.map((event) => event.data.resumed)).toEqual([false, true]);
    expect(started.every((event) => event.data.childSessionId === child.id)).toBe(true);
    await rescuer.stop();
    workers.delete(rescuer);
    await stopHost(client);
  }, 60_000);
});

describe('schedules on the pg-boss host', () => {
  it('a one-shot schedule is delivered once, as a scheduled user message that starts a turn', async () => {
    const { fixture } = await startHost();
    await fixture.host.work({ concurrency: 2 });
    const sessionId = await createSession();
    const result = await (await fixture.host.submitTextTurn(sessionId, 'remind once')).result({
      timeoutMs: 20_000,
    });
    expect(result.response).toBe('scheduled');
    expect(await waitFor(async () => (await scheduledAnswers(sessionId))[0], 'got ping')).toBe(
      'got ping',
    );
    const [schedule] = await fixture.host.schedules.list(sessionId);
    expect(schedule).toMatchObject({ kind: 'once', enabled: false, runCount: 1, nextRunAt: null });
    // The scheduled turn has the id derived from the schedule and its due time.
    const turn = await fixture.host
      .turn(scheduledTurnId(schedule?.id ?? '', schedule?.runAt ?? ''), sessionId)
      .result({ timeoutMs: 10_000 });
    expect(turn.response).toBe('got ping');
    const messages = await environment.backends.messages.load(sessionId);
    const delivered = scheduledMessages(messages);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]?.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY]).toMatchObject({
      scheduleId: schedule?.id,
      kind: 'once',
    });
    expect(historyProblems(messages)).toEqual([]);
    await stopHost(fixture);
  }, 30_000);

  it('a cron schedule fires again and again until it is cancelled', async () => {
    // The schedules' clock runs 60 times faster: `* * * * *` comes due about once a second.
    const { fixture } = await startHost({ clockSpeed: 60 });
    await fixture.host.work({ concurrency: 2 });
    const sessionId = await createSession();
    await (await fixture.host.submitTextTurn(sessionId, 'remind cron')).result({
      timeoutMs: 20_000,
    });
    await waitFor(async () => {
      const answers = await scheduledAnswers(sessionId);
      return answers.length >= 2 ? answers : undefined;
    }, 'two ticks');
    const [schedule] = await fixture.host.schedules.list(sessionId);
    expect(schedule).toMatchObject({ kind: 'cron', enabled: true });
    expect(schedule?.runCount).toBeGreaterThanOrEqual(2);
    const cancelled = await fixture.host.schedules.cancel(sessionId, schedule?.id ?? '');
    expect(cancelled).toMatchObject({ enabled: false, nextRunAt: null });
    // Whatever was delivering at the moment of the cancel settles; then nothing more comes.
    const session = await waitFor(async () => {
      const current = await environment.backends.sessions.getSession(sessionId);
      return current?.status === 'idle' ? current : undefined;
    }, 'an idle session');
    expect(session.status).toBe('idle');
    const delivered = scheduledMessages(await environment.backends.messages.load(sessionId)).length;
    // Two fake minutes: two more due times had the schedule still been enabled.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const messages = await environment.backends.messages.load(sessionId);
    expect(scheduledMessages(messages)).toHaveLength(delivered);
    expect(historyProblems(messages)).toEqual([]);
    const [after] = await fixture.host.schedules.list(sessionId);
    expect(after).toMatchObject({ enabled: false, runCount: delivered });
    await stopHost(fixture);
  }, 30_000);

  it('a schedule that came due while no host ran is delivered once a host works again', async () => {
    const { fixture: first, config } = await startHost();
    const sessionId = await createSession();
    const schedule = await first.host.schedules.create(sessionId, {
      description: 'ping',
      runAt: new Date(Date.now() + 300).toISOString(),
    });
    await stopHost(first);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const second = await startFixtureHost(config);
    hosts.add(second);
    await second.host.work({ concurrency: 2 });
    expect(await waitFor(async () => (await scheduledAnswers(sessionId))[0], 'got ping')).toBe(
      'got ping',
    );
    const turn = await second.host
      .turn(scheduledTurnId(schedule.id, schedule.runAt ?? ''), sessionId)
      .result({ timeoutMs: 10_000 });
    expect(turn.response).toBe('got ping');
    expect((await second.host.schedules.list(sessionId))[0]).toMatchObject({
      enabled: false,
      runCount: 1,
    });
    await stopHost(second);
  }, 30_000);
});
