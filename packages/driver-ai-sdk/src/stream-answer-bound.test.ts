import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { LlmStreamEvent } from '@everruns-ts/core';
import { mathRequest, rejection } from '@everruns-ts/driver-test-support';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { AiSdkDriver, MAX_STREAMED_ANSWER_CHARS } from './index.js';

// A model stream that never finishes but keeps sending valid parts (a broken provider, a hostile
// proxy) must not grow the answer the driver assembles until the process runs out of memory: past
// MAX_STREAMED_ANSWER_CHARS kept characters the call fails, typed and not retried, and the
// provider's stream is cancelled.

const PIECE = 1024 * 1024;

/** A stream without end: `first` parts, then `piece(n)` for n = 0, 1, 2 … until cancelled (or twice the bound). */
function endlessModel(
  first: LanguageModelV4StreamPart[],
  piece: (index: number) => LanguageModelV4StreamPart,
) {
  const seen = { pulled: 0, cancelled: false };
  const model = new MockLanguageModelV4({
    doStream: async () => {
      let index = 0;
      return {
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          start(controller) {
            for (const part of first) controller.enqueue(part);
          },
          pull(controller) {
            seen.pulled++;
            // A guard of the test itself: without the bound the stream would never end.
            if (index >= (2 * MAX_STREAMED_ANSWER_CHARS) / PIECE) controller.close();
            else controller.enqueue(piece(index++));
          },
          cancel() {
            seen.cancelled = true;
          },
        }),
      };
    },
  });
  return { model, seen };
}

describe('driver-ai-sdk: a stream that sends answer without end', () => {
  it.each([
    {
      kind: 'text deltas',
      first: [{ type: 'text-start', id: 't' }] as LanguageModelV4StreamPart[],
      piece: (): LanguageModelV4StreamPart => ({
        type: 'text-delta',
        id: 't',
        delta: 'x'.repeat(PIECE),
      }),
      event: 'text_delta',
    },
    {
      kind: 'tool-call input deltas',
      first: [
        { type: 'tool-input-start', id: 'call_1', toolName: 'add' },
      ] as LanguageModelV4StreamPart[],
      piece: (): LanguageModelV4StreamPart => ({
        type: 'tool-input-delta',
        id: 'call_1',
        delta: ' '.repeat(PIECE),
      }),
      event: 'tool_call_delta',
    },
    {
      kind: 'new tool calls, each with a long name',
      first: [] as LanguageModelV4StreamPart[],
      piece: (index: number): LanguageModelV4StreamPart => ({
        type: 'tool-input-start',
        id: `call_${index}`,
        toolName: 'n'.repeat(PIECE),
      }),
      event: 'tool_call_delta',
    },
  ])(
    'stops past the bound with $kind: response_too_large, not retried, stream cancelled',
    async ({ first, piece, event }) => {
      const { model, seen } = endlessModel(first, piece);
      const driver = new AiSdkDriver({ models: { m: model }, retryBaseDelayMs: 1 });
      const events: LlmStreamEvent[] = [];

      const error = await rejection(
        (async () => {
          for await (const streamed of driver.stream(mathRequest('m', 'ai-sdk')))
            events.push(streamed);
        })(),
      );

      expect(error).toMatchObject({ code: 'LLM_ERROR', retryable: false });
      expect(error.details).toMatchObject({
        kind: 'response_too_large',
        limit: MAX_STREAMED_ANSWER_CHARS,
        model: 'm',
      });
      // What came before the bound went out as it arrived; no finish.
      expect(events.length).toBeGreaterThan(100);
      expect(events.every((streamed) => streamed.type === event)).toBe(true);
      // One attempt, stopped near the bound, the provider's stream cancelled.
      expect(model.doStreamCalls).toHaveLength(1);
      expect(seen.pulled).toBeLessThan((2 * MAX_STREAMED_ANSWER_CHARS) / PIECE);
      expect(seen.cancelled).toBe(true);
    },
  );

  it('keeps a long answer under the bound whole', async () => {
    const text = 'y'.repeat(8 * PIECE);
    const model = new MockLanguageModelV4({
      doStream: async () => ({
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          start(controller) {
            for (let index = 0; index < 8; index++) {
              controller.enqueue({ type: 'text-delta', id: 't', delta: 'y'.repeat(PIECE) });
            }
            controller.enqueue({
              type: 'finish',
              usage: {
                inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
                outputTokens: { total: 1, text: 1, reasoning: undefined },
              },
              finishReason: { unified: 'stop', raw: 'stop' },
            });
            controller.close();
          },
        }),
      }),
    });
    const driver = new AiSdkDriver({ models: { m: model } });
    let finish: LlmStreamEvent | undefined;
    for await (const streamed of driver.stream(mathRequest('m', 'ai-sdk'))) {
      if (streamed.type === 'finish') finish = streamed;
    }
    expect(finish?.type === 'finish' && finish.response.text === text).toBe(true);
  });
});
