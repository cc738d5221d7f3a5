import { randomBytes } from 'node:crypto';
import {
  defineCapability,
  EverrunsError,
  LLMSIM_DEFAULT_MODEL,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TODO_CAPABILITY_ID, todoCapability } from './index.js';

// The `/todos` command through the runtime's public API (listCommands / executeCommand), on the
// in-memory stores and on PostgreSQL: no model call, nothing stored.

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `todos_command_${randomBytes(6).toString('hex')}`;

function openPostgres(): PostgresBackends {
  return postgresBackends(
    { connectionString: DATABASE_URL, poolConfig: { max: 4 } },
    { schema, secretKey: { id: 'k', key: randomBytes(32) } },
  );
}

beforeAll(async () => {
  const backends = openPostgres();
  await backends.migrate();
  await backends.close();
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end().catch(() => {});
  }
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

const task = (content: string, status: 'pending' | 'in_progress' | 'completed') => ({
  content,
  activeForm: `${content}ing`,
  status,
});

/** A second capability with a command, to check listing order and a failing command. */
const opsCapability = defineCapability({
  id: 'ops',
  name: 'Ops',
  description: 'Operational commands.',
  tools: [],
  commands: [
    {
      name: 'echo',
      description: 'Echoes its arguments.',
      execute: (args, context) => ({ text: `echo: ${args}`, data: { session: context.sessionId } }),
    },
    {
      name: 'broken',
      description: 'Always fails.',
      execute: () => {
        throw new Error('disk on fire');
      },
    },
  ],
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<EverrunsError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(EverrunsError);
  expect((error as EverrunsError).code).toBe(code);
  return error as EverrunsError;
}

describe.each(Object.keys(backendsByName))('/todos on %s', (backendName) => {
  async function build(): Promise<{
    runtime: InProcessRuntime;
    sessionId: string;
    driver: LlmSimDriver;
  }> {
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', '', 'done']).withToolCallSequence([
        [
          {
            name: 'write_todos',
            arguments: { todos: [task('Draft', 'in_progress'), task('Review', 'pending')] },
          },
        ],
        [
          {
            name: 'write_todos',
            arguments: {
              todos: [
                task('Draft', 'completed'),
                task('Review', 'in_progress'),
                task('Ship', 'pending'),
              ],
            },
          },
          // Refused by the schema: it does not change the list.
          { name: 'write_todos', arguments: { todos: [{ content: 'bad' }] } },
        ],
        [],
      ]),
    );
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backendsByName[backendName]!())
      .capability(todoCapability)
      .capability(opsCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .singleSession((session) =>
        session
          .harness(`h_${randomBytes(6).toString('hex')}`, '')
          .withCapability(TODO_CAPABILITY_ID)
          .withCapability('ops'),
      )
      .build();
    return { runtime, sessionId: runtime.defaultSessionId() as string, driver };
  }

  it('lists the commands of the session and shows the latest valid list without a model call', async () => {
    const { runtime, sessionId, driver } = await build();
    try {
      expect(await runtime.listCommands(sessionId)).toEqual([
        {
          name: 'todos',
          command: '/todos',
          description: expect.stringContaining('task list'),
          capabilityId: TODO_CAPABILITY_ID,
        },
        {
          name: 'echo',
          command: '/echo',
          description: 'Echoes its arguments.',
          capabilityId: 'ops',
        },
        { name: 'broken', command: '/broken', description: 'Always fails.', capabilityId: 'ops' },
      ]);
      const empty = await runtime.executeCommand(sessionId, '/todos');
      expect(empty).toEqual({
        text: 'No task list yet.',
        data: { todos: null },
        command: 'todos',
        capabilityId: TODO_CAPABILITY_ID,
      });

      expect((await runtime.runTextTurn(sessionId, 'plan it')).success).toBe(true);
      const calls = driver.requests.length;
      const messages = (await runtime.messages(sessionId)).length;

      const all = await runtime.executeCommand(sessionId, '/todos');
      expect(all.text).toBe(
        ['Tasks (1/3 completed):', '[x] Draft', '[~] Review', '[ ] Ship'].join('\n'),
      );
      expect(all.data).toEqual({
        todos: [task('Draft', 'completed'), task('Review', 'in_progress'), task('Ship', 'pending')],
      });
      const pending = await runtime.executeCommand(sessionId, 'todos', 'pending');
      expect(pending.text).toBe(['Tasks (1/3 completed):', '[ ] Ship'].join('\n'));
      const inline = await runtime.executeCommand(sessionId, '/todos   completed ');
      expect(inline.text).toBe(['Tasks (1/3 completed):', '[x] Draft'].join('\n'));
      expect((await runtime.executeCommand(sessionId, '/todos later')).text).toContain(
        'Unknown status "later"',
      );
      expect(await runtime.executeCommand(sessionId, '/echo a  b', 'c')).toEqual({
        text: 'echo: a  b c',
        data: { session: sessionId },
        command: 'echo',
        capabilityId: 'ops',
      });

      // No model call and nothing stored; each command that ran is an event (never its text).
      expect(driver.requests).toHaveLength(calls);
      expect(await runtime.messages(sessionId)).toHaveLength(messages);
      // The PostgreSQL bus loads what it stored; the in-memory one is read through the runtime.
      const bus = runtime.backends.events as Partial<{
        loadEvents(id: string, options: { limit: number }): Promise<RuntimeEvent[]>;
      }>;
      const stored = bus.loadEvents
        ? await bus.loadEvents(sessionId, { limit: 1000 })
        : runtime.events(sessionId);
      const executed = stored
        .filter((event) => event.type === 'command.executed')
        .map((event) => event.data);
      expect(executed).toHaveLength(6);
      expect(executed.at(-1)).toEqual({ command: 'echo', capabilityId: 'ops', hasArgs: true });
      expect(executed[0]).toEqual({
        command: 'todos',
        capabilityId: TODO_CAPABILITY_ID,
        hasArgs: false,
      });
    } finally {
      await runtime.close();
    }
  });

  it('refuses an unknown command, a malformed line and reports a failing command as CAPABILITY_FAILED', async () => {
    const { runtime, sessionId } = await build();
    try {
      const unknown = await expectCode(
        runtime.executeCommand(sessionId, '/nope'),
        'COMMAND_NOT_FOUND',
      );
      expect(unknown.details).toMatchObject({
        command: 'nope',
        available: ['/todos', '/echo', '/broken'],
      });
      await expectCode(runtime.executeCommand(sessionId, ''), 'INVALID_INPUT');
      await expectCode(runtime.executeCommand(sessionId, '/a b/c!'), 'COMMAND_NOT_FOUND');
      await expectCode(runtime.executeCommand(sessionId, '//todos'), 'INVALID_INPUT');
      const failed = await expectCode(
        runtime.executeCommand(sessionId, '/broken'),
        'CAPABILITY_FAILED',
      );
      expect(failed.message).toContain('disk on fire');
      await expectCode(runtime.listCommands('session_missing'), 'SESSION_NOT_FOUND');
      await expectCode(runtime.executeCommand('session_missing', '/todos'), 'SESSION_NOT_FOUND');
    } finally {
      await runtime.close();
    }
  });

  it('a command of a capability switched off for the session is gone', async () => {
    const { runtime, sessionId } = await build();
    try {
      await runtime.deactivateCapability(sessionId, 'ops');
      expect((await runtime.listCommands(sessionId)).map((entry) => entry.command)).toEqual([
        '/todos',
      ]);
      await expectCode(runtime.executeCommand(sessionId, '/echo hi'), 'COMMAND_NOT_FOUND');
    } finally {
      await runtime.close();
    }
  });
});
