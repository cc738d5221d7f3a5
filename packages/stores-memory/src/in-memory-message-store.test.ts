import {
  EverrunsError,
  InputMessage,
  loadLatestMessages,
  loadMessagesAfter,
  type NewMessage,
  newId,
  type RuntimeMessageStore,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InMemoryMessageStore } from './in-memory-message-store.js';

const text = (value: string): NewMessage => ({
  role: 'agent',
  content: [{ type: 'text', text: value }],
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return EverrunsError.isInstance(error) ? error.code : 'NOT_AN_EVERRUNS_ERROR';
  }
  return undefined;
}

describe('InMemoryMessageStore', () => {
  it('numbers messages 1, 2, 3 per session and keeps sessions apart', async () => {
    const store = new InMemoryMessageStore();
    const first = newId('session');
    const second = newId('session');
    const a = await store.addInputMessage(first, InputMessage.user('hi'), 'turn_1');
    const b = await store.storeMessage(first, text('hello'));
    const c = await store.storeMessage(second, text('other'));
    expect([a.seq, b.seq, c.seq]).toEqual([1, 2, 1]);
    expect(a).toMatchObject({ role: 'user', sessionId: first, turnId: 'turn_1' });
    expect(a.id.startsWith('msg_')).toBe(true);
    expect(await store.count(first)).toBe(2);
    expect(await store.count(second)).toBe(1);
    expect((await store.load(first)).map((message) => message.id)).toEqual([a.id, b.id]);
    expect(await store.get(first, b.id)).toBe(b);
    expect(await store.get(second, b.id)).toBeNull();
  });

  it('returns the existing message for a repeated idempotency key', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    const first = await store.storeMessage(sessionId, { ...text('a'), idempotencyKey: 'k' });
    const again = await store.storeMessage(sessionId, { ...text('b'), idempotencyKey: 'k' });
    expect(again).toEqual(first);
    expect(await store.count(sessionId)).toBe(1);
    expect(await store.getByIdempotencyKey(sessionId, 'k')).toEqual(first);
    expect(await store.getByIdempotencyKey(sessionId, 'missing')).toBeNull();
  });

  it('throws a retryable STORE_CONFLICT on a wrong expectedSeq and writes nothing', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    await store.storeMessage(sessionId, text('a'), { expectedSeq: 1 });
    const error = await store
      .storeMessage(sessionId, text('b'), { expectedSeq: 1 })
      .catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'STORE_CONFLICT')).toBe(true);
    expect((error as EverrunsError).retryable).toBe(true);
    expect(await store.count(sessionId)).toBe(1);
  });

  it('stores a batch all or none', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    const existing = await store.storeMessage(sessionId, text('a'));
    expect(
      await codeOf(store.storeMessages(sessionId, [text('b'), { ...text('c'), id: existing.id }])),
    ).toBe('DUPLICATE_ID');
    expect(await store.count(sessionId)).toBe(1);
    const stored = await store.storeMessages(sessionId, [
      { ...text('b'), idempotencyKey: 'x' },
      { ...text('c'), idempotencyKey: 'x' },
      text('d'),
    ]);
    expect(stored.map((message) => message.seq)).toEqual([2, 2, 3]);
  });

  it('pages by index and ends with nextAfterSeq null', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    for (let index = 0; index < 5; index++) await store.storeMessage(sessionId, text(`${index}`));
    const seen: number[] = [];
    let afterSeq: number | null = 0;
    while (afterSeq !== null) {
      const page = await store.loadPage(sessionId, { afterSeq, limit: 2 });
      seen.push(...page.messages.map((message) => message.seq));
      afterSeq = page.nextAfterSeq;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(await store.loadPage(sessionId, { limit: 5 })).toMatchObject({ nextAfterSeq: null });
    expect(await codeOf(store.loadPage(sessionId, { limit: 0 }))).toBe('INVALID_INPUT');
    expect(await codeOf(store.loadPage(sessionId, { limit: 1001 }))).toBe('INVALID_INPUT');
  });

  it('filters by role and turn', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    await store.addInputMessage(sessionId, InputMessage.user('q'), 'turn_a');
    await store.storeMessage(sessionId, { ...text('r'), turnId: 'turn_a' });
    await store.storeMessage(sessionId, { ...text('s'), turnId: 'turn_b' });
    expect(await store.loadFiltered(sessionId, { roles: ['agent'] })).toHaveLength(2);
    expect(await store.loadFiltered(sessionId, { turnId: 'turn_a' })).toHaveLength(2);
    expect(
      await store.loadFiltered(sessionId, { roles: ['agent'], turnId: 'turn_b' }),
    ).toMatchObject([{ seq: 3 }]);
  });

  it('keeps its copy safe from callers', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    const input: NewMessage = { role: 'agent', content: [{ type: 'text', text: 'original' }] };
    await store.storeMessage(sessionId, input);
    (input.content[0] as { text: string }).text = 'changed';
    const loaded = await store.load(sessionId);
    expect(loaded[0]?.content[0]).toEqual({ type: 'text', text: 'original' });
    expect(Object.isFrozen(loaded[0])).toBe(true);
    loaded.pop();
    expect(await store.count(sessionId)).toBe(1);
  });

  it('gives contiguous positions to concurrent appends', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    const stored = await Promise.all(
      Array.from({ length: 50 }, (_, index) => store.storeMessage(sessionId, text(`${index}`))),
    );
    expect(stored.map((message) => message.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, index) => index + 1),
    );
  });

  it('treats an unknown session as empty', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    expect(await store.load(sessionId)).toEqual([]);
    expect(await store.count(sessionId)).toBe(0);
    expect(await store.loadPage(sessionId, { limit: 10 })).toEqual({
      messages: [],
      nextAfterSeq: null,
    });
  });

  it('rejects a message without a known role', async () => {
    const store = new InMemoryMessageStore();
    const bad = { role: 'system', content: [] } as unknown as NewMessage;
    expect(await codeOf(store.storeMessage(newId('session'), bad))).toBe('INVALID_INPUT');
  });

  it('keeps its usage sum right across idempotent repeats and failed batches', async () => {
    const store = new InMemoryMessageStore();
    const sessionId = newId('session');
    const call = (key: string, inputTokens: number): NewMessage => ({
      ...text(key),
      idempotencyKey: key,
      metadata: { model: 'm', usage: { inputTokens, outputTokens: 1 } },
    });
    await store.storeMessage(sessionId, call('a', 10));
    await store.storeMessage(sessionId, call('a', 10));
    await store.storeMessages(sessionId, [call('a', 10), call('b', 20)]);
    expect(
      await codeOf(
        store.storeMessages(sessionId, [
          call('c', 5),
          { ...call('d', 7), id: 'x' },
          { ...call('e', 9), id: 'x' },
        ]),
      ),
    ).toBe('DUPLICATE_ID');
    expect(await store.sumUsage(sessionId)).toEqual([
      { model: 'm', modelCalls: 2, usage: { inputTokens: 30, outputTokens: 2 } },
    ]);
    const totals = await store.sumUsage(sessionId);
    totals[0]!.usage.inputTokens = 1;
    expect((await store.sumUsage(sessionId))[0]?.usage.inputTokens).toBe(30);
  });
});

describe('loadMessagesAfter and loadLatestMessages', () => {
  /** The store without its optional range reads, as a third-party store might be. */
  const withoutRangeReads = (store: InMemoryMessageStore): RuntimeMessageStore => ({
    addInputMessage: (...args) => store.addInputMessage(...args),
    storeMessage: (...args) => store.storeMessage(...args),
    storeMessages: (...args) => store.storeMessages(...args),
    get: (...args) => store.get(...args),
    getByIdempotencyKey: (...args) => store.getByIdempotencyKey(...args),
    load: (...args) => store.load(...args),
    loadPage: (...args) => store.loadPage(...args),
    loadFiltered: (...args) => store.loadFiltered(...args),
    count: (...args) => store.count(...args),
  });

  it('give the same messages whether or not the store offers range reads', async () => {
    const store = new InMemoryMessageStore();
    const plain = withoutRangeReads(store);
    const sessionId = newId('session');
    await store.storeMessages(
      sessionId,
      Array.from({ length: 2345 }, (_, index) => text(`m${index + 1}`)),
    );
    const all = await store.load(sessionId);
    for (const afterSeq of [0, 1, 999, 1000, 1001, 2000, 2344, 2345, 9000]) {
      const expected = all.slice(afterSeq);
      expect(await loadMessagesAfter(store, sessionId, afterSeq)).toEqual(expected);
      expect(await loadMessagesAfter(plain, sessionId, afterSeq)).toEqual(expected);
    }
    for (const limit of [1, 7, 1000, 1001, 2345, 5000]) {
      const expected = all.slice(Math.max(0, all.length - limit));
      expect(await loadLatestMessages(store, sessionId, limit)).toEqual(expected);
      expect(await loadLatestMessages(plain, sessionId, limit)).toEqual(expected);
    }
    expect(await loadLatestMessages(plain, newId('session'), 3)).toEqual([]);
    for (const target of [store, plain]) {
      expect(await codeOf(loadMessagesAfter(target, sessionId, -1))).toBe('INVALID_INPUT');
      expect(await codeOf(loadLatestMessages(target, sessionId, 0))).toBe('INVALID_INPUT');
    }
  });
});
