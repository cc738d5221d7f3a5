import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { EverrunsError, type LlmRequest, type LlmRequestOptions } from '@everruns-ts/core';
import { ADD_TOOL, newMessage, rejection } from '@everruns-ts/driver-test-support';
import { convertArrayToReadableStream, MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { AiSdkDriver } from './index.js';

const USAGE = {
  inputTokens: { total: 5, noCache: 5, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 1, text: 1, reasoning: undefined },
};

const TEXT_RESULT = {
  content: [{ type: 'text' as const, text: '{"answer":4}' }],
  finishReason: { unified: 'stop' as const, raw: 'stop' },
  usage: USAGE,
  warnings: [],
  response: { id: 'resp_options', modelId: 'mock-model' },
};

const ANSWER_SCHEMA = { type: 'object', properties: { answer: { type: 'number' } } };

function request(
  options: LlmRequestOptions | undefined,
  extra: Partial<LlmRequest> = {},
): LlmRequest {
  const sessionId = `session_${crypto.randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: 'chat', providerType: 'ai-sdk' },
    systemPrompt: '',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: 'turn_1',
    iteration: 1,
    ...(options ? { options } : {}),
    ...extra,
  };
}

const PROMPT = [{ role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] }];
const TOOLS = [
  {
    type: 'function',
    name: ADD_TOOL.name,
    description: ADD_TOOL.description,
    inputSchema: ADD_TOOL.inputSchema,
  },
];

describe('AI SDK driver request options', () => {
  it('driver maps every option to MockLanguageModelV4 call options, over callSettings', async () => {
    const model = new MockLanguageModelV4({ doGenerate: TEXT_RESULT });
    const driver = new AiSdkDriver({
      models: { chat: model },
      callSettings: {
        temperature: 1,
        topK: 40,
        providerOptions: { anthropic: { sendReasoning: true }, openai: { user: 'u1' } },
      },
    });
    await driver.generate(
      request(
        {
          temperature: 0.3,
          topP: 0.9,
          maxOutputTokens: 64,
          stop: ['END'],
          seed: 11,
          toolChoice: { type: 'tool', name: 'add' },
          parallelToolCalls: false,
          responseFormat: {
            type: 'json_schema',
            name: 'answer',
            description: 'The sum',
            schema: ANSWER_SCHEMA,
          },
          reasoningEffort: 'medium',
          thinkingBudgetTokens: 2048,
        },
        { maxOutputTokens: 999 },
      ),
    );
    expect(model.doGenerateCalls[0]).toEqual({
      prompt: PROMPT,
      tools: TOOLS,
      temperature: 0.3,
      topK: 40,
      topP: 0.9,
      maxOutputTokens: 64,
      stopSequences: ['END'],
      seed: 11,
      toolChoice: { type: 'tool', toolName: 'add' },
      responseFormat: {
        type: 'json',
        schema: ANSWER_SCHEMA,
        name: 'answer',
        description: 'The sum',
      },
      reasoning: 'medium',
      providerOptions: {
        anthropic: {
          sendReasoning: true,
          thinking: { type: 'enabled', budgetTokens: 2048 },
          disableParallelToolUse: true,
        },
        google: { thinkingConfig: { thinkingBudget: 2048 } },
        openai: { user: 'u1', parallelToolCalls: false },
      },
    });
  });

  it('driver maps string tool choices and leaves them out without tools, streaming too', async () => {
    const parts: LanguageModelV4StreamPart[] = [
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: 'ok' },
      { type: 'text-end', id: 't' },
      { type: 'finish', usage: USAGE, finishReason: { unified: 'stop', raw: 'stop' } },
    ];
    const stream = async () => ({ stream: convertArrayToReadableStream(parts) });
    const model = new MockLanguageModelV4({ doStream: stream });
    const driver = new AiSdkDriver({ models: { chat: model }, streaming: true });
    for (const toolChoice of ['auto', 'none', 'required'] as const) {
      await driver.generate(request({ toolChoice }));
    }
    await driver.generate(request({ toolChoice: 'auto', parallelToolCalls: true }, { tools: [] }));
    expect(model.doStreamCalls.map((call) => call.toolChoice)).toEqual([
      { type: 'auto' },
      { type: 'none' },
      { type: 'required' },
      undefined,
    ]);
    expect(model.doStreamCalls[3]?.providerOptions).toBeUndefined();
  });

  it('driver rejects extraBody and invalid options with INVALID_INPUT before calling the model', async () => {
    const model = new MockLanguageModelV4({ doGenerate: TEXT_RESULT });
    const driver = new AiSdkDriver({ models: { chat: model } });
    for (const options of [
      { extraBody: { top_k: 1 } },
      { toolChoice: { type: 'tool', name: 'divide' } },
      { temperature: 9 },
      { reasoningEffort: 'extreme' },
    ]) {
      const error = await rejection(driver.generate(request(options as LlmRequestOptions)));
      expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), JSON.stringify(options)).toBe(true);
    }
    expect(model.doGenerateCalls).toHaveLength(0);
    expect(() =>
      driver.checkOptions({ extraBody: { a: 1 } }, { model: 'chat', providerType: 'ai-sdk' }),
    ).toThrow(/extraBody/);
  });
});
