import { randomBytes } from 'node:crypto';
import {
  EverrunsError,
  type LlmDriver,
  type LlmRequestOptions,
  type ModelWithProvider,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresBackends } from './postgres-backends.js';
import { adminQuery, createTestBackends, destroyTestBackends } from './test-support/database.js';

const OPTIONS: LlmRequestOptions = {
  temperature: 0.2,
  toolChoice: { type: 'tool', name: 'add' },
  responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true },
  extraBody: { top_k: 3 },
};

function modelId(): string {
  return `model-${randomBytes(6).toString('hex')}`;
}

describe('PostgreSQL provider store: model request options', () => {
  let backends: PostgresBackends;

  beforeAll(async () => {
    backends = await createTestBackends();
  });

  afterAll(async () => {
    await destroyTestBackends(backends);
  });

  it('stores a model configuration with its options and reads them back, key sealed apart', async () => {
    const id = modelId();
    const model: ModelWithProvider = {
      model: 'gpt-4.1-mini',
      providerType: 'openai',
      apiKey: `sk-${randomBytes(8).toString('hex')}`,
      options: OPTIONS,
    };
    await backends.providers.addModel(id, model);
    expect(await backends.providers.getModelWithProvider(id)).toEqual(model);
    await backends.providers.setDefaultModel(model);
    expect(await backends.providers.getDefaultModel()).toEqual(model);
  });

  it('reads a row written before options existed as a model without options', async () => {
    const id = modelId();
    await backends.providers.addModel(id, { model: 'old', providerType: 'llmsim' });
    const rows = await adminQuery<{ data: string }>(`SELECT data FROM "${backends.schema}".models`);
    expect(
      rows.rows.some(
        (row) => row.data === JSON.stringify({ model: 'old', providerType: 'llmsim' }),
      ),
    ).toBe(true);
    expect(await backends.providers.getModelWithProvider(id)).toEqual({
      model: 'old',
      providerType: 'llmsim',
    });
  });

  it('rejects invalid options with INVALID_INPUT and writes nothing', async () => {
    const id = modelId();
    const bad = { model: 'm', providerType: 'openai', options: { temperature: 5 } };
    const added = await backends.providers
      .addModel(id, bad as ModelWithProvider)
      .catch((error: unknown) => error);
    expect(EverrunsError.hasCode(added, 'INVALID_INPUT')).toBe(true);
    expect(await backends.providers.getModelWithProvider(id)).toBeNull();
    const before = await backends.providers.getDefaultModel();
    const defaulted = await backends.providers
      .setDefaultModel({ ...bad, options: { extraBody: { messages: [] } } } as ModelWithProvider)
      .catch((error: unknown) => error);
    expect(EverrunsError.hasCode(defaulted, 'INVALID_INPUT')).toBe(true);
    expect(await backends.providers.getDefaultModel()).toEqual(before);
  });

  it('runs turns with the stored model options, a turn override winning for its turn', async () => {
    const requested: Array<LlmRequestOptions | undefined> = [];
    const driver: LlmDriver = {
      providerType: 'llmsim',
      async generate(request) {
        requested.push(request.options);
        return {
          text: 'ok',
          toolCalls: [],
          usage: { inputTokens: 1, outputTokens: 1 },
          stopReason: 'end_turn',
        };
      },
    };
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .driver(driver)
      .defaultModel({
        model: 'llmsim-model',
        providerType: 'llmsim',
        options: { seed: 4, temperature: 0.1 },
      })
      .singleSession((session) => session.harness(`h-${randomBytes(4).toString('hex')}`, 'Help.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    await runtime.runTextTurn(sessionId, 'one', { modelOptions: { temperature: 0.8 } });
    await runtime.runTextTurn(sessionId, 'two');
    expect(requested).toEqual([
      { seed: 4, temperature: 0.8 },
      { seed: 4, temperature: 0.1 },
    ]);
    const refused = await runtime
      .runTextTurn(sessionId, 'three', { modelOptions: { stop: [] } })
      .catch((error: unknown) => error);
    expect(EverrunsError.hasCode(refused, 'INVALID_INPUT')).toBe(true);
    expect(await backends.messages.count(sessionId)).toBe(4);
  });
});
