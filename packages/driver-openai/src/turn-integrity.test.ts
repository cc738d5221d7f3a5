import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import { defineCapability, defineTool, EverrunsError } from '@everruns-ts/core';
import {
  closeFakeServers,
  type FakeServer,
  json,
  type Reply,
  startFakeServer,
} from '@everruns-ts/driver-test-support';
import { HarnessBuilder, InProcessRuntimeBuilder, SessionBuilder } from '@everruns-ts/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { OpenAiDriver } from './index.js';

// Issue 13 acceptance: a turn aborted while a tool runs must not break the session for an
// OpenAI-compatible server, which answers 400 when a tool call lacks its result (or a result
// answers no call). The fake server below enforces exactly that on every request.

afterEach(closeFakeServers);

interface ChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: Array<{ id: string }>;
  tool_call_id?: string;
}

/** What the server objects to, the way OpenAI does, or `undefined` for a well-formed history. */
function toolPairingProblem(messages: ChatMessage[]): string | undefined {
  const seen = new Set<string>();
  let pending: string[] = [];
  for (const message of messages) {
    if (message.role === 'tool') {
      const id = message.tool_call_id ?? '';
      if (!pending.includes(id)) {
        return `Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (${id}).`;
      }
      pending = pending.filter((entry) => entry !== id);
      continue;
    }
    if (pending.length > 0) {
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. Missing: ${pending.join(', ')}`;
    }
    for (const call of message.tool_calls ?? []) {
      if (seen.has(call.id)) return `Duplicate tool_call id ${call.id}.`;
      seen.add(call.id);
      pending.push(call.id);
    }
  }
  if (pending.length > 0) {
    return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. Missing: ${pending.join(', ')}`;
  }
  return undefined;
}

/** Starts a server that checks each request's tool pairing before giving the scripted answer. */
async function startEnforcingServer(
  replies: Reply[],
): Promise<FakeServer & { rejected: string[] }> {
  const rejected: string[] = [];
  const holder: { server?: FakeServer } = {};
  const enforcing = replies.map(
    (reply): Reply =>
      (response, request) => {
        const body = holder.server?.requests.at(-1)?.body as { messages: ChatMessage[] };
        const problem = toolPairingProblem(body.messages);
        if (!problem) return reply(response, request);
        rejected.push(problem);
        return json(400, {
          error: {
            message: problem,
            type: 'invalid_request_error',
            param: 'messages',
            code: null,
          },
        })(response, request);
      },
  );
  const server = await startFakeServer(enforcing, { basePath: '/v1' });
  holder.server = server;
  return Object.assign(server, { rejected });
}

function completion(message: {
  content: string | null;
  tool_calls?: Array<{ id: string; name: string; arguments: string }>;
}): Reply {
  return json(200, {
    id: `chatcmpl-${Math.random().toString(16).slice(2)}`,
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4.1-mini',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content,
          ...(message.tool_calls
            ? {
                tool_calls: message.tool_calls.map((call) => ({
                  id: call.id,
                  type: 'function',
                  function: { name: call.name, arguments: call.arguments },
                })),
              }
            : {}),
          refusal: null,
        },
        finish_reason: message.tool_calls ? 'tool_calls' : 'stop',
      },
    ],
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
  });
}

describe('turn integrity through the OpenAI driver', () => {
  it('after a turn aborted during a hanging tool, the next two turns succeed against a server that enforces tool results', async () => {
    let hanging = 0;
    const waiting = defineCapability({
      id: 'waiting',
      name: 'Waiting',
      description: 'a tool that runs until the turn is aborted',
      tools: [
        defineTool({
          name: 'wait_forever',
          description: 'waits until aborted',
          inputSchema: z.object({}),
          execute: (_input, context) =>
            new Promise((_resolve, reject) => {
              hanging++;
              context.signal.addEventListener('abort', () => reject(new Error('stopped')));
            }),
        }),
      ],
    });
    const server = await startEnforcingServer([
      // Turn 1: the model calls the hanging tool; the turn is aborted while it runs.
      completion({
        content: null,
        tool_calls: [{ id: 'call_wait_1', name: 'wait_forever', arguments: '{}' }],
      }),
      // Turn 2: the model reuses the id of turn 1's call for a new call, then answers.
      completion({
        content: null,
        tool_calls: [{ id: 'call_wait_1', name: 'add', arguments: '{"a":2,"b":3}' }],
      }),
      completion({ content: 'It is 5.' }),
      // Turn 3: a plain answer.
      completion({ content: 'Still here.' }),
    ]);
    const harness = new HarnessBuilder('waiter', 'You wait and add.')
      .capability('test_math')
      .capability('waiting');
    const session = new SessionBuilder(harness.harnessId());
    const runtime = await new InProcessRuntimeBuilder()
      .capability(testMathCapability)
      .capability(waiting)
      .driver(new OpenAiDriver({ streaming: false }))
      .defaultModel({
        model: 'gpt-4.1-mini',
        providerType: 'openai',
        apiKey: 'sk-test-integrity',
        baseUrl: server.baseUrl,
      })
      .harness(harness.build())
      .session(session.build())
      .build();
    const sessionId = session.sessionId();

    const controller = new AbortController();
    const first = runtime.runTextTurn(sessionId, 'Wait for me.', { signal: controller.signal });
    while (hanging === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    controller.abort();
    const aborted = await first.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(EverrunsError.hasCode(aborted, 'ABORTED')).toBe(true);
    expect((await runtime.getSession(sessionId))?.status).toBe('idle');

    const second = await runtime.runTextTurn(sessionId, 'What is 2 + 3?');
    expect(second).toMatchObject({ success: true, response: 'It is 5.', toolCallsCount: 1 });
    const third = await runtime.runTextTurn(sessionId, 'Are you there?');
    expect(third).toMatchObject({ success: true, response: 'Still here.' });

    expect(server.rejected).toEqual([]);
    expect(server.requests).toHaveLength(4);
    // The last request carries the whole history: two calls, each answered, distinct ids.
    const last = server.requests[3]?.body as { messages: ChatMessage[] };
    const callIds = last.messages.flatMap((message) =>
      (message.tool_calls ?? []).map((call) => call.id),
    );
    expect(callIds).toHaveLength(2);
    expect(new Set(callIds).size).toBe(2);
    const toolMessages = last.messages.filter((message) => message.role === 'tool');
    expect(toolMessages.map((message) => message.tool_call_id)).toEqual(callIds);
    expect(String(toolMessages[1]?.content)).toContain('5');
    await runtime.close();
  });
});
