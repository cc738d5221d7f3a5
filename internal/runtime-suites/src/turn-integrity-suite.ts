// Turn integrity (issue 13, invariants 1-3): every tool call answered once whatever ends the
// turn, tool-call ids unique per session, a session never left active. One suite, run on the
// in-memory stores here (memory.test.ts) and on PostgreSQL by stores-postgres.
import {
  defineCapability,
  defineTool,
  EverrunsError,
  type LlmRequest,
  type Message,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, LlmSimConfig } from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type BackendsUnderTest,
  callIds,
  expectCode,
  expectEachCallAnsweredOnce,
  expectEndedIdle,
  expectWellFormed,
  type LlmSimFunction,
  resultOf,
  waitUntil,
} from './turn-assertions.js';

type FaultPredicate = (args: unknown[]) => boolean;

/**
 * Wraps backends so a test can make any store method reject with `STORE_UNAVAILABLE`:
 * `fail('messages.storeMessage', predicate)` until `heal()`.
 */
function withFaults(backends: RuntimeBackends) {
  const faults = new Map<string, FaultPredicate>();
  const injected = () =>
    new EverrunsError({ code: 'STORE_UNAVAILABLE', message: 'injected store failure' });
  const wrap = <T extends object>(target: T, prefix: string): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const fault = faults.get(`${prefix}${String(property)}`);
          if (fault?.(args)) return Promise.reject(injected());
          return value.apply(object, args);
        };
      },
    });
  const stores = new Map<PropertyKey, unknown>();
  for (const name of ['messages', 'sessions', 'storage', 'events'] as const) {
    stores.set(name, wrap(backends[name] as object, `${name}.`));
  }
  const wrapped = new Proxy(backends, {
    get(object, property) {
      if (stores.has(property)) return stores.get(property);
      const value = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const fault = faults.get(String(property));
        if (fault?.(args)) return Promise.reject(injected());
        return value.apply(object, args);
      };
    },
  });
  return {
    backends: wrapped,
    fail(path: string, predicate: FaultPredicate = () => true) {
      faults.set(path, predicate);
    },
    heal() {
      faults.clear();
    },
  };
}

/** Registers the turn-integrity suite on the backends `create` makes (one per test). */
export function describeTurnIntegrity(
  name: string,
  create: () => Promise<BackendsUnderTest>,
): void {
  describe(`turn integrity on ${name} stores`, () => {
    const probe = {
      hangStarted: 0,
      runs: [] as string[],
    };
    const capability = defineCapability({
      id: 'integrity_probe',
      name: 'Integrity probe',
      description: 'tools that hang, count, time out and throw',
      tools: [
        defineTool({
          name: 'hang',
          description: 'runs until the turn is aborted',
          inputSchema: z.object({}),
          execute: (_input, context) =>
            new Promise((_resolve, reject) => {
              probe.hangStarted++;
              context.signal.addEventListener('abort', () => reject(new Error('stopped')));
            }),
        }),
        defineTool({
          name: 'count',
          description: 'records that it ran',
          inputSchema: z.object({ label: z.string() }),
          execute: ({ label }) => {
            probe.runs.push(label);
            return `ran ${label}`;
          },
        }),
        defineTool({
          name: 'slow',
          description: 'never finishes within its timeout',
          inputSchema: z.object({}),
          timeoutMs: 30,
          execute: () => new Promise(() => {}),
        }),
        defineTool({
          name: 'explode',
          description: 'throws',
          inputSchema: z.object({}),
          execute: () => {
            throw new Error('kaboom');
          },
        }),
        defineTool({
          name: 'ask_user',
          description: 'the client answers',
          inputSchema: z.object({ question: z.string() }),
          clientSide: true,
          execute: () => 'never on the server',
        }),
      ],
    });

    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });

    /** A runtime on fresh backends (wrapped for faults) whose model is `model`. */
    async function setup(
      model: LlmSimFunction,
      options: { maxIterations?: number; systemPrompt?: () => unknown } = {},
    ) {
      probe.hangStarted = 0;
      probe.runs = [];
      const underTest = await create();
      if (underTest.destroy) cleanups.push(underTest.destroy);
      const faults = withFaults(underTest.backends);
      const sent: LlmRequest[] = [];
      const builder = new InProcessRuntimeBuilder()
        .capability(capability)
        .backends(faults.backends)
        .llmSim(
          LlmSimConfig.fromFunction((request, info) => {
            sent.push(request);
            return model(request, info);
          }),
        )
        .singleSession((session) => {
          const harness = session.harness('h', 'You test.').withCapability('integrity_probe');
          if (options.systemPrompt) harness.withCapability('integrity_prompt');
          return harness.agent('a', 'Use tools.');
        });
      if (options.maxIterations !== undefined) {
        builder.limits({ maxIterations: options.maxIterations });
      }
      const prompt = options.systemPrompt;
      if (prompt) {
        builder.capability(
          defineCapability({
            id: 'integrity_prompt',
            name: 'Integrity prompt',
            description: 'a prompt function under test',
            systemPrompt: () => prompt() as string,
            tools: [],
          }),
        );
      }
      const runtime = await builder.build();
      const sessionId = runtime.defaultSessionId() as string;
      return { runtime, sessionId, sent, faults, backends: underTest.backends };
    }

    it('abort while a tool runs: the call gets one error result, the turn fails, the session idles, and later turns send a whole history', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? { toolCalls: [{ id: 'call_hang', name: 'hang', arguments: {} }] }
          : `answer ${request.messages.length}`,
      );
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'hang please', {
        signal: controller.signal,
      });
      await waitUntil(() => probe.hangStarted === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_hang')).toMatchObject({
        isError: true,
        content: expect.stringContaining('aborted'),
      });
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');

      for (const text of ['next', 'and next']) {
        const result = await t.runtime.runTextTurn(t.sessionId, text);
        expect(result).toMatchObject({ success: true, stopReason: 'end_turn' });
      }
      for (const request of t.sent) expectWellFormed(request.messages);
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
    });

    it('abort during one of several calls: each call of the step gets exactly one result and the rest do not run', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? {
              toolCalls: [
                { id: 'call_a', name: 'count', arguments: { label: 'a' } },
                { id: 'call_h', name: 'hang', arguments: {} },
                { id: 'call_b', name: 'count', arguments: { label: 'b' } },
                { id: 'call_q', name: 'ask_user', arguments: { question: 'q' } },
              ],
            }
          : 'fine',
      );
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'go', { signal: controller.signal });
      await waitUntil(() => probe.hangStarted === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      expect(probe.runs).toEqual(['a']);
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_a')).toMatchObject({ isError: false, content: 'ran a' });
      for (const id of ['call_h', 'call_b', 'call_q']) {
        expect(resultOf(stored, id)).toMatchObject({ isError: true });
      }
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a tool that times out or throws gets an error result and the turn goes on', async () => {
      const t = await setup((request) =>
        request.iteration === 1 && request.messages.length === 1
          ? {
              toolCalls: [
                { id: 'call_slow', name: 'slow', arguments: {} },
                { id: 'call_boom', name: 'explode', arguments: {} },
              ],
            }
          : 'done',
      );
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({
        success: true,
        stopReason: 'end_turn',
      });
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_slow')?.isError).toBe(true);
      expect(resultOf(stored, 'call_boom')).toMatchObject({
        isError: true,
        content: expect.stringContaining('kaboom'),
      });
      expect(await t.runtime.runTextTurn(t.sessionId, 'more')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a store error while storing a tool result fails the turn, idles the session and still answers the call once', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? { toolCalls: [{ id: 'call_c', name: 'count', arguments: { label: 'c' } }] }
          : 'ok',
      );
      let failures = 0;
      t.faults.fail(
        'messages.storeMessage',
        (args) => (args[1] as Message).role === 'tool_result' && failures++ === 0,
      );
      await expectCode(t.runtime.runTextTurn(t.sessionId, 'go'), 'STORE_UNAVAILABLE');
      t.faults.heal();
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_c')?.isError).toBe(true);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a store that stays down for the rest of a turn: the next turn stores the missing result once', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? { toolCalls: [{ id: 'call_c', name: 'count', arguments: { label: 'c' } }] }
          : 'ok',
      );
      t.faults.fail('messages.storeMessage', (args) => (args[1] as Message).role === 'tool_result');
      t.faults.fail('messages.storeMessages');
      await expectCode(t.runtime.runTextTurn(t.sessionId, 'go'), 'STORE_UNAVAILABLE');
      t.faults.heal();
      expect(resultOf(await t.runtime.messages(t.sessionId), 'call_c')).toBeUndefined();
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');

      expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({ success: true });
      expect(await t.runtime.runTextTurn(t.sessionId, 'and again')).toMatchObject({
        success: true,
      });
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_c')?.isError).toBe(true);
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a process that crashed mid-turn: the next turn repairs the stored history once and succeeds', async () => {
      const t = await setup(() => 'after the crash');
      // What a crash leaves: the model's tool call stored, no result, the session active.
      const crashedTurn = `turn_crashed${Math.random().toString(16).slice(2)}`;
      await t.backends.messages.storeMessage(t.sessionId, {
        role: 'user',
        turnId: crashedTurn,
        idempotencyKey: `${crashedTurn}/input`,
        content: [{ type: 'text', text: 'before the crash' }],
      });
      await t.backends.messages.storeMessage(t.sessionId, {
        role: 'agent',
        turnId: crashedTurn,
        idempotencyKey: `${crashedTurn}/reason/1`,
        content: [{ type: 'tool_call', id: 'call_lost', name: 'count', arguments: { label: 'x' } }],
        metadata: { iteration: 1 },
      });
      await t.backends.sessions.updateSessionStatus(t.sessionId, 'active');

      expect(await t.runtime.runTextTurn(t.sessionId, 'hello again')).toMatchObject({
        success: true,
      });
      expect(await t.runtime.runTextTurn(t.sessionId, 'once more')).toMatchObject({
        success: true,
      });
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_lost')).toMatchObject({ isError: true });
      expect(probe.runs).toEqual([]);
      for (const request of t.sent) expectWellFormed(request.messages);
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('idle');
    });

    it('a turn stopped by maxIterations leaves every call answered', async () => {
      let n = 0;
      const t = await setup(
        () => ({ toolCalls: [{ name: 'count', arguments: { label: `${++n}` } }] }),
        { maxIterations: 2 },
      );
      expect(await t.runtime.runTextTurn(t.sessionId, 'loop')).toMatchObject({
        success: true,
        stopReason: 'max_iterations',
      });
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      await t.runtime.runTextTurn(t.sessionId, 'loop again');
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a new turn while the session waits for client tool results is refused with TURN_WAITING_FOR_TOOL_RESULTS and changes nothing', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? { toolCalls: [{ id: 'call_ask', name: 'ask_user', arguments: { question: 'q' } }] }
          : 'thanks',
      );
      const paused = await t.runtime.runTextTurn(t.sessionId, 'ask me');
      expect(paused.stopReason).toBe('waiting_for_tool_results');
      const messagesBefore = (await t.runtime.messages(t.sessionId)).length;
      const eventsBefore = t.runtime.events(t.sessionId).length;
      const error = await expectCode(
        t.runtime.runTextTurn(t.sessionId, 'something else'),
        'TURN_WAITING_FOR_TOOL_RESULTS',
      );
      expect(error.details).toMatchObject({
        turnId: paused.turnId,
        pendingToolCallIds: ['call_ask'],
      });
      expect((await t.runtime.messages(t.sessionId)).length).toBe(messagesBefore);
      expect(t.runtime.events(t.sessionId).length).toBe(eventsBefore);
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('waiting_for_tool_results');

      // The documented way out: an error result abandons the call.
      await t.runtime.submitToolResults(t.sessionId, paused.turnId, [
        { toolCallId: 'call_ask', content: 'the user left', isError: true },
      ]);
      expect(await t.runtime.runTextTurn(t.sessionId, 'something else')).toMatchObject({
        success: true,
      });
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a model repeating a tool call id in the same turn gets the call run again under a fresh id', async () => {
      const t = await setup((request) => {
        const calls = request.messages.filter((message) => message.role === 'agent').length;
        if (calls === 0)
          return { toolCalls: [{ id: 'call_same', name: 'count', arguments: { label: '1' } }] };
        if (calls === 1)
          return { toolCalls: [{ id: 'call_same', name: 'count', arguments: { label: '2' } }] };
        return 'counted twice';
      });
      expect(await t.runtime.runTextTurn(t.sessionId, 'count')).toMatchObject({
        success: true,
        response: 'counted twice',
        toolCallsCount: 2,
      });
      expect(probe.runs).toEqual(['1', '2']);
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      const ids = callIds(stored);
      expect(ids).toHaveLength(2);
      expect(ids[0]).toBe('call_same');
      expect(new Set(ids).size).toBe(2);
      expect(resultOf(stored, ids[1] as string)).toMatchObject({ content: 'ran 2' });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a model repeating a tool call id of an earlier turn gets the call run as a new call', async () => {
      const t = await setup((request) => {
        const last = request.messages.at(-1);
        if (last?.role !== 'user') return 'done';
        const label = last.content[0]?.type === 'text' ? last.content[0].text : '?';
        return { toolCalls: [{ id: 'call_same', name: 'count', arguments: { label } }] };
      });
      await t.runtime.runTextTurn(t.sessionId, 'first');
      await t.runtime.runTextTurn(t.sessionId, 'second');
      await t.runtime.runTextTurn(t.sessionId, 'third');
      expect(probe.runs).toEqual(['first', 'second', 'third']);
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(new Set(callIds(stored)).size).toBe(3);
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a store that fails while the reason step loads the history ends the turn: turn.failed, session.idled, status idle', async () => {
      const t = await setup(() => 'unreachable');
      // Whichever read the backends offer for the history (the snapshot, the history with its
      // source, the plain load) fails.
      t.faults.fail('loadTurnSnapshot');
      t.faults.fail('messages.loadWithSource');
      t.faults.fail('messages.load');
      await expectCode(t.runtime.runTextTurn(t.sessionId, 'go'), 'STORE_UNAVAILABLE');
      t.faults.heal();
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      expect(await t.runtime.runTextTurn(t.sessionId, 'go again')).toMatchObject({
        success: true,
      });
    });

    it('a failing model ends the turn with turn.failed and an idle session', async () => {
      const t = await setup(() => {
        throw new Error('provider down');
      });
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({
        success: false,
        stopReason: 'llm_error',
      });
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
    });

    it('a capability prompt that throws, or returns something that is not text, ends the turn idle', async () => {
      let prompt: unknown = () => {
        throw new Error('prompt bug');
      };
      const t = await setup(() => 'fine', {
        systemPrompt: () => (typeof prompt === 'function' ? prompt() : prompt),
      });
      const first = await t.runtime.runTextTurn(t.sessionId, 'go');
      expect(first).toMatchObject({ success: false });
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      prompt = 42;
      await t.runtime.runTextTurn(t.sessionId, 'go').catch(() => undefined);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      prompt = 'all good';
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({ success: true });
    });

    it('when even the idle write fails, the typed error says how to resume, and the next turn works', async () => {
      const t = await setup(() => 'fine');
      t.faults.fail('sessions.updateSessionStatus', (args) => args[1] === 'idle');
      const error = await expectCode(t.runtime.runTextTurn(t.sessionId, 'go'), 'STORE_UNAVAILABLE');
      expect(error.details).toMatchObject({
        sessionId: t.sessionId,
        resume: expect.any(String),
      });
      expect(error.message).toMatch(/next turn/);
      t.faults.heal();
      expect(await t.runtime.runTextTurn(t.sessionId, 'go again')).toMatchObject({
        success: true,
      });
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('idle');
    });

    it('public turn methods reject instead of throwing synchronously', async () => {
      const t = await setup(() => 'fine');
      let pending: Promise<unknown> | undefined;
      expect(() => {
        pending = t.runtime.runTurn(42 as unknown as string, undefined as never);
      }).not.toThrow();
      await expectCode(pending as Promise<unknown>, 'INVALID_INPUT');
    });
  });
}
