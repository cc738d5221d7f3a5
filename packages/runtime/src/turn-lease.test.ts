import {
  defineCapability,
  defineTool,
  EverrunsError,
  messageText,
  type RuntimeBackends,
  type RuntimeSessionStore,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { resolveTurnLeaseOptions } from './held-turn-lease.js';
import { type InProcessRuntime, InProcessRuntimeBuilder, inMemoryBackends } from './index.js';

/** A model whose answers wait for a gate the test opens (or for the turn's signal). */
function gatedModel() {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let calls = 0;
  const config = LlmSimConfig.fromFunction(async (_request, info) => {
    calls++;
    const signal = info.signal;
    await Promise.race([
      gate,
      new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    ]);
    return `answer ${calls}`;
  });
  return {
    config,
    calls: () => calls,
    open() {
      open();
    },
  };
}

async function runtimeOn(
  backends: RuntimeBackends,
  config: LlmSimConfig,
  options: Parameters<InProcessRuntimeBuilder['options']>[0] = {},
  sessionId?: string,
): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
  const builder = new InProcessRuntimeBuilder().llmSim(config).backends(backends).options(options);
  if (!sessionId) builder.singleSession((session) => session.harness('plain', 'Answer briefly.'));
  const runtime = await builder.build();
  return { runtime, sessionId: sessionId ?? (runtime.defaultSessionId() as string) };
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 500 && !condition(); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect(condition()).toBe(true);
}

/** Session store methods replaced for one test. */
function withSessions(
  backends: RuntimeBackends,
  overrides: Partial<RuntimeSessionStore>,
): RuntimeBackends {
  const sessions = backends.sessions;
  const wrapped = new Proxy(sessions, {
    get(target, property) {
      const override = overrides[property as keyof RuntimeSessionStore];
      if (override) return override;
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...backends, sessions: wrapped };
}

describe('InProcessRuntime turn lease', () => {
  it('refuses a turn while a runtime on the same stores runs one, typed and writing nothing', async () => {
    const backends = inMemoryBackends();
    const model = gatedModel();
    const first = await runtimeOn(backends, model.config);
    const second = await runtimeOn(backends, LlmSimConfig.fixed('other'), {}, first.sessionId);
    const { sessionId } = first;

    const running = first.runtime.runTextTurn(sessionId, 'q1');
    await waitFor(() => model.calls() === 1);
    const messagesBefore = await backends.messages.count(sessionId);
    const eventsBefore = backends.events.collectedEvents?.(sessionId).length;
    const statusBefore = (await backends.sessions.getSession(sessionId))?.status;

    let refusal: unknown;
    await second.runtime.runTextTurn(sessionId, 'q2').catch((error) => {
      refusal = error;
    });
    expect(EverrunsError.hasCode(refusal, 'TURN_IN_PROGRESS')).toBe(true);
    const lease = await backends.sessions.getTurnLease(sessionId);
    expect((refusal as EverrunsError).details).toEqual({
      sessionId,
      holder: lease?.holderId,
      expiresAt: lease?.expiresAt,
    });
    expect(lease?.holderId).toMatch(/^runtime_[0-9a-f]{32}\/turn_/);
    expect(await backends.messages.count(sessionId)).toBe(messagesBefore);
    expect(backends.events.collectedEvents?.(sessionId).length).toBe(eventsBefore);
    expect((await backends.sessions.getSession(sessionId))?.status).toBe(statusBefore);

    model.open();
    expect((await running).response).toBe('answer 1');
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();
    expect((await second.runtime.runTextTurn(sessionId, 'q2')).response).toBe('other');
    expect((await backends.messages.load(sessionId)).map(messageText)).toEqual([
      'q1',
      'answer 1',
      'q2',
      'other',
    ]);
  });

  it('claims the lease before the input step and releases it when the turn ends', async () => {
    const backends = inMemoryBackends();
    const seen: string[] = [];
    const recording = withSessions(backends, {
      claimTurnLease: async (sessionId, holderId, durationMs) => {
        seen.push(`claim, ${await backends.messages.count(sessionId)} messages`);
        return backends.sessions.claimTurnLease(sessionId, holderId, durationMs);
      },
      releaseTurnLease: async (sessionId, holderId) => {
        seen.push(`release, ${await backends.messages.count(sessionId)} messages`);
        return backends.sessions.releaseTurnLease(sessionId, holderId);
      },
    });
    const { runtime, sessionId } = await runtimeOn(recording, LlmSimConfig.fixed('done'));
    await runtime.runTextTurn(sessionId, 'hi');
    expect(seen).toEqual(['claim, 0 messages', 'release, 2 messages']);
  });

  it('releases the lease whatever ends the turn: a model failure, an abort', async () => {
    const backends = inMemoryBackends();
    let failing = true;
    const config = LlmSimConfig.fromFunction(async (_request, info) => {
      if (failing) throw new Error('provider down');
      const signal = info.signal;
      await new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      return 'never';
    });
    const { runtime, sessionId } = await runtimeOn(backends, config);

    const failed = await runtime.runTextTurn(sessionId, 'fail');
    expect(failed.success).toBe(false);
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();

    failing = false;
    const controller = new AbortController();
    const aborted = runtime.runTextTurn(sessionId, 'slow', { signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' });
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();

    await expect(runtime.runTextTurn('session_unknown', 'x')).rejects.toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
  });

  it('keeps a long turn leased by renewing, so a short lease does not lapse under it', async () => {
    const backends = inMemoryBackends();
    const model = gatedModel();
    const options = { turnLease: { durationMs: 90, renewEveryMs: 30 } };
    const first = await runtimeOn(backends, model.config, options);
    const second = await runtimeOn(backends, LlmSimConfig.fixed('x'), options, first.sessionId);
    const running = first.runtime.runTextTurn(first.sessionId, 'long');
    await waitFor(() => model.calls() === 1);
    // Four lease durations later the lease is still held.
    await new Promise((resolve) => setTimeout(resolve, 360));
    await expect(second.runtime.runTextTurn(first.sessionId, 'q2')).rejects.toMatchObject({
      code: 'TURN_IN_PROGRESS',
    });
    model.open();
    await running;
    expect(await backends.sessions.getTurnLease(first.sessionId)).toBeNull();
  });

  it('stops a turn whose lease was taken over (renewal finds it gone): ABORTED, caused by TURN_IN_PROGRESS', async () => {
    const backends = inMemoryBackends();
    const model = gatedModel();
    const losing = withSessions(backends, { renewTurnLease: async () => null });
    const { runtime, sessionId } = await runtimeOn(losing, model.config, {
      turnLease: { durationMs: 60, renewEveryMs: 20 },
    });
    const turn = runtime.runTextTurn(sessionId, 'q');
    let failure: unknown;
    await turn.catch((error) => {
      failure = error;
    });
    model.open();
    expect(EverrunsError.hasCode(failure, 'ABORTED')).toBe(true);
    expect(EverrunsError.hasCode((failure as EverrunsError).cause, 'TURN_IN_PROGRESS')).toBe(true);
  });

  for (const conditioned of [true, false]) {
    it(`refuses the message write of a turn whose lease was taken over before its timer noticed (${conditioned ? 'the write renews the lease itself' : 'a store without leaseConditionedWrites: a renewal first'}); nothing stored`, async () => {
      const backends = inMemoryBackends();
      expect(backends.messages.leaseConditionedWrites).toBe(true);
      const messages = conditioned
        ? backends.messages
        : new Proxy(backends.messages, {
            get(target, property) {
              if (property === 'leaseConditionedWrites') return undefined;
              const value = Reflect.get(target, property, target);
              return typeof value === 'function' ? value.bind(target) : value;
            },
          });
      const model = gatedModel();
      const { runtime, sessionId } = await runtimeOn({ ...backends, messages }, model.config);
      const running = runtime.runTextTurn(sessionId, 'q1');
      await waitFor(() => model.calls() === 1);
      // Another holder takes the session over; the turn's renewal timer (every 20 s) has not run.
      const stale = await backends.sessions.getTurnLease(sessionId);
      expect(await backends.sessions.releaseTurnLease(sessionId, stale?.holderId as string)).toBe(
        true,
      );
      const taken = await backends.sessions.claimTurnLease(sessionId, 'elsewhere/turn', 60_000);
      model.open();
      let failure: unknown;
      await running.catch((error) => {
        failure = error;
      });
      const refusal = EverrunsError.hasCode(failure, 'ABORTED')
        ? (failure as EverrunsError).cause
        : failure;
      expect(EverrunsError.hasCode(refusal, 'TURN_IN_PROGRESS'), String(failure)).toBe(true);
      expect((refusal as EverrunsError).details).toMatchObject({
        sessionId,
        holder: 'elsewhere/turn',
      });
      expect((await backends.messages.load(sessionId)).map(messageText)).toEqual(['q1']);
      expect(await backends.sessions.getTurnLease(sessionId)).toEqual(taken);
    });
  }

  it('refuses runTurn and submitToolResults while another process holds the lease; the pause released it', async () => {
    const browser = defineCapability({
      id: 'browser',
      name: 'Browser',
      description: 'tools the client runs',
      tools: [
        defineTool({
          name: 'ask_user',
          description: 'asks the user in the client',
          inputSchema: z.object({ question: z.string() }),
          clientSide: true,
          execute: () => {
            throw new Error('runs in the client');
          },
        }),
      ],
    });
    const backends = inMemoryBackends();
    const runtime = await new InProcessRuntimeBuilder()
      .capability(browser)
      .llmSim(
        LlmSimConfig.sequence(['', 'thanks']).withToolCallSequence([
          [{ id: 'call_ask', name: 'ask_user', arguments: { question: 'colour?' } }],
          [],
        ]),
      )
      .backends(backends)
      .singleSession((session) => session.harness('h', 'Ask.').withCapability('browser'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const paused = await runtime.runTextTurn(sessionId, 'go');
    expect(paused.stopReason).toBe('waiting_for_tool_results');
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();

    // Another process (here: a direct claim on the shared store) holds the session.
    await backends.sessions.claimTurnLease(sessionId, 'elsewhere', 60_000);
    const before = await backends.messages.count(sessionId);
    const results = [{ toolCallId: 'call_ask', content: 'blue' }];
    const refused = await runtime
      .submitToolResults(sessionId, paused.turnId, results)
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({
      code: 'TURN_IN_PROGRESS',
      details: { sessionId, holder: 'elsewhere' },
    });
    await expect(runtime.runTextTurn(sessionId, 'again')).rejects.toMatchObject({
      code: 'TURN_IN_PROGRESS',
    });
    expect(await backends.messages.count(sessionId)).toBe(before);
    expect((await backends.sessions.getSession(sessionId))?.status).toBe(
      'waiting_for_tool_results',
    );

    expect(await backends.sessions.releaseTurnLease(sessionId, 'elsewhere')).toBe(true);
    const done = await runtime.submitToolResults(sessionId, paused.turnId, results);
    expect(done).toMatchObject({ response: 'thanks', stopReason: 'end_turn' });
    expect(await backends.sessions.getTurnLease(sessionId)).toBeNull();
  });

  it('takes its lease options from the builder and refuses bad ones', async () => {
    expect(resolveTurnLeaseOptions()).toEqual({ durationMs: 60_000, renewEveryMs: 20_000 });
    expect(resolveTurnLeaseOptions({ durationMs: 900 })).toEqual({
      durationMs: 900,
      renewEveryMs: 300,
    });
    for (const turnLease of [
      { durationMs: 0 },
      { durationMs: 1.5 },
      { durationMs: 100, renewEveryMs: 100 },
      { renewEveryMs: -1 },
    ]) {
      const backends = inMemoryBackends();
      await expect(
        new InProcessRuntimeBuilder()
          .llmSim(LlmSimConfig.fixed('x'))
          .backends(backends)
          .turnLease(turnLease)
          .singleSession((session) => session.harness('h', 'Answer.'))
          .build(),
      ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      // Refused before writing: no default model, no harness, no session.
      expect(await backends.providers.getDefaultModel()).toBeNull();
      expect(await backends.sessions.listSessions()).toEqual([]);
    }
    const backends = inMemoryBackends();
    const model = gatedModel();
    const { runtime, sessionId } = await runtimeOn(backends, model.config, {
      turnLease: { durationMs: 5_000 },
    });
    const running = runtime.runTextTurn(sessionId, 'q');
    await waitFor(() => model.calls() === 1);
    const lease = await backends.sessions.getTurnLease(sessionId);
    // The lease lasts what the builder said (by the store's clock, here this process's).
    expect(Date.parse(lease?.expiresAt ?? '') - Date.now()).toBeGreaterThan(3_000);
    expect(Date.parse(lease?.expiresAt ?? '') - Date.now()).toBeLessThanOrEqual(5_000);
    model.open();
    await running;
  });
});
