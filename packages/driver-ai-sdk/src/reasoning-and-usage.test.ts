import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { LlmRequest, Message } from '@everruns-ts/core';
import { ADD_TOOL, collect, newMessage } from '@everruns-ts/driver-test-support';
import { convertArrayToReadableStream, MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { AiSdkDriver } from './index.js';

const SIGNATURE = `sig-${crypto.randomUUID()}`;
const REDACTED = `data-${crypto.randomUUID()}`;

function request(messages: Message[]): LlmRequest {
  return {
    model: { model: 'm', providerType: 'ai-sdk' },
    systemPrompt: '',
    messages,
    tools: [ADD_TOOL],
    sessionId: messages[0]?.sessionId ?? 'session_x',
    turnId: 'turn_1',
    iteration: 1,
  };
}

const usage = {
  inputTokens: { total: 900, noCache: 100, cacheRead: 700, cacheWrite: 100 },
  outputTokens: { total: 300, text: 40, reasoning: 260 },
};

describe('driver-ai-sdk: reasoning and usage details', () => {
  it('keeps reasoning with its Anthropic signature and redacted data, and maps usage details', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: {
        content: [
          {
            type: 'reasoning',
            text: 'I will add.',
            providerMetadata: { anthropic: { signature: SIGNATURE } },
          },
          {
            type: 'reasoning',
            text: '',
            providerMetadata: { anthropic: { redactedData: REDACTED } },
          },
          { type: 'text', text: 'Adding.' },
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: '{"a":2,"b":2}' },
        ],
        finishReason: { unified: 'tool-calls', raw: 'tool_use' },
        usage,
        warnings: [],
      },
    });
    const driver = new AiSdkDriver({ models: { m: model } });
    const sessionId = `session_${crypto.randomUUID()}`;

    const response = await driver.generate(
      request([newMessage(sessionId, 1, 'user', [{ type: 'text', text: '2 + 2?' }])]),
    );

    expect(response.text).toBe('Adding.');
    expect(response.reasoning).toEqual([
      { type: 'reasoning', text: 'I will add.', signature: SIGNATURE },
      { type: 'reasoning', text: '', redactedData: REDACTED },
    ]);
    expect(response.usage).toEqual({
      inputTokens: 900,
      outputTokens: 300,
      cachedInputTokens: 700,
      cacheWriteInputTokens: 100,
      reasoningTokens: 260,
    });
  });

  it('sends stored reasoning back as reasoning parts with the Anthropic provider options', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: {
        content: [{ type: 'text', text: '4' }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage,
        warnings: [],
      },
    });
    const driver = new AiSdkDriver({ models: { m: model } });
    const sessionId = `session_${crypto.randomUUID()}`;

    await driver.generate(
      request([
        newMessage(sessionId, 1, 'user', [{ type: 'text', text: '2 + 2?' }]),
        newMessage(sessionId, 2, 'agent', [
          { type: 'reasoning', text: 'I will add.', signature: SIGNATURE },
          { type: 'reasoning', text: '', redactedData: REDACTED },
          { type: 'reasoning', text: 'plain' },
          { type: 'tool_call', id: 'call_1', name: 'add', arguments: { a: 2, b: 2 } },
        ]),
        newMessage(sessionId, 3, 'tool_result', [
          { type: 'tool_result', toolCallId: 'call_1', content: '4', isError: false },
        ]),
      ]),
    );

    const assistant = model.doGenerateCalls[0]?.prompt.find(
      (message) => message.role === 'assistant',
    );
    expect(assistant?.content).toEqual([
      {
        type: 'reasoning',
        text: 'I will add.',
        providerOptions: { anthropic: { signature: SIGNATURE } },
      },
      { type: 'reasoning', text: '', providerOptions: { anthropic: { redactedData: REDACTED } } },
      { type: 'reasoning', text: 'plain' },
      { type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: { a: 2, b: 2 } },
    ]);
  });

  it('streams reasoning deltas and assembles each block with the metadata of its parts', async () => {
    const parts: LanguageModelV4StreamPart[] = [
      { type: 'stream-start', warnings: [] },
      { type: 'reasoning-start', id: 'r1' },
      { type: 'reasoning-delta', id: 'r1', delta: 'Think ' },
      { type: 'reasoning-delta', id: 'r1', delta: 'hard.' },
      {
        type: 'reasoning-delta',
        id: 'r1',
        delta: '',
        providerMetadata: { anthropic: { signature: SIGNATURE } },
      },
      { type: 'reasoning-end', id: 'r1' },
      {
        type: 'reasoning-start',
        id: 'r2',
        providerMetadata: { anthropic: { redactedData: REDACTED } },
      },
      { type: 'reasoning-end', id: 'r2' },
      { type: 'text-start', id: 't' },
      { type: 'text-delta', id: 't', delta: '4' },
      { type: 'text-end', id: 't' },
      { type: 'finish', usage, finishReason: { unified: 'stop', raw: 'end_turn' } },
    ];
    const model = new MockLanguageModelV4({
      doStream: { stream: convertArrayToReadableStream(parts) },
    });
    const driver = new AiSdkDriver({ models: { m: model } });
    const sessionId = `session_${crypto.randomUUID()}`;

    const events = await collect(
      driver.stream(request([newMessage(sessionId, 1, 'user', [{ type: 'text', text: '?' }])])),
    );

    expect(events.slice(0, 3)).toEqual([
      { type: 'reasoning_delta', text: 'Think ' },
      { type: 'reasoning_delta', text: 'hard.' },
      { type: 'text_delta', text: '4' },
    ]);
    expect(events.at(-1)).toMatchObject({
      type: 'finish',
      response: {
        text: '4',
        reasoning: [
          { type: 'reasoning', text: 'Think hard.', signature: SIGNATURE },
          { type: 'reasoning', text: '', redactedData: REDACTED },
        ],
      },
    });
  });
});
