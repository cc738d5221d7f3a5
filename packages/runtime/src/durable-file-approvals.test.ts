import {
  defineCapability,
  defineTool,
  INTERRUPTED_TOOL_RESULT_TEXT,
  InputMessage,
  newId,
  type SessionFileSystemFactory,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { InMemorySessionFileSystemFactory } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DurableFileApprovals,
  executeTurnStep,
  FILE_APPROVAL_KEY_PREFIX,
  fileApprovalId,
  initialTurnStep,
  type RuntimeHostAdapter,
  type RuntimeTurnStep,
  settleTurn,
} from './host-entry.js';
import { InProcessRuntimeBuilder, type TurnResult } from './index.js';

async function approvalRuntime(options: { idempotent: boolean }) {
  const workspaces = new InMemorySessionFileSystemFactory();
  let approvals: DurableFileApprovals | undefined;
  const factory: SessionFileSystemFactory = {
    forSession: (sessionId) => workspaces.forSession(sessionId),
    forToolCall: (workspace, scope) =>
      (approvals as DurableFileApprovals).gatedFileSystem(workspace, scope),
  };
  const files = defineCapability({
    id: 'cleanup',
    name: 'Cleanup',
    description: 'removes files',
    tools: [
      defineTool({
        name: 'remove_file',
        description: 'deletes a file',
        idempotent: options.idempotent,
        inputSchema: z.object({ path: z.string() }),
        execute: async ({ path }, context) => {
          await context.fileSystem.deleteFile(path);
          return `removed ${path}`;
        },
      }),
    ],
  });
  const runtime = await new InProcessRuntimeBuilder()
    .capability(files)
    .fileSystemFactory(factory)
    .llmSim(
      LlmSimConfig.fromFunction((request) =>
        request.iteration === 1
          ? { toolCalls: [{ id: 'rm', name: 'remove_file', arguments: { path: '/notes.txt' } }] }
          : 'cleaned up',
      ),
    )
    .singleSession((s) =>
      s.harness('h', 'You clean up.').withCapability('cleanup').seedTextFile('/notes.txt', 'keep?'),
    )
    .build();
  approvals = new DurableFileApprovals({
    storage: runtime.backends.storage,
    events: runtime.backends.events,
    pollIntervalMs: 5,
  });
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

/** Runs steps until the turn settles; the returned step is where a crash left it. */
async function drive(
  adapter: RuntimeHostAdapter,
  step: { current: RuntimeTurnStep },
  signal?: AbortSignal,
): Promise<TurnResult> {
  for (;;) {
    const outcome = await executeTurnStep(adapter, JSON.parse(JSON.stringify(step.current)), {
      ...(signal ? { signal } : {}),
    });
    if (!outcome.next) return settleTurn(adapter, outcome.plan);
    step.current = outcome.next;
  }
}

async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 2_000; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error('timed out');
}

describe('DurableFileApprovals', () => {
  it('keeps a pending delete across a crash under the same approval id and runs it only once approved', async () => {
    const { runtime, sessionId } = await approvalRuntime({ idempotent: true });
    const turnId = newId('turn');
    const step = {
      current: initialTurnStep({ sessionId, turnId, input: InputMessage.user('clean up') }),
    };
    const crash = new AbortController();
    const crashed = drive(runtime.hostAdapter, step, crash.signal);
    // Another process (another instance on the same storage) sees the request.
    const operator = new DurableFileApprovals({ storage: runtime.backends.storage });
    const [pending] = await waitFor(async () => {
      const list = await operator.pending(sessionId);
      return list.length > 0 ? list : undefined;
    });
    const approvalId = fileApprovalId(
      { sessionId, turnId, toolCallId: 'rm', iteration: 1 },
      'deleteFile',
    );
    expect(pending).toMatchObject({
      approvalId,
      turnId,
      toolCallId: 'rm',
      operation: 'deleteFile',
      path: '/notes.txt',
      status: 'pending',
    });
    crash.abort(new Error('the host died'));
    await expect(crashed).rejects.toMatchObject({ code: 'ABORTED' });
    expect((await runtime.readFile(sessionId, '/notes.txt')).content).toBe('keep?');

    // The restarted host re-runs the idempotent call: same approval id, no second request.
    const restarted = { ...runtime.hostAdapter, setupCache: new Map() };
    const resumed = drive(restarted, step);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect((await runtime.readFile(sessionId, '/notes.txt')).content).toBe('keep?');
    expect((await operator.pending(sessionId)).map((record) => record.approvalId)).toEqual([
      approvalId,
    ]);

    expect(await operator.decide(sessionId, approvalId, 'approve')).toMatchObject({
      status: 'approved',
    });
    expect(await resumed).toMatchObject({ success: true, response: 'cleaned up' });
    await expect(runtime.readFile(sessionId, '/notes.txt')).rejects.toMatchObject({
      code: 'FILE_NOT_FOUND',
    });
    const types = runtime.events(sessionId).map((event) => event.type);
    expect(types.filter((type) => type === 'approval.requested')).toHaveLength(1);
    // The first decision stays.
    expect(await operator.decide(sessionId, approvalId, 'deny')).toMatchObject({
      status: 'approved',
    });
    expect(await operator.pending(sessionId)).toEqual([]);
  });

  it('denies without running anything, and reports the denial to the model', async () => {
    const { runtime, sessionId } = await approvalRuntime({ idempotent: true });
    const turnId = newId('turn');
    const approvals = new DurableFileApprovals({
      storage: runtime.backends.storage,
      events: runtime.backends.events,
    });
    const step = {
      current: initialTurnStep({ sessionId, turnId, input: InputMessage.user('clean') }),
    };
    const running = drive(runtime.hostAdapter, step);
    const [pending] = await waitFor(async () => {
      const list = await approvals.pending(sessionId);
      return list.length > 0 ? list : undefined;
    });
    await approvals.decide(sessionId, pending?.approvalId as string, 'deny');
    expect(await running).toMatchObject({ success: true });
    expect((await runtime.readFile(sessionId, '/notes.txt')).content).toBe('keep?');
    const results = (await runtime.messages(sessionId)).flatMap((message) =>
      message.content.filter((part) => part.type === 'tool_result'),
    );
    expect(results).toEqual([
      expect.objectContaining({
        isError: true,
        content: expect.stringContaining('was not approved'),
      }),
    ]);
    expect(
      runtime.events(sessionId).filter((event) => event.type === 'approval.decided'),
    ).toHaveLength(1);
  });

  it('never runs a non-idempotent call that was waiting for approval when the host died', async () => {
    const { runtime, sessionId } = await approvalRuntime({ idempotent: false });
    const turnId = newId('turn');
    const approvals = new DurableFileApprovals({ storage: runtime.backends.storage });
    const step = {
      current: initialTurnStep({ sessionId, turnId, input: InputMessage.user('clean') }),
    };
    const crash = new AbortController();
    const crashed = drive(runtime.hostAdapter, step, crash.signal);
    const [pending] = await waitFor(async () => {
      const list = await approvals.pending(sessionId);
      return list.length > 0 ? list : undefined;
    });
    crash.abort(new Error('the host died'));
    await expect(crashed).rejects.toMatchObject({ code: 'ABORTED' });
    // Approving the orphaned request later changes nothing: the call is not run again.
    await approvals.decide(sessionId, pending?.approvalId as string, 'approve');
    const result = await drive({ ...runtime.hostAdapter, setupCache: new Map() }, step);
    expect(result).toMatchObject({ success: true });
    expect((await runtime.readFile(sessionId, '/notes.txt')).content).toBe('keep?');
    const results = (await runtime.messages(sessionId)).flatMap((message) =>
      message.content.filter((part) => part.type === 'tool_result'),
    );
    expect(results).toEqual([
      expect.objectContaining({ content: INTERRUPTED_TOOL_RESULT_TEXT, isError: true }),
    ]);
  });

  it('refuses to decide an approval that was never requested', async () => {
    const { runtime, sessionId } = await approvalRuntime({ idempotent: true });
    const approvals = new DurableFileApprovals({ storage: runtime.backends.storage });
    await expect(approvals.decide(sessionId, 'nope', 'approve')).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    expect(await runtime.backends.storage.listKeys(sessionId, FILE_APPROVAL_KEY_PREFIX)).toEqual(
      [],
    );
    expect(
      fileApprovalId(
        { sessionId: 's', turnId: 't', toolCallId: 'c', iteration: 1 },
        'writeFile',
        2,
      ),
    ).toBe('s/t/c/writeFile#2');
  });
});
