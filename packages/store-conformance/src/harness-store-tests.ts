import { expect, it } from 'vitest';
import {
  expectErrorCode,
  HOSTILE_STRINGS,
  isSorted,
  makeHarness,
  randomId,
  TRICKY_TEXT,
  tryToMutate,
} from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/**
 * Tests of `RuntimeHarnessStore`: round-trips, `DUPLICATE_ID`, the chain root first,
 * `HARNESS_NOT_FOUND` for a missing harness or parent, `INVALID_INPUT` for a parent cycle,
 * sorted listings and hostile ids.
 */
export function harnessStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'harness store', ({ backends }) => {
    it('round-trips a harness with every field', async () => {
      const { harnesses } = backends();
      const parent = makeHarness();
      await harnesses.addHarness(parent);
      const harness = makeHarness({
        name: 'full',
        displayName: 'Full harness',
        description: TRICKY_TEXT,
        systemPrompt: `You are careful. ${TRICKY_TEXT}`,
        parentHarnessId: parent.id,
        defaultModelId: 'model-1',
        tags: ['a', 'b'],
        capabilities: [{ id: 'test_math' }, { id: 'file_system', config: { readOnly: true } }],
        initialFiles: [
          { path: '/AGENTS.md', content: 'rules', encoding: 'text', isReadonly: true },
        ],
        maxIterations: 7,
        status: 'disabled',
      });
      await harnesses.addHarness(harness);
      expect(await harnesses.getHarness(harness.id)).toEqual(harness);
    });

    it('returns null for an unknown harness', async () => {
      expect(await backends().harnesses.getHarness(randomId('harness'))).toBeNull();
    });

    it('throws DUPLICATE_ID when adding an existing id and keeps the first', async () => {
      const { harnesses } = backends();
      const harness = makeHarness({ name: 'first' });
      await harnesses.addHarness(harness);
      await expectErrorCode(
        harnesses.addHarness(makeHarness({ id: harness.id, name: 'second' })),
        'DUPLICATE_ID',
      );
      expect((await harnesses.getHarness(harness.id))?.name).toBe('first');
    });

    it('returns the chain root first', async () => {
      const { harnesses } = backends();
      const root = makeHarness({ name: 'root' });
      const middle = makeHarness({ name: 'middle', parentHarnessId: root.id });
      const leaf = makeHarness({ name: 'leaf', parentHarnessId: middle.id });
      // Added child first: the store must not require parents to exist at insert time.
      await harnesses.addHarness(leaf);
      await harnesses.addHarness(root);
      await harnesses.addHarness(middle);
      expect(await harnesses.getHarnessChain(leaf.id)).toEqual([root, middle, leaf]);
      expect(await harnesses.getHarnessChain(middle.id)).toEqual([root, middle]);
      expect(await harnesses.getHarnessChain(root.id)).toEqual([root]);
    });

    it('throws HARNESS_NOT_FOUND for a missing harness or a missing parent', async () => {
      const { harnesses } = backends();
      await expectErrorCode(harnesses.getHarnessChain(randomId('harness')), 'HARNESS_NOT_FOUND');
      const orphan = makeHarness({ parentHarnessId: randomId('harness') });
      await harnesses.addHarness(orphan);
      await expectErrorCode(harnesses.getHarnessChain(orphan.id), 'HARNESS_NOT_FOUND');
    });

    it('throws INVALID_INPUT for a parent cycle', async () => {
      const { harnesses } = backends();
      const [aId, bId] = [randomId('harness'), randomId('harness')];
      await harnesses.addHarness(makeHarness({ id: aId, parentHarnessId: bId }));
      await harnesses.addHarness(makeHarness({ id: bId, parentHarnessId: aId }));
      await expectErrorCode(harnesses.getHarnessChain(aId), 'INVALID_INPUT');
      const self = makeHarness();
      await harnesses.addHarness({ ...self, parentHarnessId: self.id });
      await expectErrorCode(harnesses.getHarnessChain(self.id), 'INVALID_INPUT');
    });

    it('lists every harness sorted by id', async () => {
      const { harnesses } = backends();
      const ids = ['harness_b', 'harness_A', 'harness_a', 'harness_0'].map(
        (id) => `${id}${randomId('')}`,
      );
      for (const id of ids) await harnesses.addHarness(makeHarness({ id }));
      const listed = (await harnesses.listHarnesses()).map((harness) => harness.id);
      expect(isSorted(listed)).toBe(true);
      expect(listed.filter((id) => ids.includes(id))).toEqual([...ids].sort());
    });

    it('accepts hostile ids as opaque data', async () => {
      const { harnesses } = backends();
      for (const value of HOSTILE_STRINGS) {
        const parent = makeHarness({ id: `${value}${randomId('p')}` });
        const child = makeHarness({ id: `${value}${randomId('c')}`, parentHarnessId: parent.id });
        await harnesses.addHarness(parent);
        await harnesses.addHarness(child);
        expect(await harnesses.getHarness(parent.id)).toEqual(parent);
        expect((await harnesses.getHarnessChain(child.id)).map((harness) => harness.id)).toEqual([
          parent.id,
          child.id,
        ]);
      }
    });

    it('keeps its copy when the caller changes what it gave or got', async () => {
      const { harnesses } = backends();
      const harness = makeHarness({ name: 'kept', tags: ['t'] });
      await harnesses.addHarness(harness);
      tryToMutate(() => {
        harness.name = 'changed';
        harness.tags.push('x');
      });
      const got = await harnesses.getHarness(harness.id);
      tryToMutate(() => {
        (got as { name: string }).name = 'changed';
        got?.tags.push('y');
      });
      const again = await harnesses.getHarness(harness.id);
      expect(again?.name).toBe('kept');
      expect(again?.tags).toEqual(['t']);
    });
  });
}
