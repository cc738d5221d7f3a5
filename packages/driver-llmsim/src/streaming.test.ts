import {
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type LlmResponse,
  type LlmStreamEvent,
  newId,
} from '@everruns-ts/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE, LlmSimConfig, LlmSimDriver } from './index.js';

function request(text = 'hello'): LlmRequest {
  const sessionId = newId('session');
  return {
    model: LLMSIM_DEFAULT_MODEL,
    systemPrompt: 'You are a test agent.',
    messages: [
      {
        id: newId('msg'),
        sessionId,
        seq: 1,
        role: 'user',
        content: [{ type: 'text', text }],
        createdAt: new Date(0).toISOString(),
      },
    ],
    tools: [],
    sessionId,
    turnId: newId('turn'),
    iteration: 1,
  };
}

async function collect(stream: AsyncIterable<LlmStreamEvent>): Promise<LlmStreamEvent[]> {
  const events: LlmStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

function finishOf(events: readonly LlmStreamEvent[]): LlmResponse {
  const last = events.at(-1);
  if (last?.type !== 'finish') throw new Error('the stream did not end with finish');
  return last.response;
}

function texts(events: readonly LlmStreamEvent[], type: 'text_delta' | 'reasoning_delta') {
  return events.flatMap((event) => (event.type === type ? [event.text] : []));
}

function argumentPieces(events: readonly LlmStreamEvent[], index: number): string[] {
  return events.flatMap((event) =>
    event.type === 'tool_call_delta' && event.index === index && event.id === undefined
      ? [event.argumentsDelta]
      : [],
  );
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('LlmSimDriver streaming: chunking', () => {
  it('streams one word per text delta by default, as upstream llmsim', async () => {
    const events = await collect(
      new LlmSimDriver(LlmSimConfig.fixed('One two  three.')).stream(request()),
    );
    expect(texts(events, 'text_delta')).toEqual(['One ', 'two  ', 'three.']);
    expect(events.map((event) => event.type)).toEqual([
      'text_delta',
      'text_delta',
      'text_delta',
      'finish',
    ]);
  });

  it('groups words with wordsPerChunk', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('a b c d e f g').withStreaming({ wordsPerChunk: 3 }),
    );
    expect(texts(await collect(driver.stream(request())), 'text_delta')).toEqual([
      'a b c ',
      'd e f ',
      'g',
    ]);
  });

  it('cuts text, reasoning and arguments every chunkSize characters, never inside a surrogate pair', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('Hello world 😀!')
        .withReasoning('Think it over')
        .withToolCalls([{ id: 'call_a', name: 'add', arguments: { a: 1, b: 22 } }])
        .withStreaming({ chunkSize: 5 }),
    );
    const events = await collect(driver.stream(request()));
    expect(texts(events, 'reasoning_delta')).toEqual(['Think', ' it o', 'ver']);
    expect(texts(events, 'text_delta')).toEqual(['Hello', ' worl', 'd 😀!']);
    expect(argumentPieces(events, 0)).toEqual(['{"a":', '1,"b"', ':22}']);
  });

  it('streams the explicit chunks of a chunked script; generate returns their concatenation', async () => {
    const config = LlmSimConfig.chunked([
      ['Hel', 'lo', ', world'],
      ['Second ', 'answer'],
    ]);
    const streamed = new LlmSimDriver(config);
    const first = await collect(streamed.stream(request()));
    const second = await collect(streamed.stream(request()));
    const third = await collect(streamed.stream(request()));
    expect(texts(first, 'text_delta')).toEqual(['Hel', 'lo', ', world']);
    expect(finishOf(first).text).toBe('Hello, world');
    expect(texts(second, 'text_delta')).toEqual(['Second ', 'answer']);
    expect(texts(third, 'text_delta')).toEqual(['Second ', 'answer']);
    expect((await new LlmSimDriver(config).generate(request())).text).toBe('Hello, world');
    expect(
      texts(
        await collect(new LlmSimDriver(LlmSimConfig.chunked([])).stream(request())),
        'text_delta',
      ),
    ).toEqual([]);
  });

  it('streams the textChunks and reasoning a function returns, and refuses chunks that disagree with the text', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction((_request, info) =>
        info.index === 0
          ? { textChunks: ['4', '2'], reasoning: 'six times seven' }
          : { text: 'forty-two', textChunks: ['forty', 'two'] },
      ),
    );
    const events = await collect(driver.stream(request()));
    expect(texts(events, 'reasoning_delta')).toEqual(['six ', 'times ', 'seven']);
    expect(texts(events, 'text_delta')).toEqual(['4', '2']);
    expect(finishOf(events)).toMatchObject({
      text: '42',
      reasoning: [{ type: 'reasoning', text: 'six times seven' }],
    });
    const error = await collect(driver.stream(request())).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'LLM_ERROR')).toBe(true);
  });

  it('streams reasoning before the text, then each tool call: id and name first, then its arguments in pieces', async () => {
    const args = { city: 'Vilnius', units: 'metric', days: 3 };
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('Checking.')
        .withReasoning('The user wants weather.')
        .withToolCalls([
          { name: 'weather', arguments: args },
          { name: 'noop', arguments: 'not json' },
        ]),
    );
    const events = await collect(driver.stream(request()));
    expect(events.map((event) => event.type)).toEqual([
      'reasoning_delta',
      'reasoning_delta',
      'reasoning_delta',
      'reasoning_delta',
      'text_delta',
      'tool_call_delta',
      'tool_call_delta',
      'tool_call_delta',
      'tool_call_delta',
      'tool_call_delta',
      'tool_call_delta',
      'finish',
    ]);
    expect(events[5]).toEqual({
      type: 'tool_call_delta',
      index: 0,
      id: 'call_1',
      name: 'weather',
      argumentsDelta: '',
    });
    const pieces = argumentPieces(events, 0);
    expect(pieces.length).toBe(
      Math.ceil(JSON.stringify(args).length / LLMSIM_DEFAULT_ARGUMENT_CHUNK_SIZE),
    );
    expect(JSON.parse(pieces.join(''))).toEqual(args);
    expect(events[9]).toMatchObject({ index: 1, id: 'call_2', name: 'noop', argumentsDelta: '' });
    expect(argumentPieces(events, 1)).toEqual(['not json']);
    expect(finishOf(events).reasoning).toEqual([
      { type: 'reasoning', text: 'The user wants weather.' },
    ]);
  });

  it('carries reasoning N on answer N of a reasoning sequence, none past its end', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['a', 'b', 'c']).withReasoningSequence(['first thought', '']),
    );
    const answers = [];
    for (let index = 0; index < 3; index++) answers.push(await driver.generate(request()));
    expect(answers.map((answer) => answer.reasoning)).toEqual([
      [{ type: 'reasoning', text: 'first thought' }],
      undefined,
      undefined,
    ]);
  });

  it('rejects invalid streaming settings with TypeError', () => {
    const base = LlmSimConfig.fixed('x');
    expect(() => base.withStreaming({ chunkSize: 0 })).toThrow(TypeError);
    expect(() => base.withStreaming({ wordsPerChunk: 1.5 })).toThrow(TypeError);
    expect(() => base.withStreaming({ chunkDelayMs: -1 })).toThrow(TypeError);
    expect(() => LlmSimConfig.chunked([['a', 1 as unknown as string]])).toThrow(TypeError);
    expect(() => base.withReasoning(3 as unknown as string)).toThrow(TypeError);
    expect(base.withStreaming({ chunkSize: 4 }).streaming).toEqual({ chunkSize: 4 });
    expect(base.streaming).toEqual({});
  });
});

describe('LlmSimDriver streaming: same answer as generate', () => {
  it('finishes every stream with exactly the response generate gives at the same script position', async () => {
    const config = LlmSimConfig.fromFunction((incoming, info) => {
      if (info.index === 1) return { textChunks: ['chunked ', 'answer'], reasoning: 'hmm' };
      if (info.index === 2) return 'plain text answer';
      return { text: `answer ${info.index} to ${incoming.iteration}` };
    })
      .withToolCalls([{ name: 'add', arguments: { a: 1, b: 2 } }, { name: 'noop' }])
      .withReasoningSequence(['thinking first', '', 'thinking third'])
      .withStreaming({ chunkSize: 3 });
    const generating = new LlmSimDriver(config);
    const streaming = new LlmSimDriver(config);
    for (let position = 0; position < 4; position++) {
      const generated = await generating.generate(request());
      const events = await collect(streaming.stream(request()));
      expect(finishOf(events)).toEqual(generated);
      expect(texts(events, 'text_delta').join('')).toBe(generated.text);
      expect(texts(events, 'reasoning_delta').join('')).toBe(
        (generated.reasoning ?? []).map((part) => part.text).join(''),
      );
    }
    expect(generating.callCount).toBe(4);
    expect(streaming.callCount).toBe(4);
  });

  it('interleaves generate and stream on one driver without skipping a position', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.sequence(['one', 'two', 'three']));
    expect((await driver.generate(request())).text).toBe('one');
    expect(finishOf(await collect(driver.stream(request())))).toMatchObject({
      text: 'two',
      responseId: 'llmsim_2',
    });
    expect((await driver.generate(request())).text).toBe('three');
  });
});

describe('LlmSimDriver streaming: pauses and cancellation', () => {
  it('schedules no timer at all when chunkDelayMs is 0', async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const driver = new LlmSimDriver(
      LlmSimConfig.lorem(40)
        .withToolCalls([{ name: 'add', arguments: { a: 1, b: 2 } }])
        .withStreaming({ chunkDelayMs: 0 }),
    );
    const events = await collect(driver.stream(request()));
    expect(events.length).toBeGreaterThan(40);
    expect(setTimeoutSpy).not.toHaveBeenCalled();
  });

  it('waits chunkDelayMs between events, not before the first', async () => {
    vi.useFakeTimers();
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('one two').withStreaming({ chunkDelayMs: 50 }),
    );
    const iterator = driver.stream(request())[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({
      done: false,
      value: { type: 'text_delta', text: 'one ' },
    });
    let second: IteratorResult<LlmStreamEvent> | undefined;
    const pending = iterator.next().then((result) => {
      second = result;
    });
    await vi.advanceTimersByTimeAsync(49);
    expect(second).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await pending;
    expect(second).toEqual({ done: false, value: { type: 'text_delta', text: 'two' } });
  });

  it('ends with ABORTED, and no finish, when the signal fires during a pause between chunks', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('one two three').withStreaming({ chunkDelayMs: 60_000 }),
    );
    const controller = new AbortController();
    const iterator = driver
      .stream(request(), { signal: controller.signal })
      [Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: 'text_delta', text: 'one ' });
    const next = iterator.next();
    controller.abort();
    await expect(next).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('ends with ABORTED when the signal fires between chunks without a pause', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('one two three').withToolCalls([{ name: 'add' }]),
    );
    const controller = new AbortController();
    const seen: LlmStreamEvent[] = [];
    const error = await (async () => {
      for await (const event of driver.stream(request(), { signal: controller.signal })) {
        seen.push(event);
        if (seen.length === 2) controller.abort();
      }
    })().catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
    expect(seen.map((event) => event.type)).toEqual(['text_delta', 'text_delta']);
  });
});
