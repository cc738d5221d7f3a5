import { testMathCapability } from '@everruns-ts/capabilities-test-math';
import {
  type Capability,
  defineCapability,
  defineTool,
  LLMSIM_DEFAULT_MODEL,
  type Message,
  messageText,
  toolError,
} from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type InProcessRuntime, InProcessRuntimeBuilder } from './index.js';

// Capability hooks (beforeModelCall, beforeToolCall, afterToolCall) through real turns.

async function buildRuntime(
  driver: LlmSimDriver,
  capabilities: Capability[],
  options: { prices?: Record<string, { inputPerMillion: number; outputPerMillion: number }> } = {},
): Promise<{ runtime: InProcessRuntime; sessionId: string }> {
  let builder = new InProcessRuntimeBuilder()
    .capability(testMathCapability)
    .driver(driver)
    .defaultModel(LLMSIM_DEFAULT_MODEL);
  for (const capability of capabilities) builder = builder.capability(capability);
  if (options.prices) builder = builder.prices(options.prices);
  const runtime = await builder
    .singleSession((session) => {
      let harness = session
        .harness(`h_${crypto.randomUUID()}`, 'Answer briefly.')
        .withCapability('test_math');
      for (const capability of capabilities) harness = harness.withCapability(capability.id);
      return harness;
    })
    .build();
  return { runtime, sessionId: runtime.defaultSessionId() as string };
}

function toolResults(messages: readonly Message[]) {
  return messages.flatMap((message) =>
    message.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
  );
}

describe('beforeModelCall hooks', () => {
  it('add a section to the system prompt, replace the history sent (stored history untouched) while the stored history keeps every message', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    const seen: { messages: number; usageTurnCalls: number }[] = [];
    const trimmer = defineCapability({
      id: 'trim_history',
      name: 'Trim history',
      description: 'Sends only the latest message.',
      tools: [],
      async beforeModelCall(context) {
        const usage = await context.usage();
        seen.push({
          messages: context.messages.length,
          usageTurnCalls: usage.turn.reduce((sum, total) => sum + total.modelCalls, 0),
        });
        return {
          messages: context.messages.slice(-1) as Message[],
          systemPromptAddition: 'Only the latest message is shown to you.',
          annotations: { dropped: context.messages.length - 1 },
        };
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [trimmer]);
    await runtime.runTextTurn(sessionId, 'first');
    await runtime.runTextTurn(sessionId, 'second');
    const last = driver.requests.at(-1);
    expect(last?.messages.map(messageText)).toEqual(['second']);
    expect(last?.systemPrompt).toContain(
      '<capability id="trim_history">\nOnly the latest message is shown to you.\n</capability>',
    );
    // The stored history keeps every message.
    const stored = await runtime.backends.messages.load(sessionId);
    expect(stored.map(messageText)).toEqual(['first', 'ok', 'second', 'ok']);
    expect(seen).toEqual([
      { messages: 1, usageTurnCalls: 0 },
      { messages: 3, usageTurnCalls: 0 },
    ]);
    await runtime.close();
  });

  it('a stop with BUDGET_EXHAUSTED ends the turn before the model call: success false, stop reason budget_exhausted, nothing stored', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('ok').withUsage({ inputTokens: 10, outputTokens: 5 }),
    );
    const budget = defineCapability({
      id: 'tiny_budget',
      name: 'Tiny budget',
      description: 'Allows 20 tokens per session.',
      tools: [],
      async beforeModelCall(context) {
        const { session } = await context.usage();
        const used = session.reduce(
          (sum, total) => sum + total.usage.inputTokens + total.usage.outputTokens,
          0,
        );
        if (used >= 20) {
          return {
            stop: {
              code: 'BUDGET_EXHAUSTED',
              message: `The session used ${used} of 20 tokens`,
              details: { used, limit: 20 },
            },
          };
        }
        return undefined;
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [budget]);
    expect((await runtime.runTextTurn(sessionId, 'one')).success).toBe(true);
    expect((await runtime.runTextTurn(sessionId, 'two')).success).toBe(true);
    const third = await runtime.runTextTurn(sessionId, 'three');
    expect(third.success).toBe(false);
    expect(third.stopReason).toBe('budget_exhausted');
    expect(third.error).toMatchObject({
      code: 'BUDGET_EXHAUSTED',
      message: 'The session used 30 of 20 tokens',
      details: { used: 30, limit: 20, capabilityId: 'tiny_budget' },
    });
    expect(driver.requests).toHaveLength(2);
    const stored = await runtime.backends.messages.load(sessionId);
    expect(stored.map(messageText)).toEqual(['one', 'ok', 'two', 'ok', 'three']);
    await runtime.close();
  });

  it('a hook that throws fails the turn with CAPABILITY_FAILED naming the capability; the runtime keeps working', async () => {
    const driver = new LlmSimDriver(LlmSimConfig.fixed('ok'));
    let fail = true;
    const flaky = defineCapability({
      id: 'flaky_hook',
      name: 'Flaky hook',
      description: 'Throws once.',
      tools: [],
      beforeModelCall() {
        if (fail) {
          fail = false;
          throw new Error('hook exploded');
        }
        return undefined;
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [flaky]);
    const failed = await runtime.runTextTurn(sessionId, 'one');
    expect(failed.success).toBe(false);
    expect(failed.stopReason).toBe('error');
    expect(failed.error?.code).toBe('CAPABILITY_FAILED');
    expect(failed.error?.message).toContain('flaky_hook');
    expect(failed.error?.message).toContain('hook exploded');
    expect(driver.requests).toHaveLength(0);
    const next = await runtime.runTextTurn(sessionId, 'two');
    expect(next.success).toBe(true);
    await runtime.close();
  });

  it('callModel lets a hook ask the model for itself without storing anything', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fromFunction((request) =>
        request.systemPrompt === 'Summarise.'
          ? 'SUMMARY'
          : `answer after ${request.messages.length}`,
      ),
    );
    const summaries: string[] = [];
    const summariser = defineCapability({
      id: 'summariser',
      name: 'Summariser',
      description: 'Summarises before each call.',
      tools: [],
      async beforeModelCall(context) {
        const response = await context.callModel({
          systemPrompt: 'Summarise.',
          messages: context.messages,
        });
        summaries.push(response.text);
        return { systemPromptAddition: `Summary so far: ${response.text}` };
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [summariser]);
    const result = await runtime.runTextTurn(sessionId, 'hello');
    expect(result.response).toBe('answer after 1');
    expect(summaries).toEqual(['SUMMARY']);
    expect(driver.requests.at(-1)?.systemPrompt).toContain('Summary so far: SUMMARY');
    const stored = await runtime.backends.messages.load(sessionId);
    expect(stored.map(messageText)).toEqual(['hello', 'answer after 1']);
    await runtime.close();
  });
});

describe('tool hooks', () => {
  const echo = defineTool({
    name: 'echo_secret',
    description: 'Returns the stored secret and the text.',
    inputSchema: z.strictObject({ text: z.string() }),
    async execute(input, context) {
      const secret = await context.storage.getSecret(context.sessionId, 'token');
      if (input.text === 'fail') return toolError('asked to fail');
      return `${input.text} ${secret ?? ''} ${'x'.repeat(200)}`;
    },
  });

  it('beforeToolCall vetoes a call (the model reads the veto) or rewrites its arguments (validated again)', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('done').withToolCallSequence([
        [
          { id: 'c1', name: 'add', arguments: { a: 1, b: 2 } },
          { id: 'c2', name: 'multiply', arguments: { a: 3, b: 4 } },
          { id: 'c3', name: 'subtract', arguments: { a: 9, b: 1 } },
        ],
        [],
      ]),
    );
    const guard = defineCapability({
      id: 'guard',
      name: 'Guard',
      description: 'Vetoes multiply, doubles add, breaks subtract.',
      tools: [],
      beforeToolCall(context) {
        if (context.toolName === 'multiply') return { veto: 'multiply is not allowed here' };
        if (context.toolName === 'add') {
          const args = context.arguments as { a: number; b: number };
          return { arguments: { a: args.a * 10, b: args.b * 10 } };
        }
        if (context.toolName === 'subtract') return { arguments: { a: 'nine' } };
        return undefined;
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [guard]);
    const result = await runtime.runTextTurn(sessionId, 'compute');
    expect(result.success).toBe(true);
    const results = toolResults(await runtime.backends.messages.load(sessionId));
    const added = results.find((part) => part.toolCallId === 'c1');
    expect(added?.isError).toBe(false);
    expect(JSON.parse(added?.content ?? '{}')).toMatchObject({ result: 30, a: 10, b: 20 });
    expect(results.find((part) => part.toolCallId === 'c2')).toMatchObject({
      content: 'multiply is not allowed here',
      isError: true,
    });
    const broken = results.find((part) => part.toolCallId === 'c3');
    expect(broken?.isError).toBe(true);
    expect(broken?.content).toContain('Capability guard rewrote the arguments of subtract');
    await runtime.close();
  });

  it('afterToolCall sees the whole result with secrets redacted and may replace it before the length limit applies; a throwing hook becomes a tool error', async () => {
    const driver = new LlmSimDriver(
      LlmSimConfig.fixed('done').withToolCallSequence([
        [
          { id: 'e1', name: 'echo_secret', arguments: { text: 'hello' } },
          { id: 'e2', name: 'echo_secret', arguments: { text: 'fail' } },
          { id: 'e3', name: 'echo_secret', arguments: { text: 'boom' } },
        ],
        [],
      ]),
    );
    const seen: { content: string; isError: boolean }[] = [];
    const post = defineCapability({
      id: 'post',
      name: 'Post',
      description: 'Summarises results.',
      tools: [echo],
      afterToolCall(context) {
        seen.push({ content: context.content, isError: context.isError });
        if ((context.arguments as { text: string }).text === 'boom') throw new Error('kaput');
        return { content: `[${context.content.length} chars] ${context.content.slice(0, 30)}` };
      },
    });
    const { runtime, sessionId } = await buildRuntime(driver, [post]);
    await runtime.backends.storage.setSecret(sessionId, 'token', 'sk-live-1234567890');
    await runtime.runTextTurn(sessionId, 'go');
    expect(seen[0]?.content.startsWith('hello secret://token ')).toBe(true);
    expect(seen[0]?.content).not.toContain('sk-live');
    expect(seen[0]?.content.length).toBe('hello secret://token '.length + 200);
    expect(seen[1]).toEqual({ content: 'asked to fail', isError: true });
    const results = toolResults(await runtime.backends.messages.load(sessionId));
    expect(results.find((part) => part.toolCallId === 'e1')?.content).toBe(
      `[${'hello secret://token '.length + 200} chars] hello secret://token xxxxxxxxx`,
    );
    const boom = results.find((part) => part.toolCallId === 'e3');
    expect(boom?.isError).toBe(true);
    expect(boom?.content).toContain('capability post failed: kaput');
    await runtime.close();
  });
});
