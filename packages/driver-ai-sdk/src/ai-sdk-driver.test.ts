import { APICallError, type LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { EverrunsError, type LlmRequest, type Message } from '@everruns-ts/core';
import { ADD_TOOL, collect, newMessage, rejection } from '@everruns-ts/driver-test-support';
import { convertArrayToReadableStream, MockLanguageModelV3, MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { AiSdkDriver } from './index.js';

const USAGE = {
  inputTokens: { total: 12, noCache: 9, cacheRead: 3, cacheWrite: undefined },
  outputTokens: { total: 7, text: 5, reasoning: 2 },
};

function randomName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

function request(model: string, messages: Message[], extra: Partial<LlmRequest> = {}): LlmRequest {
  return {
    model: { model, providerType: 'ai-sdk' },
    systemPrompt: 'You are a math assistant.',
    messages,
    tools: [ADD_TOOL],
    sessionId: messages[0]?.sessionId ?? 'session_x',
    turnId: 'turn_1',
    iteration: 1,
    ...extra,
  };
}

function userQuestion(sessionId: string): Message {
  return newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 2?' }]);
}

function textResult(text: string, unified: 'stop' | 'length' = 'stop') {
  return {
    content: [{ type: 'text' as const, text }],
    finishReason: { unified, raw: unified },
    usage: USAGE,
    warnings: [],
    response: { id: 'resp_1', modelId: 'mock-model-1' },
  };
}

function streamOf(parts: LanguageModelV4StreamPart[]) {
  return { stream: convertArrayToReadableStream(parts) };
}

const FINISH: LanguageModelV4StreamPart = {
  type: 'finish',
  usage: USAGE,
  finishReason: { unified: 'stop', raw: 'stop' },
};

function apiCallError(statusCode: number, message: string, headers: Record<string, string> = {}) {
  return new APICallError({
    message,
    url: 'https://provider.invalid/v1/chat',
    requestBodyValues: {},
    statusCode,
    responseHeaders: headers,
    isRetryable: statusCode === 429 || statusCode >= 500,
  });
}

describe('driver-ai-sdk: AiSdkDriver.generate with MockLanguageModelV4', () => {
  it('sends the exact AI SDK prompt: system, user, agent text and tool calls, tool results and errors, tools', async () => {
    const sessionId = randomName('session');
    const model = new MockLanguageModelV4({ doGenerate: textResult('4') });
    const driver = new AiSdkDriver({ models: { math: model } });
    const messages = [
      userQuestion(sessionId),
      newMessage(sessionId, 2, 'agent', [
        { type: 'text', text: 'Adding.' },
        { type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } },
        { type: 'tool_call', id: 'call_2', name: 'divide', arguments: { a: 1, b: 0 } },
      ]),
      newMessage(sessionId, 3, 'tool_result', [
        { type: 'tool_result', toolCallId: 'call_1', content: '{"result":4}', isError: false },
      ]),
      newMessage(sessionId, 4, 'tool_result', [
        {
          type: 'tool_result',
          toolCallId: 'call_2',
          content: 'Unknown tool divide',
          isError: true,
        },
      ]),
      newMessage(sessionId, 5, 'user', [
        { type: 'text', text: 'And this?' },
        { type: 'image', mediaType: 'image/png', data: 'aGVsbG8=' },
        { type: 'image', mediaType: 'image/jpeg', url: 'https://example.com/cat.jpg' },
      ]),
    ];

    await driver.generate(request('math', messages, { maxOutputTokens: 256 }));

    expect(model.doGenerateCalls).toHaveLength(1);
    const call = model.doGenerateCalls[0];
    expect(call?.prompt).toEqual([
      { role: 'system', content: 'You are a math assistant.' },
      { role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Adding.' },
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: { a: 2, b: 2 } },
          { type: 'tool-call', toolCallId: 'call_2', toolName: 'divide', input: { a: 1, b: 0 } },
        ],
      },
      {
        role: 'tool',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'call_1',
            toolName: 'add',
            output: { type: 'text', value: '{"result":4}' },
          },
          {
            type: 'tool-result',
            toolCallId: 'call_2',
            toolName: 'divide',
            output: { type: 'error-text', value: 'Unknown tool divide' },
          },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'And this?' },
          { type: 'file', mediaType: 'image/png', data: { type: 'data', data: 'aGVsbG8=' } },
          {
            type: 'file',
            mediaType: 'image/jpeg',
            data: { type: 'url', url: new URL('https://example.com/cat.jpg') },
          },
        ],
      },
    ]);
    expect(call?.tools).toEqual([
      {
        type: 'function',
        name: 'add',
        description: ADD_TOOL.description,
        inputSchema: ADD_TOOL.inputSchema,
      },
    ]);
    expect(call?.maxOutputTokens).toBe(256);
  });

  it('leaves out a blank system prompt and the tools when there are none, and passes call settings and the signal', async () => {
    const model = new MockLanguageModelV4({ doGenerate: textResult('hi') });
    const driver = new AiSdkDriver({
      models: { chat: model },
      callSettings: { temperature: 0.2, providerOptions: { google: { thinking: 'off' } } },
    });
    const controller = new AbortController();

    await driver.generate(
      request('chat', [userQuestion(randomName('session'))], { systemPrompt: '  ', tools: [] }),
      { signal: controller.signal },
    );

    expect(model.doGenerateCalls[0]).toEqual({
      prompt: [{ role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] }],
      temperature: 0.2,
      providerOptions: { google: { thinking: 'off' } },
      abortSignal: controller.signal,
    });
  });

  it('returns text, parsed tool calls, usage, response id and model, skipping provider-executed calls', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: {
        content: [
          { type: 'text', text: 'Let me add. ' },
          { type: 'tool-call', toolCallId: 'call_a', toolName: 'add', input: '{"a":2,"b":2}' },
          { type: 'tool-call', toolCallId: 'call_b', toolName: 'add', input: '{"a":' },
          { type: 'tool-call', toolCallId: 'call_c', toolName: 'add', input: '' },
          {
            type: 'tool-call',
            toolCallId: 'search_1',
            toolName: 'web_search',
            input: '{}',
            providerExecuted: true,
          },
        ],
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage: USAGE,
        warnings: [],
        response: { id: 'resp_42', modelId: 'gemini-2.5-flash-001' },
      },
    });
    const driver = new AiSdkDriver({ models: { math: model } });

    const response = await driver.generate(request('math', [userQuestion(randomName('session'))]));

    expect(response).toEqual({
      text: 'Let me add. ',
      toolCalls: [
        { id: 'call_a', name: 'add', arguments: { a: 2, b: 2 } },
        { id: 'call_b', name: 'add', arguments: '{"a":' },
        { id: 'call_c', name: 'add', arguments: {} },
      ],
      usage: { inputTokens: 12, outputTokens: 7, cachedInputTokens: 3, reasoningTokens: 2 },
      responseId: 'resp_42',
      model: 'gemini-2.5-flash-001',
      stopReason: 'tool_calls',
    });
  });

  it('adds up usage parts when the provider gives no totals, and counts missing usage as 0', async () => {
    const parts = new MockLanguageModelV4({
      doGenerate: {
        ...textResult('x'),
        usage: {
          inputTokens: { total: undefined, noCache: 5, cacheRead: 4, cacheWrite: 1 },
          outputTokens: { total: undefined, text: 3, reasoning: 2 },
        },
      },
    });
    const none = new MockLanguageModelV4({
      doGenerate: {
        ...textResult('y'),
        usage: {
          inputTokens: {
            total: undefined,
            noCache: undefined,
            cacheRead: undefined,
            cacheWrite: undefined,
          },
          outputTokens: { total: undefined, text: undefined, reasoning: undefined },
        },
      },
    });
    const driver = new AiSdkDriver({ models: { parts, none } });
    const messages = [userQuestion(randomName('session'))];

    expect((await driver.generate(request('parts', messages))).usage).toEqual({
      inputTokens: 10,
      outputTokens: 5,
      cachedInputTokens: 4,
      cacheWriteInputTokens: 1,
      reasoningTokens: 2,
    });
    expect((await driver.generate(request('none', messages))).usage).toEqual({
      inputTokens: 0,
      outputTokens: 0,
    });
  });

  it.each([
    ['stop', false, 'end_turn'],
    ['stop', true, 'tool_calls'],
    ['tool-calls', true, 'tool_calls'],
    ['length', false, 'max_tokens'],
    ['content-filter', false, 'content_filter'],
    ['other', false, 'other'],
  ] as const)(
    'maps finish reason %s (tool calls: %s) to stop reason %s',
    async (unified, withCall, stopReason) => {
      const model = new MockLanguageModelV4({
        doGenerate: {
          content: withCall
            ? [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: '{}' }]
            : [{ type: 'text', text: 'x' }],
          finishReason: { unified, raw: undefined },
          usage: USAGE,
          warnings: [],
        },
      });
      const driver = new AiSdkDriver({ models: { m: model } });

      const response = await driver.generate(request('m', [userQuestion(randomName('session'))]));

      expect(response.stopReason).toBe(stopReason);
    },
  );

  it.each([
    ['error', false],
    ['interrupted', true],
  ] as const)(
    'fails with LLM_ERROR when the finish reason is %s (retryable: %s)',
    async (unified, retryable) => {
      const model = new MockLanguageModelV4({
        doGenerate: { ...textResult('partial'), finishReason: { unified, raw: undefined } },
      });
      const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 0 });

      const error = await rejection(
        driver.generate(request('m', [userQuestion(randomName('session'))])),
      );

      expect(error.code).toBe('LLM_ERROR');
      expect(error.retryable).toBe(retryable);
    },
  );
});

describe('driver-ai-sdk: prompt edge cases', () => {
  it('leaves out an empty agent message, passes raw-string arguments as is, and puts a user message after its tool results', async () => {
    const sessionId = randomName('session');
    const model = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const driver = new AiSdkDriver({ models: { m: model } });
    const messages = [
      userQuestion(sessionId),
      newMessage(sessionId, 2, 'agent', []),
      newMessage(sessionId, 3, 'agent', [
        { type: 'tool_call', id: 'call_raw', name: 'add', arguments: '{"a":' },
      ]),
      newMessage(sessionId, 4, 'user', [
        { type: 'tool_result', toolCallId: 'call_raw', content: 'Invalid JSON', isError: true },
        { type: 'text', text: 'Try again.' },
      ]),
    ];

    await driver.generate(request('m', messages, { systemPrompt: '' }));

    expect(model.doGenerateCalls[0]?.prompt).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'What is 2 + 2?' }] },
      {
        role: 'assistant',
        content: [{ type: 'tool-call', toolCallId: 'call_raw', toolName: 'add', input: '{"a":' }],
      },
      {
        role: 'tool',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'call_raw',
            toolName: 'add',
            output: { type: 'error-text', value: 'Invalid JSON' },
          },
        ],
      },
      { role: 'user', content: [{ type: 'text', text: 'Try again.' }] },
    ]);
  });
});

describe('driver-ai-sdk: model mapping', () => {
  it('resolves models through a function and fails with MODEL_NOT_FOUND for an unknown name', async () => {
    const known = new MockLanguageModelV4({ doGenerate: textResult('ok') });
    const driver = new AiSdkDriver({
      providerType: 'google',
      models: (name) => (name === 'gemini-flash' ? known : undefined),
    });
    const messages = [userQuestion(randomName('session'))];

    expect(driver.providerType).toBe('google');
    expect((await driver.generate(request('gemini-flash', messages))).text).toBe('ok');
    const error = await rejection(driver.generate(request('gemini-pro', messages)));
    expect(error.code).toBe('MODEL_NOT_FOUND');
    expect(error.details).toMatchObject({ providerType: 'google', model: 'gemini-pro' });
  });

  it('registers under ai-sdk by default and refuses a models entry that is not an AI SDK model', () => {
    expect(new AiSdkDriver({ models: {} }).providerType).toBe('ai-sdk');
    expect(
      () => new AiSdkDriver({ models: { old: { specificationVersion: 'v2' } as never } }),
    ).toThrow(TypeError);
  });

  it('calls a LanguageModelV3 model, with file data in the V3 form', async () => {
    const model = new MockLanguageModelV3({
      doGenerate: {
        content: [{ type: 'text', text: 'a cat' }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: USAGE,
        warnings: [],
      },
    });
    const driver = new AiSdkDriver({ models: { legacy: model } });
    const sessionId = randomName('session');

    const response = await driver.generate(
      request('legacy', [
        newMessage(sessionId, 1, 'user', [
          { type: 'image', mediaType: 'image/png', data: 'aGVsbG8=' },
          { type: 'image', mediaType: 'image/jpeg', url: 'https://example.com/cat.jpg' },
        ]),
      ]),
    );

    expect(response).toMatchObject({ text: 'a cat', stopReason: 'end_turn' });
    expect(model.doGenerateCalls[0]?.prompt.at(-1)).toEqual({
      role: 'user',
      content: [
        { type: 'file', mediaType: 'image/png', data: 'aGVsbG8=' },
        { type: 'file', mediaType: 'image/jpeg', data: new URL('https://example.com/cat.jpg') },
      ],
    });
  });
});

describe('driver-ai-sdk: LanguageModelV3 streams', () => {
  it('streams a LanguageModelV3 model through doStream', async () => {
    const model = new MockLanguageModelV3({
      doStream: {
        stream: convertArrayToReadableStream([
          { type: 'text-delta', id: 't', delta: 'four' },
          { type: 'tool-call', toolCallId: 'call_v3', toolName: 'add', input: '{"a":2,"b":2}' },
          {
            type: 'finish',
            usage: USAGE,
            finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          },
        ]),
      },
    });
    const driver = new AiSdkDriver({ models: { legacy: model } });

    const events = await collect(
      driver.stream(request('legacy', [userQuestion(randomName('session'))])),
    );

    expect(events.at(-1)).toEqual({
      type: 'finish',
      response: {
        text: 'four',
        toolCalls: [{ id: 'call_v3', name: 'add', arguments: { a: 2, b: 2 } }],
        usage: { inputTokens: 12, outputTokens: 7, cachedInputTokens: 3, reasoningTokens: 2 },
        stopReason: 'tool_calls',
      },
    });
    expect(model.doStreamCalls).toHaveLength(1);
  });
});

describe('driver-ai-sdk: errors and retries', () => {
  it('retries a retryable APICallError (429) honouring retry-after-ms, then answers', async () => {
    let calls = 0;
    const model = new MockLanguageModelV4({
      doGenerate: async () => {
        calls++;
        if (calls === 1) throw apiCallError(429, 'Rate limited', { 'retry-after-ms': '5' });
        return textResult('4');
      },
    });
    const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 60_000 });

    const response = await driver.generate(request('m', [userQuestion(randomName('session'))]));

    expect(response.text).toBe('4');
    expect(calls).toBe(2);
  });

  it('maps a non-retryable APICallError to LLM_ERROR with status and details, without retrying or leaking the key', async () => {
    const apiKey = `sk-${crypto.randomUUID()}`;
    let calls = 0;
    const model = new MockLanguageModelV4({
      provider: 'google.generative-ai',
      doGenerate: async () => {
        calls++;
        throw apiCallError(400, `Invalid argument for key ${apiKey}`);
      },
    });
    const driver = new AiSdkDriver({ models: { m: model } });

    const error = await rejection(
      driver.generate({
        ...request('m', [userQuestion(randomName('session'))]),
        model: { model: 'm', providerType: 'ai-sdk', apiKey },
      }),
    );

    expect(calls).toBe(1);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.retryable).toBe(false);
    expect(error.details).toMatchObject({
      providerType: 'ai-sdk',
      model: 'm',
      provider: 'google.generative-ai',
      status: 400,
      providerErrorType: 'AI_APICallError',
      retryable: false,
    });
    expect(JSON.stringify(error.toJSON())).not.toContain(apiKey);
    expect(error.message).not.toContain(apiKey);
  });

  it('gives up after maxRetries with a retryable LLM_ERROR', async () => {
    let calls = 0;
    const model = new MockLanguageModelV4({
      doGenerate: async () => {
        calls++;
        throw apiCallError(503, 'Overloaded');
      },
    });
    const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 2, retryBaseDelayMs: 1 });

    const error = await rejection(
      driver.generate(request('m', [userQuestion(randomName('session'))])),
    );

    expect(calls).toBe(3);
    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: true });
    expect(error.details.status).toBe(503);
  });

  it('maps any other thrown error to a non-retryable LLM_ERROR', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: async () => {
        throw new Error('socket hang up in a custom provider');
      },
    });
    const driver = new AiSdkDriver({ models: { m: model } });

    const error = await rejection(
      driver.generate(request('m', [userQuestion(randomName('session'))])),
    );

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: false });
    expect(error.details.providerErrorMessage).toBe('socket hang up in a custom provider');
    expect(EverrunsError.isInstance(error)).toBe(true);
  });
});

describe('driver-ai-sdk: abort', () => {
  it('rejects with ABORTED without calling the model when the signal has already fired', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: textResult('x'),
      doStream: streamOf([FINISH]),
    });
    const driver = new AiSdkDriver({ models: { m: model } });
    const messages = [userQuestion(randomName('session'))];

    const error = await rejection(
      driver.generate(request('m', messages), { signal: AbortSignal.abort() }),
    );
    const streamError = await rejection(
      collect(driver.stream(request('m', messages), { signal: AbortSignal.abort() })),
    );

    expect(error.code).toBe('ABORTED');
    expect(streamError.code).toBe('ABORTED');
    expect(model.doGenerateCalls).toHaveLength(0);
    expect(model.doStreamCalls).toHaveLength(0);
  });

  it('rejects with ABORTED when the signal fires during the call, without retrying', async () => {
    const controller = new AbortController();
    const model = new MockLanguageModelV4({
      doGenerate: (options) =>
        new Promise((_, reject) => {
          options.abortSignal?.addEventListener('abort', () =>
            reject(new DOMException('This operation was aborted', 'AbortError')),
          );
          setTimeout(() => controller.abort(), 5);
        }),
    });
    const driver = new AiSdkDriver({ models: { m: model } });

    const error = await rejection(
      driver.generate(request('m', [userQuestion(randomName('session'))]), {
        signal: controller.signal,
      }),
    );

    expect(error.code).toBe('ABORTED');
    expect(model.doGenerateCalls).toHaveLength(1);
  });

  it('stops a stream with ABORTED when the signal fires mid-stream, and cancels the model stream', async () => {
    const controller = new AbortController();
    let cancelled = false;
    const stream = new ReadableStream<LanguageModelV4StreamPart>({
      start(streamController) {
        streamController.enqueue({ type: 'text-start', id: 't' });
        streamController.enqueue({ type: 'text-delta', id: 't', delta: 'Hel' });
      },
      cancel() {
        cancelled = true;
      },
    });
    const model = new MockLanguageModelV4({ doStream: { stream } });
    const driver = new AiSdkDriver({ models: { m: model } });
    const events: unknown[] = [];

    const error = await rejection(
      (async () => {
        for await (const event of driver.stream(
          request('m', [userQuestion(randomName('session'))]),
          {
            signal: controller.signal,
          },
        )) {
          events.push(event);
          controller.abort();
          // The next part never comes on its own: the abort must end the wait.
          await Promise.resolve();
        }
      })(),
    ).catch((caught: unknown) => caught as EverrunsError);

    expect(events).toEqual([{ type: 'text_delta', text: 'Hel' }]);
    expect(error.code).toBe('ABORTED');
    expect(cancelled).toBe(true);
  });
});

describe('driver-ai-sdk: AiSdkDriver.stream with MockLanguageModelV4', () => {
  it('streams text and tool call deltas, then finish with the assembled response', async () => {
    const model = new MockLanguageModelV4({
      doStream: streamOf([
        { type: 'stream-start', warnings: [] },
        { type: 'response-metadata', id: 'resp_s', modelId: 'mock-stream-1' },
        { type: 'reasoning-start', id: 'r' },
        { type: 'reasoning-delta', id: 'r', delta: 'thinking' },
        { type: 'reasoning-end', id: 'r' },
        { type: 'text-start', id: 't' },
        { type: 'text-delta', id: 't', delta: 'Let me ' },
        { type: 'text-delta', id: 't', delta: 'add.' },
        { type: 'text-end', id: 't' },
        { type: 'tool-input-start', id: 'call_1', toolName: 'add' },
        { type: 'tool-input-delta', id: 'call_1', delta: '{"a":2,' },
        { type: 'tool-input-delta', id: 'call_1', delta: '"b":2}' },
        { type: 'tool-input-end', id: 'call_1' },
        { type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: '{"a":2,"b":2}' },
        { type: 'tool-call', toolCallId: 'call_2', toolName: 'add', input: '{"a":1,"b":1}' },
        {
          type: 'finish',
          usage: USAGE,
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        },
      ]),
    });
    const driver = new AiSdkDriver({ models: { m: model } });

    const events = await collect(
      driver.stream(request('m', [userQuestion(randomName('session'))])),
    );

    expect(events).toEqual([
      { type: 'reasoning_delta', text: 'thinking' },
      { type: 'text_delta', text: 'Let me ' },
      { type: 'text_delta', text: 'add.' },
      { type: 'tool_call_delta', index: 0, id: 'call_1', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":2,' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '"b":2}' },
      {
        type: 'tool_call_delta',
        index: 1,
        id: 'call_2',
        name: 'add',
        argumentsDelta: '{"a":1,"b":1}',
      },
      {
        type: 'finish',
        response: {
          text: 'Let me add.',
          toolCalls: [
            { id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } },
            { id: 'call_2', name: 'add', arguments: { a: 1, b: 1 } },
          ],
          usage: { inputTokens: 12, outputTokens: 7, cachedInputTokens: 3, reasoningTokens: 2 },
          responseId: 'resp_s',
          model: 'mock-stream-1',
          stopReason: 'tool_calls',
          reasoning: [{ type: 'reasoning', text: 'thinking' }],
        },
      },
    ]);
    expect(model.doStreamCalls[0]?.prompt[0]).toEqual({
      role: 'system',
      content: 'You are a math assistant.',
    });
  });

  it('generate assembles the answer from doStream with the streaming option', async () => {
    const model = new MockLanguageModelV4({
      doStream: streamOf([
        { type: 'text-start', id: 't' },
        { type: 'text-delta', id: 't', delta: '4' },
        { type: 'text-end', id: 't' },
        FINISH,
      ]),
    });
    const driver = new AiSdkDriver({ models: { m: model }, streaming: true });

    const response = await driver.generate(request('m', [userQuestion(randomName('session'))]));

    expect(response).toMatchObject({ text: '4', stopReason: 'end_turn' });
    expect(model.doGenerateCalls).toHaveLength(0);
    expect(model.doStreamCalls).toHaveLength(1);
  });

  it('fails with a retryable LLM_ERROR when the stream ends without a finish part', async () => {
    const model = new MockLanguageModelV4({
      doStream: streamOf([
        { type: 'text-start', id: 't' },
        { type: 'text-end', id: 't' },
      ]),
    });
    const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 0 });

    const error = await rejection(
      collect(driver.stream(request('m', [userQuestion(randomName('session'))]))),
    );

    expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: true });
  });

  it('retries an error part that arrives before any output, then streams the answer', async () => {
    const model = new MockLanguageModelV4({
      doStream: [
        streamOf([
          { type: 'stream-start', warnings: [] },
          { type: 'error', error: apiCallError(529, 'Overloaded') },
        ]),
        streamOf([{ type: 'text-delta', id: 't', delta: 'ok' }, FINISH]),
      ],
    });
    const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 1 });

    const events = await collect(
      driver.stream(request('m', [userQuestion(randomName('session'))])),
    );

    expect(events.map((event) => event.type)).toEqual(['text_delta', 'finish']);
    expect(model.doStreamCalls).toHaveLength(2);
  });

  it('does not retry an error part after output reached the consumer: it throws the mapped error', async () => {
    const model = new MockLanguageModelV4({
      doStream: [
        streamOf([
          { type: 'text-delta', id: 't', delta: 'par' },
          { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
        ]),
        streamOf([{ type: 'text-delta', id: 't', delta: 'never' }, FINISH]),
      ],
    });
    const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 1 });
    const events: unknown[] = [];

    const error = await rejection(
      (async () => {
        for await (const event of driver.stream(
          request('m', [userQuestion(randomName('session'))]),
        )) {
          events.push(event);
        }
      })(),
    );

    expect(events).toEqual([{ type: 'text_delta', text: 'par' }]);
    expect(error.code).toBe('LLM_ERROR');
    expect(error.details.providerErrorMessage).toContain('Overloaded');
    expect(model.doStreamCalls).toHaveLength(1);
  });
});
