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
import { AnthropicDriver } from './index.js';

afterEach(closeFakeServers);

const API_KEY = `sk-ant-api03-${randomUUID().replaceAll('-', '')}`;
const MODEL = 'claude-sonnet-4-5';

const MESSAGE = {
  id: 'msg_01Options',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [{ type: 'text', text: 'Four.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 20, output_tokens: 3 },
};

function event(type: string, data: Record<string, unknown> = {}): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

const STREAM = [
  event('message_start', {
    message: {
      ...MESSAGE,
      content: [],
      stop_reason: null,
      usage: { input_tokens: 20, output_tokens: 1 },
    },
  }),
  event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Four.' } }),
  event('content_block_stop', { index: 0 }),
  event('message_delta', {
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: 3 },
  }),
  event('message_stop'),
];

function llmRequest(
  baseUrl: string,
  options: LlmRequestOptions | undefined,
  overrides: Partial<LlmRequest> = {},
): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: MODEL, providerType: 'anthropic', apiKey: API_KEY, baseUrl },
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

// Prompt caching is on by default: breakpoints on the last tool and the last message block.
const CACHE_CONTROL = { type: 'ephemeral' };

const TOOLS_ON_THE_WIRE = [ADD_TOOL, MULTIPLY_TOOL].map((tool, index) => ({
  name: tool.name,
  description: tool.description,
  input_schema: tool.inputSchema,
  ...(index === 1 ? { cache_control: CACHE_CONTROL } : {}),
}));

const USER_MESSAGE = {
  role: 'user',
  content: [{ type: 'text', text: 'What is 2 + 2?', cache_control: CACHE_CONTROL }],
};

describe('Anthropic driver request options', () => {
  it('driver sends sampling, stop, tool choice and parallel options in the exact Messages body fields', async () => {
    const server = await startFakeServer([json(200, MESSAGE)]);
    const driver = new AnthropicDriver({ streaming: false });
    await driver.generate(
      llmRequest(server.baseUrl, {
        temperature: 0.3,
        topP: 0.9,
        maxOutputTokens: 512,
        stop: ['END'],
        toolChoice: { type: 'tool', name: 'multiply' },
        parallelToolCalls: false,
        extraBody: { metadata: { user_id: 'user-7' }, top_k: 20 },
      }),
    );
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      max_tokens: 512,
      messages: [USER_MESSAGE],
      tools: TOOLS_ON_THE_WIRE,
      temperature: 0.3,
      top_p: 0.9,
      stop_sequences: ['END'],
      tool_choice: { type: 'tool', name: 'multiply', disable_parallel_tool_use: true },
      metadata: { user_id: 'user-7' },
      top_k: 20,
    });
  });

  it('driver maps auto, none and required tool choices, and parallelToolCalls alone', async () => {
    const replies = Array.from({ length: 4 }, () => json(200, MESSAGE));
    const server = await startFakeServer(replies);
    const driver = new AnthropicDriver({ streaming: false, maxTokens: 100 });
    const cases: Array<[LlmRequestOptions, unknown]> = [
      [{ toolChoice: 'auto' }, { type: 'auto' }],
      [{ toolChoice: 'none', parallelToolCalls: false }, { type: 'none' }],
      [{ toolChoice: 'required' }, { type: 'any' }],
      [{ parallelToolCalls: false }, { type: 'auto', disable_parallel_tool_use: true }],
    ];
    for (const [options] of cases) await driver.generate(llmRequest(server.baseUrl, options));
    expect(server.requests.map((request) => request.body)).toEqual(
      cases.map(([, toolChoice]) => ({
        model: MODEL,
        max_tokens: 100,
        messages: [USER_MESSAGE],
        tools: TOOLS_ON_THE_WIRE,
        tool_choice: toolChoice,
      })),
    );
  });

  it('driver sends a thinking budget as thinking.budget_tokens in a streaming request', async () => {
    const server = await startFakeServer([sse(STREAM)]);
    const driver = new AnthropicDriver();
    const response = await driver.generate(
      llmRequest(server.baseUrl, { thinkingBudgetTokens: 2048, maxOutputTokens: 8192, topP: 0.95 }),
    );
    expect(response.text).toBe('Four.');
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      max_tokens: 8192,
      messages: [USER_MESSAGE],
      tools: TOOLS_ON_THE_WIRE,
      stream: true,
      top_p: 0.95,
      thinking: { type: 'enabled', budget_tokens: 2048 },
    });
  });

  it('driver leaves tool_choice out when the request has no tools', async () => {
    const server = await startFakeServer([json(200, MESSAGE)]);
    const driver = new AnthropicDriver({ streaming: false });
    await driver.generate(
      llmRequest(server.baseUrl, { toolChoice: 'auto', parallelToolCalls: false }, { tools: [] }),
    );
    expect(server.requests[0]?.body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      messages: [USER_MESSAGE],
    });
  });

  it('driver rejects temperature with thinking and unsupported options with INVALID_INPUT before any request', async () => {
    const server = await startFakeServer([json(200, MESSAGE)]);
    const bad: unknown[] = [
      { thinkingBudgetTokens: 2048, temperature: 0.5 },
      { thinkingBudgetTokens: 2048, topP: 0.5 },
      { thinkingBudgetTokens: 2048, toolChoice: 'required' },
      { thinkingBudgetTokens: 1000 },
      { thinkingBudgetTokens: 4096 },
      { seed: 1 },
      { reasoningEffort: 'high' },
      { responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'string' } } },
      { toolChoice: { type: 'tool', name: 'divide' } },
      { extraBody: { system: 'other' } },
      { temperature: -1 },
    ];
    for (const options of bad) {
      for (const streaming of [false, true]) {
        const driver = new AnthropicDriver({ streaming });
        const error = await rejection(
          driver.generate(llmRequest(server.baseUrl, options as LlmRequestOptions)),
        );
        expect(EverrunsError.hasCode(error, 'INVALID_INPUT'), JSON.stringify(options)).toBe(true);
      }
    }
    expect(server.requests).toHaveLength(0);
  });

  it('driver checkOptions applies the same rules against the configured output limit', () => {
    const driver = new AnthropicDriver({ maxTokens: 2000 });
    const model = { model: MODEL, providerType: 'anthropic' };
    expect(() =>
      driver.checkOptions({ thinkingBudgetTokens: 1500, temperature: 1 }, model),
    ).toThrow(/temperature/);
    expect(() => driver.checkOptions({ thinkingBudgetTokens: 2048 }, model)).toThrow(/less than/);
    expect(() =>
      driver.checkOptions({ thinkingBudgetTokens: 2048, maxOutputTokens: 4096 }, model),
    ).not.toThrow();
    expect(() => driver.checkOptions({ temperature: 1, stop: ['x'] }, model)).not.toThrow();
  });
});
