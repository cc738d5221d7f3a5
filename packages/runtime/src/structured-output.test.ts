import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequestOptions,
  type Message,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { executeTurnStep, StructuredOutput } from './host-entry.js';
import {
  type InProcessRuntime,
  InProcessRuntimeBuilder,
  OUTPUT_FEEDBACK_METADATA_KEY,
  TURN_OUTPUT_FORMAT_NAME,
} from './index.js';
import { expectCode } from './test-support.js';

const City = z.object({
  city: z.string(),
  population: z.number().int().positive(),
});

const PARIS = { city: 'Paris', population: 2102650 };

async function buildRuntime(
  driver: LlmSimDriver,
  modelOptions?: LlmRequestOptions,
): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel({ ...LLMSIM_DEFAULT_MODEL, ...(modelOptions ? { options: modelOptions } : {}) })
    .singleSession((session) =>
      session.harness(`h_${crypto.randomUUID()}`, 'Answer briefly.').withCapability('test_math'),
    )
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

/** The history without ids and timestamps, to compare two runs. */
function shape(messages: Message[]): unknown[] {
  return messages.map(({ role, content, idempotencyKey, turnId, metadata }) => ({
    role,
    content,
    idempotencyKey: idempotencyKey?.replace(turnId ?? '', '<turn>'),
    metadata: metadata && { ...metadata, usage: undefined },
  }));
}

describe('structured output (runTurn output option)', () => {
  it('returns the valid JSON answer parsed and typed as result.output, and sends the JSON schema as responseFormat', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed(JSON.stringify(PARIS)));
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'Biggest city of France?', {
      output: City,
    });
    expect(result.success).toBe(true);
    expect(result.stopReason).toBe('end_turn');
    expect(result.output).toEqual(PARIS);
    expect(result.response).toBe(JSON.stringify(PARIS));
    expectTypeOf(result.output).toEqualTypeOf<{ city: string; population: number } | undefined>();
    expect(driver.requests).toHaveLength(1);
    expect(driver.requests[0]?.options?.responseFormat).toEqual({
      type: 'json_schema',
      name: TURN_OUTPUT_FORMAT_NAME,
      schema: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          population: { type: 'integer', exclusiveMinimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        },
        required: ['city', 'population'],
      },
    });
    // Only the model answer and the input were stored: no feedback.
    expect((await runtime.messages(sessionId)).map((message) => message.role)).toEqual([
      'user',
      'agent',
    ]);
  });

  it('merges the output format over the turn and model options, and a turn without output has none', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed(JSON.stringify(PARIS)));
    const { runtime, sessionId } = await buildRuntime(driver, { temperature: 0.1 });
    await runtime.runTurn(
      sessionId,
      { role: 'user', content: [{ type: 'text', text: 'city?' }] },
      { output: City, modelOptions: { seed: 3 } },
    );
    await runtime.runTextTurn(sessionId, 'and now in words?');
    expect(driver.requests[0]?.options).toMatchObject({
      temperature: 0.1,
      seed: 3,
      responseFormat: { type: 'json_schema', name: 'output' },
    });
    expect(driver.requests[1]?.options).toEqual({ temperature: 0.1 });
  });

  it('accepts a fenced JSON answer and a JSON answer for a non-object schema, asked for wrapped as { value }', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence([
        `\`\`\`json\n${JSON.stringify(PARIS)}\n\`\`\``,
        JSON.stringify({ value: ['Paris', 'Lyon'] }),
      ]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const fenced = await runtime.runTextTurn(sessionId, 'city?', { output: City });
    expect(fenced.output).toEqual(PARIS);
    const list = await runtime.runTextTurn(sessionId, 'two cities?', {
      output: z.array(z.string()).min(2),
    });
    expect(list.success).toBe(true);
    expect(list.output).toEqual(['Paris', 'Lyon']);
    expectTypeOf(list.output).toEqualTypeOf<string[] | undefined>();
    expect(driver.requests[1]?.options?.responseFormat?.schema).toEqual({
      type: 'object',
      properties: { value: { type: 'array', items: { type: 'string' }, minItems: 2 } },
      required: ['value'],
      additionalProperties: false,
    });
  });

  it('feeds an invalid answer back once within the turn and returns the valid second answer', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['Paris, about two million people.', JSON.stringify(PARIS)]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'Biggest city of France?', {
      output: City,
    });
    expect(result.success).toBe(true);
    expect(result.output).toEqual(PARIS);
    expect(result.iterations).toBe(2);
    const messages = await runtime.messages(sessionId);
    expect(messages.map((message) => message.role)).toEqual(['user', 'agent', 'user', 'agent']);
    const feedback = messages[2] as Message;
    expect(feedback.idempotencyKey).toBe(`${result.turnId}/output-feedback/1`);
    expect(feedback.turnId).toBe(result.turnId);
    expect(feedback.metadata).toEqual({ [OUTPUT_FEEDBACK_METADATA_KEY]: { iteration: 1 } });
    expect(feedback.content[0]).toMatchObject({
      type: 'text',
      text: expect.stringMatching(/not valid JSON[\s\S]*Answer again with only a JSON value/),
    });
    // The model saw its failed answer and the feedback, with the same responseFormat.
    expect(driver.requests[1]?.messages.map((message) => message.role)).toEqual([
      'user',
      'agent',
      'user',
    ]);
    expect(driver.requests[1]?.options?.responseFormat?.name).toBe('output');
    const inputEvents = runtime.events(sessionId).filter((event) => event.type === 'input.message');
    expect(inputEvents.map((event) => event.data.outputFeedback)).toEqual([undefined, true]);
    expect(runtime.events(sessionId).at(-2)?.type).toBe('turn.completed');
  });

  it('feeds back an answer nested 100,000 levels deep without parsing it, for any schema', async () => {
    const deep = `{"value":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const driver = new LlmSimDriver(LlmSimConfig.sequence([deep, JSON.stringify({ value: 1 })]));
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'Any value?', { output: z.unknown() });
    expect(result.success).toBe(true);
    expect(result.output).toBe(1);
    const feedback = (await runtime.messages(sessionId))[2] as Message;
    expect(feedback.content[0]).toMatchObject({
      type: 'text',
      text: expect.stringContaining('more than 100 levels deep'),
    });
  });

  it('fails the turn with OUTPUT_INVALID, the zod issues and the raw answer when the second answer fails too', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence([
        JSON.stringify({ city: 'Paris' }),
        JSON.stringify({ city: 'Paris', population: -1 }),
        JSON.stringify(PARIS),
      ]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'Biggest city of France?', {
      output: City,
    });
    expect(result.success).toBe(false);
    expect(result.stopReason).toBe('error');
    expect(result.output).toBeUndefined();
    expect(result.response).toBe(JSON.stringify({ city: 'Paris', population: -1 }));
    expect(result.error?.code).toBe('OUTPUT_INVALID');
    expect(result.error?.details?.feedbackGiven).toBe(true);
    expect(result.error?.details?.issues).toEqual([
      expect.objectContaining({ code: 'too_small', path: ['population'] }),
    ]);
    // Fed back once only: two model calls, one feedback message.
    expect(driver.requests).toHaveLength(2);
    const messages = await runtime.messages(sessionId);
    expect(messages.map((message) => message.role)).toEqual(['user', 'agent', 'user', 'agent']);
    expect(messages[2]?.content[0]).toMatchObject({
      text: expect.stringContaining('population'),
    });
    const types = runtime.events(sessionId).map((event) => event.type);
    expect(types.slice(-2)).toEqual(['turn.failed', 'session.idled']);
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
  });

  it('fails with OUTPUT_INVALID at once when the turn has no iteration left for the feedback', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('not json'));
    const runtime = await new InProcessRuntimeBuilder()
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session.harness(`h_${crypto.randomUUID()}`, 'Answer.').maxIterations(1),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const result = await runtime.runTextTurn(sessionId, 'city?', { output: City });
    expect(result.error?.code).toBe('OUTPUT_INVALID');
    expect(result.error?.details?.feedbackGiven).toBe(false);
    expect(driver.requests).toHaveLength(1);
    expect(await runtime.messages(sessionId)).toHaveLength(2);
  });

  it('lets the model call tools first and checks only the final answer, every call carrying responseFormat', async () => {
    const Sum = z.object({ sum: z.number() });
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', JSON.stringify({ sum: 5 })]).withToolCallSequence([
        [{ name: 'add', arguments: { a: 2, b: 3 } }],
        [],
      ]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'What is 2 + 3?', { output: Sum });
    expect(result.success).toBe(true);
    expect(result.toolCallsCount).toBe(1);
    expect(result.output).toEqual({ sum: 5 });
    expectTypeOf(result.output).toEqualTypeOf<{ sum: number } | undefined>();
    expect(driver.requests).toHaveLength(2);
    for (const request of driver.requests) {
      expect(request.options?.responseFormat?.schema).toMatchObject({ required: ['sum'] });
      expect(request.tools.map((tool) => tool.name)).toContain('add');
    }
    expect((await runtime.messages(sessionId)).map((message) => message.role)).toEqual([
      'user',
      'agent',
      'tool_result',
      'agent',
    ]);
  });

  it('refuses an output that is not a zod schema, has no JSON schema, or comes with a responseFormat, storing nothing', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('{}'));
    const { runtime, sessionId } = await buildRuntime(driver);
    const bad: unknown[] = [
      { output: { type: 'object' } },
      { output: 'City' },
      { output: z.date() },
      {
        output: City,
        modelOptions: {
          responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object' } },
        },
      },
    ];
    for (const options of bad) {
      const error = await expectCode(
        runtime.runTextTurn(sessionId, 'city?', options as { output: typeof City }),
        'INVALID_INPUT',
      );
      expect(error.message).toMatch(/output/);
    }
    expect(driver.requests).toHaveLength(0);
    expect(await runtime.messages(sessionId)).toEqual([]);
    expect(runtime.events(sessionId)).toEqual([]);
  });

  it('a replayed host step plans the same and stores nothing twice (history identical)', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.sequence(['nope', JSON.stringify(PARIS)]));
    const { runtime, sessionId } = await buildRuntime(driver);
    const result = await runtime.runTextTurn(sessionId, 'city?', { output: City });
    expect(result.output).toEqual(PARIS);
    const before = await runtime.messages(sessionId);
    const eventsBefore = runtime.events(sessionId).length;
    // A durable host replays the turn's reason steps: answers come from the store, the review
    // of each plan is the same, and nothing new is written.
    const structured = StructuredOutput.of(City) as StructuredOutput;
    const state = {
      sessionId,
      turnId: result.turnId,
      iteration: 1,
      maxIterations: 50,
      maxRepeatedToolCalls: 5,
      toolCallsCount: 0,
      repeatedCallCount: 0,
      lastResponseText: '',
      usage: { inputTokens: 0, outputTokens: 0 },
      modelOptions: { responseFormat: structured.responseFormat },
    };
    const first = await executeTurnStep(runtime.hostAdapter, { activity: 'reason', state });
    expect(first.plan.kind).toBe('complete');
    const replanned = await structured.review(
      first.plan as Extract<typeof first.plan, { kind: 'complete' }>,
      runtime.hostAdapter,
    );
    expect(replanned).toMatchObject({ kind: 'scheduleReason', state: { iteration: 2 } });
    const second = await executeTurnStep(runtime.hostAdapter, {
      activity: 'reason',
      state: { ...state, iteration: 2 },
    });
    expect(second.output).toMatchObject({ replayed: true, text: JSON.stringify(PARIS) });
    expect(
      await structured.review(
        second.plan as Extract<typeof second.plan, { kind: 'complete' }>,
        runtime.hostAdapter,
      ),
    ).toBeUndefined();
    expect(driver.requests).toHaveLength(2);
    expect(await runtime.messages(sessionId)).toEqual(before);
    expect(runtime.events(sessionId)).toHaveLength(eventsBefore);
    // A second turn from a fresh runtime with the same script stores the same shape of history.
    const again = await buildRuntime(
      new LlmSimDriver(LlmSimConfig.sequence(['nope', JSON.stringify(PARIS)])),
    );
    await again.runtime.runTextTurn(again.sessionId, 'city?', { output: City });
    expect(shape(await again.runtime.messages(again.sessionId))).toEqual(shape(before));
  });

  it('validates a resumed turn with the schema given again to submitToolResults', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', JSON.stringify(PARIS)]).withToolCallSequence([
        [{ id: 'call_ask', name: 'ask_user', arguments: { question: 'which country?' } }],
        [],
      ]),
    );
    const { defineCapability, defineTool } = await import('@everruns-ts/core');
    const clientTools = defineCapability({
      id: 'client_tools',
      name: 'Client tools',
      description: 'tools the client runs',
      tools: [
        defineTool({
          name: 'ask_user',
          description: 'asks the user',
          inputSchema: z.object({ question: z.string() }),
          clientSide: true,
          execute: () => {
            throw new Error('client side');
          },
        }),
      ],
    });
    const runtime = await new InProcessRuntimeBuilder()
      .capability(clientTools)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session.harness(`h_${crypto.randomUUID()}`, 'Ask.').withCapability('client_tools'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    const waiting = await runtime.runTextTurn(sessionId, 'city?', { output: City });
    expect(waiting.stopReason).toBe('waiting_for_tool_results');
    expect(waiting.output).toBeUndefined();
    const done = await runtime.submitToolResults(
      sessionId,
      waiting.turnId,
      [{ toolCallId: 'call_ask', content: 'France' }],
      { output: City },
    );
    expect(done.output).toEqual(PARIS);
    expectTypeOf(done.output).toEqualTypeOf<{ city: string; population: number } | undefined>();
    // The resumed model call kept the turn's responseFormat.
    expect(driver.requests[1]?.options?.responseFormat?.name).toBe('output');
  });
});

describe('structured output of a streamed turn', () => {
  it('streams the answers, fed-back one included, and ends with the typed output in turn-finish and result', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.chunked([
        ['Paris, ', 'roughly.'],
        ['{"city":"Paris",', '"population":2102650}'],
      ]),
    );
    const { runtime, sessionId } = await buildRuntime(driver);
    const stream = runtime.streamTextTurn(sessionId, 'Biggest city of France?', { output: City });
    const parts = [];
    for await (const part of stream) parts.push(part);
    const result = await stream.result;
    expect(result.output).toEqual(PARIS);
    expectTypeOf(result.output).toEqualTypeOf<{ city: string; population: number } | undefined>();
    expect(parts.flatMap((part) => (part.type === 'text-delta' ? [part] : []))).toEqual([
      { type: 'text-delta', iteration: 1, text: 'Paris, ' },
      { type: 'text-delta', iteration: 1, text: 'roughly.' },
      { type: 'text-delta', iteration: 2, text: '{"city":"Paris",' },
      { type: 'text-delta', iteration: 2, text: '"population":2102650}' },
    ]);
    const finish = parts.at(-1);
    expect(finish).toMatchObject({ type: 'turn-finish', result: { success: true, output: PARIS } });
    expect(driver.requests.map((request) => request.options?.responseFormat?.name)).toEqual([
      'output',
      'output',
    ]);
    // Stored as a turn run without streaming stores it.
    expect((await runtime.messages(sessionId)).map((message) => message.role)).toEqual([
      'user',
      'agent',
      'user',
      'agent',
    ]);
  });
});

describe('named toolChoice checked before a turn writes anything', () => {
  it('refuses a toolChoice naming a tool the session does not offer, with any driver, storing nothing', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const { runtime, sessionId } = await buildRuntime(driver);
    const error = await expectCode(
      runtime.runTextTurn(sessionId, 'square root', {
        modelOptions: { toolChoice: { type: 'tool', name: 'square_root' } },
      }),
      'INVALID_INPUT',
    );
    expect(error.details).toEqual({ option: 'toolChoice', tool: 'square_root' });
    expect(await runtime.messages(sessionId)).toEqual([]);
    expect(runtime.events(sessionId)).toEqual([]);
    expect(driver.requests).toHaveLength(0);
    const ok = await runtime.runTextTurn(sessionId, 'add', {
      modelOptions: { toolChoice: { type: 'tool', name: 'add' } },
    });
    expect(ok.success).toBe(true);
    expect(EverrunsError.isInstance(error)).toBe(true);
  });
});
