import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  defineCapability,
  defineTool,
  type EventBus,
  type EventRequest,
  EverrunsError,
  isEphemeralEventType,
  type LlmCallOptions,
  type LlmDriver,
  type LlmRequest,
  type LlmResponse,
  type LlmStreamEvent,
  type Message,
  messageText,
  modelFailureText,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  InProcessRuntimeBuilder,
  inMemoryBackends,
  TurnEventTranslator,
  type TurnResult,
  TurnStream,
  type TurnStreamPart,
  turnStreamPartSchema,
} from './index.js';
import { expectCode } from './test-support.js';

/** One scripted model answer, streamed in the given pieces. */
interface ScriptedAnswer {
  reasoning?: string[];
  text?: string[];
  calls?: Array<{ id: string; name: string; args: string[] }>;
  /** Throw this after the pieces instead of finishing. */
  failWith?: unknown;
  /** Wait for the call's signal after the pieces (the abort test). */
  hang?: boolean;
}

const USAGE = { inputTokens: 11, outputTokens: 7 };

function responseOf(answer: ScriptedAnswer, index: number): LlmResponse {
  const calls = answer.calls ?? [];
  const reasoning = (answer.reasoning ?? []).join('');
  return {
    text: (answer.text ?? []).join(''),
    toolCalls: calls.map((call) => ({
      id: call.id,
      name: call.name,
      arguments: JSON.parse(call.args.join('')),
    })),
    usage: USAGE,
    responseId: `resp_${index + 1}`,
    stopReason: calls.length > 0 ? 'tool_calls' : 'end_turn',
    ...(reasoning ? { reasoning: [{ type: 'reasoning', text: reasoning }] } : {}),
  };
}

function abortedBy(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new EverrunsError({ code: 'ABORTED', message: 'aborted' }));
    if (signal?.aborted) fail();
    else signal?.addEventListener('abort', fail, { once: true });
  });
}

/** A driver answering from a script, one answer per call, with `stream` unless told otherwise. */
class ScriptedDriver implements LlmDriver {
  readonly providerType = 'scripted';
  generateCalls = 0;
  streamCalls = 0;
  #calls = 0;
  constructor(readonly answers: ScriptedAnswer[]) {}

  #next(): { answer: ScriptedAnswer; index: number } {
    const index = this.#calls++;
    const answer = this.answers[Math.min(index, this.answers.length - 1)] as ScriptedAnswer;
    return { answer, index };
  }

  async generate(_request: LlmRequest, options: LlmCallOptions = {}): Promise<LlmResponse> {
    this.generateCalls++;
    const { answer, index } = this.#next();
    if (answer.hang) await abortedBy(options.signal);
    if (answer.failWith) throw answer.failWith;
    return responseOf(answer, index);
  }

  async *stream(_request: LlmRequest, options: LlmCallOptions = {}): AsyncIterable<LlmStreamEvent> {
    this.streamCalls++;
    const { answer, index } = this.#next();
    for (const text of answer.reasoning ?? []) yield { type: 'reasoning_delta', text };
    for (const text of answer.text ?? []) yield { type: 'text_delta', text };
    for (const [callIndex, call] of (answer.calls ?? []).entries()) {
      for (const [piece, argumentsDelta] of call.args.entries()) {
        yield {
          type: 'tool_call_delta',
          index: callIndex,
          ...(piece === 0 ? { id: call.id, name: call.name } : {}),
          argumentsDelta,
        };
      }
    }
    if (answer.hang) await abortedBy(options.signal);
    if (answer.failWith) throw answer.failWith;
    yield { type: 'finish', response: responseOf(answer, index) };
  }
}

/** The same script without `stream`: the reason step must fall back to `generate`. */
function generateOnly(driver: ScriptedDriver): LlmDriver {
  return { providerType: driver.providerType, generate: (r, o) => driver.generate(r, o) };
}

async function scriptedRuntime(driver: LlmDriver, events?: EventBus) {
  const runtime = await new InProcessRuntimeBuilder()
    .backends(events ? { ...inMemoryBackends(), events } : inMemoryBackends())
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({ model: 'scripted-model', providerType: 'scripted', apiKey: 'fake-key' })
    .singleSession((s) =>
      s
        .harness('math', 'You are a math assistant.')
        .withCapability('test_math')
        .agent('math-agent', 'Use tools.'),
    )
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

/** A tool-using turn: reasoning, text and a call streamed in pieces, then the final answer. */
const toolTurn = (): ScriptedAnswer[] => [
  {
    reasoning: ['Two and two, ', 'use the tool.'],
    text: ['Let me ', 'add ', 'that.'],
    calls: [{ id: 'call_add_1', name: 'add', args: ['{"a":', '2,"b"', ':2}'] }],
  },
  { text: ['The answer ', 'is ', '4.'] },
];

async function collect(stream: AsyncIterable<TurnStreamPart>): Promise<TurnStreamPart[]> {
  const parts: TurnStreamPart[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

/** Everything but ids, timestamps and durations, with generated ids replaced by their prefix. */
function normalized(value: unknown): unknown {
  const volatile = new Set(['id', 'ts', 'createdAt', 'updatedAt', 'durationMs']);
  return JSON.parse(
    JSON.stringify(value, (key, entry) => (volatile.has(key) ? undefined : entry)).replace(
      /\b([a-z]+)_[0-9a-f]{32}\b/g,
      '$1_ID',
    ),
  );
}

async function sessionStatus(
  runtime: { getSession(id: string): Promise<{ status?: string } | null> },
  sessionId: string,
) {
  return (await runtime.getSession(sessionId))?.status;
}

describe('InProcessRuntime.streamTurn', () => {
  it('yields every part of a tool-using turn, in order, each valid for its schema', async () => {
    const driver = new ScriptedDriver(toolTurn());
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    const result = await stream.result;
    for (const part of parts) expect(turnStreamPartSchema.parse(part)).toEqual(part);
    expect(driver.streamCalls).toBe(2);
    expect(driver.generateCalls).toBe(0);
    expect(parts.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'reasoning-delta',
      'reasoning-delta',
      'text-delta',
      'text-delta',
      'text-delta',
      'tool-call-start',
      'tool-call-delta',
      'tool-call-delta',
      'tool-call-delta',
      'tool-call',
      'step-finish',
      'tool-result',
      'step-start',
      'text-delta',
      'text-delta',
      'text-delta',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts[0]).toEqual({ type: 'turn-start', sessionId, turnId: result.turnId });
    const of = <T extends TurnStreamPart['type']>(type: T) =>
      parts.filter((part): part is Extract<TurnStreamPart, { type: T }> => part.type === type);
    expect(of('step-start').map((part) => part.iteration)).toEqual([1, 2]);
    expect(of('reasoning-delta').map((part) => part.text)).toEqual([
      'Two and two, ',
      'use the tool.',
    ]);
    const text = (iteration: number) =>
      of('text-delta')
        .filter((part) => part.iteration === iteration)
        .map((part) => part.text)
        .join('');
    expect(text(1)).toBe('Let me add that.');
    expect(text(2)).toBe('The answer is 4.');
    expect(of('tool-call-start')).toEqual([
      { type: 'tool-call-start', iteration: 1, toolCallId: 'call_add_1', toolName: 'add' },
    ]);
    expect(of('tool-call-delta').map((part) => [part.toolCallId, part.argumentsDelta])).toEqual([
      ['call_add_1', '{"a":'],
      ['call_add_1', '2,"b"'],
      ['call_add_1', ':2}'],
    ]);
    expect(of('tool-call')).toEqual([
      {
        type: 'tool-call',
        iteration: 1,
        toolCallId: 'call_add_1',
        toolName: 'add',
        arguments: { a: 2, b: 2 },
      },
    ]);
    const [toolResult] = of('tool-result');
    expect(toolResult).toMatchObject({
      iteration: 1,
      toolCallId: 'call_add_1',
      toolName: 'add',
      isError: false,
    });
    const messages = await runtime.messages(sessionId);
    const stored = messages.find((message) => message.role === 'tool_result') as Message;
    expect(stored.content[0]).toMatchObject({ type: 'tool_result', content: toolResult?.result });
    expect(toolResult?.result).toContain('4');
    expect(of('step-finish')).toEqual([
      { type: 'step-finish', iteration: 1, success: true, usage: USAGE, stopReason: 'tool_calls' },
      { type: 'step-finish', iteration: 2, success: true, usage: USAGE, stopReason: 'end_turn' },
    ]);
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result });
    expect(result).toMatchObject({
      success: true,
      response: 'The answer is 4.',
      iterations: 2,
      toolCallsCount: 1,
      stopReason: 'end_turn',
    });
  });

  it('streams the simulated model (driver-llmsim) word by word, with its tool calls', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .llmSim(
        LlmSimConfig.sequence(['Adding now.', 'It is 4.']).withToolCallSequence([
          [{ name: 'add', arguments: { a: 2, b: 2 } }],
          [],
        ]),
      )
      .singleSession((s) =>
        s
          .harness('math', 'You are a math assistant.')
          .withCapability('test_math')
          .agent('math-agent', 'Use tools.'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    const result = await stream.result;
    expect(result).toMatchObject({ success: true, response: 'It is 4.', toolCallsCount: 1 });
    const deltas = parts.filter((part) => part.type === 'text-delta');
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.map((part) => part.text).join('')).toBe('Adding now.It is 4.');
    const call = parts.find((part) => part.type === 'tool-call');
    expect(call).toMatchObject({ toolName: 'add', arguments: { a: 2, b: 2 } });
    expect(parts.find((part) => part.type === 'tool-result')).toMatchObject({
      toolCallId: call?.type === 'tool-call' ? call.toolCallId : '',
      isError: false,
    });
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result });
  });

  it('stores the same messages and kept events whether the turn streamed or not', async () => {
    const script = (): ScriptedAnswer[] => [
      ...toolTurn(),
      // A second turn whose model call fails mid-answer.
      { text: ['Partial '], failWith: new EverrunsError({ code: 'LLM_ERROR', message: 'boom' }) },
    ];
    const plain = await scriptedRuntime(new ScriptedDriver(script()));
    const streamedDriver = new ScriptedDriver(script());
    const streamed = await scriptedRuntime(streamedDriver);

    const plainResults: TurnResult[] = [
      await plain.runtime.runTextTurn(plain.sessionId, 'What is 2 + 2?'),
      await plain.runtime.runTextTurn(plain.sessionId, 'And now?'),
    ];
    const streamedResults: TurnResult[] = [];
    for (const text of ['What is 2 + 2?', 'And now?']) {
      const stream = streamed.runtime.streamTextTurn(streamed.sessionId, text);
      await collect(stream);
      streamedResults.push(await stream.result);
    }
    expect(streamedDriver.streamCalls).toBe(3);
    expect(streamedResults[1]).toMatchObject({ success: false, stopReason: 'llm_error' });
    expect(normalized(streamedResults)).toEqual(normalized(plainResults));
    expect(normalized(await streamed.runtime.messages(streamed.sessionId))).toEqual(
      normalized(await plain.runtime.messages(plain.sessionId)),
    );
    const kept = (runtime: typeof plain.runtime, sessionId: string) =>
      normalized(runtime.events(sessionId));
    expect(kept(streamed.runtime, streamed.sessionId)).toEqual(
      kept(plain.runtime, plain.sessionId),
    );
    expect(
      streamed.runtime.events(streamed.sessionId).some((event) => event.type.endsWith('.delta')),
    ).toBe(false);
  });

  it('reports a model call that fails mid-answer with an error part, step-finish and turn-finish', async () => {
    const driver = new ScriptedDriver([
      { text: ['Half an '], failWith: new EverrunsError({ code: 'LLM_ERROR', message: 'boom' }) },
    ]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'Hi');
    const parts = await collect(stream);
    const result = await stream.result;
    expect(parts.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'text-delta',
      'error',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts[3]).toMatchObject({ type: 'error', error: { code: 'llm_error' } });
    expect(parts[4]).toEqual({ type: 'step-finish', iteration: 1, success: false });
    expect(result).toMatchObject({ success: false, stopReason: 'llm_error' });
    const messages = await runtime.messages(sessionId);
    expect(messages.map((message) => message.role)).toEqual(['user']);
  });

  it('falls back to generate for a driver without stream: the whole text and calls still arrive', async () => {
    const driver = new ScriptedDriver(toolTurn());
    const { runtime, sessionId } = await scriptedRuntime(generateOnly(driver));
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    expect(driver.generateCalls).toBe(2);
    expect(driver.streamCalls).toBe(0);
    expect(parts.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'text-delta',
      'tool-call-start',
      'tool-call',
      'step-finish',
      'tool-result',
      'step-start',
      'text-delta',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts[2]).toEqual({ type: 'text-delta', iteration: 1, text: 'Let me add that.' });
    expect(parts[3]).toEqual({
      type: 'tool-call-start',
      iteration: 1,
      toolCallId: 'call_add_1',
      toolName: 'add',
    });
    expect((await stream.result).response).toBe('The answer is 4.');
  });

  it('aborts mid-stream: an ABORTED error part ends it, result rejects, the session is idle and the next turn runs', async () => {
    const driver = new ScriptedDriver([
      { text: ['Thinking ', 'about '], hang: true },
      { text: ['Fine.'] },
    ]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const controller = new AbortController();
    const stream = runtime.streamTextTurn(sessionId, 'Hi', { signal: controller.signal });
    const parts: TurnStreamPart[] = [];
    for await (const part of stream) {
      parts.push(part);
      if (part.type === 'text-delta' && part.text === 'about ') controller.abort();
    }
    expect(parts.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'text-delta',
      'text-delta',
      'error',
    ]);
    expect(parts.at(-1)).toMatchObject({ type: 'error', error: { code: 'ABORTED' } });
    await expectCode(stream.result, 'ABORTED');
    expect(await sessionStatus(runtime, sessionId)).toBe('idle');
    const messages = await runtime.messages(sessionId);
    expect(messages.filter((message) => message.role === 'agent')).toEqual([]);
    expect(runtime.events(sessionId).map((event) => event.type)).toContain('turn.failed');

    const next = await runtime.runTextTurn(sessionId, 'Again');
    expect(next).toMatchObject({ success: true, response: 'Fine.' });
  });

  it('an aborted signal before the start ends the stream with ABORTED and writes nothing', async () => {
    const driver = new ScriptedDriver([{ text: ['never'] }]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'Hi', { signal: AbortSignal.abort() });
    const parts = await collect(stream);
    expect(parts).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'ABORTED' }) }]);
    await expectCode(stream.result, 'ABORTED');
    expect(driver.streamCalls).toBe(0);
    expect(await runtime.messages(sessionId)).toEqual([]);
  });

  it('a consumer that leaves early detaches: the turn runs to its end and releases the session', async () => {
    const driver = new ScriptedDriver([...toolTurn(), { text: ['Next ', 'one.'] }]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const seen: TurnStreamPart[] = [];
    for await (const part of stream) {
      seen.push(part);
      if (part.type === 'text-delta') break;
    }
    expect(seen.at(-1)?.type).toBe('text-delta');
    const result = await stream.result;
    expect(result).toMatchObject({ success: true, response: 'The answer is 4.', iterations: 2 });
    expect(stream.bufferedParts).toBe(0);
    expect(await sessionStatus(runtime, sessionId)).toBe('idle');
    const messages = await runtime.messages(sessionId);
    expect(messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'agent',
    ]);
    const next = runtime.streamTextTurn(sessionId, 'Go on');
    const nextParts = await collect(next);
    expect((await next.result).response).toBe('Next one.');
    expect(nextParts.at(-1)?.type).toBe('turn-finish');
  });

  it('keeps a slow consumer bounded: past highWaterMark deltas merge, nothing is lost', async () => {
    const pieces = Array.from({ length: 2000 }, (_, index) => `w${index} `);
    const reasoning = Array.from({ length: 300 }, (_, index) => `r${index} `);
    const driver = new ScriptedDriver([
      {
        reasoning,
        text: pieces,
        calls: [
          {
            id: 'call_big',
            name: 'add',
            args: ['{"a":', ...Array.from({ length: 200 }, () => ' '), '1,"b":2}'],
          },
        ],
      },
      { text: pieces },
    ]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const highWaterMark = 8;
    const stream = runtime.streamTextTurn(sessionId, 'Talk a lot', { highWaterMark });
    expect(stream.highWaterMark).toBe(highWaterMark);
    // Nobody reads until the turn is over.
    const result = await stream.result;
    expect(result.success).toBe(true);
    // What is buffered: at most the mark, plus parts that are not deltas or a delta of a new
    // kind (here: tool-call-start, tool-call, step-finish, tool-result, step-start, turn-finish and
    // the first delta of each new kind/step/call).
    const buffered = stream.bufferedParts;
    expect(buffered).toBeLessThanOrEqual(highWaterMark + 12);
    const parts = await collect(stream);
    expect(parts).toHaveLength(buffered);
    const joined = (type: 'text-delta' | 'reasoning-delta', iteration: number) =>
      parts
        .flatMap((part) => (part.type === type && part.iteration === iteration ? [part.text] : []))
        .join('');
    expect(joined('text-delta', 1)).toBe(pieces.join(''));
    expect(joined('text-delta', 2)).toBe(pieces.join(''));
    expect(joined('reasoning-delta', 1)).toBe(reasoning.join(''));
    const argumentsText = parts
      .flatMap((part) => (part.type === 'tool-call-delta' ? [part.argumentsDelta] : []))
      .join('');
    expect(JSON.parse(argumentsText)).toEqual({ a: 1, b: 2 });
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result });
  });

  it('a consumer reading as parts come gets every delta on its own', async () => {
    const pieces = Array.from({ length: 50 }, (_, index) => `p${index} `);
    const driver = new ScriptedDriver([{ text: pieces }]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'Hi', { highWaterMark: 1 });
    const deltas: string[] = [];
    for await (const part of stream) if (part.type === 'text-delta') deltas.push(part.text);
    // The reader waits on an empty buffer, so each delta is handed over as it comes.
    expect(deltas).toEqual(pieces);
  });

  it('can be iterated once: a second iteration throws INVALID_INPUT', async () => {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver([{ text: ['Hi.'] }]));
    const stream = runtime.streamTextTurn(sessionId, 'Hi');
    const first = stream[Symbol.asyncIterator]();
    expect(() => stream[Symbol.asyncIterator]()).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    await expectCode(
      (async () => {
        for await (const _ of stream) {
          // never reached
        }
      })(),
      'INVALID_INPUT',
    );
    const parts: TurnStreamPart[] = [];
    for (let next = await first.next(); !next.done; next = await first.next()) {
      parts.push(next.value);
    }
    expect(parts.at(-1)?.type).toBe('turn-finish');
  });

  it('never throws for bad input: the stream fails with INVALID_INPUT and nothing runs', async () => {
    const driver = new ScriptedDriver([{ text: ['never'] }]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const cases: Array<() => TurnStream> = [
      () => runtime.streamTurn(sessionId, { role: 'robot' } as never),
      () => runtime.streamTextTurn(sessionId, 42 as never),
      () => runtime.streamTextTurn('', 'Hi'),
      () => runtime.streamTextTurn(sessionId, 'Hi', { highWaterMark: 0 }),
      () => runtime.streamTextTurn(sessionId, 'Hi', { highWaterMark: 1.5 }),
      () => runtime.streamTextTurn(sessionId, 'Hi', { signal: 'stop' as never }),
      () => runtime.streamTextTurn(sessionId, 'Hi', 'fast' as never),
      () => runtime.streamTextTurn(sessionId, 'Hi', { modelOptions: { temperature: -4 } }),
    ];
    for (const make of cases) {
      const stream = make();
      expect(stream).toBeInstanceOf(TurnStream);
      const parts = await collect(stream);
      expect(parts).toEqual([
        { type: 'error', error: expect.objectContaining({ code: 'INVALID_INPUT' }) },
      ]);
      await expectCode(stream.result, 'INVALID_INPUT');
    }
    expect(driver.streamCalls + driver.generateCalls).toBe(0);
    expect(await runtime.messages(sessionId)).toEqual([]);
  });

  it('a stream on a busy session fails with TURN_IN_PROGRESS and leaves the running stream whole', async () => {
    const driver = new ScriptedDriver([{ text: ['One ', 'two.'], hang: true }]);
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const controller = new AbortController();
    const running = runtime.streamTextTurn(sessionId, 'First', { signal: controller.signal });
    const iterator = running[Symbol.asyncIterator]();
    const seen: TurnStreamPart[] = [];
    // turn-start, step-start and both text deltas; the model then hangs until the abort.
    for (let count = 0; count < 4; count++) {
      const next = await iterator.next();
      if (!next.done) seen.push(next.value);
    }
    const busy = runtime.streamTextTurn(sessionId, 'Second');
    expect(await collect(busy)).toEqual([
      { type: 'error', error: expect.objectContaining({ code: 'TURN_IN_PROGRESS' }) },
    ]);
    await expectCode(busy.result, 'TURN_IN_PROGRESS');
    controller.abort();
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      seen.push(next.value);
    }
    expect(seen.map((part) => part.type)).toEqual([
      'turn-start',
      'step-start',
      'text-delta',
      'text-delta',
      'error',
    ]);
    await expectCode(running.result, 'ABORTED');
  });

  it('a rejection nobody awaits is not reported as unhandled', async () => {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver([{ text: ['x'] }]));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      runtime.streamTextTurn(sessionId, 42 as never);
      runtime.streamTextTurn(sessionId, 'Hi', { signal: AbortSignal.abort() });
      // Let both fail and a macrotask pass, where Node reports unhandled rejections.
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });

  it('fails with RUNTIME_CLOSED after close', async () => {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver([{ text: ['x'] }]));
    await runtime.close();
    const stream = runtime.streamTextTurn(sessionId, 'Hi');
    expect(await collect(stream)).toEqual([
      { type: 'error', error: expect.objectContaining({ code: 'RUNTIME_CLOSED' }) },
    ]);
    await expectCode(stream.result, 'RUNTIME_CLOSED');
  });
});

describe('delta events on the memory bus', () => {
  it('reach subscribers as ephemeral events numbered with the last kept seq, and are never kept', async () => {
    const driver = new ScriptedDriver(toolTurn());
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const delivered: RuntimeEvent[] = [];
    const stop = runtime.backends.events.subscribe?.((event) => {
      if (event.sessionId === sessionId) delivered.push(event);
    });
    try {
      const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
      await collect(stream);
      await stream.result;
    } finally {
      stop?.();
    }
    const ephemeral = delivered.filter((event) => isEphemeralEventType(event.type));
    expect(ephemeral.map((event) => event.type)).toEqual([
      'reason.thinking.delta',
      'reason.thinking.delta',
      'output.message.delta',
      'output.message.delta',
      'output.message.delta',
      'tool.call.delta',
      'tool.call.delta',
      'tool.call.delta',
      'output.message.delta',
      'output.message.delta',
      'output.message.delta',
    ]);
    for (const event of ephemeral) expect(event.ephemeral).toBe(true);
    // Each delta carries the seq of the kept event before it (here its step's reason.started).
    let lastKept = 0;
    for (const event of delivered) {
      if (event.ephemeral) expect(event.seq).toBe(lastKept);
      else {
        expect(event.seq).toBe(lastKept + 1);
        lastKept = event.seq;
      }
    }
    expect(ephemeral[5]?.data).toEqual({
      iteration: 1,
      index: 0,
      toolCallId: 'call_add_1',
      toolName: 'add',
      argumentsDelta: '{"a":',
    });
    // Later pieces of the call carry its id and name too.
    expect(ephemeral[6]?.data).toMatchObject({ toolCallId: 'call_add_1', toolName: 'add' });
    expect(ephemeral[2]?.data).toEqual({ iteration: 1, delta: 'Let me ', offset: 0 });
    expect(ephemeral[3]?.data).toEqual({ iteration: 1, delta: 'add ', offset: 7 });
    const kept = runtime.events(sessionId);
    expect(kept.length).toBe(lastKept);
    expect(kept.some((event) => isEphemeralEventType(event.type) || event.ephemeral)).toBe(false);
    // The kept events carry what a stream needs: the stored calls, the stop reason, the result.
    expect(kept.find((event) => event.type === 'output.message.completed')?.data).toMatchObject({
      iteration: 1,
      toolCalls: 1,
      calls: [{ id: 'call_add_1', name: 'add', arguments: { a: 2, b: 2 } }],
    });
    expect(kept.find((event) => event.type === 'reason.completed')?.data).toMatchObject({
      stopReason: 'tool_calls',
    });
    const messages = await runtime.messages(sessionId);
    const toolResult = messages.find((message) => message.role === 'tool_result') as Message;
    expect(kept.find((event) => event.type === 'tool.completed')?.data).toMatchObject({
      iteration: 1,
      result: messageResultText(toolResult),
    });
    expect(messageText(messages.at(-1) as Message)).toBe('The answer is 4.');
  });

  it('a plain runTurn emits no delta event', async () => {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver(toolTurn()));
    const delivered: RuntimeEvent[] = [];
    const stop = runtime.backends.events.subscribe?.((event) => delivered.push(event));
    try {
      await runtime.runTextTurn(sessionId, 'What is 2 + 2?');
    } finally {
      stop?.();
    }
    expect(delivered.length).toBeGreaterThan(0);
    expect(delivered.some((event) => event.ephemeral === true)).toBe(false);
  });
});

function messageResultText(message: Message): string {
  const part = message.content[0];
  return part?.type === 'tool_result' ? part.content : '';
}

describe('TurnEventTranslator', () => {
  /** Streams one turn and records every event of its session that the bus delivered. */
  async function streamedWithEvents(answers: ScriptedAnswer[]) {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver(answers));
    const delivered: RuntimeEvent[] = [];
    const stop = runtime.backends.events.subscribe?.((event) => {
      if (event.sessionId === sessionId) delivered.push(event);
    });
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    const result = await stream.result.catch((error: unknown) => error);
    stop?.();
    return { parts, result, delivered };
  }

  function translated(events: RuntimeEvent[], turnId: string): TurnStreamPart[] {
    const translator = new TurnEventTranslator({ turnId, finishFromEvents: true });
    return events.flatMap((event) => translator.translate(event));
  }

  it('with finishFromEvents, builds from the bus events the very parts streamTurn yielded', async () => {
    const { parts, result, delivered } = await streamedWithEvents(toolTurn());
    const turnId = (result as TurnResult).turnId;
    expect(translated(delivered, turnId)).toEqual(parts);
  });

  it('does the same for a turn whose model call fails after a tool step', async () => {
    const { parts, result, delivered } = await streamedWithEvents([
      toolTurn()[0] as ScriptedAnswer,
      { text: ['Half '], failWith: new EverrunsError({ code: 'LLM_ERROR', message: 'boom' }) },
    ]);
    // The failed turn answers with the user-facing failure text and keeps its tool-call count.
    expect(result).toMatchObject({
      success: false,
      stopReason: 'llm_error',
      response: modelFailureText('llm_error'),
      toolCallsCount: 1,
    });
    expect(translated(delivered, (result as TurnResult).turnId)).toEqual(parts);
  });

  it('ends an aborted turn with its error part and no turn-finish', async () => {
    const { runtime, sessionId } = await scriptedRuntime(
      new ScriptedDriver([{ text: ['a ', 'b'], hang: true }]),
    );
    const delivered: RuntimeEvent[] = [];
    const stop = runtime.backends.events.subscribe?.((event) => delivered.push(event));
    const abort = new AbortController();
    const stream = runtime.streamTextTurn(sessionId, 'Hi', { signal: abort.signal });
    const parts: TurnStreamPart[] = [];
    for await (const part of stream) {
      parts.push(part);
      if (part.type === 'text-delta' && part.text === 'b') abort.abort();
    }
    stop?.();
    const turnId = parts[0]?.type === 'turn-start' ? parts[0].turnId : '';
    expect(translated(delivered, turnId)).toEqual(parts);
    expect(parts.at(-1)).toMatchObject({ type: 'error', error: { code: 'ABORTED' } });
  });

  it('ignores the events of other turns and fills in what a driver without stream did not stream', () => {
    const translator = new TurnEventTranslator({ turnId: 'turn_a' });
    const event = (type: RuntimeEvent['type'], data: Record<string, unknown>, turnId = 'turn_a') =>
      ({ id: 'e', type, sessionId: 's', turnId, seq: 1, ts: '', data }) as RuntimeEvent;
    expect(translator.translate(event('output.message.delta', { delta: 'x' }, 'turn_b'))).toEqual(
      [],
    );
    expect(translator.translate(event('reason.started', { iteration: 2 }))).toEqual([
      { type: 'step-start', iteration: 2 },
    ]);
    expect(
      translator.translate(
        event('output.message.completed', {
          text: 'Done.',
          calls: [
            { id: 'c1', name: 'add', arguments: '{"a":1}' },
            { id: 'c2', name: 'add', arguments: 'not json' },
          ],
        }),
      ),
    ).toEqual([
      { type: 'text-delta', iteration: 2, text: 'Done.' },
      { type: 'tool-call-start', iteration: 2, toolCallId: 'c1', toolName: 'add' },
      { type: 'tool-call', iteration: 2, toolCallId: 'c1', toolName: 'add', arguments: { a: 1 } },
      { type: 'tool-call-start', iteration: 2, toolCallId: 'c2', toolName: 'add' },
      { type: 'tool-call', iteration: 2, toolCallId: 'c2', toolName: 'add', arguments: {} },
    ]);
    // Without finishFromEvents the end events yield nothing (the TurnResult ends the stream).
    expect(translator.translate(event('turn.completed', { stopReason: 'end_turn' }))).toEqual([]);
  });
});

describe('streamTurn with client tools and steering', () => {
  const browser = defineCapability({
    id: 'browser',
    name: 'Browser',
    description: 'tools the client runs',
    tools: [
      defineTool({
        name: 'ask_user',
        description: 'asks the user in the client',
        inputSchema: z.object({ question: z.string() }),
        clientSide: true,
        execute: () => {
          throw new Error('a client-side tool must not run on the server');
        },
      }),
    ],
  });

  it('ends with turn-finish waiting_for_tool_results; the continuation runs unstreamed', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .capability(browser)
      .llmSim(
        LlmSimConfig.sequence(['Let me ask.', 'Blue it is.']).withToolCallSequence([
          [{ id: 'q1', name: 'ask_user', arguments: { question: 'colour?' } }],
          [],
        ]),
      )
      .singleSession((s) => s.harness('h', 'You help.').withCapability('browser').agent('a', 'x'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const stream = runtime.streamTextTurn(sessionId, 'Pick a colour');
    const parts = await collect(stream);
    const result = await stream.result;
    expect(result).toMatchObject({ success: true, stopReason: 'waiting_for_tool_results' });
    expect(parts.map((part) => part.type).slice(-3)).toEqual([
      'tool-call',
      'step-finish',
      'turn-finish',
    ]);
    expect(parts.some((part) => part.type === 'tool-result')).toBe(false);
    const delivered: RuntimeEvent[] = [];
    const stop = runtime.backends.events.subscribe?.((event) => delivered.push(event));
    const resumed = await runtime.submitToolResults(sessionId, result.turnId, [
      { toolCallId: 'q1', content: 'blue' },
    ]);
    stop?.();
    expect(resumed).toMatchObject({ success: true, response: 'Blue it is.' });
    expect(delivered.length).toBeGreaterThan(0);
    expect(delivered.some((event) => event.ephemeral === true)).toBe(false);
  });

  it('takes steering messages while it streams: the model answers them in another step', async () => {
    let calls = 0;
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fromFunction(() => (++calls === 1 ? 'First answer.' : 'Steered.')))
      .singleSession((s) => s.harness('h', 'You help.'))
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const stream = runtime.streamTextTurn(sessionId, 'Hi');
    const parts: TurnStreamPart[] = [];
    let steering: Promise<unknown> | undefined;
    for await (const part of stream) {
      parts.push(part);
      if (part.type === 'step-start' && steering === undefined) {
        steering = runtime.steerText(sessionId, 'Actually, something else');
      }
    }
    await steering;
    const result = await stream.result;
    expect(result).toMatchObject({ success: true, response: 'Steered.', iterations: 2 });
    expect(parts.filter((part) => part.type === 'step-start')).toHaveLength(2);
    const text = parts.flatMap((part) => (part.type === 'text-delta' ? [part.text] : []));
    expect(text.join('')).toBe('First answer.Steered.');
  });
});

/** A third-party bus with `emit` only (no subscribe, nothing kept); can refuse deltas. */
class EmitOnlyBus implements EventBus {
  readonly #seqs = new Map<string, number>();
  refuseDeltas = false;
  async emit(request: EventRequest): Promise<RuntimeEvent> {
    const ephemeral = isEphemeralEventType(request.type);
    if (ephemeral && this.refuseDeltas) throw new Error('the bus is down');
    const seq = (this.#seqs.get(request.sessionId) ?? 0) + (ephemeral ? 0 : 1);
    this.#seqs.set(request.sessionId, seq);
    return {
      id: crypto.randomUUID(),
      type: request.type,
      sessionId: request.sessionId,
      ...(request.turnId !== undefined ? { turnId: request.turnId } : {}),
      seq,
      ts: new Date().toISOString(),
      data: request.data,
      ...(ephemeral ? { ephemeral: true as const } : {}),
    };
  }
}

describe('streamTurn on other buses and drivers', () => {
  it('streams on a bus without subscribe', async () => {
    const bus = new EmitOnlyBus();
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver(toolTurn()), bus);
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    expect((await stream.result).response).toBe('The answer is 4.');
    expect(parts.filter((part) => part.type === 'text-delta')).toHaveLength(6);
    expect(parts.at(-1)?.type).toBe('turn-finish');
  });

  it('a bus that refuses a delta fails the turn as a store error would, not as the model', async () => {
    const bus = new EmitOnlyBus();
    bus.refuseDeltas = true;
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver(toolTurn()), bus);
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const parts = await collect(stream);
    const error = await expectCode(stream.result, 'INTERNAL');
    expect(error.message).toContain('the bus is down');
    expect(parts.at(-1)).toMatchObject({ type: 'error', error: { code: 'INTERNAL' } });
    expect(await sessionStatus(runtime, sessionId)).toBe('idle');
    // A plain turn does not emit deltas, so it runs.
    expect((await runtime.runTextTurn(sessionId, 'Again?')).success).toBe(true);
  });

  it('a driver stream that ends without its finish event is the model failing (llm_error)', async () => {
    const driver: LlmDriver = {
      providerType: 'scripted',
      generate: () => Promise.reject(new Error('not used')),
      async *stream() {
        yield { type: 'text_delta', text: 'cut ' };
      },
    };
    const { runtime, sessionId } = await scriptedRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'Hi');
    const parts = await collect(stream);
    expect(await stream.result).toMatchObject({ success: false, stopReason: 'llm_error' });
    expect(parts.find((part) => part.type === 'error')).toMatchObject({
      error: { code: 'llm_error', details: { errorCode: 'LLM_ERROR' } },
    });
    expect((await runtime.messages(sessionId)).map((message) => message.role)).toEqual(['user']);
  });
});

describe('TurnStream web faces', () => {
  it('toReadableStream reads the same parts; the stream is then taken', async () => {
    const { runtime, sessionId } = await scriptedRuntime(new ScriptedDriver(toolTurn()));
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 2?');
    const reader = stream.toReadableStream().getReader();
    const parts: TurnStreamPart[] = [];
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      parts.push(read.value);
    }
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result: await stream.result });
    expect(parts.map((part) => part.type)).toContain('tool-result');
    expect(() => stream[Symbol.asyncIterator]()).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });

  it('toSSEResponse and toUIMessageStreamResponse answer with event streams carrying the text', async () => {
    const { runtime, sessionId } = await scriptedRuntime(
      new ScriptedDriver([{ text: ['Hello ', 'there.'] }]),
    );
    const sse = runtime.streamTextTurn(sessionId, 'Hi').toSSEResponse();
    expect(sse.headers.get('content-type')).toContain('text/event-stream');
    const sseBody = await sse.text();
    expect(sseBody).toContain('"text-delta"');
    expect(sseBody).toContain('there.');
    const ui = runtime.streamTextTurn(sessionId, 'Hi again').toUIMessageStreamResponse();
    expect(ui.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const uiBody = await ui.text();
    expect(uiBody).toContain('Hello ');
    expect(uiBody).toContain('"finish"');
  });
});
