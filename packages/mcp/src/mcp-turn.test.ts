import { fileURLToPath } from 'node:url';
import type { Message } from '@everruns-ts/core';
import { InProcessRuntimeBuilder, InputMessage, LlmSimConfig } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { McpClientPool } from './index.js';

// The package as a platform uses it: the pool is the runtime's MCP tool source, the session's
// server is the demo server run as a stdio child, and llmsim plays the model.

const DEMO_SERVER = fileURLToPath(new URL('../test-servers/demo-server.mjs', import.meta.url));

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) =>
      part.type === 'tool_result' ? [{ content: part.content, isError: part.isError }] : [],
    ),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('MCP tools in a turn', () => {
  it('calls MCP tools through a full turn: results, a server error, a timeout and a crash, then close', async () => {
    const seenTools: string[][] = [];
    const calls = [
      [
        { id: 'c1', name: 'demo__add', arguments: { a: 2, b: 3 } },
        { id: 'c2', name: 'demo__divide', arguments: { a: 1, b: 0 } },
      ],
      [{ id: 'c3', name: 'demo__hang', arguments: {} }],
      [{ id: 'c4', name: 'demo__crash', arguments: {} }],
      [{ id: 'c5', name: 'demo__whoami', arguments: {} }],
    ];
    const runtime = await new InProcessRuntimeBuilder()
      .mcpToolSource(new McpClientPool({ stderr: 'ignore' }))
      .llmSim(
        LlmSimConfig.fromFunction((request, { index }) => {
          seenTools.push(request.tools.map((tool) => tool.name));
          const next = calls[index];
          return next ? { toolCalls: next } : 'all done';
        }),
      )
      .singleSession((s) =>
        s.sessionMcpServer('demo', {
          transport: 'stdio',
          command: process.execPath,
          args: [DEMO_SERVER],
          timeoutMs: 500,
          connectTimeoutMs: 60_000,
          tools: ['add', 'divide', 'hang', 'crash', 'whoami'],
        }),
      )
      .build();
    const sessionId = runtime.defaultSessionId() as string;

    const context = await runtime.loadContext(sessionId);
    const add = context.tools.find((tool) => tool.name === 'demo__add');
    expect(add?.inputSchema).toMatchObject({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
    });

    const result = await runtime.runTurn(sessionId, InputMessage.user('work with the server'));
    expect(result).toMatchObject({ success: true, response: 'all done' });
    expect(seenTools[0]).toEqual([
      'demo__add',
      'demo__divide',
      'demo__hang',
      'demo__crash',
      'demo__whoami',
    ]);
    const results = toolResults(await runtime.messages(sessionId));
    expect(results.slice(0, 4)).toEqual([
      { content: '{"sum":5}', isError: false },
      { content: 'division by zero', isError: true },
      { content: expect.stringMatching(/demo failed on hang: timed out/), isError: true },
      { content: expect.stringMatching(/demo failed on crash/), isError: true },
    ]);
    // The call after the crash reconnected: a fresh server process answers.
    const whoami = results[4];
    expect(whoami?.isError).toBe(false);
    const { pid } = JSON.parse(whoami?.content ?? '{}') as { pid: number };
    expect(alive(pid)).toBe(true);

    await runtime.close();
    expect(alive(pid)).toBe(false);
  }, 120_000);
});
