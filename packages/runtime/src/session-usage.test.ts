import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  EverrunsError,
  type LlmUsage,
  type RuntimeBackends,
  type RuntimeMessageStore,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { describe, expect, it } from 'vitest';
import { InProcessRuntimeBuilder, type TurnStreamPart, turnStreamPartSchema } from './index.js';

type Answer = { text?: string; add?: [number, number]; usage: LlmUsage; model?: string };

/** A runtime whose simulated model gives these answers in order, with the math tools. */
async function runtimeWith(
  answers: Answer[],
  configure: (builder: InProcessRuntimeBuilder) => InProcessRuntimeBuilder = (b) => b,
) {
  let call = 0;
  const builder = new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(
      LlmSimConfig.fromFunction(() => {
        const answer = answers[call++];
        if (!answer) throw new Error('no more scripted answers');
        return {
          ...(answer.add
            ? { toolCalls: [{ name: 'add', arguments: { a: answer.add[0], b: answer.add[1] } }] }
            : { text: answer.text ?? 'done' }),
          usage: answer.usage,
          ...(answer.model ? { model: answer.model } : {}),
        };
      }),
    )
    .singleSession((s) =>
      s.harness('math', 'Math.').withCapability('test_math').agent('math-agent', 'Use tools.'),
    );
  const runtime = await configure(builder).build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return EverrunsError.isInstance(error) ? error.code : 'NOT_AN_EVERRUNS_ERROR';
  }
  return undefined;
}

const PRICES = {
  'gpt-4.1-mini': {
    inputPerMillion: 0.4,
    outputPerMillion: 1.6,
    cachedInputPerMillion: 0.1,
  },
  'gpt-4.1': { inputPerMillion: 2, outputPerMillion: 8, reasoningPerMillion: 10 },
};

describe('usage accounting', () => {
  it('TurnResult.usage sums the turn and sessionUsage sums every turn from the store', async () => {
    const { runtime, sessionId } = await runtimeWith([
      { add: [1, 2], usage: { inputTokens: 100, outputTokens: 40, cachedInputTokens: 10 } },
      { text: 'three', usage: { inputTokens: 150, outputTokens: 20, reasoningTokens: 5 } },
      { text: 'again', usage: { inputTokens: 300, outputTokens: 7, cacheWriteInputTokens: 60 } },
    ]);
    const first = await runtime.runTextTurn(sessionId, 'add 1 and 2');
    expect(first.usage).toEqual({
      inputTokens: 250,
      outputTokens: 60,
      cachedInputTokens: 10,
      reasoningTokens: 5,
    });
    expect(first.cost).toBeUndefined();
    const second = await runtime.runTextTurn(sessionId, 'once more');
    expect(second.usage).toEqual({
      inputTokens: 300,
      outputTokens: 7,
      cacheWriteInputTokens: 60,
    });
    const session = await runtime.sessionUsage(sessionId);
    expect(session).toEqual({
      usage: {
        inputTokens: 550,
        outputTokens: 67,
        cachedInputTokens: 10,
        cacheWriteInputTokens: 60,
        reasoningTokens: 5,
      },
      modelCalls: 3,
      byModel: [
        {
          model: 'llmsim-model',
          modelCalls: 3,
          usage: {
            inputTokens: 550,
            outputTokens: 67,
            cachedInputTokens: 10,
            cacheWriteInputTokens: 60,
            reasoningTokens: 5,
          },
        },
      ],
    });
    // No prices: no cost anywhere.
    expect(session.cost).toBeUndefined();
    await runtime.close();
  });

  it('prices calls per model, cached input and reasoning apart, for turns and the session', async () => {
    const { runtime, sessionId } = await runtimeWith(
      [
        {
          add: [2, 2],
          model: 'gpt-4.1-mini-2025-04-14',
          usage: { inputTokens: 1_000_000, outputTokens: 100_000, cachedInputTokens: 400_000 },
        },
        { text: 'four', model: 'gpt-4.1-mini', usage: { inputTokens: 500_000, outputTokens: 0 } },
        {
          text: 'switched',
          model: 'gpt-4.1',
          usage: { inputTokens: 200_000, outputTokens: 50_000, reasoningTokens: 20_000 },
        },
      ],
      (builder) => builder.prices(PRICES),
    );
    const first = await runtime.runTextTurn(sessionId, 'add 2 and 2');
    // 600k plain input * 0.4 + 400k cached * 0.1 + 100k output * 1.6, then 500k input * 0.4.
    expect(first.cost).toBeCloseTo(0.24 + 0.04 + 0.16 + 0.2, 10);
    const second = await runtime.runTextTurn(sessionId, 'switch model');
    // 200k input * 2 + 30k output * 8 + 20k reasoning * 10.
    expect(second.cost).toBeCloseTo(0.4 + 0.24 + 0.2, 10);
    const session = await runtime.sessionUsage(sessionId);
    expect(session.modelCalls).toBe(3);
    expect(session.byModel.map((entry) => [entry.model, entry.modelCalls])).toEqual([
      ['gpt-4.1', 1],
      ['gpt-4.1-mini', 1],
      ['gpt-4.1-mini-2025-04-14', 1],
    ]);
    expect(session.byModel[0]?.cost).toBeCloseTo(0.84, 10);
    expect(session.cost).toBeCloseTo((first.cost ?? 0) + (second.cost ?? 0), 10);
    await runtime.close();
  });

  it('leaves the cost out when a model used has no price, and keeps the priced ones', async () => {
    const { runtime, sessionId } = await runtimeWith(
      [
        { text: 'a', model: 'gpt-4.1', usage: { inputTokens: 1_000_000, outputTokens: 0 } },
        { text: 'b', model: 'unknown-model', usage: { inputTokens: 10, outputTokens: 10 } },
      ],
      (builder) => builder.prices(PRICES),
    );
    expect((await runtime.runTextTurn(sessionId, 'one')).cost).toBeCloseTo(2, 10);
    const unpriced = await runtime.runTextTurn(sessionId, 'two');
    expect(unpriced.cost).toBeUndefined();
    expect(unpriced.usage).toEqual({ inputTokens: 10, outputTokens: 10 });
    const session = await runtime.sessionUsage(sessionId);
    expect(session.cost).toBeUndefined();
    expect(session.byModel).toEqual([
      {
        model: 'gpt-4.1',
        modelCalls: 1,
        usage: { inputTokens: 1_000_000, outputTokens: 0 },
        cost: 2,
      },
      { model: 'unknown-model', modelCalls: 1, usage: { inputTokens: 10, outputTokens: 10 } },
    ]);
    await runtime.close();
  });

  it('sums the same from a store without sumUsage, by reading the history page by page', async () => {
    const memory = inMemoryBackends();
    // The same store without its optional methods, as a third-party store might be.
    const messages: RuntimeMessageStore = {
      addInputMessage: (...args) => memory.messages.addInputMessage(...args),
      storeMessage: (...args) => memory.messages.storeMessage(...args),
      storeMessages: (...args) => memory.messages.storeMessages(...args),
      get: (...args) => memory.messages.get(...args),
      getByIdempotencyKey: (...args) => memory.messages.getByIdempotencyKey(...args),
      load: (...args) => memory.messages.load(...args),
      loadPage: (...args) => memory.messages.loadPage(...args),
      loadFiltered: (...args) => memory.messages.loadFiltered(...args),
      count: (...args) => memory.messages.count(...args),
    };
    const backends: RuntimeBackends = { ...memory, messages };
    const answers: Answer[] = [];
    for (let index = 1; index <= 1200; index++) {
      answers.push({ text: `answer ${index}`, usage: { inputTokens: index, outputTokens: 1 } });
    }
    const { runtime, sessionId } = await runtimeWith(answers, (builder) =>
      builder.backends(backends),
    );
    // 1,200 turns store 2,400 messages: more than two pages of the fallback scan.
    for (let index = 0; index < 1200; index++) await runtime.runTextTurn(sessionId, 'next');
    const usage = await runtime.sessionUsage(sessionId);
    expect(usage.modelCalls).toBe(1200);
    expect(usage.usage).toEqual({ inputTokens: (1200 * 1201) / 2, outputTokens: 1200 });
    expect(await memory.messages.sumUsage!(sessionId)).toEqual(usage.byModel);
    await runtime.close();
  });

  it('streams the usage and cost in the turn-finish part', async () => {
    const { runtime, sessionId } = await runtimeWith(
      [{ text: 'hi', model: 'gpt-4.1', usage: { inputTokens: 500_000, outputTokens: 0 } }],
      (builder) => builder.prices(PRICES),
    );
    const stream = runtime.streamTextTurn(sessionId, 'hello');
    const parts: TurnStreamPart[] = [];
    for await (const part of stream) parts.push(part);
    const finish = parts.at(-1);
    expect(finish?.type).toBe('turn-finish');
    const parsed = turnStreamPartSchema.parse(finish);
    expect(parsed).toEqual(finish);
    expect(parsed).toMatchObject({
      result: { usage: { inputTokens: 500_000, outputTokens: 0 }, cost: 1 },
    });
    await runtime.close();
  });

  it('refuses malformed prices and unknown sessions with typed errors', async () => {
    expect(() =>
      new InProcessRuntimeBuilder().prices({
        'gpt-4.1': { inputPerMillion: -1, outputPerMillion: 1 },
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    await expect(
      new InProcessRuntimeBuilder()
        .llmSim(LlmSimConfig.fixed('x'))
        .options({ prices: { m: { inputPerMillion: 1 } } as never })
        .build(),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    const { runtime } = await runtimeWith([]);
    expect(await codeOf(runtime.sessionUsage('session_nobody'))).toBe('SESSION_NOT_FOUND');
    expect(await codeOf(runtime.sessionUsage(''))).toBe('INVALID_INPUT');
    await runtime.close();
  });
});
