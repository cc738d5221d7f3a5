import { InputMessage, type Message, type NewMessage, UsageTally } from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { expectErrorCode, HOSTILE_STRINGS, randomId, TRICKY_TEXT, tryToMutate } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

const agentText = (text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  role: 'agent',
  content: [{ type: 'text', text }],
  ...extra,
});

const seqs = (messages: readonly Message[]) => messages.map((message) => message.seq);
const range = (count: number) => Array.from({ length: count }, (_, index) => index + 1);

/**
 * Tests of `RuntimeMessageStore`: positions 1..n without gaps, idempotent appends, optimistic
 * `expectedSeq`, atomic batches, paging, filtering, isolation between sessions, concurrent
 * appends, exact content round-trips and hostile session ids.
 */
export function messageStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'message store', ({ backends }) => {
    it('numbers messages 1, 2, 3 in append order and keeps every field', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const createdAt = '2024-05-06T07:08:09.010Z';
      const explicitId = randomId('msg');
      const first = await messages.storeMessage(sessionId, agentText('one'));
      const second = await messages.storeMessage(
        sessionId,
        agentText('two', {
          id: explicitId,
          turnId: 'turn_x',
          createdAt,
          metadata: { usage: { inputTokens: 3 }, stopReason: 'end_turn' },
        }),
      );
      expect(first).toMatchObject({ sessionId, seq: 1, role: 'agent' });
      expect(typeof first.id).toBe('string');
      expect(first.id.length).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(first.createdAt))).toBe(false);
      expect(second).toEqual({
        id: explicitId,
        sessionId,
        seq: 2,
        turnId: 'turn_x',
        role: 'agent',
        content: [{ type: 'text', text: 'two' }],
        metadata: { usage: { inputTokens: 3 }, stopReason: 'end_turn' },
        createdAt,
      });
      expect(await messages.load(sessionId)).toEqual([first, second]);
      expect(await messages.count(sessionId)).toBe(2);
    });

    it('appends user input with addInputMessage', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const input: InputMessage = {
        role: 'user',
        content: [
          { type: 'text', text: 'look' },
          { type: 'image', mediaType: 'image/png', data: 'iVBORw0KGgo=' },
        ],
        metadata: { source: 'test' },
      };
      const stored = await messages.addInputMessage(sessionId, input, 'turn_1');
      expect(stored).toMatchObject({
        sessionId,
        seq: 1,
        role: 'user',
        turnId: 'turn_1',
        content: input.content,
        metadata: { source: 'test' },
      });
      const withoutTurn = await messages.addInputMessage(sessionId, InputMessage.user('again'));
      expect(withoutTurn.seq).toBe(2);
      expect(withoutTurn.turnId).toBeUndefined();
      expect(await messages.get(sessionId, stored.id)).toEqual(stored);
    });

    it('gets one message by id, and null for an unknown id or another session', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const stored = await messages.storeMessage(sessionId, agentText('x'));
      expect(await messages.get(sessionId, stored.id)).toEqual(stored);
      expect(await messages.get(sessionId, randomId('msg'))).toBeNull();
      expect(await messages.get(randomId('session'), stored.id)).toBeNull();
    });

    it('treats an unknown session as empty', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      expect(await messages.load(sessionId)).toEqual([]);
      expect(await messages.count(sessionId)).toBe(0);
      expect(await messages.loadPage(sessionId, { limit: 10 })).toEqual({
        messages: [],
        nextAfterSeq: null,
      });
      expect(await messages.loadFiltered(sessionId, { roles: ['user'] })).toEqual([]);
      expect(await messages.getByIdempotencyKey(sessionId, 'k')).toBeNull();
    });

    it('returns the existing message for a repeated idempotency key and appends nothing', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const key = randomId('step');
      const first = await messages.storeMessage(sessionId, agentText('a', { idempotencyKey: key }));
      const again = await messages.storeMessage(sessionId, agentText('b', { idempotencyKey: key }));
      expect(again).toEqual(first);
      expect(first.idempotencyKey).toBe(key);
      expect(await messages.count(sessionId)).toBe(1);
      expect(await messages.getByIdempotencyKey(sessionId, key)).toEqual(first);
      expect(await messages.getByIdempotencyKey(sessionId, randomId('other'))).toBeNull();
    });

    it('scopes idempotency keys to their session', async () => {
      const { messages } = backends();
      const [one, two] = [randomId('session'), randomId('session')];
      const key = randomId('step');
      const inOne = await messages.storeMessage(one, agentText('a', { idempotencyKey: key }));
      const inTwo = await messages.storeMessage(two, agentText('b', { idempotencyKey: key }));
      expect(inTwo.id).not.toBe(inOne.id);
      expect(inTwo.sessionId).toBe(two);
      expect(await messages.getByIdempotencyKey(two, key)).toEqual(inTwo);
    });

    it('prefers an existing idempotency key over a stale expectedSeq', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const key = randomId('step');
      const first = await messages.storeMessage(
        sessionId,
        agentText('a', { idempotencyKey: key }),
        {
          expectedSeq: 1,
        },
      );
      const retried = await messages.storeMessage(
        sessionId,
        agentText('a', { idempotencyKey: key }),
        { expectedSeq: 1 },
      );
      expect(retried).toEqual(first);
    });

    it('accepts the right expectedSeq and throws a retryable STORE_CONFLICT otherwise', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessage(sessionId, agentText('a'), { expectedSeq: 1 });
      await messages.storeMessage(sessionId, agentText('b'), { expectedSeq: 2 });
      const behind = await expectErrorCode(
        messages.storeMessage(sessionId, agentText('c'), { expectedSeq: 2 }),
        'STORE_CONFLICT',
      );
      expect(behind.retryable).toBe(true);
      await expectErrorCode(
        messages.storeMessage(sessionId, agentText('d'), { expectedSeq: 5 }),
        'STORE_CONFLICT',
      );
      expect(seqs(await messages.load(sessionId))).toEqual([1, 2]);
      expect((await messages.storeMessage(sessionId, agentText('e'), { expectedSeq: 3 })).seq).toBe(
        3,
      );
    });

    it('throws DUPLICATE_ID for an explicit message id already used in the session', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const stored = await messages.storeMessage(
        sessionId,
        agentText('a', { id: randomId('msg') }),
      );
      await expectErrorCode(
        messages.storeMessage(sessionId, agentText('b', { id: stored.id })),
        'DUPLICATE_ID',
      );
      expect(await messages.count(sessionId)).toBe(1);
    });

    it('stores a batch in order with contiguous positions', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessage(sessionId, agentText('before'));
      const stored = await messages.storeMessages(sessionId, [
        agentText('1'),
        {
          role: 'tool_result',
          content: [{ type: 'tool_result', toolCallId: 'c', content: 'ok', isError: false }],
        },
        agentText('3'),
      ]);
      expect(seqs(stored)).toEqual([2, 3, 4]);
      expect(stored.map((message) => message.role)).toEqual(['agent', 'tool_result', 'agent']);
      expect(await messages.load(sessionId)).toEqual([
        ...(await messages.loadPage(sessionId, { limit: 1 })).messages,
        ...stored,
      ]);
      expect(await messages.storeMessages(sessionId, [])).toEqual([]);
      expect(await messages.count(sessionId)).toBe(4);
    });

    it('stores a batch all or none', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const existing = await messages.storeMessage(sessionId, agentText('first'));
      await expectErrorCode(
        messages.storeMessages(sessionId, [
          agentText('would be 2'),
          agentText('would be 3', { idempotencyKey: randomId('step') }),
          agentText('clashes', { id: existing.id }),
        ]),
        'DUPLICATE_ID',
      );
      expect(await messages.load(sessionId)).toEqual([existing]);
      const next = await messages.storeMessage(sessionId, agentText('second'));
      expect(next.seq).toBe(2);
    });

    it('applies idempotency keys inside a batch', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const key = randomId('step');
      const earlier = await messages.storeMessage(
        sessionId,
        agentText('a', { idempotencyKey: key }),
      );
      const batchKey = randomId('step');
      const stored = await messages.storeMessages(sessionId, [
        agentText('again', { idempotencyKey: key }),
        agentText('new', { idempotencyKey: batchKey }),
        agentText('repeat in batch', { idempotencyKey: batchKey }),
      ]);
      expect(stored[0]).toEqual(earlier);
      expect(stored[1]?.seq).toBe(2);
      expect(stored[2]).toEqual(stored[1]);
      expect(await messages.count(sessionId)).toBe(2);
    });

    it('pages through a history until nextAfterSeq is null', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessages(
        sessionId,
        range(23).map((index) => agentText(`m${index}`)),
      );
      for (const limit of [1, 5, 10, 23, 50]) {
        const collected: Message[] = [];
        let afterSeq: number | null = 0;
        let pages = 0;
        while (afterSeq !== null) {
          const page = await messages.loadPage(sessionId, { afterSeq, limit });
          expect(page.messages.length).toBeLessThanOrEqual(limit);
          if (page.nextAfterSeq !== null) {
            expect(page.nextAfterSeq).toBe(page.messages.at(-1)?.seq);
          }
          collected.push(...page.messages);
          afterSeq = page.nextAfterSeq;
          pages++;
          expect(pages).toBeLessThanOrEqual(24);
        }
        expect(seqs(collected)).toEqual(range(23));
        expect(pages).toBe(Math.ceil(23 / limit));
      }
    });

    it('pages from afterSeq and returns null at or past the end', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessages(
        sessionId,
        range(6).map((index) => agentText(`${index}`)),
      );
      const middle = await messages.loadPage(sessionId, { afterSeq: 2, limit: 2 });
      expect(seqs(middle.messages)).toEqual([3, 4]);
      expect(middle.nextAfterSeq).toBe(4);
      const last = await messages.loadPage(sessionId, { afterSeq: 4, limit: 2 });
      expect(seqs(last.messages)).toEqual([5, 6]);
      expect(last.nextAfterSeq).toBeNull();
      expect(await messages.loadPage(sessionId, { afterSeq: 6, limit: 3 })).toEqual({
        messages: [],
        nextAfterSeq: null,
      });
      expect(await messages.loadPage(sessionId, { afterSeq: 60, limit: 3 })).toEqual({
        messages: [],
        nextAfterSeq: null,
      });
      expect(seqs((await messages.loadPage(sessionId, { limit: 2 })).messages)).toEqual([1, 2]);
    });

    it('refuses a page limit outside 1..1000 with INVALID_INPUT', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await expectErrorCode(messages.loadPage(sessionId, { limit: 0 }), 'INVALID_INPUT');
      await expectErrorCode(messages.loadPage(sessionId, { limit: 1001 }), 'INVALID_INPUT');
      expect((await messages.loadPage(sessionId, { limit: 1000 })).messages).toEqual([]);
    });

    it('filters by role and by turn, in seq order', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const [turnA, turnB] = [randomId('turn'), randomId('turn')];
      await messages.addInputMessage(sessionId, InputMessage.user('q1'), turnA);
      await messages.storeMessage(sessionId, {
        role: 'agent',
        turnId: turnA,
        content: [{ type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 1, b: 2 } }],
      });
      await messages.storeMessage(sessionId, {
        role: 'tool_result',
        turnId: turnA,
        content: [{ type: 'tool_result', toolCallId: 'call_1', content: '3', isError: false }],
      });
      await messages.addInputMessage(sessionId, InputMessage.user('q2'), turnB);
      await messages.storeMessage(sessionId, agentText('a2', { turnId: turnB }));
      expect(seqs(await messages.loadFiltered(sessionId, { roles: ['user'] }))).toEqual([1, 4]);
      expect(
        seqs(await messages.loadFiltered(sessionId, { roles: ['agent', 'tool_result'] })),
      ).toEqual([2, 3, 5]);
      expect(seqs(await messages.loadFiltered(sessionId, { turnId: turnA }))).toEqual([1, 2, 3]);
      expect(
        seqs(await messages.loadFiltered(sessionId, { turnId: turnB, roles: ['agent'] })),
      ).toEqual([5]);
      expect(seqs(await messages.loadFiltered(sessionId, {}))).toEqual([1, 2, 3, 4, 5]);
      expect(await messages.loadFiltered(sessionId, { turnId: randomId('turn') })).toEqual([]);
    });

    it('keeps sessions independent', async () => {
      const { messages } = backends();
      const [one, two] = [randomId('session'), randomId('session')];
      await messages.storeMessage(one, agentText('1a'));
      await messages.storeMessage(two, agentText('2a'));
      await messages.storeMessage(one, agentText('1b'));
      const inOne = await messages.load(one);
      const inTwo = await messages.load(two);
      expect(inOne.map((message) => message.content)).toEqual([
        [{ type: 'text', text: '1a' }],
        [{ type: 'text', text: '1b' }],
      ]);
      expect(seqs(inTwo)).toEqual([1]);
      expect(inTwo.every((message) => message.sessionId === two)).toBe(true);
      expect(await messages.count(one)).toBe(2);
    });

    it('gives contiguous, unique positions to many concurrent appends to one session', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const count = 40;
      const stored = await Promise.all(
        range(count).map((index) =>
          index % 4 === 0
            ? messages.storeMessages(sessionId, [agentText(`b${index}`), agentText(`c${index}`)])
            : messages.storeMessage(sessionId, agentText(`m${index}`)),
        ),
      );
      const flat = stored.flat();
      const total = count + count / 4;
      expect(flat.map((message) => message.seq).sort((a, b) => a - b)).toEqual(range(total));
      expect(new Set(flat.map((message) => message.id)).size).toBe(total);
      const loaded = await messages.load(sessionId);
      expect(seqs(loaded)).toEqual(range(total));
      expect(await messages.count(sessionId)).toBe(total);
      for (const batch of stored) {
        if (Array.isArray(batch)) expect((batch[1]?.seq ?? 0) - (batch[0]?.seq ?? 0)).toBe(1);
      }
    });

    it('stores exactly one message for concurrent appends with the same idempotency key', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const key = randomId('step');
      const results = await Promise.all(
        range(10).map((index) =>
          messages.storeMessage(sessionId, agentText(`${index}`, { idempotencyKey: key })),
        ),
      );
      expect(new Set(results.map((message) => message.id)).size).toBe(1);
      expect(await messages.count(sessionId)).toBe(1);
    });

    it('keeps concurrent appends to different sessions apart', async () => {
      const { messages } = backends();
      const sessions = range(5).map(() => randomId('session'));
      await Promise.all(
        sessions.flatMap((sessionId) =>
          range(6).map((index) => messages.storeMessage(sessionId, agentText(`${index}`))),
        ),
      );
      for (const sessionId of sessions)
        expect(seqs(await messages.load(sessionId))).toEqual(range(6));
    });

    it('round-trips NUL, control characters, Unicode and structured parts exactly', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const content: NewMessage['content'] = [
        { type: 'text', text: TRICKY_TEXT },
        {
          type: 'tool_call',
          id: 'call_\u0000"\'',
          name: 'tool/with.odd-name',
          arguments: {
            text: TRICKY_TEXT,
            nested: { list: [1, 2.5, -3, true, false, null, 'x'], empty: {}, [TRICKY_TEXT]: 1 },
          },
        },
        { type: 'tool_result', toolCallId: 'call_x', content: TRICKY_TEXT, isError: true },
        { type: 'image', mediaType: 'image/png', url: 'https://example.com/a.png?x=1&y=%20' },
      ];
      const metadata = { note: TRICKY_TEXT, numbers: [0, 1e-7, 12345678901234] };
      const stored = await messages.storeMessage(sessionId, {
        role: 'agent',
        content,
        metadata,
        idempotencyKey: `${TRICKY_TEXT}${randomId()}`,
      });
      expect(stored.content).toEqual(content);
      const [loaded] = await messages.load(sessionId);
      expect(loaded?.content).toEqual(content);
      expect(loaded?.metadata).toEqual(metadata);
      expect(
        await messages.getByIdempotencyKey(sessionId, stored.idempotencyKey as string),
      ).toEqual(stored);
    });

    it('accepts hostile session ids as opaque data', async () => {
      const { messages } = backends();
      const sessionIds = HOSTILE_STRINGS.map((value) => `${value}${randomId()}`);
      for (const sessionId of sessionIds) {
        await messages.storeMessage(sessionId, agentText(sessionId.slice(0, 40)));
        await messages.storeMessage(sessionId, agentText('second'));
      }
      for (const sessionId of sessionIds) {
        const loaded = await messages.load(sessionId);
        expect(seqs(loaded)).toEqual([1, 2]);
        expect(loaded[0]?.sessionId).toBe(sessionId);
        expect(await messages.count(sessionId)).toBe(2);
      }
    });

    it('keeps its copy when the caller changes what it gave or got', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const input: NewMessage = {
        role: 'agent',
        content: [{ type: 'tool_call', id: 'c1', name: 'n', arguments: { a: 1 } }],
        metadata: { k: 'v' },
      };
      await messages.storeMessage(sessionId, input);
      tryToMutate(() => {
        (input.content[0] as { arguments: { a: number } }).arguments.a = 2;
        (input.metadata as Record<string, unknown>).k = 'changed';
      });
      const [loaded] = await messages.load(sessionId);
      tryToMutate(() => {
        (loaded as { seq: number }).seq = 99;
        (loaded as { content: unknown[] }).content.push({ type: 'text', text: 'x' });
      });
      const list = await messages.load(sessionId);
      tryToMutate(() => list.pop());
      const [again] = await messages.load(sessionId);
      expect(again?.seq).toBe(1);
      expect(again?.content).toEqual([
        { type: 'tool_call', id: 'c1', name: 'n', arguments: { a: 1 } },
      ]);
      expect(again?.metadata).toEqual({ k: 'v' });
      expect(await messages.count(sessionId)).toBe(1);
    });

    it('loadAfter (when offered) returns every message after a seq, in order', async () => {
      const { messages } = backends();
      if (!messages.loadAfter) return;
      const sessionId = randomId('session');
      const other = randomId('session');
      await messages.storeMessages(
        sessionId,
        range(1205).map((index) => agentText(`m${index}`)),
      );
      await messages.storeMessages(other, [agentText('elsewhere')]);
      const all = await messages.load(sessionId);
      expect(await messages.loadAfter(sessionId, 0)).toEqual(all);
      expect(seqs(await messages.loadAfter(sessionId, 1200))).toEqual([
        1201, 1202, 1203, 1204, 1205,
      ]);
      expect(await messages.loadAfter(sessionId, 3)).toEqual(all.slice(3));
      expect(await messages.loadAfter(sessionId, 1205)).toEqual([]);
      expect(await messages.loadAfter(sessionId, 5000)).toEqual([]);
      expect(await messages.loadAfter(randomId('session'), 0)).toEqual([]);
      for (const bad of [-1, 1.5, Number.NaN, '2' as unknown as number]) {
        await expectErrorCode(messages.loadAfter(sessionId, bad), 'INVALID_INPUT');
      }
    });

    it('loadWithSource (when offered) gives what load gives, from one source while the history grows', async () => {
      const { messages } = backends();
      if (!messages.loadWithSource) return;
      const sessionId = randomId('session');
      const other = randomId('session');
      await messages.storeMessages(
        sessionId,
        range(3).map((index) => agentText(`m${index}`)),
      );
      await messages.storeMessages(other, [agentText('elsewhere')]);
      const first = await messages.loadWithSource(sessionId);
      expect(first.messages).toEqual(await messages.load(sessionId));
      expect(typeof first.source).toBe('object');
      await messages.storeMessage(sessionId, agentText('newest'));
      const second = await messages.loadWithSource(sessionId);
      expect(seqs(second.messages)).toEqual([1, 2, 3, 4]);
      expect(second.messages.slice(0, 3)).toEqual(first.messages);
      expect(second.source).toBe(first.source);
      // The caller's array: changing it changes nothing stored.
      second.messages.length = 0;
      expect(seqs((await messages.loadWithSource(sessionId)).messages)).toEqual([1, 2, 3, 4]);
      expect((await messages.loadWithSource(other)).source).not.toBe(first.source);
      expect((await messages.loadWithSource(randomId('session'))).messages).toEqual([]);
    });

    it('loadLatest (when offered) returns the last N messages, in order', async () => {
      const { messages } = backends();
      if (!messages.loadLatest) return;
      const sessionId = randomId('session');
      await messages.storeMessages(
        sessionId,
        range(12).map((index) => agentText(`m${index}`)),
      );
      await messages.storeMessages(randomId('session'), [agentText('elsewhere')]);
      const all = await messages.load(sessionId);
      expect(await messages.loadLatest(sessionId, 3)).toEqual(all.slice(9));
      expect(seqs(await messages.loadLatest(sessionId, 1))).toEqual([12]);
      expect(await messages.loadLatest(sessionId, 12)).toEqual(all);
      expect(await messages.loadLatest(sessionId, 1_000_000)).toEqual(all);
      expect(await messages.loadLatest(randomId('session'), 5)).toEqual([]);
      await messages.storeMessage(sessionId, agentText('newest'));
      expect(seqs(await messages.loadLatest(sessionId, 2))).toEqual([12, 13]);
      for (const bad of [0, -3, 2.5, Number.NaN]) {
        await expectErrorCode(messages.loadLatest(sessionId, bad), 'INVALID_INPUT');
      }
    });

    it('sumUsage (when offered) equals the usage of the agent messages, per model', async () => {
      const { messages } = backends();
      if (!messages.sumUsage) return;
      const sessionId = randomId('session');
      const withUsage = (model: string | undefined, usage: unknown, extra = {}): NewMessage =>
        agentText('answer', {
          metadata: { ...(model === undefined ? {} : { model }), usage, ...extra },
        });
      await messages.storeMessages(sessionId, [
        {
          role: 'user',
          content: [{ type: 'text', text: 'hi' }],
          metadata: { usage: { inputTokens: 999, outputTokens: 999 } },
        },
        withUsage('model-b', {
          inputTokens: 100,
          outputTokens: 40,
          cachedInputTokens: 10,
          reasoningTokens: 30,
        }),
        withUsage('model-a', { inputTokens: 150, outputTokens: 20, cacheWriteInputTokens: 50 }),
        {
          role: 'tool_result',
          content: [{ type: 'tool_result', toolCallId: 'c', content: 'r', isError: false }],
          metadata: { usage: { inputTokens: 7, outputTokens: 7 } },
        },
        withUsage('model-b', { inputTokens: 200, outputTokens: 5, cachedInputTokens: 140 }),
        // Unusual values count as zero or stay absent; odd strings elsewhere in metadata are harmless.
        withUsage(
          'model-a',
          { inputTokens: 'many', outputTokens: 2, reasoningTokens: null },
          {
            note: 'NUL \u0000, lone \ud800 and \udfff, escaped \\u0000',
            responseId: 'resp\u0000',
          },
        ),
        withUsage(undefined, { inputTokens: 3, outputTokens: 1 }),
        agentText('blocked', { metadata: { model: 'model-a', blocker: { message: 'no' } } }),
        agentText('odd', { metadata: { model: 'model-a', usage: [1, 2] } }),
        agentText('no metadata'),
      ]);
      await messages.storeMessage(
        randomId('session'),
        withUsage('model-a', { inputTokens: 5, outputTokens: 5 }),
      );
      const expected = [
        {
          model: 'model-a',
          modelCalls: 2,
          usage: { inputTokens: 150, outputTokens: 22, cacheWriteInputTokens: 50 },
        },
        {
          model: 'model-b',
          modelCalls: 2,
          usage: {
            inputTokens: 300,
            outputTokens: 45,
            cachedInputTokens: 150,
            reasoningTokens: 30,
          },
        },
        { model: null, modelCalls: 1, usage: { inputTokens: 3, outputTokens: 1 } },
      ];
      expect(await messages.sumUsage(sessionId)).toEqual(expected);
      // The same as adding up each stored message's usage.
      const tally = new UsageTally();
      for (const message of await messages.load(sessionId)) tally.add(message);
      expect(tally.totals()).toEqual(expected);
      expect(await messages.sumUsage(randomId('session'))).toEqual([]);
      // A new model call shows at once.
      await messages.storeMessage(
        sessionId,
        withUsage('model-a', { inputTokens: 1, outputTokens: 1, reasoningTokens: 1 }),
      );
      expect((await messages.sumUsage(sessionId))[0]).toEqual({
        model: 'model-a',
        modelCalls: 3,
        usage: {
          inputTokens: 151,
          outputTokens: 23,
          cacheWriteInputTokens: 50,
          reasoningTokens: 1,
        },
      });
    });

    it('sumUsage (when offered) with a turnId sums only that turn’s model calls, for the latest and for earlier turns', async () => {
      const { messages } = backends();
      if (!messages.sumUsage) return;
      const sessionId = randomId('session');
      const [turnA, turnB, turnC] = [randomId('turn'), randomId('turn'), randomId('turn')];
      const user = (turnId: string | undefined, extra: Partial<NewMessage> = {}): NewMessage => ({
        role: 'user',
        content: [{ type: 'text', text: 'question' }],
        ...(turnId === undefined ? {} : { turnId }),
        ...extra,
      });
      const call = (turnId: string | undefined, model: string, usage: unknown): NewMessage =>
        agentText('answer', {
          ...(turnId === undefined ? {} : { turnId }),
          metadata: { model, usage },
        });
      const toolResult = (turnId: string): NewMessage => ({
        role: 'tool_result',
        turnId,
        content: [
          { type: 'tool_result', toolCallId: randomId('call'), content: 'r', isError: false },
        ],
        metadata: { usage: { inputTokens: 1000, outputTokens: 1000 } },
      });
      await messages.storeMessages(sessionId, [
        // Turn A: two model calls around a tool result.
        user(turnA),
        call(turnA, 'model-a', { inputTokens: 100, outputTokens: 10, cachedInputTokens: 60 }),
        toolResult(turnA),
        call(turnA, 'model-a', { inputTokens: 120, outputTokens: 12 }),
        // A message without a turn (stored by hand) counts for the session only.
        call(undefined, 'model-a', { inputTokens: 7, outputTokens: 7 }),
        // Turn B: a steering message of the same turn in between, and two models.
        user(turnB),
        call(turnB, 'model-b', { inputTokens: 300, outputTokens: 30, reasoningTokens: 20 }),
        user(turnB, { metadata: { steering: true, usage: { inputTokens: 5, outputTokens: 5 } } }),
        call(turnB, 'model-a', { inputTokens: 50, outputTokens: 5 }),
        // Turn C: no model call (stopped before it).
        user(turnC),
      ]);
      // Another session with the same turn id is not counted.
      await messages.storeMessage(
        randomId('session'),
        call(turnA, 'model-a', { inputTokens: 9999, outputTokens: 9999 }),
      );

      const turnATotals = [
        {
          model: 'model-a',
          modelCalls: 2,
          usage: { inputTokens: 220, outputTokens: 22, cachedInputTokens: 60 },
        },
      ];
      const turnBTotals = [
        { model: 'model-a', modelCalls: 1, usage: { inputTokens: 50, outputTokens: 5 } },
        {
          model: 'model-b',
          modelCalls: 1,
          usage: { inputTokens: 300, outputTokens: 30, reasoningTokens: 20 },
        },
      ];
      expect(await messages.sumUsage(sessionId, { turnId: turnA })).toEqual(turnATotals);
      expect(await messages.sumUsage(sessionId, { turnId: turnB })).toEqual(turnBTotals);
      expect(await messages.sumUsage(sessionId, { turnId: turnC })).toEqual([]);
      expect(await messages.sumUsage(sessionId, { turnId: randomId('turn') })).toEqual([]);
      expect(await messages.sumUsage(randomId('session'), { turnId: turnA })).toEqual([]);
      // The same as adding up the stored messages of the turn.
      const all = await messages.load(sessionId);
      for (const [turnId, expected] of [
        [turnA, turnATotals],
        [turnB, turnBTotals],
      ] as const) {
        const tally = new UsageTally();
        for (const message of all) if (message.turnId === turnId) tally.add(message);
        expect(tally.totals()).toEqual(expected);
      }
      // Without the option: the whole session, the call without a turn included.
      expect(await messages.sumUsage(sessionId)).toEqual([
        {
          model: 'model-a',
          modelCalls: 4,
          usage: { inputTokens: 277, outputTokens: 34, cachedInputTokens: 60 },
        },
        turnBTotals[1],
      ]);
      // A call stored later for turn C shows in its sum at once; the others do not change.
      await messages.storeMessage(
        sessionId,
        call(turnC, 'model-b', { inputTokens: 1, outputTokens: 2 }),
      );
      expect(await messages.sumUsage(sessionId, { turnId: turnC })).toEqual([
        { model: 'model-b', modelCalls: 1, usage: { inputTokens: 1, outputTokens: 2 } },
      ]);
      expect(await messages.sumUsage(sessionId, { turnId: turnA })).toEqual(turnATotals);
      expect(await messages.sumUsage(sessionId, { turnId: turnB })).toEqual(turnBTotals);
    });
  });
}
