// Turn integrity on paths the first suite does not walk (issue 13): aborts during an approval or
// a model call, tools that ignore their signal, limits reached with calls pending, hostile
// submissions, a vanishing session, a failing event bus, racing turns, close(), lost leases.
import {
  defineCapability,
  defineTool,
  EverrunsError,
  type LlmRequest,
  type RuntimeBackends,
} from '@everruns-ts/core';
import {
  ApprovalGatingFileStore,
  type FileApprovalGate,
  InProcessRuntimeBuilder,
  LlmSimConfig,
} from '@everruns-ts/runtime';
import { DurableFileApprovals } from '@everruns-ts/runtime/host';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type BackendsUnderTest,
  callIds,
  expectAnyCode,
  expectCode,
  expectEachCallAnsweredOnce,
  expectEndedIdle,
  expectWellFormed,
  type LlmSimFunction,
  resultOf,
  waitUntil,
} from './turn-assertions.js';

/** Store methods a test replaces: `override('sessions.getSession', fn)` until `restore()`. */
function withOverrides(backends: RuntimeBackends) {
  const overrides = new Map<string, (...args: unknown[]) => unknown>();
  const wrap = <T extends object>(target: T, prefix: string): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const override = overrides.get(`${prefix}${String(property)}`);
          if (override) return override(...args);
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
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
  return {
    backends: wrapped,
    override(path: string, replacement: (...args: unknown[]) => unknown) {
      overrides.set(path, replacement);
    },
    restore() {
      overrides.clear();
    },
  };
}

/** Registers the suite of the less-walked paths on the backends `create` makes (one per test). */
export function describeTurnIntegrityPaths(
  name: string,
  create: () => Promise<BackendsUnderTest>,
): void {
  describe(`turn integrity paths on ${name} stores`, () => {
    const probe = { hangStarted: 0, stubbornStarted: 0, runs: [] as string[] };
    const capability = defineCapability({
      id: 'paths_probe',
      name: 'Paths probe',
      description: 'tools that hang, ignore their signal, count, write files',
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
          name: 'stubborn',
          description: 'never settles and ignores its signal',
          inputSchema: z.object({}),
          timeoutMs: 40,
          execute: () => {
            probe.stubbornStarted++;
            return new Promise(() => {});
          },
        }),
        defineTool({
          name: 'stubborn_forever',
          description: 'never settles, ignores its signal, default timeout',
          inputSchema: z.object({}),
          execute: () => {
            probe.stubbornStarted++;
            return new Promise(() => {});
          },
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
          name: 'fragile',
          description: 'its validation throws for one label',
          inputSchema: z.object({ label: z.string() }).superRefine((value) => {
            if (value.label === 'boom') throw new Error('validator bug');
          }),
          execute: ({ label }) => {
            probe.runs.push(label);
            return `ran ${label}`;
          },
        }),
        defineTool({
          name: 'write_note',
          description: 'writes a file through the gated workspace',
          inputSchema: z.object({ path: z.string(), text: z.string() }),
          execute: async ({ path, text }, context) => {
            await context.fileSystem.writeFile(path, text, 'text');
            return `wrote ${path}`;
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

    /** A runtime on fresh backends (wrapped for overrides) whose model is `model`. */
    async function setup(
      model: LlmSimFunction,
      options: {
        maxIterations?: number;
        toolTimeoutMs?: number;
        gate?: FileApprovalGate;
        durableApprovals?: (approvals: DurableFileApprovals) => void;
        turnLease?: { durationMs: number; renewEveryMs: number };
      } = {},
    ) {
      probe.hangStarted = 0;
      probe.stubbornStarted = 0;
      probe.runs = [];
      const underTest = await create();
      if (underTest.destroy) cleanups.push(underTest.destroy);
      const wrapped = withOverrides(underTest.backends);
      const sent: LlmRequest[] = [];
      const builder = new InProcessRuntimeBuilder()
        .capability(capability)
        .backends(wrapped.backends)
        .llmSim(
          LlmSimConfig.fromFunction((request, info) => {
            sent.push(request);
            return model(request, info);
          }),
        )
        .singleSession((session) =>
          session.harness('h', 'You test.').withCapability('paths_probe').agent('a', 'Use tools.'),
        );
      const limits: { maxIterations?: number; toolTimeoutMs?: number } = {};
      if (options.maxIterations !== undefined) limits.maxIterations = options.maxIterations;
      if (options.toolTimeoutMs !== undefined) limits.toolTimeoutMs = options.toolTimeoutMs;
      builder.limits(limits);
      if (options.turnLease) builder.turnLease(options.turnLease);
      const gate = options.gate;
      if (gate) {
        // The default workspaces of a runtime, gated per tool call (so the gate sees its signal).
        const plain = await new InProcessRuntimeBuilder()
          .llmSim(LlmSimConfig.fromFunction(() => 'unused'))
          .build();
        const workspaces = plain.hostAdapter.fileSystems;
        builder.fileSystemFactory({
          forSession: (sessionId: string) => workspaces.forSession(sessionId),
          forToolCall: (workspace, scope) =>
            new ApprovalGatingFileStore(workspace, gate, {
              sessionId: scope.sessionId,
              ...(scope.signal ? { signal: scope.signal } : {}),
            }),
        });
      }
      if (options.durableApprovals) {
        const plain = await new InProcessRuntimeBuilder()
          .llmSim(LlmSimConfig.fromFunction(() => 'unused'))
          .build();
        const workspaces = plain.hostAdapter.fileSystems;
        const approvals = new DurableFileApprovals({
          storage: wrapped.backends.storage,
          events: wrapped.backends.events,
          pollIntervalMs: 20,
        });
        options.durableApprovals(approvals);
        builder.fileSystemFactory({
          forSession: (sessionId: string) => workspaces.forSession(sessionId),
          forToolCall: (workspace, scope) => approvals.gatedFileSystem(workspace, scope),
        });
      }
      const runtime = await builder.build();
      const sessionId = runtime.defaultSessionId() as string;
      const snapshot = async () => ({
        messages: (await runtime.messages(sessionId)).length,
        events: runtime.events(sessionId).length,
        status: (await runtime.getSession(sessionId))?.status,
      });
      return { runtime, sessionId, sent, wrapped, backends: underTest.backends, snapshot };
    }

    const oneCall = (call: { id: string; name: string; arguments: Record<string, unknown> }) =>
      ((request: LlmRequest) =>
        request.messages.length === 1 ? { toolCalls: [call] } : 'done') as LlmSimFunction;

    it('abort while a file write waits for its approval: the call gets one result, the session idles, the file is not written', async () => {
      let asked = 0;
      let approveLate: (answer: 'approve') => void = () => {};
      const t = await setup(
        oneCall({ id: 'call_w', name: 'write_note', arguments: { path: '/n.txt', text: 'x' } }),
        {
          gate: () => {
            asked++;
            return new Promise((resolve) => {
              approveLate = resolve;
            });
          },
        },
      );
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'write', { signal: controller.signal });
      await waitUntil(() => asked === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      // An approval that comes after the abort writes nothing.
      approveLate('approve');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_w')?.isError).toBe(true);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      await expectCode(t.runtime.readFile(t.sessionId, '/n.txt'), 'FILE_NOT_FOUND');
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('abort while a durable approval is pending: one result for the call, the session idles, a later approval writes nothing', async () => {
      let approvals: DurableFileApprovals | undefined;
      const t = await setup(
        oneCall({ id: 'call_w', name: 'write_note', arguments: { path: '/d.txt', text: 'x' } }),
        {
          durableApprovals: (made) => {
            approvals = made;
          },
        },
      );
      const durable = approvals as DurableFileApprovals;
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'write', { signal: controller.signal });
      await waitUntil(() =>
        t.runtime.events(t.sessionId).some((event) => event.type === 'approval.requested'),
      );
      controller.abort();
      await expectCode(running, 'ABORTED');
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_w')?.isError).toBe(true);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      // The aborted call's request is no longer awaited: not listed, stored as cancelled, and a
      // decision on it is a no-op that says so (the record comes back `cancelled`).
      const requested = t.runtime
        .events(t.sessionId)
        .find((event) => event.type === 'approval.requested');
      const approvalId = (requested?.data as { approvalId?: string } | undefined)?.approvalId ?? '';
      expect(await durable.pending(t.sessionId)).toEqual([]);
      expect(await durable.get(t.sessionId, approvalId)).toMatchObject({
        status: 'cancelled',
        cancelReason: expect.any(String),
      });
      expect(await durable.decide(t.sessionId, approvalId, 'approve')).toMatchObject({
        status: 'cancelled',
      });
      expect(
        t.runtime.events(t.sessionId).filter((event) => event.type === 'approval.decided'),
      ).toEqual([]);
      expect((await durable.get(t.sessionId, approvalId))?.status).toBe('cancelled');
      for (const record of await durable.pending(t.sessionId)) {
        await durable.decide(t.sessionId, record.approvalId, 'approve');
      }
      await new Promise((resolve) => setTimeout(resolve, 60));
      await expectCode(t.runtime.readFile(t.sessionId, '/d.txt'), 'FILE_NOT_FOUND');
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('abort while the model is answering: nothing half-stored, the turn fails idle, the next turn works', async () => {
      let calls = 0;
      const t = await setup(async (_request, info) => {
        calls++;
        if (calls > 1) return 'second answer';
        await new Promise((_resolve, reject) => {
          info.signal?.addEventListener('abort', () => reject(info.signal?.reason), {
            once: true,
          });
        });
        return 'never';
      });
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'think', { signal: controller.signal });
      await waitUntil(() => calls === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      const stored = await t.runtime.messages(t.sessionId);
      expect(stored.map((message) => message.role)).toEqual(['user']);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({
        success: true,
        response: 'second answer',
      });
      expect((await t.runtime.messages(t.sessionId)).map((message) => message.role)).toEqual([
        'user',
        'user',
        'agent',
      ]);
    });

    it('a model that ignores its signal does not hold an aborted turn, and its late answer is not stored', async () => {
      let answerLate: (answer: string) => void = () => {};
      let calls = 0;
      const t = await setup(() => {
        calls++;
        if (calls > 1) return 'second answer';
        return new Promise<string>((resolve) => {
          answerLate = resolve;
        });
      });
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'think', { signal: controller.signal });
      await waitUntil(() => calls === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      answerLate('too late');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await t.runtime.messages(t.sessionId)).map((message) => message.role)).toEqual([
        'user',
      ]);
      expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({
        success: true,
        response: 'second answer',
      });
      expect((await t.runtime.messages(t.sessionId)).map((message) => message.role)).toEqual([
        'user',
        'user',
        'agent',
      ]);
    });

    it('a tool that never settles and ignores its signal is ended by its timeout', async () => {
      const t = await setup(oneCall({ id: 'call_s', name: 'stubborn', arguments: {} }));
      const started = Date.now();
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({ success: true });
      expect(Date.now() - started).toBeLessThan(5_000);
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_s')?.isError).toBe(true);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.completed');
    });

    it('a tool that ignores its signal does not hold an aborted turn', async () => {
      const t = await setup(oneCall({ id: 'call_s', name: 'stubborn_forever', arguments: {} }), {
        toolTimeoutMs: 600_000,
      });
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'go', { signal: controller.signal });
      await waitUntil(() => probe.stubbornStarted === 1);
      controller.abort();
      await expectCode(running, 'ABORTED');
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
    });

    it('maxIterations reached exactly while tool calls (server and client) are pending: every call answered, the session idle', async () => {
      const t = await setup(
        () => ({
          toolCalls: [
            { id: 'call_c', name: 'count', arguments: { label: 'c' } },
            { id: 'call_q', name: 'ask_user', arguments: { question: 'q' } },
          ],
        }),
        { maxIterations: 1 },
      );
      // The server call runs; the turn waits for the client's, then stops at the limit.
      const result = await t.runtime.runTextTurn(t.sessionId, 'go');
      expect(result).toMatchObject({ stopReason: 'waiting_for_tool_results', iterations: 1 });
      const paused = await t.runtime.messages(t.sessionId);
      expect(resultOf(paused, 'call_c')).toMatchObject({ isError: false, content: 'ran c' });
      expect(resultOf(paused, 'call_q')).toBeUndefined();
      expect(
        await t.runtime.submitToolResults(t.sessionId, result.turnId, [
          { toolCallId: 'call_q', content: 'yes' },
        ]),
      ).toMatchObject({ success: true, stopReason: 'max_iterations', toolCallsCount: 2 });
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.completed');
      expect(probe.runs).toEqual(['c']);
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('50 tool calls where the 25th throws during validation: 50 results, the others run', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? {
              toolCalls: Array.from({ length: 50 }, (_, index) => ({
                id: `call_${index + 1}`,
                name: 'fragile',
                arguments: { label: index === 24 ? 'boom' : `n${index + 1}` },
              })),
            }
          : 'all done',
      );
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({
        success: true,
        response: 'all done',
        toolCallsCount: 50,
      });
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(callIds(stored)).toHaveLength(50);
      expect(resultOf(stored, 'call_25')).toMatchObject({
        isError: true,
        content: expect.stringContaining('validator bug'),
      });
      expect(probe.runs).toHaveLength(49);
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a steering message that arrives while the turn is aborting is refused or stored whole; the history stays well formed', async () => {
      const t = await setup(oneCall({ id: 'call_h', name: 'hang', arguments: {} }));
      const controller = new AbortController();
      const running = t.runtime.runTextTurn(t.sessionId, 'go', { signal: controller.signal });
      await waitUntil(() => probe.hangStarted === 1);
      const steering = t.runtime.steerText(t.sessionId, 'and also this');
      controller.abort();
      const late = t.runtime.steerText(t.sessionId, 'too late?');
      await expectCode(running, 'ABORTED');
      for (const outcome of await Promise.allSettled([steering, late])) {
        if (outcome.status === 'rejected') {
          expect(EverrunsError.hasCode(outcome.reason, 'INVALID_INPUT')).toBe(true);
        }
      }
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('submitToolResults with unknown, duplicate or foreign ids, or after the turn ended, is refused with a typed error and changes nothing', async () => {
      const t = await setup((request) =>
        request.messages.length === 1
          ? {
              toolCalls: [
                { id: 'call_q1', name: 'ask_user', arguments: { question: '1' } },
                { id: 'call_q2', name: 'ask_user', arguments: { question: '2' } },
              ],
            }
          : 'thanks',
      );
      const paused = await t.runtime.runTextTurn(t.sessionId, 'ask');
      expect(paused.stopReason).toBe('waiting_for_tool_results');
      const before = await t.snapshot();
      const refusals: Array<[string, Array<{ toolCallId: string; content: string }>, string]> = [
        ['unknown id', [{ toolCallId: 'call_nope', content: 'x' }], 'INVALID_INPUT'],
        [
          'unknown id beside a known one',
          [
            { toolCallId: 'call_q1', content: 'x' },
            { toolCallId: 'call_nope', content: 'x' },
          ],
          'INVALID_INPUT',
        ],
        [
          'duplicate id',
          [
            { toolCallId: 'call_q1', content: 'x' },
            { toolCallId: 'call_q1', content: 'y' },
          ],
          'INVALID_INPUT',
        ],
      ];
      for (const [what, results, code] of refusals) {
        await expectCode(
          t.runtime.submitToolResults(t.sessionId, paused.turnId, results),
          code,
        ).catch((error: unknown) => {
          throw new Error(`${what}: ${String(error)}`);
        });
        expect(await t.snapshot(), what).toEqual(before);
      }
      await expectCode(
        t.runtime.submitToolResults(t.sessionId, 'turn_unknown', [
          { toolCallId: 'call_q1', content: 'x' },
        ]),
        'INVALID_INPUT',
      );
      expect(await t.snapshot()).toEqual(before);

      // Missing ids: the turn keeps waiting for the rest.
      const partial = await t.runtime.submitToolResults(t.sessionId, paused.turnId, [
        { toolCallId: 'call_q1', content: 'one' },
      ]);
      expect(partial.stopReason).toBe('waiting_for_tool_results');
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('waiting_for_tool_results');
      // The same id again: refused, nothing changed.
      const afterPartial = await t.snapshot();
      await expectCode(
        t.runtime.submitToolResults(t.sessionId, paused.turnId, [
          { toolCallId: 'call_q1', content: 'again' },
        ]),
        'INVALID_INPUT',
      );
      expect(await t.snapshot()).toEqual(afterPartial);
      const done = await t.runtime.submitToolResults(t.sessionId, paused.turnId, [
        { toolCallId: 'call_q2', content: 'two' },
      ]);
      expect(done).toMatchObject({ success: true, response: 'thanks' });

      // After the turn ended.
      const ended = await t.snapshot();
      await expectCode(
        t.runtime.submitToolResults(t.sessionId, paused.turnId, [
          { toolCallId: 'call_q2', content: 'late' },
        ]),
        'INVALID_INPUT',
      );
      expect(await t.snapshot()).toEqual(ended);
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      expect(ended.status).toBe('idle');
    });

    it('abort while a resumed turn runs (after submitToolResults): every call answered once, the session idle, nothing left waiting', async () => {
      let hung = 0;
      const t = await setup(async (request) => {
        const agents = request.messages.filter((message) => message.role === 'agent').length;
        if (agents === 0) {
          return { toolCalls: [{ id: 'call_q', name: 'ask_user', arguments: { question: 'q' } }] };
        }
        if (agents === 1) {
          return {
            toolCalls: [
              { id: 'call_h', name: 'hang', arguments: {} },
              { id: 'call_c', name: 'count', arguments: { label: 'c' } },
            ],
          };
        }
        hung++;
        return 'done';
      });
      const paused = await t.runtime.runTextTurn(t.sessionId, 'ask');
      expect(paused.stopReason).toBe('waiting_for_tool_results');

      // A signal that fired already: refused before anything is stored, the turn keeps waiting.
      const fired = new AbortController();
      fired.abort();
      const before = await t.snapshot();
      await expectCode(
        t.runtime.submitToolResults(
          t.sessionId,
          paused.turnId,
          [{ toolCallId: 'call_q', content: 'yes' }],
          { signal: fired.signal },
        ),
        'ABORTED',
      );
      expect(await t.snapshot()).toEqual(before);

      const controller = new AbortController();
      const resumed = t.runtime.submitToolResults(
        t.sessionId,
        paused.turnId,
        [{ toolCallId: 'call_q', content: 'yes' }],
        { signal: controller.signal },
      );
      await waitUntil(() => probe.hangStarted === 1);
      controller.abort();
      await expectCode(resumed, 'ABORTED');
      expect(hung).toBe(0);
      const stored = await t.runtime.messages(t.sessionId);
      expectEachCallAnsweredOnce(stored);
      expect(resultOf(stored, 'call_q')).toMatchObject({ content: 'yes', isError: false });
      await expectEndedIdle(t.runtime, t.sessionId, 'turn.failed');
      await expectCode(
        t.runtime.submitToolResults(t.sessionId, paused.turnId, [
          { toolCallId: 'call_q', content: 'again' },
        ]),
        'INVALID_INPUT',
      );
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      for (const request of t.sent) expectWellFormed(request.messages);
    });

    it('a session that goes missing mid-turn: a typed error, no hang, and the runtime stays usable', async () => {
      let vanish = false;
      const t = await setup((request) => {
        if (request.messages.length === 1) vanish = true;
        return request.messages.length === 1
          ? { toolCalls: [{ id: 'call_c', name: 'count', arguments: { label: 'c' } }] }
          : 'done';
      });
      const missing = (sessionId: unknown) =>
        Promise.reject(
          new EverrunsError({
            code: 'SESSION_NOT_FOUND',
            message: `Session ${String(sessionId)} not found`,
            details: { sessionId },
          }),
        );
      const sessions = t.backends.sessions;
      t.wrapped.override('sessions.getSession', (sessionId) =>
        vanish ? Promise.resolve(null) : sessions.getSession(sessionId as string),
      );
      t.wrapped.override('sessions.updateSessionStatus', (sessionId, status, options) =>
        vanish
          ? missing(sessionId)
          : sessions.updateSessionStatus(
              sessionId as string,
              status as 'idle',
              options as undefined,
            ),
      );
      const error = await expectAnyCode(t.runtime.runTextTurn(t.sessionId, 'go'));
      expect(error.code).toBe('SESSION_NOT_FOUND');
      expect(error.details).toEqual({ sessionId: t.sessionId, turnId: expect.any(String) });
      t.wrapped.restore();
      vanish = false;
      expect(await t.runtime.getSession(t.sessionId)).not.toBeNull();
      expect(await t.runtime.runTextTurn(t.sessionId, 'back')).toMatchObject({ success: true });
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('idle');
    });

    it('an event bus that throws on emit (synchronously or not) ends the turn with a typed error and the session not active', async () => {
      for (const how of ['throws', 'rejects'] as const) {
        const t = await setup(oneCall({ id: 'call_c', name: 'count', arguments: { label: 'c' } }));
        const events = t.backends.events;
        let failed = 0;
        t.wrapped.override('events.emit', (request) => {
          const type = (request as { type: string }).type;
          if (type === 'tool.completed' && failed++ === 0) {
            const error = new Error(`bus down (${how})`);
            if (how === 'throws') throw error;
            return Promise.reject(error);
          }
          return events.emit(request as never);
        });
        await expectAnyCode(t.runtime.runTextTurn(t.sessionId, 'go'));
        expect((await t.runtime.getSession(t.sessionId))?.status, how).toBe('idle');
        expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
        expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({ success: true });
        expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
        for (const request of t.sent) expectWellFormed(request.messages);
      }
    });

    it('an event bus down from a given event to the end of the turn: a typed error, the session idle (never active), every call answered', async () => {
      for (const from of ['input.message', 'turn.started', 'tool.completed', 'turn.completed']) {
        const t = await setup(oneCall({ id: 'call_c', name: 'count', arguments: { label: 'c' } }));
        const events = t.backends.events;
        let down = false;
        const goesDown = (requests: Array<{ type: string }>) => {
          if (requests.some((request) => request.type === from)) down = true;
          if (down) throw new Error(`bus down from ${from}`);
        };
        t.wrapped.override('events.emit', (request) => {
          goesDown([request as { type: string }]);
          return events.emit(request as never);
        });
        // A bus that stores batches at once (as PostgreSQL's) goes down with them too.
        const batching = events as { emitMany?: (requests: never[]) => Promise<unknown> };
        t.wrapped.override('events.emitMany', (requests) => {
          goesDown(requests as Array<{ type: string }>);
          return batching.emitMany?.call(events, requests as never[]);
        });
        const error = await expectAnyCode(t.runtime.runTextTurn(t.sessionId, 'go'));
        expect(error.code, from).not.toBe('ABORTED');
        expect((await t.runtime.getSession(t.sessionId))?.status, from).toBe('idle');
        t.wrapped.restore();
        expect(await t.runtime.runTextTurn(t.sessionId, 'again')).toMatchObject({ success: true });
        expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
        for (const request of t.sent) expectWellFormed(request.messages);
      }
    });

    it('a signal option that is not an AbortSignal is refused with INVALID_INPUT, changing nothing and leaving the lease free', async () => {
      const t = await setup(() => 'hello');
      const before = await t.snapshot();
      for (const options of [{ signal: {} }, { signal: 'stop' }, { signal: null }, null]) {
        await expectCode(
          t.runtime.runTextTurn(t.sessionId, 'go', options as never),
          'INVALID_INPUT',
        );
        await expectCode(
          t.runtime.submitToolResults(
            t.sessionId,
            'turn_x',
            [{ toolCallId: 'c', content: 'x' }],
            options as never,
          ),
          'INVALID_INPUT',
        );
      }
      expect(await t.snapshot()).toEqual(before);
      expect(await t.backends.sessions.getTurnLease(t.sessionId)).toBeNull();
      expect(await t.runtime.runTextTurn(t.sessionId, 'go')).toMatchObject({ success: true });
    });

    it('two runTurns on one runtime at once: one runs, the other gets TURN_IN_PROGRESS and stores nothing', async () => {
      const t = await setup(() => 'hello');
      const outcomes = await Promise.allSettled([
        t.runtime.runTextTurn(t.sessionId, 'first'),
        t.runtime.runTextTurn(t.sessionId, 'second'),
      ]);
      const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      const lost = outcomes.filter((outcome) => outcome.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(
        EverrunsError.hasCode((lost[0] as PromiseRejectedResult).reason, 'TURN_IN_PROGRESS'),
      ).toBe(true);
      const stored = await t.runtime.messages(t.sessionId);
      expect(stored).toHaveLength(2);
      expect(
        t.runtime.events(t.sessionId).filter((event) => event.type === 'turn.started'),
      ).toHaveLength(1);
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('idle');
    });

    it('runTurn, submitToolResults and steer after close() reject with a typed error and store nothing', async () => {
      const t = await setup(() => 'hello');
      expect(await t.runtime.runTextTurn(t.sessionId, 'before')).toMatchObject({ success: true });
      const messages = (await t.backends.messages.load(t.sessionId)).length;
      await t.runtime.close();
      await expectCode(t.runtime.runTextTurn(t.sessionId, 'after'), 'RUNTIME_CLOSED');
      await expectCode(
        t.runtime.submitToolResults(t.sessionId, 'turn_x', [{ toolCallId: 'c', content: 'x' }]),
        'RUNTIME_CLOSED',
      );
      await expectCode(t.runtime.steerText(t.sessionId, 'after'), 'RUNTIME_CLOSED');
      await expect(t.runtime.close()).resolves.toBeUndefined();
      if (name === 'memory') {
        expect((await t.backends.messages.load(t.sessionId)).length).toBe(messages);
      }
    });

    it('close() while a turn runs aborts it: the turn ends idle before the stores close', async () => {
      const t = await setup(oneCall({ id: 'call_h', name: 'hang', arguments: {} }));
      const running = t.runtime.runTextTurn(t.sessionId, 'go');
      await waitUntil(() => probe.hangStarted === 1);
      const status = t.backends.sessions;
      let idleBeforeClose = false;
      const closed = t.runtime.close().then(() => undefined);
      await expectCode(running, 'ABORTED');
      await closed;
      if (name === 'memory') {
        idleBeforeClose = (await status.getSession(t.sessionId))?.status === 'idle';
        expect(idleBeforeClose).toBe(true);
        expectEachCallAnsweredOnce(await t.backends.messages.load(t.sessionId));
      }
    });

    it('a turn whose lease lapsed and was taken over writes no status or end event over the new holder', async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let calls = 0;
      const t = await setup(
        async () => {
          calls++;
          if (calls === 1) await gate;
          return `answer ${calls}`;
        },
        { turnLease: { durationMs: 80, renewEveryMs: 20 } },
      );
      // Renewals fail (store unreachable for them), so the lease lapses under the running turn.
      t.wrapped.override('sessions.renewTurnLease', () =>
        Promise.reject(new EverrunsError({ code: 'STORE_UNAVAILABLE', message: 'down' })),
      );
      const running = t.runtime.runTextTurn(t.sessionId, 'slow');
      await waitUntil(() => calls === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const newHolder = 'elsewhere/turn_new';
      await t.backends.sessions.claimTurnLease(t.sessionId, newHolder, 60_000);
      await t.backends.sessions.updateSessionStatus(t.sessionId, 'active', {
        leaseHolder: newHolder,
      });
      const eventsAtTakeOver = t.runtime.events(t.sessionId).length;
      release();
      if (t.backends.messages.leaseConditionedWrites) {
        // The answer's write renews the lease itself, whatever the failing renewals say: it is
        // refused, and the turn stops as when its timer finds the lease gone.
        const error = await expectCode(running, 'ABORTED');
        expect(EverrunsError.hasCode(error.cause, 'TURN_IN_PROGRESS')).toBe(true);
        expect((await t.runtime.messages(t.sessionId)).map((message) => message.role)).toEqual([
          'user',
        ]);
      } else {
        // A failed renewal lets the answer's write go on; the status write is refused.
        await expectCode(running, 'TURN_IN_PROGRESS');
      }
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('active');
      const after = t.runtime
        .events(t.sessionId)
        .slice(eventsAtTakeOver)
        .map((event) => event.type);
      expect(after).not.toContain('turn.completed');
      expect(after).not.toContain('turn.failed');
      expect(after).not.toContain('session.idled');
      expect((await t.backends.sessions.getTurnLease(t.sessionId))?.holderId).toBe(newHolder);

      // The new holder finishes; the session works again.
      t.wrapped.restore();
      await t.backends.sessions.updateSessionStatus(t.sessionId, 'idle', {
        leaseHolder: newHolder,
      });
      expect(await t.backends.sessions.releaseTurnLease(t.sessionId, newHolder)).toBe(true);
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('idle');
    });

    it('a turn taken over before its renewal timer noticed stores nothing more: the model answer is refused, no end event, the new holder untouched', async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let calls = 0;
      const t = await setup(
        async () => {
          calls++;
          if (calls === 1) await gate;
          return `answer ${calls}`;
        },
        // The timer would notice only after a minute: the write itself must.
        { turnLease: { durationMs: 60_000, renewEveryMs: 20_000 } },
      );
      const running = t.runtime.runTextTurn(t.sessionId, 'slow');
      await waitUntil(() => calls === 1);
      const sessions = t.backends.sessions;
      const stale = (await sessions.getTurnLease(t.sessionId))?.holderId as string;
      // What a lapse during a long stall allows: another holder takes the session.
      expect(await sessions.releaseTurnLease(t.sessionId, stale)).toBe(true);
      const newHolder = 'elsewhere/turn_after_stall';
      await sessions.claimTurnLease(t.sessionId, newHolder, 60_000);
      await sessions.updateSessionStatus(t.sessionId, 'active', { leaseHolder: newHolder });
      const eventsAtTakeOver = t.runtime.events(t.sessionId).length;
      release();
      const error = await expectCode(running, 'ABORTED');
      expect(EverrunsError.hasCode(error.cause, 'TURN_IN_PROGRESS')).toBe(true);
      expect((await t.runtime.messages(t.sessionId)).map((message) => message.role)).toEqual([
        'user',
      ]);
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('active');
      const after = t.runtime
        .events(t.sessionId)
        .slice(eventsAtTakeOver)
        .map((event) => event.type);
      expect(after).not.toContain('turn.completed');
      expect(after).not.toContain('turn.failed');
      expect(after).not.toContain('session.idled');
      expect((await sessions.getTurnLease(t.sessionId))?.holderId).toBe(newHolder);
      await sessions.updateSessionStatus(t.sessionId, 'idle', { leaseHolder: newHolder });
      await sessions.releaseTurnLease(t.sessionId, newHolder);
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({
        success: true,
        response: 'answer 2',
      });
    });

    it('a turn that finds its lease taken over while a tool runs stops without ending over the new holder', async () => {
      const t = await setup(oneCall({ id: 'call_h', name: 'hang', arguments: {} }), {
        turnLease: { durationMs: 80, renewEveryMs: 20 },
      });
      const running = t.runtime.runTextTurn(t.sessionId, 'go');
      await waitUntil(() => probe.hangStarted === 1);
      const newHolder = 'elsewhere/turn_other';
      // Another holder takes the session (as after a lapse): the next renewal finds it gone.
      const sessions = t.backends.sessions;
      await sessions.releaseTurnLease(
        t.sessionId,
        (await sessions.getTurnLease(t.sessionId))?.holderId as string,
      );
      await sessions.claimTurnLease(t.sessionId, newHolder, 60_000);
      await sessions.updateSessionStatus(t.sessionId, 'active', { leaseHolder: newHolder });
      const eventsAtTakeOver = t.runtime.events(t.sessionId).length;
      const error = await expectCode(running, 'ABORTED');
      expect(EverrunsError.hasCode(error.cause, 'TURN_IN_PROGRESS')).toBe(true);
      expect((await t.runtime.getSession(t.sessionId))?.status).toBe('active');
      const after = t.runtime
        .events(t.sessionId)
        .slice(eventsAtTakeOver)
        .map((event) => event.type);
      expect(after).not.toContain('turn.failed');
      expect(after).not.toContain('session.idled');
      await sessions.updateSessionStatus(t.sessionId, 'idle', { leaseHolder: newHolder });
      await sessions.releaseTurnLease(t.sessionId, newHolder);
      expect(await t.runtime.runTextTurn(t.sessionId, 'next')).toMatchObject({ success: true });
      expectEachCallAnsweredOnce(await t.runtime.messages(t.sessionId));
      for (const request of t.sent) expectWellFormed(request.messages);
    });
  });
}
