import { inMemoryBackends } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { FileApprovalQueue } from './approval-queue.js';

describe('FileApprovalQueue', () => {
  it('keeps a request pending until it is decided, then resolves the gate with the decision', async () => {
    const backends = inMemoryBackends();
    const queue = new FileApprovalQueue({ events: backends.events });
    const sessionId = `session_${crypto.randomUUID()}`;
    const decision = queue.gateFor(sessionId)({ operation: 'deleteFile', path: '/a.txt' });
    const pending = await queue.nextRequest();
    expect(pending).toMatchObject({
      sessionId,
      request: { operation: 'deleteFile', path: '/a.txt' },
    });
    expect(await queue.pending(sessionId)).toEqual([pending]);
    expect(await queue.pending('session_other')).toEqual([]);

    const decided = await queue.decide(pending.id, 'approve');
    expect(decided).toMatchObject({ id: pending.id, decision: 'approve' });
    expect(await decision).toBe('approve');
    expect(await queue.pending()).toEqual([]);
    expect((await queue.decided(sessionId)).map((entry) => entry.id)).toEqual([pending.id]);
    expect(await queue.decide(pending.id, 'deny')).toBeUndefined();
    expect(backends.events.collectedEvents?.(sessionId).map((event) => event.type)).toEqual([
      'approval.requested',
      'approval.decided',
    ]);
  });

  it('denies a request whose signal fires before anyone decides', async () => {
    const queue = new FileApprovalQueue();
    const controller = new AbortController();
    const decision = queue.gate(
      { operation: 'writeFile', path: '/b.txt' },
      { signal: controller.signal },
    );
    await queue.nextRequest();
    controller.abort();
    expect(await decision).toBe('deny');
    expect(await queue.pending()).toEqual([]);
  });

  it('refuses a decision that is neither approve nor deny', async () => {
    const queue = new FileApprovalQueue();
    void queue.gate({ operation: 'deleteFile', path: '/c.txt' });
    const pending = await queue.nextRequest();
    await expect(queue.decide(pending.id, 'maybe' as 'approve')).rejects.toThrow(TypeError);
    expect(await queue.pending()).toHaveLength(1);
    await queue.decide(pending.id, 'deny');
  });
});
