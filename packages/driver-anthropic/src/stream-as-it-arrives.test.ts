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
import { AnthropicDriver } from './index.js';

// The driver hands each delta over as soon as its event has arrived: the fake server writes the
// next part of the stream only once the test has received the delta of the part before. A driver
// that waited for more of the body would never deliver it, and the read fails naming the delta.

afterEach(closeFakeServers);

const TIMEOUT = 30_000;

function llmRequest(baseUrl: string): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: {
      model: 'claude-sonnet-4-5',
      providerType: 'anthropic',
      apiKey: 'test-key-123456',
      baseUrl,
    },
    systemPrompt: 'You are a calculator.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: 'What is 2 + 3?' }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

const event = (type: string, data: Record<string, unknown> = {}) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const messageStart = event('message_start', {
  message: {
    id: 'msg_lockstep',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5-20250929',
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: {
      input_tokens: 42,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 1,
    },
  },
});
const blockStart = (index: number, block: Record<string, unknown>) =>
  event('content_block_start', { index, content_block: block });
const delta = (index: number, value: Record<string, unknown>) =>
  event('content_block_delta', { index, delta: value });
const blockStop = (index: number) => event('content_block_stop', { index });

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

describe('driver-anthropic: deltas reach the consumer as they arrive', () => {
  it(
    'hands over thinking, text and tool input deltas one by one; the final usage comes with message_delta',
    async () => {
      const secondText = delta(1, { type: 'text_delta', text: 'add them.' });
      const feed = lockstepSse([
        [
          messageStart,
          event('ping'),
          blockStart(0, { type: 'thinking', thinking: '', signature: '' }),
          delta(0, { type: 'thinking_delta', thinking: 'The user wants' }),
        ],
        [delta(0, { type: 'thinking_delta', thinking: ' a sum.' })],
        [
          delta(0, { type: 'signature_delta', signature: 'sig-lockstep' }),
          blockStop(0),
          blockStart(1, { type: 'text', text: '' }),
          delta(1, { type: 'text_delta', text: 'Let me ' }),
          // Half of the next event: the delta before it must not wait for the rest.
          secondText.slice(0, 30),
        ],
        [secondText.slice(30)],
        [
          blockStop(1),
          blockStart(2, { type: 'tool_use', id: 'toolu_lockstep', name: 'add', input: {} }),
        ],
        [delta(2, { type: 'input_json_delta', partial_json: '{"a": 2, ' })],
        [delta(2, { type: 'input_json_delta', partial_json: '"b": 3}' })],
        [
          blockStop(2),
          event('message_delta', {
            delta: { stop_reason: 'tool_use', stop_sequence: null },
            usage: { output_tokens: 57 },
          }),
          event('message_stop'),
        ],
      ]);
      const server = await startFakeServer([feed.reply]);
      const driver = new AnthropicDriver({ maxRetries: 0 });

      const events = await readInLockstep(
        driver.stream(llmRequest(server.baseUrl)),
        [
          reasoning('The user wants'),
          reasoning(' a sum.'),
          text('Let me '),
          text('add them.'),
          {
            label: 'tool_call_delta with id and name',
            matches: (event) =>
              event.type === 'tool_call_delta' &&
              event.id === 'toolu_lockstep' &&
              event.name === 'add',
          },
          argumentsPiece('{"a": 2, '),
          argumentsPiece('"b": 3}'),
        ],
        feed.release,
      );

      expect(feed.written).toBe(8);
      expect(events.map((event) => event.type)).toEqual([
        'reasoning_delta',
        'reasoning_delta',
        'text_delta',
        'text_delta',
        'tool_call_delta',
        'tool_call_delta',
        'tool_call_delta',
        'finish',
      ]);
      expect(finishOf(events)).toMatchObject({
        text: 'Let me add them.',
        toolCalls: [{ id: 'toolu_lockstep', name: 'add', arguments: { a: 2, b: 3 } }],
        stopReason: 'tool_calls',
        usage: { inputTokens: 42, outputTokens: 57 },
        reasoning: [
          { type: 'reasoning', text: 'The user wants a sum.', signature: 'sig-lockstep' },
        ],
      });
    },
    TIMEOUT,
  );
});
