import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { LlmResponse, LlmStreamEvent } from '@everruns-ts/core';
import {
  closeFakeServers,
  type LockstepStep,
  lockstepSse,
  mathRequest,
  readInLockstep,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { MockLanguageModelV4 } from 'ai/test';
import { afterEach, describe, expect, it } from 'vitest';
import { AiSdkDriver } from './index.js';

// The driver hands each delta over as soon as the model's stream part has arrived: the source
// (a model stream the test controls, or a fake server behind @ai-sdk/openai-compatible) sends its
// next part only once the test has received the delta of the part before. A driver that waited
// for more would never deliver it, and the read fails naming the delta.

afterEach(closeFakeServers);

const TIMEOUT = 30_000;

const text = (expected: string): LockstepStep => ({
  label: `text_delta ${JSON.stringify(expected)}`,
  matches: (event) => event.type === 'text_delta' && event.text === expected,
});
const reasoning = (expected: string): LockstepStep => ({
  label: `reasoning_delta ${JSON.stringify(expected)}`,
  matches: (event) => event.type === 'reasoning_delta' && event.text === expected,
});
const toolStart = (id: string, name: string): LockstepStep => ({
  label: `tool_call_delta with id ${id} and name ${name}`,
  matches: (event) => event.type === 'tool_call_delta' && event.id === id && event.name === name,
});
const argumentsPiece = (expected: string): LockstepStep => ({
  label: `tool_call_delta with arguments ${JSON.stringify(expected)}`,
  matches: (event) => event.type === 'tool_call_delta' && event.argumentsDelta === expected,
});

function finishOf(events: readonly LlmStreamEvent[]): LlmResponse {
  const last = events.at(-1);
  if (last?.type !== 'finish') throw new Error('the stream did not end with finish');
  return last.response;
}

/** A model stream the test feeds stage by stage: the first at once, the next on `release()`. */
function lockstepModelStream(stages: LanguageModelV4StreamPart[][]) {
  let controller: ReadableStreamDefaultController<LanguageModelV4StreamPart> | undefined;
  let written = 0;
  const stream = new ReadableStream<LanguageModelV4StreamPart>({
    start(streamController) {
      controller = streamController;
    },
  });
  const release = (): void => {
    const stage = stages[written];
    if (!controller || !stage) return;
    for (const part of stage) controller.enqueue(part);
    written += 1;
    if (written === stages.length) controller.close();
  };
  release();
  return {
    stream,
    release,
    get written() {
      return written;
    },
  };
}

describe('driver-ai-sdk: deltas reach the consumer as they arrive', () => {
  it(
    'hands over reasoning, text and tool input deltas of a model stream one part at a time; usage comes with finish',
    async () => {
      const source = lockstepModelStream([
        [
          { type: 'stream-start', warnings: [] },
          { type: 'reasoning-start', id: 'r' },
          { type: 'reasoning-delta', id: 'r', delta: 'Add two' },
        ],
        [{ type: 'reasoning-delta', id: 'r', delta: ' numbers.' }],
        [
          { type: 'reasoning-end', id: 'r' },
          { type: 'text-start', id: 't' },
          { type: 'text-delta', id: 't', delta: 'Let me ' },
        ],
        [{ type: 'text-delta', id: 't', delta: 'add.' }],
        [
          { type: 'text-end', id: 't' },
          { type: 'tool-input-start', id: 'call_1', toolName: 'add' },
        ],
        [{ type: 'tool-input-delta', id: 'call_1', delta: '{"a":2,' }],
        [{ type: 'tool-input-delta', id: 'call_1', delta: '"b":3}' }],
        [
          { type: 'tool-input-end', id: 'call_1' },
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: '{"a":2,"b":3}' },
          {
            type: 'finish',
            usage: {
              inputTokens: { total: 40, noCache: 40, cacheRead: undefined, cacheWrite: undefined },
              outputTokens: { total: 15, text: 9, reasoning: 6 },
            },
            finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          },
        ],
      ]);
      const model = new MockLanguageModelV4({ doStream: async () => ({ stream: source.stream }) });
      const driver = new AiSdkDriver({ models: { m: model }, maxRetries: 0 });

      const events = await readInLockstep(
        driver.stream(mathRequest('m', 'ai-sdk', 'What is 2 + 3?')),
        [
          reasoning('Add two'),
          reasoning(' numbers.'),
          text('Let me '),
          text('add.'),
          toolStart('call_1', 'add'),
          argumentsPiece('{"a":2,'),
          argumentsPiece('"b":3}'),
        ],
        source.release,
      );

      expect(source.written).toBe(8);
      expect(finishOf(events)).toMatchObject({
        text: 'Let me add.',
        toolCalls: [{ id: 'call_1', name: 'add', arguments: { a: 2, b: 3 } }],
        stopReason: 'tool_calls',
        usage: { inputTokens: 40, outputTokens: 15, reasoningTokens: 6 },
        reasoning: [{ type: 'reasoning', text: 'Add two numbers.' }],
      });
    },
    TIMEOUT,
  );

  it(
    'hands over the deltas of @ai-sdk/openai-compatible reading a local server, as the server sends them',
    async () => {
      const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
        `data: ${JSON.stringify({
          id: 'chatcmpl-lockstep',
          object: 'chat.completion.chunk',
          created: 1764547200,
          model: 'local-model-2025',
          choices: [{ index: 0, delta, finish_reason: finishReason }],
        })}\n\n`;
      const feed = lockstepSse([
        [chunk({ role: 'assistant', content: null, reasoning_content: 'Two plus' })],
        [chunk({ reasoning_content: ' three.' })],
        [chunk({ content: 'Adding ' })],
        [chunk({ content: 'now.' })],
        [
          chunk({
            tool_calls: [
              {
                index: 0,
                id: 'call_lockstep',
                type: 'function',
                function: { name: 'add', arguments: '' },
              },
            ],
          }),
        ],
        [chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a": 2, ' } }] })],
        [chunk({ tool_calls: [{ index: 0, function: { arguments: '"b": 3}' } }] })],
        [
          chunk({}, 'tool_calls'),
          `data: ${JSON.stringify({
            id: 'chatcmpl-lockstep',
            object: 'chat.completion.chunk',
            choices: [],
            usage: { prompt_tokens: 33, completion_tokens: 21, total_tokens: 54 },
          })}\n\n`,
          'data: [DONE]\n\n',
        ],
      ]);
      const server = await startFakeServer([feed.reply], { basePath: '/v1' });
      const provider = createOpenAICompatible({
        name: 'local',
        baseURL: server.baseUrl,
        apiKey: 'local-key',
        includeUsage: true,
      });
      const driver = new AiSdkDriver({ models: { m: provider('local-model') }, maxRetries: 0 });

      const events = await readInLockstep(
        driver.stream(mathRequest('m', 'ai-sdk', 'What is 2 + 3?')),
        [
          reasoning('Two plus'),
          reasoning(' three.'),
          text('Adding '),
          text('now.'),
          toolStart('call_lockstep', 'add'),
          argumentsPiece('{"a": 2, '),
          argumentsPiece('"b": 3}'),
        ],
        feed.release,
      );

      expect(feed.written).toBe(8);
      expect(finishOf(events)).toMatchObject({
        text: 'Adding now.',
        toolCalls: [{ id: 'call_lockstep', name: 'add', arguments: { a: 2, b: 3 } }],
        stopReason: 'tool_calls',
        usage: { inputTokens: 33, outputTokens: 21 },
      });
    },
    TIMEOUT,
  );
});
