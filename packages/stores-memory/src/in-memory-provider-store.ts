import {
  type ModelWithProvider,
  parseLlmRequestOptions,
  type RuntimeProviderStore,
} from '@everruns-ts/core';
import { freezeCopy } from './freeze-copy.js';

/** Options of {@link InMemoryProviderStore}. */
export interface InMemoryProviderStoreOptions {
  /** The default model to start with. */
  defaultModel?: ModelWithProvider;
  /** Models to register up front, by id. */
  models?: Record<string, ModelWithProvider>;
}

/** Models and the default model, kept in memory as frozen copies (the model map made on the first model). */
export class InMemoryProviderStore implements RuntimeProviderStore {
  #models: Map<string, ModelWithProvider> | undefined;
  #defaultModel: ModelWithProvider | null = null;

  constructor(options: InMemoryProviderStoreOptions = {}) {
    if (options.defaultModel !== undefined) this.#defaultModel = freezeCopy(options.defaultModel);
    for (const [modelId, model] of Object.entries(options.models ?? {})) {
      this.#map().set(modelId, freezeCopy(model));
    }
  }

  /** The model registered under `modelId`, or `null`. */
  async getModelWithProvider(modelId: string): Promise<ModelWithProvider | null> {
    return this.#models?.get(modelId) ?? null;
  }

  /**
   * Registers or replaces a model under an id, its request `options` included (`INVALID_INPUT`,
   * nothing stored, when they are not valid).
   */
  async addModel(modelId: string, model: ModelWithProvider): Promise<void> {
    checkModelOptions(model);
    this.#map().set(modelId, freezeCopy(model));
  }

  /** The model map, made on first use. */
  #map(): Map<string, ModelWithProvider> {
    this.#models ??= new Map();
    return this.#models;
  }

  /** The default model, or `null` when none was set. */
  async getDefaultModel(): Promise<ModelWithProvider | null> {
    return this.#defaultModel;
  }

  /** Sets the default model (`INVALID_INPUT`, nothing stored, for invalid request `options`). */
  async setDefaultModel(model: ModelWithProvider): Promise<void> {
    checkModelOptions(model);
    this.#defaultModel = freezeCopy(model);
  }
}

function checkModelOptions(model: ModelWithProvider): void {
  if (model === null || typeof model !== 'object') return;
  parseLlmRequestOptions(model.options, `options of model ${model.model}`);
}
