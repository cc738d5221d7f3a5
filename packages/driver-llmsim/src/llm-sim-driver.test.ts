import {
  DriverRegistry,
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type LlmStreamEvent,
  type Message,
  type MessageRole,
  newId,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { LLMSIM_DEFAULT_TEXT, LlmSimConfig, LlmSimDriver } from './index.js';

function message(sessionId: string, seq: number, role: MessageRole, text: string): Message {
  return {
    id: newId('msg'),
    sessionId,
    seq,
    role,
    content:
      role === 'tool_result'
        ? [{ type: 'tool_result', toolCallId: `call_${seq}`, content: text, isError: false }]
        : [{ type: 'text', text }],
    createdAt: new Date(0).toISOString(),
  };
}

function request(texts: readonly [MessageRole, string][] = [['user', 'hello']]): LlmRequest {
  const sessionId = newId('session');
  return {
    model: LLMSIM_DEFAULT_MODEL,
    systemPrompt: 'You are a test agent.',
    messages: texts.map(([role, text], index) => message(sessionId, index + 1, role, text)),
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

describe('LlmSimDriver text sources', () => {
  it('answers a fixed text with end_turn, llmsim_<n> ids and the requested model', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('Fixed answer'));
    const first = await driver.generate(request());
    const second = await driver.generate(request());
    expect(first).toMatchObject({
      text: 'Fixed answer',
      toolCalls: [],
      stopReason: 'end_turn',
      responseId: 'llmsim_1',
      model: LLMSIM_DEFAULT_MODEL.model,
    });
    expect(second.responseId).toBe('llmsim_2');
    expect(driver.providerType).toBe('llmsim');
  });

  it('uses a default text when built without a config', async () => {
    const response = await new LlmSimDriver().generate(request());
    expect(response.text).toBe(LLMSIM_DEFAULT_TEXT);
  });

  it('echoes the newest user message, skipping later agent and tool messages', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.echo());
    const response = await driver.generate(
      request([
        ['user', 'first question'],
        ['agent', 'an answer'],
        ['user', 'second question'],
        ['agent', 'calling a tool'],
        ['tool_result', '42'],
      ]),
    );
    expect(response.text).toBe('Echo: second question');
    expect((await driver.generate(request([]))).text).toBe('Echo: ');
  });

  it('produces the requested number of lorem words, the same on every call', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.lorem(25));
    const first = await driver.generate(request());
    const second = await driver.generate(request());
    expect(first.text.split(' ')).toHaveLength(25);
    expect(first.text.startsWith('Lorem ipsum')).toBe(true);
    expect(second.text).toBe(first.text);
    expect((await new LlmSimDriver(LlmSimConfig.lorem(0)).generate(request())).text).toBe('');
  });

  it('walks a sequence and starts over once used up, as upstream cycles', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.sequence(['one', 'two', 'three']));
    const texts: string[] = [];
    for (let index = 0; index < 5; index++) texts.push((await driver.generate(request())).text);
    expect(texts).toEqual(['one', 'two', 'three', 'one', 'two']);
    const repeating = new LlmSimDriver(
      LlmSimConfig.sequence(['one', 'two']).withOnExhausted('repeat_last'),
    );
    const repeated: string[] = [];
    for (let index = 0; index < 4; index++) {
      repeated.push((await repeating.generate(request())).text);
    }
    expect(repeated).toEqual(['one', 'two', 'two', 'two']);
    expect((await new LlmSimDriver(LlmSimConfig.sequence([])).generate(request())).text).toBe('');
  });

  it('takes answers from a function, filling in what a partial result leaves out', async () => {
    const seen: number[] = [];
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction((incoming, info) => {
        seen.push(info.index);
        if (info.index === 0) return `iteration ${incoming.iteration}`;
        if (info.index === 1) return { toolCalls: [{ name: 'add', arguments: { a: 1, b: 2 } }] };
        return {
          text: 'whole',
          toolCalls: [],
          usage: { inputTokens: 7, outputTokens: 3 },
          responseId: 'custom',
          stopReason: 'max_tokens',
          model: 'other-model',
        };
      }),
    );
    const first = await driver.generate(request());
    const second = await driver.generate(request());
    const third = await driver.generate(request());
    expect(seen).toEqual([0, 1, 2]);
    expect(first).toMatchObject({ text: 'iteration 1', stopReason: 'end_turn' });
    expect(second).toMatchObject({
      text: '',
      toolCalls: [{ id: 'call_1', name: 'add', arguments: { a: 1, b: 2 } }],
      stopReason: 'tool_calls',
      responseId: 'llmsim_2',
    });
    expect(third).toEqual({
      text: 'whole',
      toolCalls: [],
      usage: { inputTokens: 7, outputTokens: 3 },
      responseId: 'custom',
      stopReason: 'max_tokens',
      model: 'other-model',
    });
  });

  it('reports a failing function as LLM_ERROR and passes EverrunsErrors through', async () => {
    const plain = new LlmSimDriver(
      LlmSimConfig.fromFunction(() => {
        throw new Error('provider exploded');
      }),
    );
    const error = await plain.generate(request()).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'LLM_ERROR')).toBe(true);
    expect((error as EverrunsError).message).toContain('provider exploded');

    const typed = new LlmSimDriver(
      LlmSimConfig.fromFunction(async () => {
        throw new EverrunsError({ code: 'CONFIGURATION', message: 'no model' });
      }),
    );
    await expect(typed.generate(request())).rejects.toMatchObject({ code: 'CONFIGURATION' });
  });
});

describe('LlmSimDriver tool calls', () => {
  it('returns the same tool calls on every call, assigning call_<n> ids where missing', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('Using tools').withToolCalls([
        { name: 'add', arguments: { a: 2, b: 3 } },
        { id: 'given', name: 'multiply', arguments: { a: 4, b: 5 } },
        { name: 'noop' },
      ]),
    );
    const first = await driver.generate(request());
    const second = await driver.generate(request());
    expect(first.stopReason).toBe('tool_calls');
    expect(first.toolCalls).toEqual([
      { id: 'call_1', name: 'add', arguments: { a: 2, b: 3 } },
      { id: 'given', name: 'multiply', arguments: { a: 4, b: 5 } },
      { id: 'call_2', name: 'noop', arguments: {} },
    ]);
    expect(second.toolCalls.map((call) => call.id)).toEqual(['call_3', 'given', 'call_4']);
  });

  it('passes string arguments through untouched so tests can script malformed calls', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('').withToolCalls([{ name: 'add', arguments: '{"a": 1,' }]),
    );
    const response = await driver.generate(request());
    expect(response.toolCalls[0]?.arguments).toBe('{"a": 1,');
  });

  it('gives call N the N-th set of a tool call sequence, then none', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['first', 'second', 'third', 'done']).withToolCallSequence([
        [{ name: 'add', arguments: { a: 1, b: 1 } }],
        [],
        [
          { name: 'subtract', arguments: { a: 3, b: 1 } },
          { name: 'divide', arguments: { a: 4, b: 2 } },
        ],
      ]),
    );
    const responses = [];
    for (let index = 0; index < 4; index++) responses.push(await driver.generate(request()));
    expect(responses.map((response) => response.toolCalls.map((call) => call.name))).toEqual([
      ['add'],
      [],
      ['subtract', 'divide'],
      [],
    ]);
    expect(responses.map((response) => response.stopReason)).toEqual([
      'tool_calls',
      'end_turn',
      'tool_calls',
      'end_turn',
    ]);
    expect(responses[2]?.toolCalls.map((call) => call.id)).toEqual(['call_2', 'call_3']);
  });

  it('lets a function result override the configured tool calls', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction((_incoming, info) =>
        info.index === 0 ? 'configured' : { text: 'none', toolCalls: [] },
      ).withToolCalls([{ id: 'fixed', name: 'add', arguments: { a: 1, b: 1 } }]),
    );
    expect((await driver.generate(request())).toolCalls.map((call) => call.id)).toEqual(['fixed']);
    expect((await driver.generate(request())).toolCalls).toEqual([]);
  });
});

describe('LlmSimDriver recording and settings', () => {
  it('records every request by reference, counts calls and forgets them on reset', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.sequence(['a', 'b']));
    const first = request([['user', 'one']]);
    const second = request([['user', 'two']]);
    await driver.generate(first);
    await collect(driver.stream(second));
    expect(driver.callCount).toBe(2);
    expect(driver.requests).toHaveLength(2);
    expect(driver.requests[0]).toBe(first);
    expect(driver.requests[1]).toBe(second);
    expect(driver.requests[0]?.messages).toBe(first.messages);

    driver.reset();
    expect(driver.callCount).toBe(0);
    expect(driver.requests).toEqual([]);
    const again = await driver.generate(request());
    expect(again).toMatchObject({ text: 'a', responseId: 'llmsim_1' });
  });

  it('restarts generated tool call ids on reset', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('').withToolCalls([{ name: 'add' }]));
    await driver.generate(request());
    driver.reset();
    expect((await driver.generate(request())).toolCalls[0]?.id).toBe('call_1');
  });

  it('applies model, response id and usage overrides', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('x')
        .withModel('sim-large')
        .withResponseId('resp_fixed')
        .withUsage({ inputTokens: 100, outputTokens: 10 }),
    );
    expect(await driver.generate(request())).toMatchObject({
      model: 'sim-large',
      responseId: 'resp_fixed',
      usage: { inputTokens: 100, outputTokens: 10 },
    });
  });

  it('estimates usage from the system prompt and the newest message only', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('12345678'));
    const short = request([['user', 'abcd']]);
    const long = request([
      ['user', 'x'.repeat(4000)],
      ['agent', 'y'.repeat(4000)],
      ['user', 'abcd'],
    ]);
    const shortUsage = (await driver.generate(short)).usage;
    const longUsage = (await driver.generate(long)).usage;
    // 'You are a test agent.' is 21 characters, plus 4: ceil(25 / 4).
    expect(shortUsage).toEqual({ inputTokens: 7, outputTokens: 2 });
    expect(longUsage).toEqual(shortUsage);
  });

  it('leaves the original config untouched when chaining', async () => {
    const base = LlmSimConfig.fixed('base');
    const derived = base.withToolCalls([{ name: 'add' }]).withModel('m');
    expect(base.toolCalls).toEqual({ kind: 'none' });
    expect(base.model).toBeUndefined();
    expect(derived.model).toBe('m');
    expect(Object.isFrozen(base)).toBe(true);
    expect((await new LlmSimDriver(base).generate(request())).toolCalls).toEqual([]);
  });

  it('rejects invalid builder arguments with TypeError', () => {
    expect(() => LlmSimConfig.lorem(-1)).toThrow(TypeError);
    expect(() => LlmSimConfig.fixed('x').withLatency(-5)).toThrow(TypeError);
    expect(() => LlmSimConfig.sequence([1 as unknown as string])).toThrow(TypeError);
  });

  it('registers in a DriverRegistry under llmsim', () => {
    const driver = new LlmSimDriver();
    expect(new DriverRegistry().register(driver).get('llmsim')).toBe(driver);
  });
});

describe('LlmSimDriver cancellation', () => {
  it('rejects with ABORTED when the signal fires during the latency wait', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('late').withLatency(60_000));
    const controller = new AbortController();
    const pending = driver.generate(request(), { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    expect(driver.callCount).toBe(1);
  });

  it('rejects at once when the signal has already fired', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('never'));
    const error = await driver
      .generate(request(), { signal: AbortSignal.abort() })
      .catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
  });

  it('does not use up a sequence position for a cancelled call', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.sequence(['first', 'second']).withLatency(1));
    await expect(driver.generate(request(), { signal: AbortSignal.abort() })).rejects.toMatchObject(
      { code: 'ABORTED' },
    );
    expect((await driver.generate(request())).text).toBe('first');
  });

  it('aborts a stream waiting for its first token', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('late').withLatency(60_000));
    const controller = new AbortController();
    const pending = collect(driver.stream(request(), { signal: controller.signal }));
    setTimeout(() => controller.abort(), 0);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('LlmSimDriver streaming', () => {
  it('streams text deltas and tool call deltas, then finish with the whole response', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('Let me  add that.').withToolCalls([
        { name: 'add', arguments: { a: 1, b: 2 } },
        { name: 'broken', arguments: 'not json' },
      ]),
    );
    const events = await collect(driver.stream(request()));
    const deltas = events.filter((event) => event.type === 'text_delta');
    expect(deltas.map((event) => event.text).join('')).toBe('Let me  add that.');
    expect(deltas.length).toBeGreaterThan(1);
    expect(events.filter((event) => event.type === 'tool_call_delta')).toEqual([
      { type: 'tool_call_delta', index: 0, id: 'call_1', name: 'add', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 0, argumentsDelta: '{"a":1,"b":2}' },
      { type: 'tool_call_delta', index: 1, id: 'call_2', name: 'broken', argumentsDelta: '' },
      { type: 'tool_call_delta', index: 1, argumentsDelta: 'not json' },
    ]);
    const last = events.at(-1);
    expect(last?.type).toBe('finish');
    if (last?.type === 'finish') {
      expect(last.response).toMatchObject({
        text: 'Let me  add that.',
        stopReason: 'tool_calls',
        responseId: 'llmsim_1',
      });
      expect(last.response.toolCalls.map((call) => call.id)).toEqual(['call_1', 'call_2']);
    }
  });

  it('streams only finish for an empty answer', async () => {
    const events = await collect(new LlmSimDriver(LlmSimConfig.fixed('')).stream(request()));
    expect(events.map((event) => event.type)).toEqual(['finish']);
  });
});
