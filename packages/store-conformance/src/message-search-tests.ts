import {
  type Message,
  type MessageSearchPage,
  type MessageSearchRequest,
  messageMatchesSearch,
  type NewMessage,
  type RuntimeMessageStore,
  searchSessionMessages,
} from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { expectErrorCode, randomId } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

const text = (role: NewMessage['role'], value: string): NewMessage => ({
  role,
  content: [{ type: 'text', text: value }],
});

const seqs = (page: MessageSearchPage) => page.messages.map((message) => message.seq);

/** The same store without `searchMessages`: `searchSessionMessages` then scans page by page. */
function withoutSearch(store: RuntimeMessageStore): RuntimeMessageStore {
  return {
    addInputMessage: store.addInputMessage.bind(store),
    storeMessage: store.storeMessage.bind(store),
    storeMessages: store.storeMessages.bind(store),
    get: store.get.bind(store),
    getByIdempotencyKey: store.getByIdempotencyKey.bind(store),
    load: store.load.bind(store),
    loadPage: store.loadPage.bind(store),
    loadFiltered: store.loadFiltered.bind(store),
    count: store.count.bind(store),
  };
}

/**
 * Searches with the store's own `searchMessages` (when it has one) and with the page-scan
 * fallback of `searchSessionMessages`, checks both agree, and returns the page.
 */
async function search(
  store: RuntimeMessageStore,
  sessionId: string,
  request: MessageSearchRequest,
): Promise<MessageSearchPage> {
  const scanned = await searchSessionMessages(withoutSearch(store), sessionId, request);
  if (!store.searchMessages) return scanned;
  const own = await store.searchMessages(sessionId, request);
  expect(own).toEqual(scanned);
  expect(await searchSessionMessages(store, sessionId, request)).toEqual(own);
  return own;
}

/**
 * Tests of `RuntimeMessageStore.searchMessages` (optional; a backend without it is tested through
 * the page-scan fallback): what text is searched (text parts, tool results, tool call names and
 * JSON arguments), case-insensitivity as JavaScript's `toLowerCase`, roles, paging with
 * `offset`/`limit`/`hasMore`, unicode and escapes, request validation and a missing session. Every
 * answer is also compared with the fallback scan.
 */
export function messageSearchTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'message search', ({ backends }) => {
    it('searches text parts, tool results, tool call names and JSON arguments, ignoring case, oldest first', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const stored = await messages.storeMessages(sessionId, [
        text('user', 'Please deploy the Service to Staging'),
        {
          role: 'agent',
          content: [
            { type: 'reasoning', text: 'secret plan: deploy-hidden' },
            { type: 'text', text: 'Deploying now.' },
            {
              type: 'tool_call',
              id: 'call_1',
              name: 'run_deploy',
              arguments: { target: 'Staging-EU', replicas: 3 },
            },
          ],
        },
        {
          role: 'tool_result',
          content: [
            {
              type: 'tool_result',
              toolCallId: 'call_1',
              content: 'DEPLOYED build 4711 to staging-eu',
              isError: false,
            },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'image', mediaType: 'image/png', data: 'c3RhZ2luZy1pbWFnZQ==' },
            { type: 'text', text: 'first line\nsecond line' },
          ],
        },
      ]);
      const [user, agent, result, withImage] = stored as [Message, Message, Message, Message];

      expect(await search(messages, sessionId, { query: 'staging' })).toEqual({
        messages: [user, agent, result],
        hasMore: false,
      });
      // A tool call's name and its JSON arguments, as JSON.stringify writes them.
      expect(seqs(await search(messages, sessionId, { query: 'RUN_DEPLOY' }))).toEqual([2]);
      expect(seqs(await search(messages, sessionId, { query: '"replicas":3' }))).toEqual([2]);
      expect(seqs(await search(messages, sessionId, { query: 'build 4711' }))).toEqual([3]);
      // Reasoning and images are not searched.
      expect(seqs(await search(messages, sessionId, { query: 'deploy-hidden' }))).toEqual([]);
      expect(seqs(await search(messages, sessionId, { query: 'c3RhZ2lu' }))).toEqual([]);
      // Parts are joined by a newline.
      expect(seqs(await search(messages, sessionId, { query: 'LINE\nSECOND' }))).toEqual([4]);
      expect((await search(messages, sessionId, { query: 'second line' })).messages[0]).toEqual(
        withImage,
      );
      for (const message of stored) {
        expect(messageMatchesSearch(message, { query: 'nothing like this' })).toBe(false);
      }
      expect(await search(messages, sessionId, { query: 'nothing like this' })).toEqual({
        messages: [],
        hasMore: false,
      });
    });

    it('filters by role', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessages(sessionId, [
        text('user', 'alpha from the user'),
        text('agent', 'alpha from the agent'),
        {
          role: 'tool_result',
          content: [{ type: 'tool_result', toolCallId: 'c', content: 'alpha out', isError: true }],
        },
        text('user', 'beta only'),
      ]);
      expect(seqs(await search(messages, sessionId, { query: 'alpha', roles: ['user'] }))).toEqual([
        1,
      ]);
      expect(
        seqs(
          await search(messages, sessionId, { query: 'ALPHA', roles: ['agent', 'tool_result'] }),
        ),
      ).toEqual([2, 3]);
      expect(seqs(await search(messages, sessionId, { query: 'beta', roles: ['agent'] }))).toEqual(
        [],
      );
    });

    it('pages with offset and limit; hasMore says whether more matches follow', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const batch: NewMessage[] = [];
      for (let index = 1; index <= 45; index++) {
        // Every third message matches: seqs 3, 6, … 45 (15 matches).
        batch.push(
          text(
            index % 2 === 0 ? 'user' : 'agent',
            index % 3 === 0 ? `hit ${index}` : `miss ${index}`,
          ),
        );
      }
      await messages.storeMessages(sessionId, batch);
      const all = Array.from({ length: 15 }, (_, index) => 3 * (index + 1));

      const first = await search(messages, sessionId, { query: 'HIT', limit: 4 });
      expect(seqs(first)).toEqual(all.slice(0, 4));
      expect(first.hasMore).toBe(true);
      const middle = await search(messages, sessionId, { query: 'hit', offset: 4, limit: 4 });
      expect(seqs(middle)).toEqual(all.slice(4, 8));
      expect(middle.hasMore).toBe(true);
      const last = await search(messages, sessionId, { query: 'hit', offset: 12, limit: 4 });
      expect(seqs(last)).toEqual(all.slice(12));
      expect(last.hasMore).toBe(false);
      // Exactly the rest: no more after it.
      const exact = await search(messages, sessionId, { query: 'hit', offset: 11, limit: 4 });
      expect(seqs(exact)).toEqual(all.slice(11));
      expect(exact.hasMore).toBe(false);
      expect(await search(messages, sessionId, { query: 'hit', offset: 15 })).toEqual({
        messages: [],
        hasMore: false,
      });
      expect(await search(messages, sessionId, { query: 'hit', offset: 1000 })).toEqual({
        messages: [],
        hasMore: false,
      });
      // Default limit 20; limit 100 is allowed.
      const misses = await search(messages, sessionId, { query: 'miss' });
      expect(misses.messages).toHaveLength(20);
      expect(misses.hasMore).toBe(true);
      expect(
        (await search(messages, sessionId, { query: 'miss', limit: 100 })).messages,
      ).toHaveLength(30);
      // Roles and paging together.
      const userHits = await search(messages, sessionId, {
        query: 'hit',
        roles: ['user'],
        offset: 1,
        limit: 2,
      });
      expect(seqs(userHits)).toEqual([12, 18]);
      expect(userHits.hasMore).toBe(true);
    });

    it('matches unicode as toLowerCase does, and escapes, LIKE characters and lone surrogates literally', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessages(sessionId, [
        text('user', 'ÄPFEL und ÖL'), // 1
        text('agent', 'ΣΟΦΊΑ'), // 2: toLowerCase gives σοφία
        text('user', 'İstanbul'), // 3: 'İ'.toLowerCase() is 'i̇' (two code units)
        text('agent', '100% done_ok \\ path'), // 4
        text('user', '100 percent done'), // 5
        text('agent', 'nul\u0000here and \u0001 too'), // 6
        text('user', 'pair 😀 emoji'), // 7
        text('agent', 'lone \ud83d high'), // 8
        text('user', '漢字 テキスト'), // 9
        text('agent', 'plain 0 and u0001'), // 10
      ]);
      const found = async (query: string) => seqs(await search(messages, sessionId, { query }));
      expect(await found('äpfel')).toEqual([1]);
      expect(await found('öl')).toEqual([1]);
      expect(await found('σοφία')).toEqual([2]);
      expect(await found('ΣΟΦΊΑ')).toEqual([2]);
      expect(await found('i̇stanbul')).toEqual([3]);
      expect(await found('İSTANBUL')).toEqual([3]);
      // A plain "istanbul" is not a substring of toLowerCase('İstanbul').
      expect(await found('istanbul')).toEqual([]);
      expect(await found('100%')).toEqual([4]);
      expect(await found('_ok')).toEqual([4]);
      expect(await found('0_p')).toEqual([]);
      expect(await found('0%d')).toEqual([]);
      expect(await found('\\ p')).toEqual([4]);
      expect(await found('%')).toEqual([4]);
      expect(await found('\u0000')).toEqual([6]);
      expect(await found('l\u0000h')).toEqual([6]);
      expect(await found('\u0001')).toEqual([6]);
      // The stored escape of NUL or U+0001 never matches plain text.
      expect(await found('0')).toEqual([4, 5, 10]);
      expect(await found('u0001')).toEqual([10]);
      expect(await found('😀')).toEqual([7]);
      // Half of a pair matches as String.prototype.includes does.
      expect(await found('\ud83d')).toEqual([7, 8]);
      expect(await found('\ude00 emoji')).toEqual([7]);
      expect(await found('😀 EMOJI')).toEqual([7]);
      expect(await found('\ud83d high')).toEqual([8]);
      expect(await found('テキスト')).toEqual([9]);
    });

    it('rejects an empty query, a bad limit or offset and unknown fields with INVALID_INPUT', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      await messages.storeMessage(sessionId, text('user', 'anything'));
      const bad: unknown[] = [
        { query: '' },
        { query: 'x', limit: 0 },
        { query: 'x', limit: 101 },
        { query: 'x', limit: 1.5 },
        { query: 'x', offset: -1 },
        { query: 'x', roles: ['system'] },
        { query: 'x', roles: [] },
        { query: 'x', extra: true },
        { query: 'x'.repeat(1001) },
        {},
      ];
      for (const request of bad) {
        await expectErrorCode(
          searchSessionMessages(messages, sessionId, request as MessageSearchRequest),
          'INVALID_INPUT',
        );
        await expectErrorCode(
          searchSessionMessages(
            withoutSearch(messages),
            sessionId,
            request as MessageSearchRequest,
          ),
          'INVALID_INPUT',
        );
        if (messages.searchMessages) {
          await expectErrorCode(
            messages.searchMessages(sessionId, request as MessageSearchRequest),
            'INVALID_INPUT',
          );
        }
      }
      expect(seqs(await search(messages, sessionId, { query: 'x'.repeat(1000) }))).toEqual([]);
      expect(seqs(await search(messages, sessionId, { query: 'any', limit: 1 }))).toEqual([1]);
    });

    it('gives an empty page for a session without messages, and never another session’s', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const other = randomId('session');
      await messages.storeMessage(other, text('user', 'needle elsewhere'));
      expect(await search(messages, sessionId, { query: 'needle' })).toEqual({
        messages: [],
        hasMore: false,
      });
      await messages.storeMessage(sessionId, text('agent', 'a needle here'));
      expect(seqs(await search(messages, sessionId, { query: 'needle' }))).toEqual([1]);
      expect((await search(messages, other, { query: 'needle' })).messages[0]?.sessionId).toBe(
        other,
      );
    });

    it('finds messages appended one at a time and in batches, as they are stored', async () => {
      const { messages } = backends();
      const sessionId = randomId('session');
      const one = await messages.storeMessage(sessionId, text('user', 'Marker one'));
      const [two] = await messages.storeMessages(sessionId, [text('agent', 'marker two')]);
      const three = await messages.addInputMessage(sessionId, {
        role: 'user',
        content: [{ type: 'text', text: 'MARKER three' }],
      });
      expect((await search(messages, sessionId, { query: 'marker' })).messages).toEqual([
        one,
        two,
        three,
      ]);
    });
  });
}
