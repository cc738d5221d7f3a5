/**
 * The platform the host-pgboss tests run: a scripted model that records every call, tools whose
 * side effects are rows, and kill points that end the process with SIGKILL at a chosen moment.
 * Used in the test process and in the worker processes it starts (`worker.ts`).
 */

import { scheduleCapability } from '@everruns-ts/capabilities-schedule';
import { subagentsCapability } from '@everruns-ts/capabilities-subagents';
import {
  type BatchingEventBus,
  CapabilityRegistry,
  DriverRegistry,
  defineCapability,
  defineTool,
  type EventRequest,
  EverrunsError,
  type LlmDriver,
  type LlmRequest,
  type LlmResponse,
  type LlmStreamEvent,
  type Message,
  messageText,
  type NewMessage,
  PlatformDefinition,
  type RuntimeEvent,
  type RuntimeMessageStore,
  SCHEDULED_MESSAGE_METADATA_KEY,
  type SessionFileSystemFactory,
  type SessionStatus,
} from '@everruns-ts/core';
import { RealDiskSessionFileSystemFactory } from '@everruns-ts/fs-realdisk';
import { DurableFileApprovals } from '@everruns-ts/runtime/host';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { z } from 'zod';
import { PgBossHost } from '../index.js';

/** Where a worker kills itself (SIGKILL), once. */
export type KillPointName =
  | 'after-input-stored'
  | 'before-model-call'
  | 'after-model-call'
  | 'after-model-response-stored'
  | 'after-tool-started'
  | 'after-tool-side-effect'
  | 'after-idempotent-tool-side-effect'
  | 'mid-multi-message-append'
  | 'after-tool-result-stored'
  | 'after-turn-completed-emitted'
  | 'after-session-idle-status'
  | 'after-session-idled-emitted'
  | 'after-turn-failed-emitted'
  | 'after-waiting-status'
  | 'in-child-turn';

/** A kill point, optionally only at one iteration. */
export interface KillPoint {
  name: KillPointName;
  iteration?: number;
}

/** Everything a fixture host needs; plain JSON so a worker process gets it on its command line. */
export interface FixtureConfig {
  databaseUrl: string;
  storesSchema: string;
  bossSchema: string;
  hostSchema: string;
  /** Schema of the test's own tables (`model_calls`, `effects`). */
  testSchema: string;
  queue: string;
  secretKeyHex: string;
  killPoint?: KillPoint;
  concurrency?: number;
  maxIterations?: number;
  stepTimeoutSeconds?: number;
  /** The host's `continueStepsSeconds` (default: the host's own). */
  continueStepsSeconds?: number;
  /** The host's `checkpointIntervalSeconds` (default: the host's own). */
  checkpointIntervalSeconds?: number;
  retry?: { limit?: number; delaySeconds?: number; backoff?: boolean };
  /** The first N stores of agent messages fail with STORE_UNAVAILABLE (in this process). */
  failAgentStores?: number;
  /** The first N stores of tool results fail with STORE_UNAVAILABLE (in this process). */
  failToolResultStores?: number;
  /** Directory holding one workspace directory per session (deletes there need approval). */
  workspacesDirectory?: string;
  /** Connections of the process's one pool. Default 4. */
  poolSize?: number;
  /** Kill the process (SIGKILL) this many milliseconds after it starts working. */
  killAfterMs?: number;
  /**
   * The schedules' clock runs this many times faster than real time from when the host starts
   * (so a `* * * * *` cron fires about every 60/clockSpeed seconds). Default: the real clock.
   */
  clockSpeed?: number;
}

/** The model id the fixture registers as default. */
export const SCRIPTED_MODEL = { model: 'scripted-model', providerType: 'scripted' } as const;

/** Creates the test's own tables. */
export async function createFixtureTables(pool: pg.Pool, testSchema: string): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS "${testSchema}"`);
  await pool.query(`
    CREATE TABLE IF NOT EXISTS "${testSchema}".model_calls (
      id bigserial PRIMARY KEY,
      session_id text NOT NULL,
      turn_id text NOT NULL,
      iteration integer NOT NULL,
      answer_already_stored boolean NOT NULL,
      pid integer NOT NULL
    )`);
  await pool.query(`
    CREATE TABLE IF NOT EXISTS "${testSchema}".gates (name text PRIMARY KEY)`);
  await pool.query(`
    CREATE TABLE IF NOT EXISTS "${testSchema}".effects (
      id bigserial PRIMARY KEY,
      session_id text NOT NULL,
      turn_id text NOT NULL,
      tool_call_id text NOT NULL,
      tool text NOT NULL
    )`);
}

function kill(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL is not deliverable late; this only satisfies the type checker.
  throw new Error('unreachable');
}

/** A fixture host (not yet working) with its stores. */
export interface FixtureHost {
  host: PgBossHost;
  backends: PostgresBackends;
  pool: pg.Pool;
  approvals: DurableFileApprovals;
  /** The capabilities and drivers the host runs (for an in-process runtime beside it). */
  platform: PlatformDefinition;
  close(): Promise<void>;
}

/** Builds the platform, the stores and the host of one process. */
export async function startFixtureHost(config: FixtureConfig): Promise<FixtureHost> {
  // One small pool per process for the stores, the queue, the host and the test tables.
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.poolSize ?? 4 });
  pool.on('error', () => {});
  const backends = postgresBackends(
    { pool },
    { schema: config.storesSchema, secretKey: { id: 'test', key: config.secretKeyHex } },
  );
  const killAt = (name: KillPointName, iteration?: number) => {
    const point = config.killPoint;
    if (!point || point.name !== name) return;
    if (point.iteration !== undefined && point.iteration !== iteration) return;
    kill();
  };
  let agentStoreFailures = config.failAgentStores ?? 0;
  let toolResultStoreFailures = config.failToolResultStores ?? 0;
  const messages = faultInjectingMessages(backends.messages, {
    afterStore(message) {
      const iteration = message.metadata?.iteration as number | undefined;
      if (message.role === 'user') killAt('after-input-stored');
      if (message.role === 'agent') killAt('after-model-response-stored', iteration);
      if (message.role === 'tool_result') {
        killAt('after-tool-result-stored', iteration);
        const part = message.content[0];
        if (part?.type === 'tool_result' && part.toolCallId === 'append') {
          killAt('mid-multi-message-append', iteration);
        }
      }
    },
    beforeStore(message) {
      const failAgent = message.role === 'agent' && agentStoreFailures > 0;
      const failToolResult = message.role === 'tool_result' && toolResultStoreFailures > 0;
      if (failAgent || failToolResult) {
        if (failAgent) agentStoreFailures -= 1;
        else toolResultStoreFailures -= 1;
        throw new EverrunsError({
          code: 'STORE_UNAVAILABLE',
          message: 'injected store outage',
          retryable: true,
        });
      }
    },
  });
  const killAfterEmitted = (event: RuntimeEvent) => {
    if (event.type === 'turn.completed') killAt('after-turn-completed-emitted');
    if (event.type === 'turn.failed') killAt('after-turn-failed-emitted');
    if (event.type === 'session.idled') killAt('after-session-idled-emitted');
  };
  const events = new Proxy(backends.events, {
    get(target, property) {
      if (property === 'emit') {
        return async (request: EventRequest) => {
          const event = await target.emit(request);
          killAfterEmitted(event);
          return event;
        };
      }
      const batching = target as Partial<BatchingEventBus>;
      if (property === 'emitMany' && typeof batching.emitMany === 'function') {
        // A batch is stored whole: a kill point after any of its events hits after all of them.
        return async (requests: EventRequest[]) => {
          const stored = await (batching.emitMany as BatchingEventBus['emitMany']).call(
            target,
            requests,
          );
          for (const event of stored) killAfterEmitted(event);
          return stored;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const sessions = new Proxy(backends.sessions, {
    get(target, property) {
      if (property === 'updateSessionStatus') {
        return async (sessionId: string, status: SessionStatus) => {
          const session = await target.updateSessionStatus(sessionId, status);
          if (status === 'idle') killAt('after-session-idle-status');
          if (status === 'waiting_for_tool_results') killAt('after-waiting-status');
          return session;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const stores: PostgresBackends = {
    ...backends,
    messages: messages as PostgresBackends['messages'],
    events,
    sessions,
  };
  /** Resolves once the test opened the gate `name` (gives up after 60 s). */
  const gate = async (name: string) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { rowCount } = await pool.query(
        `SELECT 1 FROM "${config.testSchema}".gates WHERE name = $1`,
        [name],
      );
      if (rowCount === 1) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const record = (sessionId: string, turnId: string, toolCallId: string, tool: string) =>
    pool.query(
      `INSERT INTO "${config.testSchema}".effects (session_id, turn_id, tool_call_id, tool) VALUES ($1, $2, $3, $4)`,
      [sessionId, turnId, toolCallId, tool],
    );
  const effects = defineCapability({
    id: 'effects',
    name: 'Effects',
    description: 'Tools whose side effects are rows.',
    tools: [
      defineTool({
        name: 'ask_client',
        description: 'Asks the client (a client-side tool: the host never runs it).',
        clientSide: true,
        inputSchema: z.object({ question: z.string() }),
        execute: () => {
          throw new Error('a client-side tool ran on the host');
        },
      }),
      defineTool({
        name: 'append_line',
        description: 'Appends a line (not idempotent).',
        inputSchema: z.object({ line: z.string() }),
        execute: async ({ line }, context) => {
          killAt('after-tool-started', context.iteration);
          await record(context.sessionId, context.turnId, context.toolCallId, 'append_line');
          killAt('after-tool-side-effect', context.iteration);
          return `appended ${line}`;
        },
      }),
      defineTool({
        name: 'remove_file',
        description: 'Deletes a workspace file (idempotent; needs approval).',
        idempotent: true,
        inputSchema: z.object({ path: z.string() }),
        execute: async ({ path }, context) => {
          const removed = await context.fileSystem.deleteFile(path);
          return removed ? `removed ${path}` : `${path} was already gone`;
        },
      }),
      defineTool({
        name: 'slow_flag',
        description: 'Sets a flag (idempotent); its first run waits for the gate release-<turnId>.',
        idempotent: true,
        inputSchema: z.object({ flag: z.string() }),
        execute: async ({ flag }, context) => {
          await record(context.sessionId, context.turnId, context.toolCallId, 'slow_flag');
          const { rows } = await pool.query<{ count: string }>(
            `SELECT count(*) FROM "${config.testSchema}".effects WHERE turn_id = $1 AND tool = 'slow_flag'`,
            [context.turnId],
          );
          if (Number(rows[0]?.count) === 1) {
            await gate(`release-${context.turnId}`);
            await record(context.sessionId, context.turnId, context.toolCallId, 'slow_flag_woke');
          }
          return `set ${flag}`;
        },
      }),
      defineTool({
        name: 'set_flag',
        description: 'Sets a flag (idempotent).',
        idempotent: true,
        inputSchema: z.object({ flag: z.string() }),
        execute: async ({ flag }, context) => {
          await record(context.sessionId, context.turnId, context.toolCallId, 'set_flag');
          killAt('after-idempotent-tool-side-effect', context.iteration);
          return `set ${flag}`;
        },
      }),
    ],
  });

  const driver: LlmDriver = {
    providerType: SCRIPTED_MODEL.providerType,
    async generate(request: LlmRequest): Promise<LlmResponse> {
      killAt('before-model-call', request.iteration);
      const childUser = request.messages.find((message) => message.role === 'user');
      if (childUser && messageText(childUser).startsWith('child')) {
        killAt('in-child-turn', request.iteration);
      }
      const stored = await backends.messages.getByIdempotencyKey(
        request.sessionId,
        `${request.turnId}/reason/${request.iteration}`,
      );
      await pool.query(
        `INSERT INTO "${config.testSchema}".model_calls (session_id, turn_id, iteration, answer_already_stored, pid)
         VALUES ($1, $2, $3, $4, $5)`,
        [request.sessionId, request.turnId, request.iteration, stored !== null, process.pid],
      );
      const firstUser = request.messages.findLast(
        (message) => message.role === 'user' && message.turnId === request.turnId,
      );
      if (firstUser && messageText(firstUser).startsWith('driver error')) {
        throw new Error('the model is down');
      }
      // `race` turns wait for the gate race-<turnId>, so the test's new generations of the turn
      // start while it runs.
      if (firstUser && messageText(firstUser).startsWith('race')) {
        await gate(`race-${request.turnId}`);
      }
      const response = scriptedAnswer(request);
      if (response.text.startsWith('slowly answered')) await gate(`finish-${request.turnId}`);
      killAt('after-model-call', request.iteration);
      return response;
    },
    // The same answers in pieces: short texts three characters at a time, a long one in two
    // pieces (the second larger than a NOTIFY payload), each tool call's id and name first, then
    // its arguments four characters at a time.
    async *stream(request: LlmRequest): AsyncIterable<LlmStreamEvent> {
      const response = await driver.generate(request);
      for (const text of textPieces(response.text)) yield { type: 'text_delta', text };
      for (const [index, call] of response.toolCalls.entries()) {
        yield { type: 'tool_call_delta', index, id: call.id, name: call.name, argumentsDelta: '' };
        const json = JSON.stringify(call.arguments);
        for (let start = 0; start < json.length; start += 4) {
          yield { type: 'tool_call_delta', index, argumentsDelta: json.slice(start, start + 4) };
        }
      }
      yield { type: 'finish', response };
    },
  };

  const capabilities = new CapabilityRegistry()
    .register(effects)
    .register(subagentsCapability)
    .register(scheduleCapability);
  const drivers = new DriverRegistry().register(driver);
  const approvals = new DurableFileApprovals({
    storage: backends.storage,
    events: backends.events,
    pollIntervalMs: 100,
  });
  let fileSystems: SessionFileSystemFactory | undefined;
  if (config.workspacesDirectory) {
    const disk = new RealDiskSessionFileSystemFactory({
      sessionsDirectory: config.workspacesDirectory,
    });
    fileSystems = {
      forSession: (sessionId) => disk.forSession(sessionId),
      forToolCall: (workspace, scope) => approvals.gatedFileSystem(workspace, scope),
    };
  }
  const platform = new PlatformDefinition(capabilities, drivers);
  const host = await PgBossHost.start({
    pool,
    backends: stores,
    platform,
    ...(fileSystems ? { fileSystems } : {}),
    onError: (error) => {
      if (process.env.EVERRUNS_HOST_DEBUG)
        process.stderr.write(`onError: ${(error as Error)?.stack ?? error}\n`);
    },
    queue: config.queue,
    schema: config.hostSchema,
    bossSchema: config.bossSchema,
    stepTimeoutSeconds: config.stepTimeoutSeconds ?? 3,
    ...(config.continueStepsSeconds === undefined
      ? {}
      : { continueStepsSeconds: config.continueStepsSeconds }),
    ...(config.checkpointIntervalSeconds === undefined
      ? {}
      : { checkpointIntervalSeconds: config.checkpointIntervalSeconds }),
    maintenanceIntervalSeconds: 1,
    pollingIntervalSeconds: 0.5,
    retry: config.retry ?? { limit: 5, delaySeconds: 0, backoff: false },
    ...(config.clockSpeed ? { clock: fastClock(config.clockSpeed) } : {}),
    ...(config.maxIterations ? { limits: { maxIterations: config.maxIterations } } : {}),
  });
  return {
    host,
    backends,
    pool,
    approvals,
    platform,
    async close() {
      await host.stop({ timeoutMs: 2_000 });
      await backends.close();
      await pool.end().catch(() => {});
    },
  };
}

/** A clock `speed` times faster than real time from now on. */
function fastClock(speed: number): { now(): number; millisecondsUntil(instant: number): number } {
  const start = Date.now();
  const now = () => start + (Date.now() - start) * speed;
  return { now, millisecondsUntil: (instant) => (instant - now()) / speed };
}

/** The final answer of a `stream big` turn: far larger than a NOTIFY payload. */
export const STREAMED_ANSWER = `done ${'é😀 streamed '.repeat(800)}`;

/**
 * The final answer of a `unicode` turn: short, with characters outside ASCII, quotes, a newline, a
 * NUL (which PostgreSQL's `jsonb` refuses) and the private-use characters the host writes it with.
 */
export const UNICODE_ANSWER =
  'done: é, 😀, ✓\n"quoted" \\ nul \u0000 mark \uE000 pair \uE000\uE002 end';

function textPieces(text: string): string[] {
  if (text.length > 200) return [text.slice(0, 20), text.slice(20)];
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start += 3) pieces.push(text.slice(start, start + 3));
  return pieces;
}

/**
 * The scripted model. A turn whose first user message starts with `loop` calls `set_flag` at every
 * iteration; any other turn calls `append_line` and `set_flag` once, then answers `done` (a
 * `stream big` turn answers {@link STREAMED_ANSWER}, a `unicode` turn {@link UNICODE_ANSWER}); a
 * `flag only` turn calls `set_flag` alone, then answers `done`.
 */
export function scriptedAnswer(request: LlmRequest): LlmResponse {
  const firstUser = request.messages.findLast(
    (message) => message.role === 'user' && message.turnId === request.turnId,
  );
  const usage = { inputTokens: 1, outputTokens: 1 };
  if (firstUser && messageText(firstUser).startsWith('cleanup')) {
    if (request.iteration === 1) {
      return {
        text: 'removing',
        toolCalls: [{ id: 'remove', name: 'remove_file', arguments: { path: '/notes.txt' } }],
        usage,
        stopReason: 'tool_calls',
      };
    }
    return { text: 'cleaned', toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('slow')) {
    // `slow` turns pause for the client's answer at iteration 1 beside a slow server-side call
    // (its first run waits for a gate), then answer once the gate finish-<turnId> opens.
    if (request.iteration === 1) {
      return {
        text: 'asking slowly',
        toolCalls: [
          { id: 'ask1', name: 'ask_client', arguments: { question: 'colour?' } },
          { id: 'slow', name: 'slow_flag', arguments: { flag: 's' } },
        ],
        usage,
        stopReason: 'tool_calls',
      };
    }
    const answers = request.messages.flatMap((message) =>
      message.content.flatMap((part) =>
        part.type === 'tool_result' && part.toolCallId === 'ask1' ? [part.content] : [],
      ),
    );
    return {
      text: `slowly answered ${answers.join(',')}`,
      toolCalls: [],
      usage,
      stopReason: 'end_turn',
    };
  }
  if (firstUser && messageText(firstUser).startsWith('ask')) {
    // `ask` turns pause for the client's answer at iteration 1 (after a server-side call), and
    // `ask twice` turns once more at iteration 2.
    const twice = messageText(firstUser).startsWith('ask twice');
    if (request.iteration === 1 || (twice && request.iteration === 2)) {
      const id = `ask${request.iteration}`;
      return {
        text: 'asking',
        toolCalls: [
          { id, name: 'ask_client', arguments: { question: 'colour?' } },
          ...(request.iteration === 1
            ? [{ id: 'append', name: 'append_line', arguments: { line: 'x' } }]
            : []),
        ],
        usage,
        stopReason: 'tool_calls',
      };
    }
    const answers = request.messages.flatMap((message) =>
      message.content.flatMap((part) =>
        part.type === 'tool_result' && part.toolCallId.startsWith('ask') ? [part.content] : [],
      ),
    );
    return { text: `answered ${answers.join(',')}`, toolCalls: [], usage, stopReason: 'end_turn' };
  }
  const scheduled = firstUser?.metadata?.[SCHEDULED_MESSAGE_METADATA_KEY];
  if (firstUser && scheduled) {
    // A scheduled message: answered at once.
    return { text: `got ${messageText(firstUser)}`, toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('remind')) {
    // `remind once` schedules `ping` in a second, `remind cron` a `tick` every minute.
    if (request.iteration === 1) {
      const cron = messageText(firstUser).startsWith('remind cron');
      return {
        text: 'scheduling',
        toolCalls: [
          {
            id: 'schedule',
            name: 'create_schedule',
            arguments: cron
              ? { description: 'tick', cron_expression: '* * * * *' }
              : { description: 'ping', delay_seconds: 1 },
          },
        ],
        usage,
        stopReason: 'tool_calls',
      };
    }
    return { text: 'scheduled', toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('delegate')) {
    // `delegate` turns start one subagent (whose task is `child task`), then report its answer.
    if (request.iteration === 1) {
      return {
        text: 'delegating',
        toolCalls: [
          {
            id: 'spawn',
            name: 'spawn_agent',
            arguments: { name: 'helper', instructions: 'child task', system_prompt: 'You help.' },
          },
        ],
        usage,
        stopReason: 'tool_calls',
      };
    }
    const results = request.messages.flatMap((message) =>
      message.content.flatMap((part) =>
        part.type === 'tool_result' && part.toolCallId === 'spawn' ? [part.content] : [],
      ),
    );
    return { text: `delegated ${results.join(',')}`, toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('child')) {
    // A subagent's turn: sets a flag at iteration 1, answers `child done` at iteration 2.
    if (request.iteration === 1) {
      return {
        text: 'child working',
        toolCalls: [{ id: 'childflag', name: 'set_flag', arguments: { flag: 'c' } }],
        usage,
        stopReason: 'tool_calls',
      };
    }
    return { text: 'child done', toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('loop')) {
    return {
      text: `step ${request.iteration}`,
      toolCalls: [
        {
          id: `flag${request.iteration}`,
          name: 'set_flag',
          arguments: { flag: `f${request.iteration}` },
        },
      ],
      usage,
      stopReason: 'tool_calls',
    };
  }
  if (request.iteration === 1 && firstUser && messageText(firstUser).startsWith('flag only')) {
    return {
      text: 'flagging',
      toolCalls: [{ id: 'flag', name: 'set_flag', arguments: { flag: 'y' } }],
      usage,
      stopReason: 'tool_calls',
    };
  }
  if (request.iteration === 1) {
    return {
      text: 'working',
      toolCalls: [
        { id: 'append', name: 'append_line', arguments: { line: 'x' } },
        { id: 'flag', name: 'set_flag', arguments: { flag: 'y' } },
      ],
      usage,
      stopReason: 'tool_calls',
    };
  }
  if (firstUser && messageText(firstUser).startsWith('stream big')) {
    return { text: STREAMED_ANSWER, toolCalls: [], usage, stopReason: 'end_turn' };
  }
  if (firstUser && messageText(firstUser).startsWith('unicode')) {
    return { text: UNICODE_ANSWER, toolCalls: [], usage, stopReason: 'end_turn' };
  }
  return { text: 'done', toolCalls: [], usage, stopReason: 'end_turn' };
}

interface MessageFaults {
  beforeStore(message: NewMessage): void;
  afterStore(message: Message): void;
}

/** The real message store with fault points around appends (a decorator, not a fake). */
function faultInjectingMessages(
  store: RuntimeMessageStore,
  faults: MessageFaults,
): RuntimeMessageStore {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'storeMessage') {
        return async (sessionId: string, message: NewMessage, options?: never) => {
          faults.beforeStore(message);
          const stored = await target.storeMessage(sessionId, message, options);
          faults.afterStore(stored);
          return stored;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
