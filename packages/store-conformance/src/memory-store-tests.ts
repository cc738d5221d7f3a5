import { expect, it } from 'vitest';
import { HOSTILE_STRINGS, randomId, TRICKY_TEXT } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/**
 * Tests of `MemoryStore`: remember (create or replace, keeping `createdAt`), recall (newest
 * first, case-insensitive search over key, content and tags, limit), forget, scopes kept apart.
 */
export function memoryStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'memory store', ({ backends }) => {
    it('remembers an entry and returns it with timestamps and default tags', async () => {
      const { memory } = backends();
      const scope = randomId('agent');
      const entry = await memory.remember(scope, { key: 'color', content: 'blue' });
      expect(entry).toMatchObject({ key: 'color', content: 'blue', tags: [] });
      expect(Number.isNaN(Date.parse(entry.createdAt))).toBe(false);
      expect(Number.isNaN(Date.parse(entry.updatedAt))).toBe(false);
      expect(await memory.recall(scope)).toEqual([entry]);
    });

    it('replaces an entry under the same key and keeps its createdAt', async () => {
      const { memory } = backends();
      const scope = randomId('agent');
      const first = await memory.remember(scope, { key: 'k', content: 'one', tags: ['a'] });
      const second = await memory.remember(scope, { key: 'k', content: 'two', tags: ['b'] });
      expect(second).toMatchObject({ key: 'k', content: 'two', tags: ['b'] });
      expect(second.createdAt).toBe(first.createdAt);
      expect(Date.parse(second.updatedAt)).toBeGreaterThanOrEqual(Date.parse(first.updatedAt));
      expect(await memory.recall(scope)).toEqual([second]);
    });

    it('recalls most recently written first, with a limit', async () => {
      const { memory } = backends();
      const scope = randomId('agent');
      for (const key of ['a', 'b', 'c']) await memory.remember(scope, { key, content: key });
      expect((await memory.recall(scope)).map((entry) => entry.key)).toEqual(['c', 'b', 'a']);
      await memory.remember(scope, { key: 'a', content: 'rewritten' });
      expect((await memory.recall(scope)).map((entry) => entry.key)).toEqual(['a', 'c', 'b']);
      expect((await memory.recall(scope, undefined, 2)).map((entry) => entry.key)).toEqual([
        'a',
        'c',
      ]);
    });

    it('searches key, content and tags case-insensitively and literally', async () => {
      const { memory } = backends();
      const scope = randomId('agent');
      await memory.remember(scope, { key: 'Favourite-Color', content: 'teal' });
      await memory.remember(scope, { key: 'food', content: 'Likes PASTA a lot' });
      await memory.remember(scope, { key: 'pet', content: 'a cat', tags: ['Animals'] });
      await memory.remember(scope, { key: 'discount', content: '50% off_sale' });
      const keys = async (query: string) =>
        (await memory.recall(scope, query)).map((entry) => entry.key);
      expect(await keys('favourite')).toEqual(['Favourite-Color']);
      expect(await keys('pasta')).toEqual(['food']);
      expect(await keys('animals')).toEqual(['pet']);
      expect(await keys('50%')).toEqual(['discount']);
      expect(await keys('%')).toEqual(['discount']);
      expect(await keys('o_f')).toEqual([]);
      expect(await keys('.*')).toEqual([]);
      expect(await keys('nothing-like-this')).toEqual([]);
    });

    it('forgets an entry and reports whether there was one', async () => {
      const { memory } = backends();
      const scope = randomId('agent');
      await memory.remember(scope, { key: 'k', content: 'v' });
      expect(await memory.forget(scope, 'k')).toBe(true);
      expect(await memory.forget(scope, 'k')).toBe(false);
      expect(await memory.recall(scope)).toEqual([]);
    });

    it('keeps scopes apart', async () => {
      const { memory } = backends();
      const [one, two] = [randomId('agent'), randomId('session')];
      await memory.remember(one, { key: 'k', content: 'one' });
      expect(await memory.recall(two)).toEqual([]);
      expect(await memory.forget(two, 'k')).toBe(false);
      expect((await memory.recall(one)).map((entry) => entry.content)).toEqual(['one']);
    });

    it('round-trips tricky text and accepts hostile scopes and keys', async () => {
      const { memory } = backends();
      for (const value of HOSTILE_STRINGS) {
        const scope = `${value}${randomId()}`;
        const key = `${value}${randomId()}`;
        const stored = await memory.remember(scope, { key, content: TRICKY_TEXT, tags: [value] });
        expect(stored).toMatchObject({ key, content: TRICKY_TEXT, tags: [value] });
        expect(await memory.recall(scope)).toEqual([stored]);
        expect(await memory.forget(scope, key)).toBe(true);
      }
    });
  });
}
