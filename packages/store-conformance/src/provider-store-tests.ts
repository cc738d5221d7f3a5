import type { ModelWithProvider } from '@everruns-ts/core';
import { expect, it } from 'vitest';
import { HOSTILE_STRINGS, randomId, tryToMutate } from './helpers.js';
import { defineRuntimeArea } from './runtime-area.js';
import type { RuntimeStoreInitializer } from './types.js';

/** Tests of `RuntimeProviderStore`: models by id (registered or replaced) and the default model. */
export function providerStoreTests(initializer: RuntimeStoreInitializer): void {
  defineRuntimeArea(initializer, 'provider store', ({ backends, withFreshBackends }) => {
    it('round-trips a model with its credentials and base URL', async () => {
      const { providers } = backends();
      const modelId = randomId('model');
      const model: ModelWithProvider = {
        model: 'gpt-4.1',
        providerType: 'openai',
        apiKey: "sk-'quoted'\\secret",
        baseUrl: 'https://proxy.example.com/v1',
      };
      await providers.addModel(modelId, model);
      expect(await providers.getModelWithProvider(modelId)).toEqual(model);
      expect(await providers.getModelWithProvider(randomId('model'))).toBeNull();
    });

    it('keeps a model’s context window, registered and as the default', async () => {
      const { providers } = backends();
      const modelId = randomId('model');
      const model: ModelWithProvider = {
        model: 'gpt-4o-mini',
        providerType: 'openai',
        contextWindow: 128_000,
      };
      await providers.addModel(modelId, model);
      expect(await providers.getModelWithProvider(modelId)).toEqual(model);
      await withFreshBackends(async (fresh) => {
        await fresh.providers.setDefaultModel({ ...model, contextWindow: 2_000 });
        expect((await fresh.providers.getDefaultModel())?.contextWindow).toBe(2_000);
      });
    });

    it('replaces a model registered under the same id', async () => {
      const { providers } = backends();
      const modelId = randomId('model');
      await providers.addModel(modelId, { model: 'a', providerType: 'llmsim' });
      await providers.addModel(modelId, { model: 'b', providerType: 'third-party-provider' });
      expect(await providers.getModelWithProvider(modelId)).toEqual({
        model: 'b',
        providerType: 'third-party-provider',
      });
    });

    it('has no default model until one is set, then returns the latest', async () => {
      await withFreshBackends(async ({ providers }) => {
        expect(await providers.getDefaultModel()).toBeNull();
        await providers.setDefaultModel({ model: 'one', providerType: 'llmsim' });
        await providers.setDefaultModel({ model: 'two', providerType: 'anthropic', apiKey: 'k' });
        expect(await providers.getDefaultModel()).toEqual({
          model: 'two',
          providerType: 'anthropic',
          apiKey: 'k',
        });
      });
    });

    it('accepts hostile model ids as opaque data', async () => {
      const { providers } = backends();
      for (const value of HOSTILE_STRINGS) {
        const modelId = `${value}${randomId()}`;
        await providers.addModel(modelId, { model: value.slice(0, 50), providerType: 'llmsim' });
        expect((await providers.getModelWithProvider(modelId))?.model).toBe(value.slice(0, 50));
      }
    });

    it('keeps its copy when the caller changes what it gave or got', async () => {
      const { providers } = backends();
      const modelId = randomId('model');
      const model: ModelWithProvider = { model: 'kept', providerType: 'llmsim' };
      await providers.addModel(modelId, model);
      tryToMutate(() => {
        model.model = 'changed';
      });
      const got = await providers.getModelWithProvider(modelId);
      tryToMutate(() => {
        (got as { model: string }).model = 'changed';
      });
      expect((await providers.getModelWithProvider(modelId))?.model).toBe('kept');
    });
  });
}
