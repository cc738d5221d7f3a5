import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { TODO_CAPABILITY_ID, todoCapability } from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') results.set(part.toolCallId, part);
  return results;
}

async function runCalls(calls: LlmSimToolCall[]) {
  const runtime = await new InProcessRuntimeBuilder()
    .capability(todoCapability)
    .llmSim(
      calls.length === 0
        ? LlmSimConfig.fixed('done')
        : LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
    )
    .singleSession((session) => session.harness('planner', '').withCapability(TODO_CAPABILITY_ID))
    .build();
  const sessionId = runtime.defaultSessionId() as string;
  const result = await runtime.runTextTurn(sessionId, 'plan the release');
  expect(result).toMatchObject({ success: true, response: 'done' });
  return { runtime, sessionId, results: toolResults(await runtime.messages(sessionId)) };
}

const task = (content: string, status: string) => ({
  content,
  activeForm: `${content}ing`,
  status,
});

describe('todoCapability', () => {
  it('echoes the list with counts, and warns about zero or several tasks in progress', async () => {
    const { results } = await runCalls([
      {
        id: 'one',
        name: 'write_todos',
        arguments: {
          todos: [task('Build', 'completed'), task('Test', 'in_progress'), task('Ship', 'pending')],
        },
      },
      { id: 'none', name: 'write_todos', arguments: { todos: [task('Build', 'pending')] } },
      {
        id: 'two',
        name: 'write_todos',
        arguments: { todos: [task('Build', 'in_progress'), task('Test', 'in_progress')] },
      },
      { id: 'empty', name: 'write_todos', arguments: { todos: [] } },
    ]);
    expect(JSON.parse(results.get('one')?.content ?? '')).toEqual({
      todos: [task('Build', 'completed'), task('Test', 'in_progress'), task('Ship', 'pending')],
      total_tasks: 3,
      pending: 1,
      in_progress: 1,
      completed: 1,
    });
    expect(JSON.parse(results.get('none')?.content ?? '').warning).toContain(
      'No task is in_progress',
    );
    expect(JSON.parse(results.get('two')?.content ?? '').warning).toContain(
      '2 tasks are in_progress',
    );
    expect(JSON.parse(results.get('empty')?.content ?? '')).toMatchObject({ total_tasks: 0 });
  });

  it('reports a missing field, a wrong type, an unknown status and an extra field as tool errors', async () => {
    const { results } = await runCalls([
      { id: 'missing', name: 'write_todos', arguments: {} },
      { id: 'type', name: 'write_todos', arguments: { todos: 'build it' } },
      { id: 'status', name: 'write_todos', arguments: { todos: [task('Build', 'doing')] } },
      { id: 'blank', name: 'write_todos', arguments: { todos: [task(' ', 'pending')] } },
      { id: 'extra', name: 'write_todos', arguments: { todos: [], owner: 'me' } },
      {
        id: 'extra-item',
        name: 'write_todos',
        arguments: { todos: [{ ...task('Build', 'pending'), priority: 1 }] },
      },
    ]);
    const error = (id: string) => {
      expect(results.get(id)?.isError, id).toBe(true);
      return results.get(id)?.content ?? '';
    };
    expect(error('missing')).toMatch(/write_todos: todos:/);
    expect(error('type')).toMatch(/todos: .*array/);
    expect(error('status')).toMatch(/todos\.0\.status/);
    expect(error('blank')).toMatch(/todos\.0\.content/);
    expect(error('extra')).toContain('owner');
    expect(error('extra-item')).toContain('priority');
  });

  it('adds its guidance to the system prompt', async () => {
    const { runtime, sessionId } = await runCalls([]);
    const context = await runtime.loadContext(sessionId);
    expect(context.capabilityPrompts.map((prompt) => prompt.capabilityId)).toContain(
      'stateless_todo_list',
    );
    expect(context.tools.map((tool) => tool.name)).toContain('write_todos');
  });
});
