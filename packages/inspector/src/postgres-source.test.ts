import { randomBytes } from 'node:crypto';
import {
  FILE_SYSTEM_CAPABILITY_ID,
  fileSystemCapability,
} from '@everruns-ts/capabilities-file-system';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import type { RuntimeEvent, SessionFileSystemFactory } from '@everruns-ts/core';
import {
  ApprovalGatingFileStore,
  InProcessRuntimeBuilder,
  LlmSimConfig,
} from '@everruns-ts/runtime';
import { DurableFileApprovals } from '@everruns-ts/runtime/host';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PendingApproval } from './inspector-approvals.js';
import type { TurnContextView } from './inspector-source.js';
import { openPostgresSource } from './postgres-source.js';
import { startInspectorServer } from './server.js';
import type { HostPlanView, TurnView } from './session-view.js';

interface SessionDetail {
  turns: TurnView[];
  events: Array<{ type: string }>;
  hostPlan: HostPlanView;
  contextError?: unknown;
}

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `inspector_test_${randomBytes(6).toString('hex')}`;
const secretKey = { id: 'inspector-test', key: randomBytes(32) };

describe('the inspector over PostgreSQL', () => {
  const writer = postgresBackends({ connectionString: DATABASE_URL }, { schema, secretKey });
  let sessionId: string;
  let turnId: string;

  beforeAll(async () => {
    try {
      await writer.migrate();
    } catch (error) {
      throw new Error(
        `PostgreSQL is not reachable at DATABASE_URL (${(error as Error).message}); the inspector's PostgreSQL test never skips.`,
      );
    }
    // Another process ran this session: the inspector only sees what the stores hold.
    const runtime = await new InProcessRuntimeBuilder()
      .backends(writer)
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.sequence(['', '4']).withToolCallSequence([
          [{ name: 'add', arguments: { a: 2, b: 2 } }],
          [],
        ]),
      )
      .singleSession((session) =>
        session.harness('math', 'You are a math assistant.').withCapability('test_math'),
      )
      .build();
    sessionId = runtime.defaultSessionId() as string;
    turnId = (await runtime.runTextTurn(sessionId, 'What is 2 + 2?')).turnId;
  });

  afterAll(async () => {
    await writer.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await writer.close();
  });

  it('lists the stored sessions and shows their turns, events, host plan and current context', async () => {
    const source = await openPostgresSource({ connectionString: DATABASE_URL, schema, secretKey });
    const server = await startInspectorServer({ source, port: 0 });
    try {
      const sessions = (await (await fetch(`${server.url}api/sessions`)).json()) as Array<{
        id: string;
      }>;
      expect(sessions.map((session) => session.id)).toEqual([sessionId]);

      const detail = (await (
        await fetch(`${server.url}api/sessions/${sessionId}`)
      ).json()) as SessionDetail;
      expect(detail.contextError).toBeUndefined();
      expect(detail.turns).toHaveLength(1);
      expect(detail.turns[0]).toMatchObject({
        turnId,
        status: 'completed',
        response: '4',
        toolCalls: [{ name: 'add', status: 'completed', isError: false }],
      });
      expect(detail.turns[0]?.toolCalls[0]?.durationMs).toEqual(expect.any(Number));
      expect(detail.events.map((event) => event.type)).toContain('turn.completed');
      expect(detail.hostPlan.plan).toMatchObject({
        kind: 'complete',
        outcome: { stopReason: 'end_turn' },
      });

      const context = (await (
        await fetch(`${server.url}api/sessions/${sessionId}/turns/${turnId}/context`)
      ).json()) as TurnContextView;
      expect(context.source).toBe('current');
      expect(context.contexts[0]?.systemPrompt).toBe('You are a math assistant.');
      expect(context.contexts[0]?.tools.map((tool) => tool.name)).toEqual([
        'add',
        'subtract',
        'multiply',
        'divide',
      ]);
      expect(context.contexts[0]?.messages).toHaveLength(4);
    } finally {
      await server.close();
      await source.close?.();
    }
  });

  it('decides a durable file approval in the database, releasing the gate waiting in the runtime', async () => {
    // The process running the turn: its workspace asks DurableFileApprovals, whose records live
    // in the PostgreSQL session storage.
    const workspaces = new InMemorySessionFileSystemFactory();
    let durable: DurableFileApprovals | undefined;
    const fileSystems: SessionFileSystemFactory = {
      forSession: (id) => workspaces.forSession(id),
      forToolCall: (workspace, scope) =>
        new ApprovalGatingFileStore(workspace, (durable as DurableFileApprovals).gateFor(scope)),
    };
    const runtime = await new InProcessRuntimeBuilder()
      .capability(fileSystemCapability)
      .backends(writer)
      .fileSystemFactory(fileSystems)
      .llmSim(
        LlmSimConfig.fromFunction((request) =>
          request.messages.at(-1)?.role === 'user'
            ? { toolCalls: [{ name: 'delete_file', arguments: { path: '/old.txt' } }] }
            : 'done',
        ),
      )
      .singleSession((session) =>
        session
          .harness('cleanup', 'You tidy up.')
          .withCapability(FILE_SYSTEM_CAPABILITY_ID)
          .initialFile('/old.txt', 'old'),
      )
      .build();
    durable = new DurableFileApprovals({
      storage: writer.storage,
      events: writer.events,
      pollIntervalMs: 20,
    });
    const cleanupSessionId = runtime.defaultSessionId() as string;
    const requested = new Promise<void>((resolve) => {
      const unsubscribe = writer.events.subscribe((event) => {
        if (event.type === 'approval.requested' && event.sessionId === cleanupSessionId) {
          unsubscribe();
          resolve();
        }
      });
    });
    const turn = runtime.runTextTurn(cleanupSessionId, 'Delete /old.txt');
    await requested;

    // The inspector: its own connection pool, approvals allowed.
    const source = await openPostgresSource({ connectionString: DATABASE_URL, schema, secretKey });
    const server = await startInspectorServer({ source, port: 0, allowApprovals: true });
    try {
      const listed = (await (await fetch(`${server.url}api/approvals`)).json()) as {
        pending: PendingApproval[];
      };
      expect(listed.pending).toHaveLength(1);
      const [pending] = listed.pending;
      expect(pending).toMatchObject({
        sessionId: cleanupSessionId,
        request: { operation: 'deleteFile', path: '/old.txt' },
      });
      const response = await fetch(
        `${server.url}api/approvals/${encodeURIComponent(pending?.id as string)}`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ decision: 'approve' }),
        },
      );
      expect(response.status).toBe(200);
      expect(await turn).toMatchObject({ success: true, response: 'done' });
      const workspace = await runtime.fileSystem(cleanupSessionId);
      expect(await workspace.statFile('/old.txt')).toBeNull();
      const after = (await (
        await fetch(`${server.url}api/sessions/${cleanupSessionId}`)
      ).json()) as { approvals: { pending: unknown[]; decided: Array<{ decision: string }> } };
      expect(after.approvals.pending).toEqual([]);
      expect(after.approvals.decided.map((entry) => entry.decision)).toEqual(['approve']);
    } finally {
      await server.close();
      await source.close?.();
    }
  });

  it('follows a session that another process runs: its kept events and deltas arrive over /api/events', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .backends(writer)
      .capability(testMathCapability)
      .llmSim(LlmSimConfig.fixed('Followed.'))
      .singleSession((session) => session.harness('follow', 'Follow me.'))
      .build();
    const followedId = runtime.defaultSessionId() as string;
    // The inspector: its own pool and bus, as in another process.
    const source = await openPostgresSource({ connectionString: DATABASE_URL, schema, secretKey });
    const server = await startInspectorServer({ source, port: 0 });
    const abort = new AbortController();
    try {
      expect((await (await fetch(`${server.url}api/info`)).json()).live).toBe(true);
      const response = await fetch(`${server.url}api/events?sessionId=${followedId}`, {
        signal: abort.signal,
      });
      expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      const received: RuntimeEvent[] = [];
      const readUntil = async (done: () => boolean) => {
        while (!done()) {
          const { value, done: ended } = await reader.read();
          if (ended) throw new Error('the event stream ended');
          text += decoder.decode(value, { stream: true });
          for (;;) {
            const end = text.indexOf('\n\n');
            if (end < 0) break;
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            if (/^event: ready$/m.test(block)) received.push({ type: 'ready' } as never);
            const data = /^data: (.*)$/m.exec(block);
            if (data && !/^event: /m.test(block)) received.push(JSON.parse(data[1] as string));
          }
        }
      };
      // `ready` comes once the inspector's bus listens, so nothing below can be missed.
      await readUntil(() => received.length > 0);
      expect(received.shift()).toEqual({ type: 'ready' });

      await writer.events.emit({
        type: 'output.message.delta',
        sessionId: followedId,
        turnId: 'turn_elsewhere',
        data: { iteration: 1, delta: 'Fol', offset: 0 },
      });
      expect(await runtime.runTextTurn(followedId, 'Go.')).toMatchObject({ response: 'Followed.' });
      await readUntil(() => received.at(-1)?.type === 'session.idled');

      expect(received[0]).toMatchObject({
        type: 'output.message.delta',
        ephemeral: true,
        data: { delta: 'Fol' },
      });
      const stored = await source.events(followedId);
      expect(received.slice(1)).toEqual(JSON.parse(JSON.stringify(stored)));
      expect(stored.map((event) => event.type)).not.toContain('output.message.delta');
    } finally {
      abort.abort();
      await server.close();
      await source.close?.();
      // The runtime stays open: closing it would close `writer`, which the other tests share.
    }
  });
});
