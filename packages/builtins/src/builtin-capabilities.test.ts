import { randomUUID } from 'node:crypto';
import { CURRENT_TIME_CAPABILITY_ID } from '@everruns-ts/capabilities-current-time';
import { FILE_SYSTEM_CAPABILITY_ID } from '@everruns-ts/capabilities-file-system';
import { TODO_CAPABILITY_ID } from '@everruns-ts/capabilities-todo';
import {
  type Capability,
  CapabilityRegistry,
  defineCapability,
  defineTool,
  type Message,
  PlatformDefinition,
} from '@everruns-ts/core';
import { LlmSimConfig } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BUILTIN_CAPABILITIES, registerBuiltins, withBuiltins } from './index.js';

const BUILTIN_IDS = [
  'current_time',
  'session_file_system',
  'agent_instructions',
  'skills',
  'session',
  'session_storage',
  'stateless_todo_list',
  'web_fetch',
  'memory',
  'persistent_memory',
  'test_math',
  'test_weather',
];

function toolResults(messages: Message[]): Map<string, { content: string; isError: boolean }> {
  const results = new Map<string, { content: string; isError: boolean }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') results.set(part.toolCallId, part);
  return results;
}

/** A capability that claims the todo list's id with a tool of its own. */
function ownTodoList(): Capability {
  return defineCapability({
    id: TODO_CAPABILITY_ID,
    name: 'Our task list',
    description: 'Replaces the built-in task list.',
    tools: [
      defineTool({
        name: 'add_task',
        description: 'Adds a task.',
        inputSchema: z.strictObject({ task: z.string() }),
        execute: ({ task }) => `added ${task}`,
      }),
    ],
  });
}

function ids(registry: CapabilityRegistry): string[] {
  return registry.list().map((capability) => capability.id);
}

describe('BUILTIN_CAPABILITIES', () => {
  it('lists the eleven built-ins in upstream order and cannot be changed', () => {
    expect(BUILTIN_CAPABILITIES.map((capability) => capability.id)).toEqual(BUILTIN_IDS);
    expect(Object.isFrozen(BUILTIN_CAPABILITIES)).toBe(true);
  });
});

describe('InProcessRuntimeBuilder.builtins', () => {
  it('runs a turn with built-in file and clock tools the builder was given explicitly', async () => {
    const path = `/notes-${randomUUID()}.txt`;
    const runtime = await new InProcessRuntimeBuilder()
      .builtins(BUILTIN_CAPABILITIES)
      .llmSim(
        LlmSimConfig.sequence(['', '', 'Noted.']).withToolCallSequence([
          [
            { id: 'write', name: 'write_file', arguments: { path, content: 'buy milk' } },
            { id: 'time', name: 'get_current_time', arguments: { format: 'unix' } },
          ],
          [{ id: 'read', name: 'read_file', arguments: { path } }],
          [],
        ]),
      )
      .singleSession((session) =>
        session
          .harness('notes', 'You keep notes.')
          .withCapability(FILE_SYSTEM_CAPABILITY_ID)
          .withCapability(CURRENT_TIME_CAPABILITY_ID),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;

    expect(ids(runtime.platform.capabilities)).toEqual(BUILTIN_IDS);
    const result = await runtime.runTextTurn(sessionId, 'Note that I need milk');
    expect(result).toMatchObject({ success: true, response: 'Noted.', toolCallsCount: 3 });
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.get('write')?.isError).toBe(false);
    expect(results.get('read')?.content).toContain('buy milk');
    expect(JSON.parse(results.get('time')?.content ?? '{}').timestamp).toBeGreaterThan(0);
    expect(await runtime.readFile(sessionId, path)).toMatchObject({ content: 'buy milk' });
  });

  it('registers only the capabilities it is given when builtins() is not called', async () => {
    const runtime = await new InProcessRuntimeBuilder().llmSim(LlmSimConfig.fixed('ok')).build();
    expect(ids(runtime.platform.capabilities)).toEqual([]);

    const named = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('ok'))
      .singleSession((session) =>
        session.harness('h', '').withCapability(CURRENT_TIME_CAPABILITY_ID),
      )
      .build();
    await expect(named.loadContext(named.defaultSessionId() as string)).rejects.toMatchObject({
      code: 'CAPABILITY_NOT_FOUND',
    });
  });

  it('lets a capability given to capability() replace the built-in of its id, in either order', async () => {
    for (const order of ['capability first', 'builtins first'] as const) {
      const own = ownTodoList();
      const builder = new InProcessRuntimeBuilder();
      if (order === 'capability first') builder.capability(own).builtins(BUILTIN_CAPABILITIES);
      else builder.builtins(BUILTIN_CAPABILITIES).capability(own);
      const runtime = await builder
        .llmSim(
          LlmSimConfig.sequence(['', 'Added.']).withToolCallSequence([
            [{ id: 'add', name: 'add_task', arguments: { task: 'ship it' } }],
            [],
          ]),
        )
        .singleSession((session) => session.harness('h', '').withCapability(TODO_CAPABILITY_ID))
        .build();
      const sessionId = runtime.defaultSessionId() as string;

      expect(runtime.platform.capabilities.get(TODO_CAPABILITY_ID), order).toBe(own);
      expect(ids(runtime.platform.capabilities)).toHaveLength(BUILTIN_IDS.length);
      const context = await runtime.loadContext(sessionId);
      expect(context.tools.map((tool) => tool.name)).toEqual(['add_task']);
      expect(await runtime.runTextTurn(sessionId, 'add a task')).toMatchObject({ success: true });
      expect(toolResults(await runtime.messages(sessionId)).get('add')).toMatchObject({
        content: 'added ship it',
        isError: false,
      });
    }
  });

  it('keeps what a given platform registers and adds the other built-ins to it', async () => {
    const own = ownTodoList();
    const platform = new PlatformDefinition();
    platform.capabilities.register(own);
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .builtins(BUILTIN_CAPABILITIES)
      .llmSim(LlmSimConfig.fixed('ok'))
      .build();
    expect(runtime.platform.capabilities.get(TODO_CAPABILITY_ID)).toBe(own);
    expect(ids(runtime.platform.capabilities).sort()).toEqual([...BUILTIN_IDS].sort());
  });

  it('uses only what a given platform registers when builtins() is not called', async () => {
    const platform = new PlatformDefinition();
    platform.capabilities.register(ownTodoList());
    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(platform)
      .llmSim(LlmSimConfig.fixed('ok'))
      .build();
    expect(ids(runtime.platform.capabilities)).toEqual([TODO_CAPABILITY_ID]);
  });
});

describe('registerBuiltins and withBuiltins', () => {
  it('registers every built-in into an empty registry and returns it', () => {
    const registry = new CapabilityRegistry();
    expect(registerBuiltins(registry)).toBe(registry);
    expect(ids(registry)).toEqual(BUILTIN_IDS);
    registry.validate();
  });

  it('keeps a capability registered first under its id instead of the built-in', () => {
    const own = ownTodoList();
    const registry = registerBuiltins(new CapabilityRegistry().register(own));
    expect(registry.get(TODO_CAPABILITY_ID)).toBe(own);
    expect(ids(registry)).toHaveLength(BUILTIN_IDS.length);
  });

  it('gives a platform with the built-ins that a durable host or a builder can use', async () => {
    expect(ids(withBuiltins().capabilities)).toEqual(BUILTIN_IDS);
    const own = ownTodoList();
    const given = new PlatformDefinition();
    given.capabilities.register(own);
    const platform = withBuiltins(given);
    expect(platform).toBe(given);
    expect(platform.capabilities.get(TODO_CAPABILITY_ID)).toBe(own);

    const runtime = await new InProcessRuntimeBuilder()
      .platformDefinition(withBuiltins())
      .llmSim(LlmSimConfig.fixed('The time tool is there.'))
      .singleSession((session) =>
        session.harness('h', '').withCapability(CURRENT_TIME_CAPABILITY_ID),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;
    expect((await runtime.loadContext(sessionId)).tools.map((tool) => tool.name)).toEqual([
      'get_current_time',
    ]);
    expect(await runtime.runTextTurn(sessionId, 'hi')).toMatchObject({ success: true });
  });
});
