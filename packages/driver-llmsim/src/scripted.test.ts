import {
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type LlmStreamEvent,
  newId,
} from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { LlmSimConfig, LlmSimDriver, type LlmSimError, LlmSimTurn } from './index.js';

function request(model = LLMSIM_DEFAULT_MODEL.model): LlmRequest {
  const sessionId = newId('session');
  return {
    model: { ...LLMSIM_DEFAULT_MODEL, model },
    systemPrompt: 'You are a test agent.',
    messages: [
      {
        id: newId('msg'),
        sessionId,
        seq: 1,
        role: 'user',
        content: [{ type: 'text', text: 'create x then change it' }],
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

async function failure(promise: Promise<unknown>): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  if (!EverrunsError.isInstance(error)) throw new Error(`expected an EverrunsError, got ${error}`);
  return error;
}

async function texts(driver: LlmSimDriver, calls: number): Promise<string[]> {
  const answers: string[] = [];
  for (let index = 0; index < calls; index++) {
    answers.push((await driver.generate(request())).text);
  }
  return answers;
}

describe('LlmSimConfig.scripted', () => {
  it('replays tool call, mixed and text turns in order with upstream call ids', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([
        LlmSimTurn.toolCalls([{ name: 'bash', arguments: { command: 'echo hello > x' } }]),
        LlmSimTurn.mixed('Changing it.', [
          { name: 'bash', arguments: { command: 'sed -i s/hello/world/ x' } },
          { id: 'call_fixed', name: 'read_file', arguments: { path: 'x' } },
        ]),
        LlmSimTurn.assistant('done'),
      ])
        // The turns carry the calls; the config's own calls do not apply to a script.
        .withToolCalls([{ name: 'ignored' }])
        .withOnExhausted('error'),
    );

    const first = await driver.generate(request());
    expect(first).toMatchObject({ text: '', stopReason: 'tool_calls' });
    expect(first.toolCalls).toEqual([
      { id: 'call_llmsim_0_0', name: 'bash', arguments: { command: 'echo hello > x' } },
    ]);

    const second = await driver.generate(request());
    expect(second.text).toBe('Changing it.');
    expect(second.toolCalls.map((call) => [call.id, call.name])).toEqual([
      ['call_llmsim_1_0', 'bash'],
      ['call_fixed', 'read_file'],
    ]);

    const third = await driver.generate(request());
    expect(third).toMatchObject({ text: 'done', toolCalls: [], stopReason: 'end_turn' });

    const exhausted = await failure(driver.generate(request()));
    expect(exhausted.code).toBe('CONFIGURATION');
    expect(exhausted.message).toBe('llmsim scripted config exhausted');
    expect(driver.callCount).toBe(4);
  });

  it('repeats the last turn by default, loops or fails as withOnExhausted says', async () => {
    const turns = [LlmSimTurn.assistant('one'), LlmSimTurn.assistant('two')];
    const repeating = new LlmSimDriver(LlmSimConfig.scripted(turns));
    expect(repeating.config.onExhausted).toBe('repeat_last');
    expect(await texts(repeating, 4)).toEqual(['one', 'two', 'two', 'two']);

    const looping = new LlmSimDriver(LlmSimConfig.scripted(turns).withOnExhausted('loop'));
    expect(await texts(looping, 5)).toEqual(['one', 'two', 'one', 'two', 'one']);

    const failing = new LlmSimDriver(LlmSimConfig.scripted(turns).withOnExhausted('error'));
    expect(await texts(failing, 2)).toEqual(['one', 'two']);
    expect((await failure(failing.generate(request()))).code).toBe('CONFIGURATION');

    // reset() restarts the script.
    failing.reset();
    expect(await texts(failing, 1)).toEqual(['one']);
  });

  it('numbers generated call ids by answer, also when a looped turn comes round again', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([LlmSimTurn.toolCalls([{ name: 'a' }, { name: 'b' }])]).withOnExhausted(
        'loop',
      ),
    );
    const ids: string[] = [];
    for (let index = 0; index < 2; index++) {
      for (const call of (await driver.generate(request())).toolCalls) ids.push(call.id);
    }
    expect(ids).toEqual([
      'call_llmsim_0_0',
      'call_llmsim_0_1',
      'call_llmsim_1_0',
      'call_llmsim_1_1',
    ]);
  });

  it('fails every call of an empty script with CONFIGURATION', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.scripted([]));
    const error = await failure(driver.generate(request()));
    expect(error.code).toBe('CONFIGURATION');
    expect(error.message).toContain('at least one turn');
    expect((await failure(collect(driver.stream(request())))).code).toBe('CONFIGURATION');
  });

  it('streams a mixed turn as text deltas, then the tool call, then finish', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([
        LlmSimTurn.mixed('Let me check', [
          { id: 'call_search', name: 'search', arguments: { q: 'rust' } },
        ]),
      ]),
    );
    const events = await collect(driver.stream(request()));
    const text = events
      .filter((event) => event.type === 'text_delta')
      .map((event) => (event.type === 'text_delta' ? event.text : ''))
      .join('');
    expect(text).toBe('Let me check');
    expect(events).toContainEqual({
      type: 'tool_call_delta',
      index: 0,
      id: 'call_search',
      name: 'search',
      argumentsDelta: '',
    });
    const last = events.at(-1);
    expect(last?.type).toBe('finish');
    if (last?.type === 'finish') {
      expect(last.response.toolCalls).toEqual([
        { id: 'call_search', name: 'search', arguments: { q: 'rust' } },
      ]);
      expect(last.response.stopReason).toBe('tool_calls');
    }
  });

  it('simulates provider errors per turn, each using up its position', async () => {
    const cases: [LlmSimError, string, Record<string, unknown>, boolean][] = [
      [{ kind: 'rate_limit' }, 'LLM_ERROR', { kind: 'rate_limit', status: 429 }, true],
      [{ kind: 'timeout' }, 'LLM_ERROR', { kind: 'timeout' }, true],
      [{ kind: 'transport' }, 'LLM_ERROR', { kind: 'transport' }, true],
      [{ kind: 'overloaded' }, 'LLM_ERROR', { kind: 'overloaded' }, true],
      [{ kind: 'authentication' }, 'LLM_ERROR', { kind: 'authentication', status: 401 }, false],
      [{ kind: 'quota_exhausted' }, 'LLM_ERROR', { kind: 'insufficient_quota' }, false],
      [{ kind: 'unsupported_model', model: 'gpt-x' }, 'MODEL_NOT_FOUND', { model: 'gpt-x' }, false],
      [{ kind: 'invalid_response', message: 'bad json' }, 'LLM_ERROR', {}, false],
      [{ kind: 'other', message: 'boom' }, 'LLM_ERROR', { kind: 'other' }, false],
    ];
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([
        ...cases.map(([error]) => LlmSimTurn.error(error)),
        LlmSimTurn.assistant('recovered'),
      ]),
    );
    for (const [error, code, details, retryable] of cases) {
      const thrown = await failure(driver.generate(request()));
      expect(thrown.code, error.kind).toBe(code);
      expect(thrown.details, error.kind).toMatchObject(details);
      expect(thrown.retryable, error.kind).toBe(retryable);
    }
    expect((await driver.generate(request())).text).toBe('recovered');
    expect(driver.callCount).toBe(cases.length + 1);
  });

  it('names error kinds by string and keeps the message of other and invalid_response', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([
        LlmSimTurn.error('rate_limit'),
        LlmSimTurn.error({ kind: 'other', message: 'the provider said no' }),
      ]),
    );
    expect((await failure(driver.generate(request()))).details.kind).toBe('rate_limit');
    expect((await failure(collect(driver.stream(request())))).message).toBe('the provider said no');
  });

  it('stalls a stream_stall turn until the call is aborted, with no event', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.scripted([LlmSimTurn.streamStall(), LlmSimTurn.assistant('after')]),
    );
    const controller = new AbortController();
    const events: LlmStreamEvent[] = [];
    const streamed = (async () => {
      for await (const event of driver.stream(request(), { signal: controller.signal })) {
        events.push(event);
      }
    })();
    let settled = false;
    void streamed.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    // Let every pending job run: a stalled call is still open afterwards.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    controller.abort();
    expect((await failure(streamed)).code).toBe('ABORTED');
    expect(events).toEqual([]);
    expect((await driver.generate(request())).text).toBe('after');
  });

  it('refuses invalid turns and modes with INVALID_INPUT', () => {
    const bad = [
      () => LlmSimConfig.scripted([{ kind: 'speak', text: 'x' } as unknown as LlmSimTurn]),
      () => LlmSimConfig.scripted([{ kind: 'assistant' } as unknown as LlmSimTurn]),
      () =>
        LlmSimConfig.scripted([
          { kind: 'tool_calls', toolCalls: [{ arguments: {} }] } as unknown as LlmSimTurn,
        ]),
      () => LlmSimConfig.scripted('not a list' as unknown as LlmSimTurn[]),
      () => LlmSimConfig.fixed('x').withOnExhausted('forever' as 'loop'),
      () => LlmSimConfig.error(42 as unknown as string),
    ];
    for (const build of bad) {
      expect(build).toThrowError(expect.objectContaining({ code: 'INVALID_INPUT' }));
    }
  });
});

describe('LlmSimConfig.error and modelNotAvailable', () => {
  it('fails every call with LLM_ERROR and records the request', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.error('provider down'));
    for (let index = 0; index < 2; index++) {
      const error = await failure(driver.generate(request()));
      expect(error.code).toBe('LLM_ERROR');
      expect(error.message).toBe('LLM error: provider down');
    }
    expect((await failure(collect(driver.stream(request())))).message).toBe(
      'LLM error: provider down',
    );
    expect(driver.callCount).toBe(3);
  });

  it('fails with MODEL_NOT_FOUND naming the requested model', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.modelNotAvailable());
    const error = await failure(driver.generate(request('llmsim-missing')));
    expect(error.code).toBe('MODEL_NOT_FOUND');
    expect(error.message).toBe('Model not available: llmsim-missing');
    expect(error.details).toEqual({ model: 'llmsim-missing' });
  });
});

describe('withOnExhausted on sequence and chunked', () => {
  it('fails a used-up sequence with error, loops chunked answers with loop', async () => {
    const sequence = new LlmSimDriver(LlmSimConfig.sequence(['a']).withOnExhausted('error'));
    expect(sequence.config.onExhausted).toBe('error');
    expect(await texts(sequence, 1)).toEqual(['a']);
    expect((await failure(sequence.generate(request()))).code).toBe('CONFIGURATION');

    const chunked = new LlmSimDriver(LlmSimConfig.chunked([['x', 'y'], ['z']]));
    expect(await texts(chunked, 3)).toEqual(['xy', 'z', 'z']);
    const loopingChunks = new LlmSimDriver(
      LlmSimConfig.chunked([['x', 'y'], ['z']]).withOnExhausted('loop'),
    );
    expect(await texts(loopingChunks, 3)).toEqual(['xy', 'z', 'xy']);
    expect(LlmSimConfig.fixed('same').withOnExhausted('error').onExhausted).toBe('error');
    expect(
      await texts(new LlmSimDriver(LlmSimConfig.fixed('same').withOnExhausted('error')), 3),
    ).toEqual(['same', 'same', 'same']);
  });
});
