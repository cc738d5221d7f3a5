// The Vercel AI SDK, streaming: ToolLoopAgent.stream with a MockLanguageModelV4 whose doStream
// answers like the shared harness's ai-sdk adapter (a tool result -> "4", anything else -> the call
// add({a:2,b:2})), every part of fullStream consumed, the conversation kept by the caller.
// bench/run.mjs copies this file into the harness copy as the folder `ai-sdk-stream` (beside the
// shared ai-sdk folder's package.json and lockfile, so the same `ai` version is measured).
import { stepCountIs, ToolLoopAgent, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { z } from 'zod';
import { pkgVersion } from '../common/version.mjs';

const streamOf = (parts) =>
  new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(part);
      controller.close();
    },
  });

export async function createAdapter() {
  const counters = { model: 0, tool: 0 };
  let callSeq = 0;
  const usage = {
    inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
    outputTokens: { total: 2, text: 2, reasoning: 0 },
  };
  const model = new MockLanguageModelV4({
    doStream: async (options) => {
      model.doStreamCalls.length = 0; // the mock logs every call; keep it from growing
      counters.model++;
      const last = options.prompt[options.prompt.length - 1];
      const head = [{ type: 'stream-start', warnings: [] }];
      if (last.role === 'tool') {
        return {
          stream: streamOf([
            ...head,
            { type: 'text-start', id: 't1' },
            { type: 'text-delta', id: 't1', delta: '4' },
            { type: 'text-end', id: 't1' },
            { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage },
          ]),
        };
      }
      const id = `call_${++callSeq}`;
      const input = JSON.stringify({ a: 2, b: 2 });
      return {
        stream: streamOf([
          ...head,
          { type: 'tool-input-start', id, toolName: 'add' },
          { type: 'tool-input-delta', id, delta: input },
          { type: 'tool-input-end', id },
          { type: 'tool-call', toolCallId: id, toolName: 'add', input },
          { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage },
        ]),
      };
    },
  });

  const add = tool({
    description: 'Add two numbers',
    inputSchema: z.object({ a: z.number(), b: z.number() }),
    execute: async ({ a, b }) => {
      counters.tool++;
      return a + b;
    },
  });

  const agent = new ToolLoopAgent({
    model,
    instructions: 'You are a calculator. Use the add tool.',
    tools: { add },
    stopWhen: stepCountIs(5),
    telemetry: { isEnabled: false },
  });

  return {
    name: 'ai-sdk',
    version: pkgVersion(import.meta.url, 'ai'),
    variantLabel: 'ToolLoopAgent.stream, telemetry: { isEnabled: false }, fullStream consumed',
    counters,
    newConversation() {
      const messages = [];
      return {
        async turn(text) {
          messages.push({ role: 'user', content: text });
          const result = await agent.stream({ messages });
          for await (const _part of result.fullStream) {
            // every part is read, as a UI would
          }
          messages.push(...(await result.responseMessages));
          return await result.text;
        },
        historyLength: () => messages.length,
      };
    },
  };
}
