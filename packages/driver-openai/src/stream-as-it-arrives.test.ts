import { randomUUID } from 'node:crypto';
import type { LlmRequest, LlmResponse, LlmStreamEvent } from '@everruns-ts/core';
import {
  ADD_TOOL,
  closeFakeServers,
  type LockstepStep,
  lockstepSse,
  newMessage,
  readInLockstep,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiDriver } from './index.js';

// The driver hands each delta over as soon as its event has arrived: the fake server writes the
// next part of the stream only once the test has received the delta of the part before. A driver
// that waited for more of the body would never deliver it, and the read fails naming the delta.

afterEach(closeFakeServers);

const TIMEOUT = 30_000;

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model: 'some-model', providerType: 'openai', apiKey: 'test-key-123456', baseUrl },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 3?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const DONE = 'data: [DONE]\n\n';

function chunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-lockstep',
    object: 'chat.completion.chunk',
    created: 1764547200,
    model: 'lockstep-model',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  })}\n\n`;
}

/** The `include_usage` chunk: no choice, the usage (OpenAI and DeepSeek send it last). */
function usageChunk(usage: Record<string, unknown>): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-lockstep',
    object: 'chat.completion.chunk',
    choices: [],
    usage,
  })}\n\n`;
}

const text = (expected: string): LockstepStep => ({
  label: `text_delta ${JSON.stringify(expected)}`,
  matches: (event) => event.type === 'text_delta' && event.text === expected,
});
const reasoning = (expected: string): LockstepStep => ({
  label: `reasoning_delta ${JSON.stringify(expected)}`,
  matches: (event) => event.type === 'reasoning_delta' && event.text === expected,
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

async function lockstep(stages: string[][], steps: LockstepStep[]) {
  const feed = lockstepSse(stages);
  const server = await startFakeServer([feed.reply], { basePath: '/v1' });
  const driver = new OpenAiDriver({ maxRetries: 0 });
  const events = await readInLockstep(
    driver.stream(llmRequest(server.baseUrl)),
    steps,
    feed.release,
  );
  expect(feed.written).toBe(stages.length);
  return events;
}

describe('driver-openai: deltas reach the consumer as they arrive', () => {
  it(
    'hands over each text delta before the server has sent the next, even with an event cut in two; usage comes with the last chunk',
    async () => {
      const second = chunk({ content: 'lo, ' });
      const events = await lockstep(
        [
          // The first event whole, and half of the next one.
          [chunk({ role: 'assistant', content: 'Hel' }), second.slice(0, 20)],
          [second.slice(20)],
          [chunk({ content: 'world' })],
          [
            chunk({}, 'stop'),
            usageChunk({ prompt_tokens: 31, completion_tokens: 4, total_tokens: 35 }),
            DONE,
          ],
        ],
        [text('Hel'), text('lo, '), text('world')],
      );
      expect(events.map((event) => event.type)).toEqual([
        'text_delta',
        'text_delta',
        'text_delta',
        'finish',
      ]);
      expect(finishOf(events)).toMatchObject({
        text: 'Hello, world',
        stopReason: 'end_turn',
        usage: { inputTokens: 31, outputTokens: 4 },
      });
    },
    TIMEOUT,
  );

  it(
    'hands over DeepSeek reasoning_content deltas one by one, then the answer',
    async () => {
      const events = await lockstep(
        [
          [chunk({ role: 'assistant', content: null, reasoning_content: 'Two plus' })],
          [chunk({ content: null, reasoning_content: ' three is five.' })],
          [chunk({ content: '5', reasoning_content: null })],
          [
            chunk({ content: '' }, 'stop'),
            usageChunk({
              prompt_tokens: 20,
              completion_tokens: 12,
              total_tokens: 32,
              completion_tokens_details: { reasoning_tokens: 10 },
            }),
            DONE,
          ],
        ],
        [reasoning('Two plus'), reasoning(' three is five.'), text('5')],
      );
      expect(finishOf(events)).toMatchObject({
        text: '5',
        reasoning: [{ type: 'reasoning', text: 'Two plus three is five.' }],
        usage: { inputTokens: 20, outputTokens: 12, reasoningTokens: 10 },
      });
    },
    TIMEOUT,
  );

  it(
    'hands over a tool call’s id and name, then each argument piece, as they arrive',
    async () => {
      const events = await lockstep(
        [
          [
            chunk({
              role: 'assistant',
              content: null,
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
            usageChunk({ prompt_tokens: 50, completion_tokens: 9, total_tokens: 59 }),
            DONE,
          ],
        ],
        [
          {
            label: 'tool_call_delta with id and name',
            matches: (event) =>
              event.type === 'tool_call_delta' &&
              event.id === 'call_lockstep' &&
              event.name === 'add',
          },
          argumentsPiece('{"a": 2, '),
          argumentsPiece('"b": 3}'),
        ],
      );
      expect(finishOf(events)).toMatchObject({
        toolCalls: [{ id: 'call_lockstep', name: 'add', arguments: { a: 2, b: 3 } }],
        stopReason: 'tool_calls',
        usage: { inputTokens: 50, outputTokens: 9 },
      });
    },
    TIMEOUT,
  );
});

describe('driver-openai: the lockstep check itself', () => {
  it(
    'fails, naming the delta, for a driver that holds deltas back until the body is complete',
    async () => {
      const feed = lockstepSse([
        [chunk({ role: 'assistant', content: 'Hel' })],
        [chunk({ content: 'lo' }, 'stop'), DONE],
      ]);
      const server = await startFakeServer([feed.reply], { basePath: '/v1' });
      const driver = new OpenAiDriver({ maxRetries: 0 });
      // A stand-in for a buffering driver: the real stream, handed over only once it has ended.
      async function* buffered(): AsyncGenerator<LlmStreamEvent> {
        const events: LlmStreamEvent[] = [];
        for await (const event of driver.stream(llmRequest(server.baseUrl))) events.push(event);
        yield* events;
      }

      const error = await readInLockstep(buffered(), [text('Hel')], feed.release, {
        patienceMs: 300,
      }).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain('no text_delta "Hel" from the driver');
      expect(feed.written).toBe(1);
    },
    TIMEOUT,
  );
});
