import { randomBytes } from 'node:crypto';
import {
  LLMSIM_DEFAULT_MODEL,
  type Message,
  messageText,
  type RuntimeBackends,
  type ToolResultPart,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { DATABASE_URL, dropSchemas, randomSchemaName } from '@everruns-ts/runtime-suites';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  excerpt,
  INFINITY_CONTEXT_CAPABILITY_ID,
  type InfinityContextConfig,
  infinityContextCapability,
  infinityContextConfigSchema,
  type QueryHistoryResult,
} from './index.js';

// query_history through real turns, on the in-memory stores and on PostgreSQL (whose search is
// an indexed query): the model (llmsim) calls the tool when the user's message says
// `query_history {...}`, and answers "done" after the result.

const schema = randomSchemaName('infinity');
const secretKey = { id: 'k', key: randomBytes(32) };

function openPostgres(): PostgresBackends {
  return postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema, secretKey },
  );
}

beforeAll(async () => {
  const backends = openPostgres();
  await backends.migrate();
  await backends.close();
});
afterAll(async () => {
  await dropSchemas(schema);
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

const COMMAND = 'query_history ';

/** A model that calls query_history with the JSON after `query_history ` in the user's text. */
function scriptedModel(): LlmSimDriver {
  return new LlmSimDriver(
    LlmSimConfig.fromFunction((request) => {
      const last = request.messages[request.messages.length - 1] as Message;
      if (last.role === 'tool_result') return 'done';
      const text = messageText(last);
      if (text.startsWith(COMMAND)) {
        return {
          toolCalls: [{ name: 'query_history', arguments: JSON.parse(text.slice(COMMAND.length)) }],
        };
      }
      return 'noted';
    }),
  );
}

function lastToolResult(messages: readonly Message[]): ToolResultPart {
  const parts = messages.flatMap((message) =>
    message.content.filter((part): part is ToolResultPart => part.type === 'tool_result'),
  );
  return parts[parts.length - 1] as ToolResultPart;
}

describe.each(Object.keys(backendsByName))('query_history on %s', (backendName) => {
  async function build(config?: InfinityContextConfig): Promise<{
    runtime: InProcessRuntime;
    sessionId: string;
    driver: LlmSimDriver;
    ask(
      args: Record<string, unknown>,
    ): Promise<{ result: QueryHistoryResult; part: ToolResultPart }>;
  }> {
    const driver = scriptedModel();
    const backends = backendsByName[backendName]!();
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backends)
      .capability(infinityContextCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, 'Answer briefly.')
          .withCapability(INFINITY_CONTEXT_CAPABILITY_ID, config),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    return {
      runtime,
      sessionId,
      driver,
      async ask(args) {
        const turn = await runtime.runTextTurn(sessionId, `${COMMAND}${JSON.stringify(args)}`);
        expect(turn.success).toBe(true);
        expect(turn.response).toBe('done');
        const part = lastToolResult(await runtime.messages(sessionId));
        return {
          result: part.isError ? ({} as QueryHistoryResult) : JSON.parse(part.content),
          part,
        };
      },
    };
  }

  it('finds earlier turns’ messages, case-insensitively, oldest first, with positions; the model sees the result and the prompt section', async () => {
    const { runtime, sessionId, driver, ask } = await build();
    try {
      await runtime.runTextTurn(sessionId, 'The vault code is SWORDFISH-42.');
      await runtime.runTextTurn(sessionId, 'Unrelated small talk.');
      await runtime.runTextTurn(sessionId, 'Remember: swordfish means the blue door.');
      const { result, part } = await ask({ query: 'Swordfish' });
      expect(part.isError).toBe(false);
      expect(result).toMatchObject({ query: 'Swordfish', offset: 0, hasMore: false, count: 3 });
      // The user's messages 1 and 5, and the user's request of this turn (7); not the agent
      // message holding this very call (8), whose arguments hold the query.
      expect(result.messages.map((message) => [message.seq, message.index, message.role])).toEqual([
        [1, 0, 'user'],
        [5, 4, 'user'],
        [7, 6, 'user'],
      ]);
      expect(result.messages[0]?.content).toBe('The vault code is SWORDFISH-42.');
      expect(result.messages[0]?.contentChars).toBe(31);
      expect(typeof result.messages[0]?.turnId).toBe('string');
      const lastRequest = driver.requests[driver.requests.length - 1]!;
      expect(lastRequest.messages[lastRequest.messages.length - 1]?.content[0]).toMatchObject({
        type: 'tool_result',
        content: part.content,
      });
      expect(lastRequest.systemPrompt).toContain(
        `<capability id="${INFINITY_CONTEXT_CAPABILITY_ID}">`,
      );
      expect(lastRequest.systemPrompt).toContain('query_history');
      expect(lastRequest.tools.map((tool) => tool.name)).toContain('query_history');

      // (The user's request itself would match: only the agent's and the tools' messages here.)
      const none = await ask({ query: 'no such words anywhere', roles: ['agent', 'tool_result'] });
      expect(none.result).toEqual({
        query: 'no such words anywhere',
        count: 0,
        messages: [],
        offset: 0,
        hasMore: false,
        message: 'No message of this session matches.',
      });
    } finally {
      await runtime.close();
    }
  });

  it('pages with offset and limit (nextOffset), filters by role and searches tool calls and results of earlier calls', async () => {
    const { runtime, sessionId, ask } = await build();
    try {
      for (let index = 1; index <= 5; index++) {
        await runtime.runTextTurn(sessionId, `ticket TK-${index} opened`);
      }
      const first = await ask({ query: 'tk-', roles: ['user'], limit: 2 });
      expect(first.result.messages.map((message) => message.content)).toEqual([
        'ticket TK-1 opened',
        'ticket TK-2 opened',
      ]);
      expect(first.result.hasMore).toBe(true);
      expect(first.result.nextOffset).toBe(2);
      const second = await ask({ query: 'tk-', roles: ['user'], limit: 2, offset: 2 });
      expect(second.result.messages.map((message) => message.content)).toEqual([
        'ticket TK-3 opened',
        'ticket TK-4 opened',
      ]);
      const third = await ask({ query: 'TK-', roles: ['user'], limit: 2, offset: 4 });
      expect(third.result.messages.map((message) => message.content)).toEqual([
        // TK-5, then the user messages of the three query_history turns hold "tk-" as well.
        'ticket TK-5 opened',
        `${COMMAND}{"query":"tk-","roles":["user"],"limit":2}`,
      ]);
      expect(third.result.hasMore).toBe(true);
      // A limit above 50 is lowered to 50.
      const all = await ask({ query: 'tk-', limit: 500 });
      expect(all.result.count).toBeLessThanOrEqual(50);
      expect(all.result.hasMore).toBe(false);
      // Earlier query_history calls and their results are history too.
      const calls = await ask({ query: '"roles":["user"]', roles: ['agent'] });
      expect(calls.result.messages.map((message) => message.content)).toEqual([
        'query_history\n{"query":"tk-","roles":["user"],"limit":2}',
        'query_history\n{"query":"tk-","roles":["user"],"limit":2,"offset":2}',
        'query_history\n{"query":"TK-","roles":["user"],"limit":2,"offset":4}',
      ]);
      const results = await ask({ query: '"nextoffset":2', roles: ['tool_result'] });
      expect(results.result.count).toBe(1);
      expect(results.result.messages[0]?.role).toBe('tool_result');
    } finally {
      await runtime.close();
    }
  });

  it('bounds the result: long texts become excerpts around the match, and the page ends early past maxResultChars', async () => {
    const { runtime, sessionId, ask } = await build({ maxMessageChars: 200, maxResultChars: 700 });
    try {
      const filler = 'lorem ipsum '.repeat(1000);
      await runtime.runTextTurn(sessionId, `${filler}NEEDLE-7 in the middle ${filler}`);
      for (let index = 0; index < 6; index++) {
        await runtime.runTextTurn(sessionId, `needle-7 copy ${index} ${'x'.repeat(300)}`);
      }
      const { result, part } = await ask({ query: 'needle-7', roles: ['user'] });
      expect(part.content.length).toBeLessThan(2500);
      const [long] = result.messages;
      expect(long?.contentTruncated).toBe(true);
      expect(long?.contentChars).toBe(filler.length * 2 + 'NEEDLE-7 in the middle '.length);
      expect(long?.content).toContain('NEEDLE-7 in the middle');
      expect(long?.content.startsWith('…')).toBe(true);
      expect(long?.content.endsWith('…')).toBe(true);
      expect(long?.content.length).toBeLessThanOrEqual(202);
      expect(result.truncated).toBe(true);
      expect(result.hasMore).toBe(true);
      expect(result.count).toBeLessThan(7);
      expect(result.nextOffset).toBe(result.count);
      // The next page goes on where this one stopped.
      const next = await ask({ query: 'needle-7', roles: ['user'], offset: result.nextOffset });
      expect(next.result.messages[0]?.content).toContain(`copy ${result.count - 1} `);
    } finally {
      await runtime.close();
    }
  });

  it('reads messages by position (messageRange, 0-based, end exclusive) and the latest messages without a query', async () => {
    const { runtime, sessionId, ask } = await build();
    try {
      for (const word of ['alpha', 'beta', 'gamma']) await runtime.runTextTurn(sessionId, word);
      // 1 alpha, 2 noted, 3 beta, 4 noted, 5 gamma, 6 noted; then each ask adds its user message,
      // the agent's call, the result and "done".
      const range = await ask({ messageRange: { from: 2, to: 4 } });
      expect(range.result.messages.map((message) => [message.seq, message.content])).toEqual([
        [3, 'beta'],
        [4, 'noted'],
      ]);
      expect(range.result).toMatchObject({
        count: 2,
        range: '3-4',
        hasMore: false,
        totalInHistory: 8,
      });
      const limited = await ask({ messageRange: { from: 0, to: 100 }, limit: 2 });
      expect(limited.result.messages.map((message) => message.content)).toEqual(['alpha', 'noted']);
      expect(limited.result).toMatchObject({
        range: '1-2',
        hasMore: true,
        nextRange: { from: 2, to: 12 },
        totalInHistory: 12,
      });
      const latest = await ask({ limit: 3 });
      expect(latest.result.messages.map((message) => [message.seq, message.role])).toEqual([
        [14, 'agent'],
        [15, 'user'],
        [16, 'agent'],
      ]);
      expect(latest.result).toMatchObject({ range: '14-16', hasMore: false, totalInHistory: 16 });
      expect(latest.result.message).toContain('messageRange');
      const outside = await ask({ messageRange: { from: 99, to: 100 } });
      expect(outside.result).toEqual({
        count: 0,
        messages: [],
        totalInHistory: 20,
        hasMore: false,
        message: 'No messages in the requested range.',
      });
    } finally {
      await runtime.close();
    }
  });

  it('reports bad arguments to the model as a tool error; the turn goes on', async () => {
    const { runtime, ask } = await build();
    try {
      for (const args of [
        { query: '' },
        { query: 'x', limit: 0 },
        { query: 'x', roles: ['system'] },
        { messageRange: { from: 1 } },
      ]) {
        const { part } = await ask(args);
        expect(part.isError).toBe(true);
      }
    } finally {
      await runtime.close();
    }
  });
});

describe('infinity_context configuration and excerpts', () => {
  it('validates the configuration', () => {
    expect(infinityContextConfigSchema.safeParse({}).success).toBe(true);
    expect(infinityContextConfigSchema.safeParse({ maxMessageChars: 10 }).success).toBe(false);
    expect(
      infinityContextConfigSchema.safeParse({ maxMessageChars: 5000, maxResultChars: 1000 })
        .success,
    ).toBe(false);
    expect(infinityContextConfigSchema.safeParse({ other: 1 }).success).toBe(false);
  });

  it('cuts around the first match without splitting a surrogate pair', () => {
    const text = `${'😀'.repeat(100)}match${'😀'.repeat(100)}`;
    const cut = excerpt(text, 'match', 41);
    expect(cut).toContain('match');
    expect(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(cut)).toBe(
      false,
    );
    expect(excerpt('short', 'x', 50)).toBe('short');
    expect(excerpt(`abc${'z'.repeat(100)}`, 'abc', 10)).toBe(`abc${'z'.repeat(7)}…`);
  });
});
