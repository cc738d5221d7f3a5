import { describe, expect, it } from 'vitest';
import {
  EverrunsError,
  llmRequestOptionsSchema,
  mergeLlmRequestOptions,
  modelWithProviderSchema,
  parseLlmRequestOptions,
} from './index.js';

describe('llmRequestOptionsSchema', () => {
  it('accepts every option at once', () => {
    const options = {
      temperature: 0,
      topP: 1,
      maxOutputTokens: 100,
      stop: ['a', 'b'],
      seed: -3,
      toolChoice: { type: 'tool', name: 'add' },
      parallelToolCalls: false,
      responseFormat: {
        type: 'json_schema',
        name: 'answer_1',
        schema: { type: 'object' },
        strict: true,
      },
      reasoningEffort: 'low',
      thinkingBudgetTokens: 2048,
      extraBody: { top_k: 3 },
    };
    expect(llmRequestOptionsSchema.parse(options)).toEqual(options);
  });

  it('refuses out-of-range values, unknown keys and reserved extraBody keys with INVALID_INPUT', () => {
    for (const bad of [
      { temperature: -0.1 },
      { maxOutputTokens: 1.5 },
      { stop: [] },
      { stop: [''] },
      { toolChoice: 'any' },
      { reasoningEffort: 'huge' },
      { thinkingBudgetTokens: 0 },
      { extraBody: { messages: [] } },
      { extraBody: { tools: [] } },
      { temprature: 1 },
    ]) {
      let caught: unknown;
      try {
        parseLlmRequestOptions(bad);
      } catch (error) {
        caught = error;
      }
      expect(EverrunsError.hasCode(caught, 'INVALID_INPUT'), JSON.stringify(bad)).toBe(true);
    }
  });

  it('keeps a model configuration without options valid (stored before options existed)', () => {
    expect(modelWithProviderSchema.parse({ model: 'm', providerType: 'openai' })).toEqual({
      model: 'm',
      providerType: 'openai',
    });
  });
});

describe('mergeLlmRequestOptions', () => {
  it('lets later layers win key by key and merges extraBody key by key', () => {
    expect(
      mergeLlmRequestOptions({ temperature: 0.1, seed: 1, extraBody: { a: 1, b: 1 } }, undefined, {
        temperature: 0.7,
        extraBody: { b: 2 },
      }),
    ).toEqual({ temperature: 0.7, seed: 1, extraBody: { a: 1, b: 2 } });
  });

  it('resolves undefined when no layer sets anything', () => {
    expect(mergeLlmRequestOptions(undefined, {}, undefined)).toBeUndefined();
  });
});
