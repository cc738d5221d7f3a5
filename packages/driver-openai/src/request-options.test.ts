import { randomUUID } from 'node:crypto';
import { EverrunsError, type LlmRequest, type LlmRequestOptions } from '@everruns-ts/core';
import {
  ADD_TOOL,
  closeFakeServers,
  json,
  MULTIPLY_TOOL,
  newMessage,
  rejection,
  sse,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver } from './index.js';

afterEach(closeFakeServers);

const API_KEY = `sk-test-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'gpt-4.1-mini';

const COMPLETION = {
  id: 'chatcmpl-options',
  object: 'chat.completion',
  created: 1741570283,
  model: 'gpt-4.1-mini-2025-04-14',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: '{"answer":4}', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 },
};

function chunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-options',
    object: 'chat.completion.chunk',
    created: 1741570283,
    model: MODEL,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  })}\n\n`;
}

function llmRequest(
  baseUrl: string,
  options: LlmRequestOptions | undefined,
  overrides: Partial<LlmRequest> = {},
): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'openai', apiKey: API_KEY, baseUrl },
    systemPrompt: '',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }])],
    tools: [ADD_TOOL, MULTIPLY_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
    ...(options ? { options } : {}),
    ...overrides,
  };
}

const TOOLS_ON_THE_WIRE = [ADD_TOOL, MULTIPLY_TOOL].map((tool) => ({
  type: 'function',
  function: { name: tool.name, description: tool.description, parameters: tool.inputSchema },
}));

const ANSWER_SCHEMA = {
  type: 'object',
  properties: { answer: { type: 'number' } },
  required: ['answer'],
  additionalProperties: false,
};

describe('OpenAI driver request options', () => {
  it('driver sends every option in the exact Chat Completions body fields', async () => {
    const server = await startFakeServer([json(200, COMPLETION)], { basePath: '/v1' });
    const driver = new OpenAiDriver({ streaming: false });
    await driver.generate(
      llmRequest(server.baseUrl, {
        temperature: 0.3,
        topP: 0.9,
        maxOutputTokens: 256,
        stop: ['END', '###'],
        seed: 42,
        toolChoice: { type: 'tool', name: 'multiply' },
        parallelToolCalls: false,
        responseFormat: {
          type: 'json_schema',
          name: 'answer',
          description: 'The sum',
          schema: ANSWER_SCHEMA,
          strict: true,
        },
        reasoningEffort: 'low',
        extraBody: { user: 'user-7', metadata: { tenant: 't1' } },
      }),
    );
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      messages: [{ role: 'user', content: 'What is 2 + 2?' }],
      tools: TOOLS_ON_THE_WIRE,
      temperature: 0.3,
      top_p: 0.9,
      max_completion_tokens: 256,
      stop: ['END', '###'],
      seed: 42,
      tool_choice: { type: 'function', function: { name: 'multiply' } },
      parallel_tool_calls: false,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'answer',
          description: 'The sum',
          schema: ANSWER_SCHEMA,
          strict: true,
        },
      },
      reasoning_effort: 'low',
      user: 'user-7',
      metadata: { tenant: 't1' },
    });
  });

  it('driver sends string tool choices as they are, and max_tokens when configured so', async () => {
    const server = await startFakeServer(
      [json(200, COMPLETION), json(200, COMPLETION), json(200, COMPLETION)],
      { basePath: '/v1' },
    );
    const driver = new OpenAiDriver({ streaming: false, maxTokensParameter: 'max_tokens' });
    for (const toolChoice of ['auto', 'none', 'required'] as const) {
      await driver.generate(
        llmRequest(server.baseUrl, { toolChoice, maxOutputTokens: 9 }, { maxOutputTokens: 100 }),
      );
    }
    expect(server.requests.map((request) => request.body)).toEqual(
      ['auto', 'none', 'required'].map((toolChoice) => ({
        model: MODEL,
        messages: [{ role: 'user', content: 'What is 2 + 2?' }],
        tools: TOOLS_ON_THE_WIRE,
        max_tokens: 9,
        tool_choice: toolChoice,
      })),
    );
  });

  it('driver leaves tool_choice and parallel_tool_calls out when the request has no tools', async () => {
    const server = await startFakeServer([json(200, COMPLETION)], { basePath: '/v1' });
    const driver = new OpenAiDriver({ streaming: false });
    await driver.generate(
      llmRequest(server.baseUrl, { toolChoice: 'auto', parallelToolCalls: true }, { tools: [] }),
    );
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      messages: [{ role: 'user', content: 'What is 2 + 2?' }],
    });
  });

  it('driver merges extraBody last over its own fields in a streaming request', async () => {
    const server = await startFakeServer(
      [sse([chunk({ role: 'assistant', content: 'ok' }), chunk({}, 'stop'), 'data: [DONE]\n\n'])],
      { basePath: '/v1' },
    );
    const driver = new OpenAiDriver({ streamUsage: false });
    const response = await driver.generate(
      llmRequest(server.baseUrl, { temperature: 0.5, extraBody: { temperature: 0.1, top_k: 5 } }),
    );
    expect(response.text).toBe('ok');
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      messages: [{ role: 'user', content: 'What is 2 + 2?' }],
      tools: TOOLS_ON_THE_WIRE,
      stream: true,
      temperature: 0.1,
      top_k: 5,
    });
  });

  it('driver rejects invalid or unsupported options with INVALID_INPUT before sending anything', async () => {
    const server = await startFakeServer([json(200, COMPLETION)], { basePath: '/v1' });
    const driver = new OpenAiDriver({ streaming: false });
    const bad: unknown[] = [
      { temperature: 2.5 },
      { thinkingBudgetTokens: 2048 },
      { toolChoice: { type: 'tool', name: 'divide' } },
      { extraBody: { messages: [] } },
      { extraBody: { model: 'gpt-other' } },
      { seed: 1.5 },
    ];
    for (const options of bad) {
      for (const streaming of [false, true]) {
        const request = llmRequest(server.baseUrl, options as LlmRequestOptions);
        const error = streaming
          ? await rejection(new OpenAiDriver().generate(request))
          : await rejection(driver.generate(request));
        expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), JSON.stringify(options)).toBe(true);
      }
    }
    const noTools = llmRequest(server.baseUrl, { toolChoice: 'required' }, { tools: [] });
    expect(EverrunsError.hasCode(await rejection(driver.generate(noTools)), 'INVALID_INPUT')).toBe(
      true,
    );
    expect(server.requests).toHaveLength(0);
  });

  it('driver checkOptions refuses a thinking budget and accepts the rest', () => {
    const driver = new OpenAiDriver();
    const model = { model: MODEL, providerType: 'openai' };
    expect(() => driver.checkOptions({ thinkingBudgetTokens: 1024 }, model)).toThrow(
      /thinkingBudgetTokens/,
    );
    expect(() =>
      driver.checkOptions({ temperature: 1, reasoningEffort: 'high', seed: 3 }, model),
    ).not.toThrow();
  });
});
