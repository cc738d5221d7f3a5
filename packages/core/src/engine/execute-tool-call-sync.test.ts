import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { ToolDefinition } from '../capability.js';
import { defineTool } from '../capability-kit.js';
import { EverrunsError } from '../errors.js';
import type { SessionFileSystem } from '../file-system.js';
import type { ToolCall } from '../message.js';
import type { MemoryStore, RuntimeSessionStore, SessionStorageStore } from '../stores.js';
import { executeToolCall, type ToolExecutionDependencies } from './execute-tool-call.js';
import type { TurnTool } from './turn-types.js';

// A tool whose execute returns a value (not a promise) takes the fast path: it cannot be
// interrupted while it runs, so no timeout timer is armed; an async tool keeps its timer.

const dependencies: ToolExecutionDependencies = {
  backends: {
    storage: {} as SessionStorageStore,
    sessions: {} as RuntimeSessionStore,
    memory: {} as MemoryStore,
  },
  fileSystems: {},
  limits: { toolTimeoutMs: 1_000, maxToolResultChars: 1_000 },
};

function run(tool: ToolDefinition<never, unknown>, signal?: AbortSignal) {
  const tools = new Map<string, TurnTool>([
    [tool.name, { tool: tool as ToolDefinition, capabilityId: 'test', config: undefined }],
  ]);
  const call: ToolCall = { id: `call_${randomUUID()}`, name: tool.name, arguments: {} };
  return executeToolCall(dependencies, {
    call,
    tools,
    sessionId: 'session_sync',
    turnId: 'turn_sync',
    iteration: 1,
    fileSystem: {} as SessionFileSystem,
    ...(signal ? { signal } : {}),
  });
}

afterEach(() => vi.restoreAllMocks());

describe('executeToolCall of a synchronous tool', () => {
  it('arms no timer for a tool that answers synchronously, one for an async tool', async () => {
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const sync = defineTool({
      name: 'sync',
      description: 'Answers at once',
      inputSchema: z.object({}),
      execute: () => 'done',
    });
    expect(await run(sync)).toEqual({ content: 'done', isError: false });
    expect(timers).not.toHaveBeenCalled();
    const later = defineTool({
      name: 'later',
      description: 'Answers later',
      inputSchema: z.object({}),
      execute: async () => 'done later',
    });
    expect(await run(later)).toEqual({ content: 'done later', isError: false });
    expect(timers).toHaveBeenCalledTimes(1);
  });

  it('throws ABORTED when the turn is aborted while a synchronous tool runs', async () => {
    const controller = new AbortController();
    const stopper = defineTool({
      name: 'stopper',
      description: 'Aborts the turn while it runs',
      inputSchema: z.object({}),
      execute: () => {
        controller.abort(new Error('stopped'));
        return 'finished anyway';
      },
    });
    const error = await run(stopper, controller.signal).catch((caught: unknown) => caught);
    expect(EverrunsError.hasCode(error, 'ABORTED')).toBe(true);
  });

  it('reports a synchronous throw as a tool error', async () => {
    const thrower = defineTool({
      name: 'thrower',
      description: 'Throws',
      inputSchema: z.object({}),
      execute: () => {
        throw new Error('broken');
      },
    });
    expect(await run(thrower)).toEqual({ content: 'Tool thrower failed: broken', isError: true });
  });
});
