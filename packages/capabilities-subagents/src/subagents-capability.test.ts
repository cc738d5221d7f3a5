import { randomBytes } from 'node:crypto';
import { fileSystemCapability } from '@everruns-ts/capabilities-file-system';
import {
  LLMSIM_DEFAULT_MODEL,
  type LlmRequest,
  type Message,
  messageText,
  type RuntimeBackends,
  type RuntimeEvent,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimResult } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { inMemoryBackends } from '@everruns-ts/stores-memory';
import { type PostgresBackends, postgresBackends } from '@everruns-ts/stores-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type SpawnAgentResult,
  SUBAGENTS_CAPABILITY_ID,
  type SubagentsConfigInput,
  subagentsCapability,
} from './index.js';

// The subagents capability through real turns on the in-memory stores and on PostgreSQL: one
// simulated model answers every session, routed by the role marker in its system prompt.

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `subagents_${randomBytes(6).toString('hex')}`;
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
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

const backendsByName: Record<string, () => RuntimeBackends> = {
  memory: () => inMemoryBackends(),
  postgres: openPostgres,
};

type Handler = (request: LlmRequest, last: Message | undefined) => LlmSimResult;

/** The last message's tool results, or its text. */
function lastToolResults(message: Message | undefined) {
  return (message?.content ?? []).flatMap((part) => (part.type === 'tool_result' ? [part] : []));
}

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

/** A model that answers each session by the last `ROLE:<name>` marker of its system prompt. */
function routedModel(handlers: Record<string, Handler>): LlmSimDriver {
  return new LlmSimDriver(
    LlmSimConfig.fromFunction((request) => {
      const role = [...request.systemPrompt.matchAll(/ROLE:([a-z_]+)/g)].at(-1)?.[1] ?? 'none';
      const handler = handlers[role];
      if (!handler) throw new Error(`no handler for role ${role}`);
      return handler(request, request.messages.at(-1));
    }),
  );
}

const id = () => randomBytes(6).toString('hex');

describe.each(Object.keys(backendsByName))('subagents on %s', (backendName) => {
  async function build(
    config: SubagentsConfigInput,
    driver: LlmSimDriver,
    options: { modelId?: string } = {},
  ): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
    const runtime = await new InProcessRuntimeBuilder()
      .backends(backendsByName[backendName]!())
      .capability(subagentsCapability)
      .capability(fileSystemCapability)
      .driver(driver)
      .defaultModel(LLMSIM_DEFAULT_MODEL)
      .model('other-model', { ...LLMSIM_DEFAULT_MODEL, model: 'other-model' })
      .build();
    const harness = `h_${id()}`;
    // The capabilities sit on the harness, so children (created on the parent's harness) get them.
    await runtime.createHarness({
      id: harness,
      name: harness,
      systemPrompt: 'ROLE:lead',
      capabilities: [{ id: SUBAGENTS_CAPABILITY_ID, config }, { id: 'session_file_system' }],
    });
    const session = await runtime.createSession({
      harnessId: harness,
      ...(options.modelId ? { modelId: options.modelId } : {}),
    });
    return { runtime, sessionId: session.id };
  }

  /** The lead delegates once with `args`, then answers with what came back. */
  const lead =
    (args: Record<string, unknown>): Handler =>
    (_request, last) => {
      const [result] = lastToolResults(last);
      if (result) return { text: `lead got: ${result.content}` };
      return { toolCalls: [{ id: `call_${id()}`, name: 'spawn_agent', arguments: args }] };
    };

  it('runs a configured agent in a linked child session and returns its answer as the tool result', async () => {
    const driver = routedModel({
      lead: lead({
        name: 'Researcher',
        instructions: 'find the capital of France',
        agent: 'researcher',
      }),
      researcher: (request, last) => ({
        text: `Paris (asked: ${messageText(last as Message)}; prompt has ${request.systemPrompt.includes('Be thorough') ? 'the agent prompt' : 'no agent prompt'})`,
      }),
    });
    const { runtime, sessionId } = await build(
      {
        agents: [
          {
            name: 'researcher',
            description: 'looks things up',
            systemPrompt: 'ROLE:researcher Be thorough.',
          },
        ],
      },
      driver,
    );
    const turn = await runtime.runTextTurn(sessionId, 'What is the capital of France?');
    expect(turn.success).toBe(true);

    const [result] = toolResults(await runtime.messages(sessionId));
    expect(result?.isError).toBe(false);
    const spawned = JSON.parse(result?.content ?? '{}') as SpawnAgentResult;
    expect(spawned).toMatchObject({
      name: 'Researcher',
      status: 'completed',
      result: 'Paris (asked: find the capital of France; prompt has the agent prompt)',
      iterations: 1,
    });
    expect(turn.response).toBe(`lead got: ${result?.content}`);

    // The child is a session of its own, linked to its parent and named after the call.
    const child = await runtime.getSession(spawned.subagent_session_id);
    expect(child).toMatchObject({
      parentSessionId: sessionId,
      title: 'Researcher',
      status: 'idle',
    });
    expect(child?.workspaceSessionId).toBeUndefined();
    const childMessages = await runtime.messages(spawned.subagent_session_id);
    expect(childMessages.map((message) => message.role)).toEqual(['user', 'agent']);
    expect(childMessages[0]?.metadata?.subagent).toMatchObject({ parentSessionId: sessionId });

    // The parent's events tell when the child started and how it ended.
    const events = runtime.events(sessionId).length
      ? runtime.events(sessionId)
      : await storedEvents(runtime.backends, sessionId);
    const started = events.find((event) => event.type === 'subagent.started');
    const completed = events.find((event) => event.type === 'subagent.completed');
    expect(started?.data).toMatchObject({
      childSessionId: child?.id,
      name: 'Researcher',
      resumed: false,
      metadata: { agent: 'researcher' },
    });
    expect(completed?.data).toMatchObject({
      childSessionId: child?.id,
      success: true,
      stopReason: 'end_turn',
    });
    expect(completed?.turnId).toBe(turn.turnId);
    // The host lists the children of a session.
    const children = await runtime.hostAdapter.subagents?.children(sessionId);
    expect(children?.map((session) => session.id)).toEqual([child?.id]);
    await runtime.close();
  });

  it('shares the workspace and the model only when configured', async () => {
    const writer: Handler = (_request, last) =>
      last?.role === 'user'
        ? {
            toolCalls: [
              {
                id: `w_${id()}`,
                name: 'write_file',
                arguments: { path: '/notes.txt', content: 'from the child' },
              },
            ],
          }
        : { text: 'written' };
    for (const inherit of [true, false]) {
      const driver = routedModel({
        lead: lead({
          name: 'Writer',
          instructions: 'write the notes',
          system_prompt: 'ROLE:writer',
        }),
        writer,
      });
      const { runtime, sessionId } = await build(
        { inheritWorkspace: inherit, inheritModel: inherit },
        driver,
        { modelId: 'other-model' },
      );
      expect((await runtime.runTextTurn(sessionId, 'take notes')).success).toBe(true);
      const [result] = toolResults(await runtime.messages(sessionId));
      const spawned = JSON.parse(result?.content ?? '{}') as SpawnAgentResult;
      expect(spawned.status).toBe('completed');
      const child = await runtime.getSession(spawned.subagent_session_id);
      const parentFiles = await runtime.fileSystem(sessionId);
      const childFiles = await runtime.fileSystem(spawned.subagent_session_id);
      expect((await childFiles.statFile('/notes.txt'))?.size).toBe('from the child'.length);
      // The child's model calls: the parent's model when inherited, else the default.
      const childModels = driver.requests
        .filter((request) => request.systemPrompt.includes('ROLE:writer'))
        .map((request) => request.model.model);
      if (inherit) {
        expect(child?.workspaceSessionId).toBe(sessionId);
        expect((await parentFiles.readFile('/notes.txt')).content).toBe('from the child');
        expect(childModels).toEqual(['other-model', 'other-model']);
      } else {
        expect(child?.workspaceSessionId).toBeUndefined();
        expect(await parentFiles.statFile('/notes.txt')).toBeNull();
        expect(childModels).toEqual([LLMSIM_DEFAULT_MODEL.model, LLMSIM_DEFAULT_MODEL.model]);
      }
      await runtime.close();
    }
  });

  it('refuses a child deeper than maxSubagentDepth as a tool error the model reads', async () => {
    // Every session delegates once; the grandchild's call is refused at depth 2 > 1.
    let calls = 0;
    const delegateOnce: Handler = (_request, last) => {
      const [result] = lastToolResults(last);
      if (result) return { text: `${result.isError ? 'refused' : 'ok'}: ${result.content}` };
      calls++;
      return {
        toolCalls: [
          {
            id: `c_${id()}`,
            name: 'spawn_agent',
            arguments: {
              name: `level ${calls}`,
              instructions: 'go deeper',
              system_prompt: 'ROLE:lead deeper',
            },
          },
        ],
      };
    };
    const { runtime, sessionId } = await build(
      { maxSubagentDepth: 1 },
      routedModel({ lead: delegateOnce }),
    );
    const turn = await runtime.runTextTurn(sessionId, 'recurse');
    expect(turn.success).toBe(true);
    const [parentResult] = toolResults(await runtime.messages(sessionId));
    expect(parentResult?.isError).toBe(false);
    const child = JSON.parse(parentResult?.content ?? '{}') as SpawnAgentResult;
    // The child's own spawn_agent call failed with the limit; it answered with the refusal.
    expect(child.result).toContain('refused: ');
    expect(child.result).toContain('Subagent depth limit reached');
    expect(child.result).toContain('maxSubagentDepth is 1');
    const [childResult] = toolResults(await runtime.messages(child.subagent_session_id));
    expect(childResult?.isError).toBe(true);
    expect(await runtime.hostAdapter.subagents?.children(child.subagent_session_id)).toEqual([]);

    // Depth 0 forbids children at all.
    const none = await build({ maxSubagentDepth: 0 }, routedModel({ lead: delegateOnce }));
    expect((await none.runtime.runTextTurn(none.sessionId, 'try')).response).toContain(
      'refused: Tool spawn_agent failed: Subagent depth limit reached',
    );
    expect(await none.runtime.hostAdapter.subagents?.children(none.sessionId)).toEqual([]);
    await runtime.close();
    await none.runtime.close();
  });

  it('refuses children over maxChildrenPerTurn and reused names; the rest run', async () => {
    const driver = routedModel({
      lead: (_request, last) => {
        if (last?.role === 'tool_result') return { text: 'done' };
        return {
          toolCalls: ['a', 'A', 'b', 'c'].map((name, index) => ({
            id: `f_${index}_${id()}`,
            name: 'spawn_agent',
            arguments: {
              name,
              instructions: `task ${name}`,
              system_prompt: 'ROLE:worker',
            },
          })),
        };
      },
      worker: (_request, last) => ({ text: `did ${messageText(last as Message)}` }),
    });
    const { runtime, sessionId } = await build({ maxChildrenPerTurn: 2 }, driver);
    expect((await runtime.runTextTurn(sessionId, 'fan out')).success).toBe(true);
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.map((result) => result.isError)).toEqual([false, true, false, true]);
    expect(JSON.parse(results[0]?.content ?? '{}')).toMatchObject({ result: 'did task a' });
    expect(results[1]?.content).toContain('A subagent named "A" already exists');
    expect(JSON.parse(results[2]?.content ?? '{}')).toMatchObject({ result: 'did task b' });
    expect(results[3]?.content).toContain('maxChildrenPerTurn is 2');
    expect(await runtime.hostAdapter.subagents?.children(sessionId)).toHaveLength(2);
    await runtime.close();
  });

  it('an unknown agent or a forbidden ad-hoc prompt is a tool error; nothing is created', async () => {
    const driver = routedModel({
      lead: (_request, last) => {
        if (last?.role === 'tool_result') return { text: 'noted' };
        return {
          toolCalls: [
            {
              id: `u_${id()}`,
              name: 'spawn_agent',
              arguments: { name: 'x', instructions: 'i', agent: 'ghost' },
            },
            {
              id: `v_${id()}`,
              name: 'spawn_agent',
              arguments: { name: 'y', instructions: 'i', system_prompt: 'ROLE:worker' },
            },
          ],
        };
      },
    });
    const { runtime, sessionId } = await build(
      { allowInlinePrompt: false, agents: [{ name: 'helper', systemPrompt: 'ROLE:worker' }] },
      driver,
    );
    await runtime.runTextTurn(sessionId, 'go');
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.map((result) => result.isError)).toEqual([true, true]);
    expect(results[0]?.content).toContain('No agent named "ghost"; configured: helper');
    expect(results[1]?.content).toContain('Ad-hoc subagents are not allowed here');
    expect(await runtime.hostAdapter.subagents?.children(sessionId)).toEqual([]);
    await runtime.close();
  });

  it('aborting the parent turn aborts the running child; both end idle', async () => {
    let childStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      childStarted = resolve;
    });
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction(async (request, info) => {
        if (request.systemPrompt.includes('ROLE:slow')) {
          childStarted();
          await new Promise((_resolve, reject) => {
            info.signal?.addEventListener('abort', () => reject(info.signal?.reason), {
              once: true,
            });
          });
        }
        return {
          toolCalls: [
            {
              id: `s_${id()}`,
              name: 'spawn_agent',
              arguments: { name: 'slow', instructions: 'wait', system_prompt: 'ROLE:slow' },
            },
          ],
        };
      }),
    );
    const { runtime, sessionId } = await build({}, driver);
    const controller = new AbortController();
    const turn = runtime.runTextTurn(sessionId, 'start it', { signal: controller.signal });
    await started;
    controller.abort();
    await expect(turn).rejects.toMatchObject({ code: 'ABORTED' });
    const [child] = (await runtime.hostAdapter.subagents?.children(sessionId)) ?? [];
    expect(child).toBeDefined();
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');
    expect((await runtime.getSession(child?.id as string))?.status).toBe('idle');
    const childEvents = await storedEvents(runtime, child?.id as string);
    expect(childEvents.map((event) => event.type)).toContain('turn.failed');
    await runtime.close();
  });

  it('a second run of the same tool call resumes its child instead of creating another', async () => {
    const driver = routedModel({
      worker: (_request, last) => ({ text: `answer to ${messageText(last as Message)}` }),
    });
    const { runtime, sessionId } = await build({}, driver);
    const host = runtime.hostAdapter.subagents;
    if (!host) throw new Error('the in-process runtime offers a subagent host');
    const scope = {
      sessionId,
      turnId: `turn_${id()}`,
      toolCallId: 'call_1',
      signal: new AbortController().signal,
    };
    const request = { name: 'once', instructions: 'first', systemPrompt: 'ROLE:worker' };
    const first = await host.run(scope, request);
    const again = await host.run(scope, { ...request, instructions: 'second' });
    expect(first.resumed).toBe(false);
    expect(again).toMatchObject({
      sessionId: first.sessionId,
      resumed: true,
      response: 'answer to second',
    });
    expect(await host.children(sessionId)).toHaveLength(1);
    // A fresh runtime on the same stores (a restarted process) finds the same child.
    if (backendName === 'postgres') {
      const restarted = await new InProcessRuntimeBuilder()
        .backends(openPostgres())
        .capability(subagentsCapability)
        .capability(fileSystemCapability)
        .driver(driver)
        .defaultModel(LLMSIM_DEFAULT_MODEL)
        .build();
      const third = await restarted.hostAdapter.subagents?.run(scope, {
        ...request,
        instructions: 'third',
      });
      expect(third).toMatchObject({ sessionId: first.sessionId, resumed: true });
      expect((await restarted.getSession(first.sessionId))?.parentSessionId).toBe(sessionId);
      await restarted.close();
    }
    await runtime.close();
  });
});

interface PagedEventBus {
  loadEvents(
    sessionId: string,
    page?: { afterSeq?: number; limit?: number },
  ): Promise<RuntimeEvent[]>;
}

/** Every kept event of a session (stored on PostgreSQL, collected in memory). */
async function storedEvents(
  source: RuntimeBackends | InProcessRuntime,
  sessionId: string,
): Promise<RuntimeEvent[]> {
  const backends =
    'backends' in source && 'events' in source.backends
      ? source.backends
      : (source as RuntimeBackends);
  const bus = backends.events as RuntimeBackends['events'] & Partial<PagedEventBus>;
  if (typeof bus.loadEvents !== 'function') return bus.collectedEvents?.(sessionId) ?? [];
  return bus.loadEvents(sessionId, { afterSeq: 0, limit: 10_000 });
}
