import { EverrunsError, type ModelWithProvider } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { InMemoryProviderStore } from './index.js';

describe('in-memory provider store: model request options', () => {
  it('keeps a model configuration with its options, and one without', async () => {
    const store = new InMemoryProviderStore();
    const model: ModelWithProvider = {
      model: 'claude-sonnet-4-5',
      providerType: 'anthropic',
      options: { thinkingBudgetTokens: 2048, stop: ['END'], extraBody: { metadata: { a: 1 } } },
    };
    await store.addModel('thinker', model);
    await store.addModel('plain', { model: 'm', providerType: 'llmsim' });
    await store.setDefaultModel(model);
    expect(await store.getModelWithProvider('thinker')).toEqual(model);
    expect(await store.getModelWithProvider('plain')).toEqual({
      model: 'm',
      providerType: 'llmsim',
    });
    expect(await store.getDefaultModel()).toEqual(model);
  });

  it('rejects invalid options with INVALID_INPUT and stores nothing', async () => {
    const store = new InMemoryProviderStore();
    const bad = { model: 'm', providerType: 'openai', options: { toolChoice: 'any' } };
    const added = await store
      .addModel('bad', bad as ModelWithProvider)
      .catch((error: unknown) => error);
    const defaulted = await store
      .setDefaultModel(bad as ModelWithProvider)
      .catch((error: unknown) => error);
    expect(EverrunsError.hasCode(added, 'INVALID_INPUT')).toBe(true);
    expect(EverrunsError.hasCode(defaulted, 'INVALID_INPUT')).toBe(true);
    expect(await store.getModelWithProvider('bad')).toBeNull();
    expect(await store.getDefaultModel()).toBeNull();
  });
});
