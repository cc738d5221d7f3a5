import {
  type ModelWithProvider,
  parseLlmRequestOptions,
  type RuntimeProviderStore,
} from '@everruns-ts/core';
import {
  checkSize,
  parseStored,
  requireString,
  type StoreContext,
  stringifyForStore,
} from './store-context.js';
import { encodeText, textDigest } from './text-codec.js';

/** A stored model row. */
export interface ModelRow {
  data: string;
  api_key_id: string | null;
  api_key_sealed: Buffer | null;
}

const DEFAULT_MODEL_CONTEXT = Buffer.from('default-model', 'utf8');

/**
 * Models and the default model. A model's `apiKey` is a credential: it is encrypted with the
 * store's secret key like session secrets, never stored in clear.
 */
export class PostgresProviderStore implements RuntimeProviderStore {
  readonly #context: StoreContext;

  constructor(context: StoreContext) {
    this.#context = context;
  }

  /** The model registered under `modelId`, or `null`. */
  async getModelWithProvider(modelId: string): Promise<ModelWithProvider | null> {
    requireString(modelId, 'modelId');
    const { db } = this.#context;
    const idHash = textDigest(modelId);
    const result = await db.run('getModelWithProvider', (client) =>
      client.query<ModelRow>(
        `SELECT data, api_key_id, api_key_sealed FROM ${db.table('models')} WHERE id_hash = $1`,
        [idHash],
      ),
    );
    const row = result.rows[0];
    return row ? this.#fromRow(row, modelContext(idHash), `API key of model ${modelId}`) : null;
  }

  /**
   * Registers or replaces a model under an id, its request `options` included (`INVALID_INPUT`,
   * nothing written, when they are not valid).
   */
  async addModel(modelId: string, model: ModelWithProvider): Promise<void> {
    requireString(modelId, 'modelId');
    const idHash = textDigest(modelId);
    const row = this.#toRow(model, modelContext(idHash));
    const { db } = this.#context;
    await db.run('addModel', (client) =>
      client.query(
        `INSERT INTO ${db.table('models')} (id_hash, model_id, data, api_key_id, api_key_sealed)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id_hash) DO UPDATE
           SET data = EXCLUDED.data, api_key_id = EXCLUDED.api_key_id,
               api_key_sealed = EXCLUDED.api_key_sealed`,
        [idHash, encodeText(modelId), row.data, row.api_key_id, row.api_key_sealed],
      ),
    );
  }

  /** The default model, or `null` when none was set. */
  async getDefaultModel(): Promise<ModelWithProvider | null> {
    const { db } = this.#context;
    const result = await db.run('getDefaultModel', (client) =>
      client.query<ModelRow>(
        `SELECT data, api_key_id, api_key_sealed FROM ${db.table('default_model')}`,
        [],
      ),
    );
    const row = result.rows[0];
    return row ? defaultModelFromRow(this.#context, row) : null;
  }

  /** Sets the default model. */
  async setDefaultModel(model: ModelWithProvider): Promise<void> {
    const row = this.#toRow(model, DEFAULT_MODEL_CONTEXT);
    const { db } = this.#context;
    await db.run('setDefaultModel', (client) =>
      client.query(
        `INSERT INTO ${db.table('default_model')} (singleton, data, api_key_id, api_key_sealed)
         VALUES (true, $1, $2, $3)
         ON CONFLICT (singleton) DO UPDATE
           SET data = EXCLUDED.data, api_key_id = EXCLUDED.api_key_id,
               api_key_sealed = EXCLUDED.api_key_sealed`,
        [row.data, row.api_key_id, row.api_key_sealed],
      ),
    );
  }

  #toRow(model: ModelWithProvider, context: Buffer): ModelRow {
    if (model === null || typeof model !== 'object') throw new TypeError('model must be an object');
    // Request options are checked before anything is written (`INVALID_INPUT`).
    parseLlmRequestOptions(model.options, `options of model ${model.model}`);
    const { apiKey, ...rest } = model;
    const data = stringifyForStore(rest, 'model');
    checkSize(this.#context, data, 'Model');
    if (apiKey === undefined) return { data, api_key_id: null, api_key_sealed: null };
    requireString(apiKey, 'model.apiKey');
    checkSize(this.#context, apiKey, 'Model API key');
    const sealed = this.#context.cipher.seal(apiKey, context);
    return { data, api_key_id: sealed.keyId, api_key_sealed: sealed.sealed };
  }

  #fromRow(row: ModelRow, context: Buffer, what: string): ModelWithProvider {
    return modelFromRow(this.#context, row, context, what);
  }
}

function modelFromRow(
  storeContext: StoreContext,
  row: ModelRow,
  context: Buffer,
  what: string,
): ModelWithProvider {
  const model = parseStored<ModelWithProvider>(row.data, 'model');
  if (row.api_key_id !== null && row.api_key_sealed !== null) {
    model.apiKey = storeContext.cipher.open(
      { keyId: row.api_key_id, sealed: row.api_key_sealed },
      context,
      what,
    );
  }
  return model;
}

/** The default model from its stored row, its API key decrypted (`SECRET_KEY_MISMATCH` when it cannot be). */
export function defaultModelFromRow(storeContext: StoreContext, row: ModelRow): ModelWithProvider {
  return modelFromRow(storeContext, row, DEFAULT_MODEL_CONTEXT, 'API key of the default model');
}

function modelContext(idHash: Buffer): Buffer {
  return Buffer.concat([Buffer.from('model\u0000', 'utf8'), idHash]);
}
