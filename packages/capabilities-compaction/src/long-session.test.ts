import { randomBytes } from 'node:crypto';
import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  type AtomDependencies,
  COMPACTION_STORAGE_KEY,
  DEFAULT_TURN_LIMITS,
  defineCapability,
  type LlmRequest,
  type Message,
  type ModelWithProvider,
  parseCompactionRecord,
  type RuntimeBackends,
  reason,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import {
  DATABASE_URL,
  dropSchemas,
  randomSchemaName,
  storedEvents,
} from '@everruns-ts/runtime-suites';
import { InMemorySessionFileSystemFactory, inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPACTION_CAPABILITY_ID, type CompactionConfig, compactionCapability } from './index.js';
import { TokenCounter } from './token-count.js';

// A long session through the compaction capability on the in-memory stores and on PostgreSQL:
// 300 turns, tool calls in two turns of three, a 2,000-token window. Every request the driver
// got must fit the window (counted with the capability's own tokenizer: the model is named as
// an OpenAI model, so gpt-tokenizer's o200k_base counts it) and pair every tool call with its
// result; the store keeps every message.

const WINDOW = 2_000;
const TURNS = 300;
const MODEL: ModelWithProvider = {
  model: 'gpt-4o-mini',
  providerType: 'llmsim',
  apiKey: 'fake-key',
  contextWindow: WINDOW,
};
const FILLER =
  'The ledger for this step lists receipts, transfers and balances across the quarterly accounts.';

const schemas: string[] = [];
const secretKey = { id: 'k', key: randomBytes(32) };

afterAll(async () => {
  await dropSchemas(...schemas);
});

async function openPostgres(): Promise<PostgresBackends> {
  const schema = randomSchemaName('compaction');
  schemas.push(schema);
  const backends = postgresBackends(
    // Commits need not wait for the disk here: what is tested is what the statements store.
    {
      connectionString: DATABASE_URL,
      poolConfig: { max: 4, options: '-c synchronous_commit=off' },
    },
    { schema, secretKey },
  );
  await backends.migrate();
  return backends;
}

const backendsByName: Record<string, () => Promise<RuntimeBackends>> = {
  // Every event kept: a 300-turn session emits more than the log's default bound, and the test
  // reads each compaction point back.
  memory: async () =>
    inMemoryBackends({ events: { maxEventsPerSession: Number.POSITIVE_INFINITY } }),
  postgres: openPostgres,
};

function isSummaryRequest(request: LlmRequest): boolean {
  return request.tools.length === 0;
}

/**
 * The simulated model: a summary call (no tools) answers with a long summary naming the last
 * seqs it saw; a main call answers a user message with one or two `add` calls in two turns of
 * three, and a tool result with a text answer.
 */
function simulatedModel(options: { failMainCallAfterSummary?: number } = {}) {
  let summaries = 0;
  let failed = false;
  let lastWasSummary = false;
  return LlmSimConfig.fromFunction((request) => {
    if (isSummaryRequest(request)) {
      summaries++;
      lastWasSummary = true;
      const text = request.messages.map((message) => messageTextOf(message)).join(' ');
      const seqs = [...text.matchAll(/\[(\d+)\]/g)].map((match) => match[1]);
      return `Summary ${summaries}: turns up to message ${seqs.at(-1)} added numbers; ${FILLER.repeat(30)}`;
    }
    if (
      lastWasSummary &&
      !failed &&
      options.failMainCallAfterSummary !== undefined &&
      summaries >= options.failMainCallAfterSummary
    ) {
      failed = true;
      lastWasSummary = false;
      throw new Error('simulated crash after the compaction record was written');
    }
    lastWasSummary = false;
    const last = request.messages.at(-1) as Message;
    if (last.role === 'user') {
      const turn = Number(/Turn (\d+)/.exec(messageTextOf(last))?.[1] ?? 0);
      if (turn % 3 === 0) return `Turn ${turn} needs no tool. ${FILLER}`;
      const calls = [{ name: 'add', arguments: { a: turn, b: 1 } }];
      if (turn % 3 === 2) calls.push({ name: 'add', arguments: { a: turn, b: 2 } });
      return { toolCalls: calls };
    }
    return `The sums are done. ${FILLER}`;
  });
}

function messageTextOf(message: Message): string {
  return message.content
    .map((part) =>
      part.type === 'text' ? part.text : part.type === 'tool_result' ? part.content : '',
    )
    .join(' ');
}

/** Every tool call is directly followed by its results; every result answers a call before it. */
function expectPairedToolCalls(messages: readonly Message[]): void {
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index] as Message;
    const calls = message.content.filter((part) => part.type === 'tool_call');
    for (const [offset, call] of calls.entries()) {
      const result = messages[index + 1 + offset];
      const part = result?.content.find((item) => item.type === 'tool_result');
      expect(part?.type === 'tool_result' ? part.toolCallId : undefined).toBe(call.id);
    }
    if (message.role === 'tool_result') {
      const part = message.content[0];
      const callId = part?.type === 'tool_result' ? part.toolCallId : '';
      const before = messages
        .slice(0, index)
        .some((earlier) =>
          earlier.content.some((item) => item.type === 'tool_call' && item.id === callId),
        );
      expect(before).toBe(true);
    }
  }
}

describe.each(Object.keys(backendsByName))('compaction on %s', (backendName) => {
  async function build(
    sim: LlmSimConfig,
    config: CompactionConfig = {},
  ): Promise<{ runtime: InProcessRuntime; sessionId: string; driver: LlmSimDriver }> {
    const driver = new LlmSimDriver(sim);
    const runtime = await new InProcessRuntimeBuilder()
      .backends(await backendsByName[backendName]!())
      .capability(testMathCapability)
      .capability(compactionCapability)
      .driver(driver)
      .defaultModel(MODEL)
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'You add numbers for the user.')
          .withCapability('test_math')
          .withCapability(COMPACTION_CAPABILITY_ID, config),
      )
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string, driver };
  }

  it(`${TURNS} turns with tool calls stay inside a ${WINDOW}-token window; nothing stored is lost`, async () => {
    const { runtime, sessionId, driver } = await build(simulatedModel());
    const counter = await TokenCounter.forModel(MODEL.model);
    expect(counter.tokenizer).toBe('o200k_base');
    try {
      let toolCalls = 0;
      for (let turn = 1; turn <= TURNS; turn++) {
        const result = await runtime.runTextTurn(
          sessionId,
          `Turn ${turn}: add the numbers. ${FILLER}`,
        );
        expect(result.success).toBe(true);
        if (turn % 3 !== 0) toolCalls += turn % 3 === 2 ? 2 : 1;
      }
      const requests = driver.requests;
      const main = requests.filter((request) => !isSummaryRequest(request));
      const summaries = requests.filter(isSummaryRequest);
      // Compaction happened many times, and summaries chain (each after the first gets the last).
      expect(summaries.length).toBeGreaterThan(10);
      expect(messageTextOf(summaries.at(-1)?.messages[0] as Message)).toContain(
        'Previous summary:',
      );
      let largest = 0;
      for (const request of requests) {
        const tokens = counter.context(request);
        largest = Math.max(largest, tokens);
        expect(tokens).toBeLessThanOrEqual(WINDOW);
        expectPairedToolCalls(request.messages);
      }
      // The window was really used (not trivially small requests).
      expect(largest).toBeGreaterThan(WINDOW / 2);
      // Each compacted request carries the summary section and starts at a user message.
      const compacted = main.filter((request) =>
        request.systemPrompt.includes('<compacted_history'),
      );
      expect(compacted.length).toBeGreaterThan(main.length / 2);
      for (const request of compacted) expect(request.messages[0]?.role).toBe('user');

      // Stored history is complete: every user message, every answer, one result per call.
      const stored = await runtime.backends.messages.load(sessionId);
      expect(stored.filter((message) => message.role === 'user')).toHaveLength(TURNS);
      expect(stored.filter((message) => message.role === 'agent')).toHaveLength(main.length);
      const results = stored.flatMap((message) =>
        message.content.filter((part) => part.type === 'tool_result'),
      );
      expect(results).toHaveLength(toolCalls);
      expect(stored.map((message) => message.seq)).toEqual(stored.map((_, index) => index + 1));

      // The record in force, and loadContext shows what the driver last got (plus its answer).
      const record = parseCompactionRecord(
        await runtime.backends.storage.getValue(sessionId, COMPACTION_STORAGE_KEY),
      );
      expect(record?.version).toBe(1);
      const context = await runtime.loadContext(sessionId);
      expect(context.compaction).toEqual(record);
      const last = main.at(-1) as LlmRequest;
      expect(context.systemPrompt).toBe(last.systemPrompt);
      expect(context.messages.slice(0, -1)).toEqual(last.messages);
      expect(context.messages.at(-1)?.id).toBe(stored.at(-1)?.id);
      expect(context.messages[0]?.seq).toBe((record?.throughSeq ?? 0) + 1);

      // context.compacted events mark each compaction point.
      const events = await storedEvents(runtime.backends, sessionId);
      const points = events.filter((event) => event.type === 'context.compacted');
      expect(points).toHaveLength(summaries.length);
      expect(points.at(-1)?.data).toMatchObject({
        capabilityId: COMPACTION_CAPABILITY_ID,
        throughSeq: record?.throughSeq,
      });
    } finally {
      await runtime.close();
    }
  }, 240_000);

  it('a model call that fails after the record is written leaves the session whole; the next turn sends the compacted context', async () => {
    const { runtime, sessionId, driver } = await build(
      simulatedModel({ failMainCallAfterSummary: 1 }),
      {
        contextWindowTokens: 1_500,
      },
    );
    try {
      let failedTurn: string | undefined;
      for (let turn = 1; turn <= 40 && failedTurn === undefined; turn++) {
        const result = await runtime.runTextTurn(sessionId, `Turn ${turn}: add. ${FILLER}`);
        if (!result.success) failedTurn = result.turnId;
      }
      expect(failedTurn).toBeDefined();
      const record = parseCompactionRecord(
        await runtime.backends.storage.getValue(sessionId, COMPACTION_STORAGE_KEY),
      );
      expect(record?.turnId).toBe(failedTurn);
      const before = driver.requests.length;
      const next = await runtime.runTextTurn(sessionId, `Turn 41: add. ${FILLER}`);
      expect(next.success).toBe(true);
      const counter = await TokenCounter.forModel(MODEL.model);
      for (const request of driver.requests.slice(before)) {
        expect(counter.context(request)).toBeLessThanOrEqual(1_500);
        expectPairedToolCalls(request.messages);
        if (!isSummaryRequest(request)) {
          expect(request.systemPrompt).toContain('<compacted_history through_seq=');
          expect(request.messages[0]?.seq).toBeGreaterThan(record?.throughSeq ?? 0);
        }
      }
      const stored = await runtime.backends.messages.load(sessionId);
      expect(stored.map((message) => message.seq)).toEqual(stored.map((_, index) => index + 1));
      expectPairedToolCalls(stored);
    } finally {
      await runtime.close();
    }
  });

  it('a retried reason step of a compacted session finds its stored answer (the current turn is never cut)', async () => {
    const { runtime, sessionId, driver } = await build(simulatedModel(), {
      contextWindowTokens: 1_500,
    });
    try {
      let last: { turnId: string } | undefined;
      for (let turn = 1; turn <= 25; turn++) {
        // Turn 25 calls a tool: its answer is the reason step of iteration 2.
        last = await runtime.runTextTurn(sessionId, `Turn ${turn}: add. ${FILLER}`);
      }
      const record = parseCompactionRecord(
        await runtime.backends.storage.getValue(sessionId, COMPACTION_STORAGE_KEY),
      );
      expect(record).not.toBeNull();
      const dependencies: AtomDependencies = {
        backends: runtime.backends,
        capabilities: runtime.platform.capabilities,
        drivers: runtime.platform.drivers,
        fileSystems: new InMemorySessionFileSystemFactory(),
        limits: { ...DEFAULT_TURN_LIMITS },
      };
      const calls = driver.requests.length;
      for (const iteration of [1, 2]) {
        const replay = await reason(dependencies, {
          sessionId,
          turnId: last?.turnId as string,
          iteration,
        });
        expect(replay.replayed).toBe(true);
        expect(replay.success).toBe(true);
      }
      expect(driver.requests.length).toBe(calls);
      const stored = await runtime.backends.messages.load(sessionId);
      expect(stored.filter((message) => message.turnId === last?.turnId)).toHaveLength(4);
      expect(
        stored
          .filter((message) => message.turnId === last?.turnId)
          .every((message) => message.seq > (record?.throughSeq ?? 0)),
      ).toBe(true);
    } finally {
      await runtime.close();
    }
  });

  it('a hook whose record would cut into the current turn fails the step and nothing is sent', async () => {
    const cutter = defineCapability({
      id: 'bad_cut',
      name: 'Bad cut',
      description: 'Returns a record that covers the current turn.',
      tools: [],
      async beforeModelCall(context) {
        const throughSeq = context.messages.at(-1)?.seq ?? 1;
        return {
          messages: [],
          compaction: {
            version: 1,
            throughSeq,
            summary: 'everything',
            createdAt: new Date().toISOString(),
          },
        };
      },
    });
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const runtime = await new InProcessRuntimeBuilder()
      .backends(await backendsByName[backendName]!())
      .capability(cutter)
      .driver(driver)
      .defaultModel(MODEL)
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'Be brief.')
          .withCapability('bad_cut'),
      )
      .build();
    try {
      const sessionId = runtime.defaultSessionId() as string;
      const result = await runtime.runTextTurn(sessionId, 'hello');
      expect(result.success).toBe(false);
      expect(result.error?.code).toBe('CAPABILITY_FAILED');
      expect(result.error?.message).toContain('cuts into the current turn');
      expect(driver.requests).toHaveLength(0);
    } finally {
      await runtime.close();
    }
  });

  it('a turn too large to fit is sent once, not looped, and reason.started says so', async () => {
    const { runtime, sessionId, driver } = await build(LlmSimConfig.fixed('ok'), {
      contextWindowTokens: 300,
    });
    try {
      await runtime.runTextTurn(sessionId, 'Turn 1: short.');
      const huge = `Turn 2: ${FILLER.repeat(40)}`;
      const result = await runtime.runTextTurn(sessionId, huge);
      expect(result.success).toBe(true);
      const events = await storedEvents(runtime.backends, sessionId);
      const started = events.filter((event) => event.type === 'reason.started').at(-1);
      expect(started?.data.hooks).toMatchObject({
        compaction: { overflow: true },
      });
      // The huge message itself is sent whole, after the summary of turn 1.
      const last = driver.requests.at(-1) as LlmRequest;
      expect(messageTextOf(last.messages.at(-1) as Message)).toBe(huge);
    } finally {
      await runtime.close();
    }
  });
});

describe.each(Object.keys(backendsByName))(
  'context assembly with a stored record on %s',
  (backendName) => {
    it('sends the summary section and only the messages after throughSeq, reading only those; a malformed record sends everything', async () => {
      const backends = await backendsByName[backendName]!();
      const loads: string[] = [];
      const messages = backends.messages;
      // Which history reads the assembly makes: the whole-history `load` must not be one of them.
      const watched = new Proxy(messages, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            if (property === 'load' || property === 'loadAfter') loads.push(String(property));
            return value.apply(target, args);
          };
        },
      });
      const runtime = await new InProcessRuntimeBuilder()
        .backends({
          ...backends,
          messages: watched,
          loadTurnSnapshot: backends.loadTurnSnapshot?.bind(backends),
        } as RuntimeBackends)
        .driver(new LlmSimDriver(LlmSimConfig.fixed('ok')))
        .defaultModel(MODEL)
        .singleSession((session) =>
          session.harness(`h_${randomBytes(6).toString('hex')}`, 'Be brief.'),
        )
        .build();
      try {
        const sessionId = runtime.defaultSessionId() as string;
        for (const text of ['one', 'two', 'three']) await runtime.runTextTurn(sessionId, text);
        const record = {
          version: 1 as const,
          throughSeq: 4,
          summary: 'The user said one and two; the agent said ok twice.',
          createdAt: new Date().toISOString(),
        };
        await runtime.backends.storage.setValue(
          sessionId,
          COMPACTION_STORAGE_KEY,
          JSON.stringify(record),
        );
        loads.length = 0;
        const context = await runtime.loadContext(sessionId);
        expect(context.compaction).toEqual(record);
        expect(context.systemPrompt).toBe(
          `Be brief.\n\n<compacted_history through_seq="4">\n${record.summary}\n</compacted_history>`,
        );
        expect(context.messages.map((message) => message.seq)).toEqual([5, 6]);
        expect(loads).not.toContain('load');

        await runtime.backends.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, '{"version":1,');
        const whole = await runtime.loadContext(sessionId);
        expect(whole.compaction).toBeUndefined();
        expect(whole.messages.map((message) => message.seq)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(whole.systemPrompt).toBe('Be brief.');
      } finally {
        await runtime.close();
      }
    });
  },
);

describe('compaction and the PostgreSQL snapshot', () => {
  let backends: PostgresBackends;
  beforeAll(async () => {
    backends = await openPostgres();
  });
  afterAll(async () => {
    await backends.close();
  });

  it('the provider store keeps a model’s contextWindow', async () => {
    await backends.providers.setDefaultModel(MODEL);
    expect((await backends.providers.getDefaultModel())?.contextWindow).toBe(WINDOW);
  });

  it('loadTurnSnapshot reads the record and only the messages after it, in one statement', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .driver(new LlmSimDriver(LlmSimConfig.fixed('ok')))
      .defaultModel(MODEL)
      .singleSession((session) =>
        session.harness(`h_${randomBytes(6).toString('hex')}`, 'Be brief.'),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    for (const text of ['one', 'two', 'three', 'four']) await runtime.runTextTurn(sessionId, text);
    const all = await backends.messages.load(sessionId);
    expect(all).toHaveLength(8);

    let before = backends.queryCount();
    let snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(backends.queryCount() - before).toBe(1);
    expect(snapshot?.compaction).toBeNull();
    expect(snapshot?.messages).toEqual(all);

    const record = {
      version: 1 as const,
      throughSeq: 6,
      summary: 'Three exchanges of ok.',
      createdAt: new Date().toISOString(),
      previousThroughSeq: 2,
    };
    await backends.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, JSON.stringify(record));
    before = backends.queryCount();
    snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(backends.queryCount() - before).toBe(1);
    expect(snapshot?.compaction).toEqual(record);
    expect(snapshot?.messages).toEqual(all.slice(6));

    // Keys in another order, the summary quoting the key: the record still decides the cut.
    const reordered = `{"summary":"a \\"throughSeq\\":2, quote","version":1,"createdAt":"${record.createdAt}","throughSeq":4}`;
    await backends.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, reordered);
    snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(snapshot?.compaction?.throughSeq).toBe(4);
    expect(snapshot?.compaction?.summary).toBe('a "throughSeq":2, quote');
    expect(snapshot?.messages.map((message) => message.seq)).toEqual([5, 6, 7, 8]);

    // A malformed value: no record, the whole history.
    await backends.storage.setValue(sessionId, COMPACTION_STORAGE_KEY, '{"throughSeq":3,');
    snapshot = await backends.loadTurnSnapshot(sessionId);
    expect(snapshot?.compaction).toBeNull();
    expect(snapshot?.messages).toEqual(all);
  });
});
