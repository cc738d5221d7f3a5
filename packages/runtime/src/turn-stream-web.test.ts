import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { EverrunsError } from '@everruns-ts/core';
import {
  AbstractChat,
  type ChatState,
  type ChatStatus,
  DefaultChatTransport,
  parseJsonEventStream,
  readUIMessageStream,
  type UIMessage,
  type UIMessageChunk,
  uiMessageChunkSchema,
} from 'ai';
import { describe, expect, it } from 'vitest';
import {
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  LlmSimConfig,
  type TurnResult,
  type TurnStreamLike,
  type TurnStreamPart,
  turnStreamPartSchema,
  turnStreamToReadableStream,
  turnStreamToSSEResponse,
  turnStreamToUIMessageStreamResponse,
} from './index.js';

/** A hand-built turn stream: yields `parts` (checked against the schema), records what it did. */
function handBuiltStream(
  parts: TurnStreamPart[],
  options: { throwAfter?: Error } = {},
): TurnStreamLike & { yielded: number; released: boolean } {
  for (const part of parts) turnStreamPartSchema.parse(part);
  const finish = parts.find((part) => part.type === 'turn-finish');
  const failure = parts.find((part) => part.type === 'error');
  const result: Promise<TurnResult> = finish
    ? Promise.resolve(finish.result)
    : Promise.reject(
        new EverrunsError({
          code: failure?.type === 'error' ? (failure.error.code as 'ABORTED') : 'INTERNAL',
          message: failure?.type === 'error' ? failure.error.message : 'no result',
        }),
      );
  const state = {
    yielded: 0,
    released: false,
    result,
    async *[Symbol.asyncIterator](): AsyncGenerator<TurnStreamPart> {
      try {
        for (const part of parts) {
          state.yielded += 1;
          yield part;
        }
        if (options.throwAfter) throw options.throwAfter;
      } finally {
        state.released = true;
      }
    },
  };
  return state;
}

function ids() {
  const suffix = crypto.randomUUID().slice(0, 8);
  return { sessionId: `session-${suffix}`, turnId: `turn-${suffix}`, suffix };
}

/** A math turn: reasoning, text, a tool call streamed in pieces, its result, then the answer. */
function mathTurnParts(): TurnStreamPart[] {
  const { sessionId, turnId, suffix } = ids();
  return [
    { type: 'turn-start', sessionId, turnId },
    { type: 'step-start', iteration: 1 },
    { type: 'reasoning-delta', iteration: 1, text: 'I should ' },
    { type: 'reasoning-delta', iteration: 1, text: 'add them.' },
    { type: 'text-delta', iteration: 1, text: 'Let me ' },
    { type: 'text-delta', iteration: 1, text: 'add.' },
    { type: 'tool-call-start', iteration: 1, toolCallId: `call-${suffix}`, toolName: 'add' },
    {
      type: 'tool-call-delta',
      iteration: 1,
      toolCallId: `call-${suffix}`,
      argumentsDelta: '{"a":2,',
    },
    {
      type: 'tool-call-delta',
      iteration: 1,
      toolCallId: `call-${suffix}`,
      argumentsDelta: '"b":3}',
    },
    {
      type: 'tool-call',
      iteration: 1,
      toolCallId: `call-${suffix}`,
      toolName: 'add',
      arguments: { a: 2, b: 3 },
    },
    {
      type: 'tool-call',
      iteration: 1,
      toolCallId: `bad-${suffix}`,
      toolName: 'divide',
      arguments: { a: 1, b: 0 },
    },
    {
      type: 'step-finish',
      iteration: 1,
      success: true,
      usage: { inputTokens: 10, outputTokens: 5 },
      stopReason: 'tool_calls',
    },
    {
      type: 'tool-result',
      iteration: 1,
      toolCallId: `call-${suffix}`,
      toolName: 'add',
      result: '5',
      isError: false,
    },
    {
      type: 'tool-result',
      iteration: 1,
      toolCallId: `bad-${suffix}`,
      toolName: 'divide',
      result: 'division by zero',
      isError: true,
    },
    { type: 'step-start', iteration: 2 },
    { type: 'text-delta', iteration: 2, text: 'The sum ' },
    { type: 'text-delta', iteration: 2, text: 'is 5.' },
    { type: 'step-finish', iteration: 2, success: true, stopReason: 'end_turn' },
    {
      type: 'turn-finish',
      result: {
        turnId,
        response: 'The sum is 5.',
        iterations: 2,
        toolCallsCount: 2,
        success: true,
        stopReason: 'end_turn',
      },
    },
  ];
}

/** A turn whose model call failed: an error part, then a failed `turn-finish`. */
function failedTurnParts(message: string): TurnStreamPart[] {
  const { sessionId, turnId } = ids();
  const error = { code: 'LLM_ERROR', message };
  return [
    { type: 'turn-start', sessionId, turnId },
    { type: 'step-start', iteration: 1 },
    { type: 'text-delta', iteration: 1, text: 'Half an ans' },
    { type: 'step-finish', iteration: 1, success: false },
    { type: 'error', error },
    {
      type: 'turn-finish',
      result: {
        turnId,
        response: '',
        iterations: 1,
        toolCallsCount: 0,
        success: false,
        error,
        stopReason: 'llm_error',
      },
    },
  ];
}

async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const values: T[] = [];
  const reader = stream.getReader();
  for (;;) {
    const next = await reader.read();
    if (next.done) return values;
    values.push(next.value);
  }
}

/** Parses an SSE body by the spec's field rules: `event:` and `data:` lines, blank line ends. */
function parseSse(text: string): Array<{ event: string | undefined; data: string }> {
  const events: Array<{ event: string | undefined; data: string }> = [];
  for (const block of text.split('\n\n')) {
    if (!block) continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice('event: '.length);
      else if (line.startsWith('data: ')) data.push(line.slice('data: '.length));
      else throw new Error(`unexpected SSE line ${JSON.stringify(line)}`);
    }
    events.push({ event, data: data.join('\n') });
  }
  return events;
}

/** The chunks of a UI message stream response, each checked by the `ai` package's own schema. */
async function uiChunksOf(response: Response): Promise<UIMessageChunk[]> {
  const parsed = await readAll(
    parseJsonEventStream({
      stream: response.body as ReadableStream<Uint8Array>,
      schema: uiMessageChunkSchema,
    }),
  );
  return parsed.map((result) => {
    if (!result.success) throw result.error;
    return result.value;
  });
}

/** The final assistant message `readUIMessageStream` (the `ai` package) builds from a response. */
async function finalUIMessage(
  response: Response,
  errors: unknown[] = [],
): Promise<{ message: UIMessage; snapshots: number }> {
  const chunks = parseJsonEventStream({
    stream: response.body as ReadableStream<Uint8Array>,
    schema: uiMessageChunkSchema,
  }).pipeThrough(
    new TransformStream({
      transform(result, controller) {
        if (!result.success) throw result.error;
        controller.enqueue(result.value);
      },
    }),
  );
  let message: UIMessage | undefined;
  let snapshots = 0;
  for await (const snapshot of readUIMessageStream({
    stream: chunks,
    onError: (error) => errors.push(error),
  })) {
    message = snapshot;
    snapshots += 1;
  }
  if (!message) throw new Error('no message');
  return { message, snapshots };
}

describe('turnStreamToReadableStream', () => {
  it('yields the turn parts in order and closes after the last', async () => {
    const parts = mathTurnParts();
    const stream = handBuiltStream(parts);
    expect(await readAll(turnStreamToReadableStream(stream))).toEqual(parts);
    expect(stream.released).toBe(true);
  });

  it('takes a part from the turn stream only when the reader asks for one', async () => {
    const stream = handBuiltStream(mathTurnParts());
    const reader = turnStreamToReadableStream(stream).getReader();
    expect(stream.yielded).toBe(0);
    await reader.read();
    await reader.read();
    expect(stream.yielded).toBe(2);
    await reader.cancel();
  });

  it('releases the turn stream through its iterator when the reader cancels', async () => {
    const stream = handBuiltStream(mathTurnParts());
    const reader = turnStreamToReadableStream(stream).getReader();
    expect((await reader.read()).value?.type).toBe('turn-start');
    await reader.cancel();
    expect(stream.released).toBe(true);
    expect(stream.yielded).toBe(1);
    expect((await reader.read()).done).toBe(true);
  });

  it('errors the stream when the iteration throws', async () => {
    const failure = new Error(`broken ${crypto.randomUUID()}`);
    const stream = handBuiltStream(mathTurnParts().slice(0, 2), { throwAfter: failure });
    await expect(readAll(turnStreamToReadableStream(stream))).rejects.toBe(failure);
  });

  it('rejects something that is not a turn stream with INVALID_INPUT', () => {
    for (const value of [null, {}, [1, 2], { [Symbol.asyncIterator]: () => undefined }]) {
      expect(() => turnStreamToReadableStream(value as unknown as TurnStreamLike)).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT' }),
      );
    }
  });
});

describe('turnStreamToSSEResponse', () => {
  it('sends one event per part, named by its type, that parses back into the same parts', async () => {
    const parts = mathTurnParts();
    const response = turnStreamToSSEResponse(handBuiltStream(parts));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const events = parseSse(await response.text());
    expect(events.map((event) => turnStreamPartSchema.parse(JSON.parse(event.data)))).toEqual(
      parts,
    );
    expect(events.map((event) => event.event)).toEqual(parts.map((part) => part.type));
  });

  it('keeps a part with line breaks in its text on one data line', async () => {
    const { sessionId, turnId } = ids();
    const parts: TurnStreamPart[] = [
      { type: 'turn-start', sessionId, turnId },
      { type: 'step-start', iteration: 1 },
      { type: 'text-delta', iteration: 1, text: 'line one\nline two\r\n\ndata: not an event' },
    ];
    const response = turnStreamToSSEResponse(
      handBuiltStream([...parts, failedTurnParts('x')[5] as TurnStreamPart]),
    );
    const events = parseSse(await response.text());
    expect(JSON.parse(events[2]?.data ?? '')).toEqual(parts[2]);
  });

  it('passes status and headers of init through, the caller winning on a header both set', async () => {
    const response = turnStreamToSSEResponse(handBuiltStream(mathTurnParts()), {
      status: 201,
      statusText: 'Streaming',
      headers: { 'x-request-id': 'r-1', 'cache-control': 'no-store' },
    });
    expect(response.status).toBe(201);
    expect(response.statusText).toBe('Streaming');
    expect(response.headers.get('x-request-id')).toBe('r-1');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    await response.body?.cancel();
  });

  it('ends with an error event when the iteration throws', async () => {
    const message = `broken ${crypto.randomUUID()}`;
    const response = turnStreamToSSEResponse(
      handBuiltStream(mathTurnParts().slice(0, 2), {
        throwAfter: new EverrunsError({ code: 'STORE_UNAVAILABLE', message }),
      }),
    );
    const events = parseSse(await response.text());
    expect(events.at(-1)).toEqual({
      event: 'error',
      data: JSON.stringify({ type: 'error', error: { code: 'STORE_UNAVAILABLE', message } }),
    });
  });

  it('releases the turn stream when the client cancels the body', async () => {
    const stream = handBuiltStream(mathTurnParts());
    const response = turnStreamToSSEResponse(stream);
    const reader = response.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    await reader.read();
    await reader.cancel();
    expect(stream.released).toBe(true);
    expect(stream.yielded).toBe(1);
  });
});

describe('turnStreamToUIMessageStreamResponse', () => {
  it('is read by the ai package into one assistant message with reasoning, text and tool parts', async () => {
    const parts = mathTurnParts();
    const turnId = (parts[0] as { turnId: string }).turnId;
    const callId = (parts[6] as { toolCallId: string }).toolCallId;
    const badId = (parts[10] as { toolCallId: string }).toolCallId;
    const response = turnStreamToUIMessageStreamResponse(handBuiltStream(parts));
    expect(response.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const errors: unknown[] = [];
    const { message, snapshots } = await finalUIMessage(response, errors);
    expect(errors).toEqual([]);
    expect(snapshots).toBeGreaterThan(parts.length / 2);
    expect(message.id).toBe(turnId);
    expect(message.role).toBe('assistant');
    expect(message.parts).toEqual([
      { type: 'step-start' },
      expect.objectContaining({ type: 'reasoning', text: 'I should add them.', state: 'done' }),
      expect.objectContaining({ type: 'text', text: 'Let me add.', state: 'done' }),
      expect.objectContaining({
        type: 'tool-add',
        toolCallId: callId,
        state: 'output-available',
        input: { a: 2, b: 3 },
        output: '5',
      }),
      expect.objectContaining({
        type: 'tool-divide',
        toolCallId: badId,
        state: 'output-error',
        input: { a: 1, b: 0 },
        errorText: 'division by zero',
      }),
      { type: 'step-start' },
      expect.objectContaining({ type: 'text', text: 'The sum is 5.', state: 'done' }),
    ]);
  });

  it('sends the protocol chunks in order: steps around their tool results, finish, then [DONE]', async () => {
    const response = turnStreamToUIMessageStreamResponse(handBuiltStream(mathTurnParts()), {
      messageId: 'message-1',
    });
    const text = await response.clone().text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const chunks = await uiChunksOf(response);
    expect(chunks.map((chunk) => chunk.type)).toEqual([
      'start',
      'start-step',
      'reasoning-start',
      'reasoning-delta',
      'reasoning-delta',
      'reasoning-end',
      'text-start',
      'text-delta',
      'text-delta',
      'text-end',
      'tool-input-start',
      'tool-input-delta',
      'tool-input-delta',
      'tool-input-available',
      'tool-input-available',
      'tool-output-available',
      'tool-output-error',
      'finish-step',
      'start-step',
      'text-start',
      'text-delta',
      'text-delta',
      'text-end',
      'finish-step',
      'finish',
    ]);
    expect(chunks[0]).toEqual({ type: 'start', messageId: 'message-1' });
    expect(chunks.at(-1)).toEqual({ type: 'finish', finishReason: 'stop' });
    const textIds = chunks.flatMap((chunk) => (chunk.type === 'text-start' ? [chunk.id] : []));
    expect(new Set(textIds).size).toBe(2);
  });

  it('sends an error chunk for a failed turn and finishes with finishReason error', async () => {
    const message = `model down ${crypto.randomUUID()}`;
    const chunks = await uiChunksOf(
      turnStreamToUIMessageStreamResponse(handBuiltStream(failedTurnParts(message))),
    );
    expect(chunks.filter((chunk) => chunk.type === 'error')).toEqual([
      { type: 'error', errorText: message },
    ]);
    expect(chunks.at(-1)).toEqual({ type: 'finish', finishReason: 'error' });

    const errors: unknown[] = [];
    const { message: uiMessage } = await finalUIMessage(
      turnStreamToUIMessageStreamResponse(handBuiltStream(failedTurnParts(message))),
      errors,
    );
    expect(errors).toEqual([new Error(message)]);
    expect(uiMessage.parts).toContainEqual(
      expect.objectContaining({ type: 'text', text: 'Half an ans', state: 'done' }),
    );
  });

  it('sends the text errorText makes of the error instead of its message', async () => {
    const chunks = await uiChunksOf(
      turnStreamToUIMessageStreamResponse(handBuiltStream(failedTurnParts('secret detail')), {
        errorText: (error) => `failed (${error.code})`,
      }),
    );
    expect(chunks.filter((chunk) => chunk.type === 'error')).toEqual([
      { type: 'error', errorText: 'failed (LLM_ERROR)' },
    ]);
  });

  it('sends an error chunk for a failed turn that had no error part', async () => {
    const parts = failedTurnParts(`limit ${crypto.randomUUID()}`).filter(
      (part) => part.type !== 'error',
    );
    const chunks = await uiChunksOf(turnStreamToUIMessageStreamResponse(handBuiltStream(parts)));
    expect(chunks.filter((chunk) => chunk.type === 'error')).toHaveLength(1);
  });

  it('sends abort and no finish for an aborted turn', async () => {
    const { sessionId, turnId } = ids();
    const parts: TurnStreamPart[] = [
      { type: 'turn-start', sessionId, turnId },
      { type: 'step-start', iteration: 1 },
      { type: 'text-delta', iteration: 1, text: 'Start' },
      { type: 'error', error: { code: 'ABORTED', message: 'The operation was aborted' } },
    ];
    const chunks = await uiChunksOf(turnStreamToUIMessageStreamResponse(handBuiltStream(parts)));
    expect(chunks.map((chunk) => chunk.type)).toEqual([
      'start',
      'start-step',
      'text-start',
      'text-delta',
      'text-end',
      'finish-step',
      'abort',
    ]);
  });

  it('omits reasoning when sendReasoning is false', async () => {
    const { message } = await finalUIMessage(
      turnStreamToUIMessageStreamResponse(handBuiltStream(mathTurnParts()), {
        sendReasoning: false,
      }),
    );
    expect(message.parts.some((part) => part.type === 'reasoning')).toBe(false);
    expect(message.parts.some((part) => part.type === 'text')).toBe(true);
  });

  it('keeps the begun id of a tool call the runtime stored under a fresh id', async () => {
    const { sessionId, turnId, suffix } = ids();
    const parts: TurnStreamPart[] = [
      { type: 'turn-start', sessionId, turnId },
      { type: 'step-start', iteration: 1 },
      { type: 'tool-call-start', iteration: 1, toolCallId: 'call_1', toolName: 'add' },
      { type: 'tool-call-delta', iteration: 1, toolCallId: 'call_1', argumentsDelta: '{}' },
      {
        type: 'tool-call',
        iteration: 1,
        toolCallId: `fresh-${suffix}`,
        toolName: 'add',
        arguments: {},
      },
      { type: 'step-finish', iteration: 1, success: true },
      {
        type: 'tool-result',
        iteration: 1,
        toolCallId: `fresh-${suffix}`,
        toolName: 'add',
        result: '0',
        isError: false,
      },
      {
        type: 'turn-finish',
        result: {
          turnId,
          response: '',
          iterations: 1,
          toolCallsCount: 1,
          success: false,
          stopReason: 'max_iterations',
        },
      },
    ];
    const { message } = await finalUIMessage(
      turnStreamToUIMessageStreamResponse(handBuiltStream(parts)),
    );
    const tools = message.parts.filter((part) => part.type === 'tool-add');
    expect(tools).toEqual([
      expect.objectContaining({ toolCallId: 'call_1', state: 'output-available', output: '0' }),
    ]);
  });

  it('finishes with tool-calls for a turn that waits for client tool results', async () => {
    const { sessionId, turnId, suffix } = ids();
    const parts: TurnStreamPart[] = [
      { type: 'turn-start', sessionId, turnId },
      { type: 'step-start', iteration: 1 },
      {
        type: 'tool-call',
        iteration: 1,
        toolCallId: `client-${suffix}`,
        toolName: 'pick_color',
        arguments: { options: ['red', 'blue'] },
      },
      { type: 'step-finish', iteration: 1, success: true, stopReason: 'tool_calls' },
      {
        type: 'turn-finish',
        result: {
          turnId,
          response: '',
          iterations: 1,
          toolCallsCount: 1,
          success: true,
          stopReason: 'waiting_for_tool_results',
        },
      },
    ];
    const response = turnStreamToUIMessageStreamResponse(handBuiltStream(parts));
    const { message } = await finalUIMessage(response.clone());
    expect(message.parts).toContainEqual(
      expect.objectContaining({
        type: 'tool-pick_color',
        toolCallId: `client-${suffix}`,
        state: 'input-available',
        input: { options: ['red', 'blue'] },
      }),
    );
    expect((await uiChunksOf(response)).at(-1)).toEqual({
      type: 'finish',
      finishReason: 'tool-calls',
    });
  });

  it('sends an error chunk and finish when the iteration throws', async () => {
    const message = `broken ${crypto.randomUUID()}`;
    const chunks = await uiChunksOf(
      turnStreamToUIMessageStreamResponse(
        handBuiltStream(mathTurnParts().slice(0, 3), { throwAfter: new Error(message) }),
      ),
    );
    expect(chunks.slice(-4)).toEqual([
      { type: 'reasoning-end', id: expect.any(String) },
      { type: 'finish-step' },
      { type: 'error', errorText: message },
      { type: 'finish', finishReason: 'error' },
    ]);
  });

  it('releases the turn stream when the client cancels the body', async () => {
    const stream = handBuiltStream(mathTurnParts());
    const reader = turnStreamToUIMessageStreamResponse(
      stream,
    ).body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    await reader.read();
    await reader.cancel();
    expect(stream.released).toBe(true);
  });

  it('rejects invalid options with INVALID_INPUT', () => {
    expect(() =>
      turnStreamToUIMessageStreamResponse(handBuiltStream(mathTurnParts()), {
        messageId: '',
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() =>
      turnStreamToUIMessageStreamResponse(handBuiltStream(mathTurnParts()), {
        errorText: 'nope' as unknown as () => string,
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });
});

/** A runtime with the math tools and a simulated model that streams word by word. */
async function mathRuntime(config: LlmSimConfig) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .llmSim(config.withStreaming({ wordsPerChunk: 1, chunkSize: 4 }))
    .singleSession((session) =>
      session
        .harness(`math-${crypto.randomUUID()}`, 'You are a math assistant.')
        .withCapability('test_math')
        .agent('math-agent', 'Use tools.'),
    )
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

/** 2 + 3 through `add` (with reasoning), a division by zero through `divide`, then the answer. */
function mathConfig(): LlmSimConfig {
  return LlmSimConfig.sequence(['Let me add these numbers.', 'The sum is 5 and division fails.'])
    .withReasoningSequence(['The user wants a sum.', ''])
    .withToolCallSequence([
      [
        { id: 'call_add', name: 'add', arguments: { a: 2, b: 3 } },
        { id: 'call_divide', name: 'divide', arguments: { a: 1, b: 0 } },
      ],
      [],
    ]);
}

describe('the adapters over a real streamed turn (InProcessRuntime.streamTurn, driver-llmsim)', () => {
  it('gives the ai package the message the session stored: reasoning, text, tool input and output', async () => {
    const { runtime, sessionId } = await mathRuntime(mathConfig());
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 3, and 1 / 0?');
    const errors: unknown[] = [];
    const { message, snapshots } = await finalUIMessage(
      turnStreamToUIMessageStreamResponse(stream),
      errors,
    );
    const result = await stream.result;
    expect(result).toMatchObject({ success: true, response: 'The sum is 5 and division fails.' });
    expect(errors).toEqual([]);
    expect(message.id).toBe(result.turnId);
    // Word-by-word deltas: the message was seen many times while it grew.
    expect(snapshots).toBeGreaterThan(20);

    const stored = await runtime.messages(sessionId);
    const results = new Map(
      stored.flatMap((storedMessage) =>
        storedMessage.content.flatMap((part) =>
          part.type === 'tool_result' ? [[part.toolCallId, part.content] as const] : [],
        ),
      ),
    );
    expect(message.parts).toEqual([
      { type: 'step-start' },
      expect.objectContaining({ type: 'reasoning', text: 'The user wants a sum.', state: 'done' }),
      expect.objectContaining({ type: 'text', text: 'Let me add these numbers.', state: 'done' }),
      expect.objectContaining({
        type: 'tool-add',
        toolCallId: 'call_add',
        state: 'output-available',
        input: { a: 2, b: 3 },
        output: results.get('call_add'),
      }),
      expect.objectContaining({
        type: 'tool-divide',
        toolCallId: 'call_divide',
        state: 'output-error',
        input: { a: 1, b: 0 },
        errorText: results.get('call_divide'),
      }),
      { type: 'step-start' },
      expect.objectContaining({
        type: 'text',
        text: 'The sum is 5 and division fails.',
        state: 'done',
      }),
    ]);
    expect(JSON.parse(results.get('call_add') as string)).toMatchObject({ result: 5 });
    expect(results.get('call_divide')).toContain('Division by zero');
    await runtime.close();
  });

  it('sends the real turn as SSE events that parse back into schema-valid parts ending in its result', async () => {
    const { runtime, sessionId } = await mathRuntime(mathConfig());
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 3?');
    const events = parseSse(await turnStreamToSSEResponse(stream).text());
    const parts = events.map((event) => turnStreamPartSchema.parse(JSON.parse(event.data)));
    expect(events.map((event) => event.event)).toEqual(parts.map((part) => part.type));
    const result = await stream.result;
    expect(parts[0]).toEqual({ type: 'turn-start', sessionId, turnId: result.turnId });
    expect(parts.at(-1)).toEqual({ type: 'turn-finish', result });
    const text = parts
      .flatMap((part) => (part.type === 'text-delta' && part.iteration === 2 ? [part.text] : []))
      .join('');
    expect(text).toBe(result.response);
    expect(parts.filter((part) => part.type === 'tool-result')).toHaveLength(2);
    await runtime.close();
  });

  it('lets a reader cancel: the turn still ends and the session is not left active', async () => {
    const { runtime, sessionId } = await mathRuntime(mathConfig());
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 3?');
    const reader = turnStreamToReadableStream(stream).getReader();
    expect((await reader.read()).value?.type).toBe('turn-start');
    await reader.cancel();
    const result = await stream.result;
    expect(result.success).toBe(true);
    expect((await runtime.getSession(sessionId))?.status).not.toBe('active');
    // The session takes the next turn.
    const next = await runtime.runTextTurn(sessionId, 'Again?');
    expect(next.success).toBe(true);
    await runtime.close();
  });

  it('sends an error chunk for a turn whose model call fails', async () => {
    const message = `provider down ${crypto.randomUUID()}`;
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fromFunction(() => {
        throw new EverrunsError({ code: 'LLM_ERROR', message });
      }),
    );
    const stream = runtime.streamTextTurn(sessionId, 'Hello?');
    const chunks = await uiChunksOf(turnStreamToUIMessageStreamResponse(stream));
    const result = await stream.result;
    expect(result.success).toBe(false);
    expect(chunks.filter((chunk) => chunk.type === 'error')).toEqual([
      { type: 'error', errorText: expect.stringContaining(message) },
    ]);
    expect(chunks.at(-1)).toEqual({ type: 'finish', finishReason: 'error' });
    await runtime.close();
  });

  it('sends abort for a turn aborted through its signal', async () => {
    // The second model call waits until the turn is aborted, so the abort lands mid-turn.
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fromFunction((_request, info) =>
        info.index === 0
          ? { text: 'Let me add.', toolCalls: [{ name: 'add', arguments: { a: 2, b: 3 } }] }
          : new Promise<never>((_resolve, reject) => {
              info.signal?.addEventListener('abort', () => reject(info.signal?.reason), {
                once: true,
              });
            }),
      ),
    );
    const controller = new AbortController();
    const stream = runtime.streamTextTurn(sessionId, 'What is 2 + 3?', {
      signal: controller.signal,
    });
    const response = turnStreamToUIMessageStreamResponse(stream);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('"text-delta"')) {
      const next = await reader.read();
      if (next.done) break;
      text += decoder.decode(next.value, { stream: true });
    }
    controller.abort();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      text += decoder.decode(next.value, { stream: true });
    }
    await expect(stream.result).rejects.toMatchObject({ code: 'ABORTED' });
    expect(text).toContain('data: {"type":"abort"');
    expect(text).not.toContain('"type":"finish"');
    expect((await runtime.getSession(sessionId))?.status).not.toBe('active');
    await runtime.close();
  });
});

/** The chat `useChat` wraps (the ai package's `AbstractChat`), with a plain state instead of React's. */
class PlainChat extends AbstractChat<UIMessage> {
  constructor(handler: (request: Request) => Promise<Response>) {
    const state: ChatState<UIMessage> = {
      status: 'ready' as ChatStatus,
      error: undefined,
      messages: [],
      pushMessage: (message) => {
        state.messages = [...state.messages, message];
      },
      popMessage: () => {
        state.messages = state.messages.slice(0, -1);
      },
      replaceMessage: (index, message) => {
        state.messages = state.messages.map((old, position) =>
          position === index ? message : old,
        );
      },
      snapshot: (thing) => structuredClone(thing),
    };
    super({
      state,
      transport: new DefaultChatTransport({
        api: 'http://everruns.test/api/chat',
        fetch: async (input, init) => handler(new Request(input, init)),
      }),
    });
  }
}

describe('useChat against an everruns-ts route handler (the ai package’s own Chat and transport)', () => {
  /** The route handler an embedder writes: the newest user text becomes a streamed turn. */
  function chatRoute(runtime: InProcessRuntime, sessionId: string) {
    return async (request: Request): Promise<Response> => {
      const body = (await request.json()) as { messages: UIMessage[] };
      const last = body.messages.at(-1);
      const text = (last?.parts ?? [])
        .flatMap((part) => (part.type === 'text' ? [part.text] : []))
        .join('');
      return runtime
        .streamTextTurn(sessionId, text, { signal: request.signal })
        .toUIMessageStreamResponse();
    };
  }

  it('holds the conversation the session stores, tool calls and results included', async () => {
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.sequence(['', 'It is 5.', 'You are welcome.']).withToolCallSequence([
        [{ id: 'call_add', name: 'add', arguments: { a: 2, b: 3 } }],
        [],
        [],
      ]),
    );
    const chat = new PlainChat(chatRoute(runtime, sessionId));
    await chat.sendMessage({ text: 'What is 2 + 3?' });
    expect(chat.error).toBeUndefined();
    expect(chat.status).toBe('ready');
    await chat.sendMessage({ text: 'Thanks!' });
    expect(chat.status).toBe('ready');

    expect(chat.messages.map((message) => message.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    const [, first, , second] = chat.messages;
    expect(first?.parts).toContainEqual(
      expect.objectContaining({
        type: 'tool-add',
        toolCallId: 'call_add',
        state: 'output-available',
        input: { a: 2, b: 3 },
        output: expect.stringContaining('"result":5'),
      }),
    );
    expect(first?.parts.filter((part) => part.type === 'text').map((part) => part.text)).toEqual([
      'It is 5.',
    ]);
    expect(second?.parts.filter((part) => part.type === 'text').map((part) => part.text)).toEqual([
      'You are welcome.',
    ]);
    const stored = (await runtime.messages(sessionId)).filter((message) => message.role === 'user');
    expect(stored).toHaveLength(2);
    await runtime.close();
  });

  it('puts the chat in error status with the message of a failed turn', async () => {
    const message = `provider down ${crypto.randomUUID()}`;
    const { runtime, sessionId } = await mathRuntime(
      LlmSimConfig.fromFunction(() => {
        throw new EverrunsError({ code: 'LLM_ERROR', message });
      }),
    );
    const chat = new PlainChat(chatRoute(runtime, sessionId));
    await chat.sendMessage({ text: 'Hello?' });
    expect(chat.status).toBe('error');
    expect(chat.error?.message).toContain(message);
    expect((await runtime.getSession(sessionId))?.status).not.toBe('active');
    await runtime.close();
  });
});
