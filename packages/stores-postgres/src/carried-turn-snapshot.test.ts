// The in-process runtime on PostgreSQL hands the next reason step the snapshot the step before
// read with its last write, instead of loading one. What the model is sent must not change: the
// tool's result and a message steered into the turn while a tool runs reach the next model call,
// and the requests equal those of the same turns on the in-memory stores (which read every
// snapshot on their own).
import {
  defineCapability,
  defineTool,
  type LlmRequest,
  type LlmResponse,
  PlatformDefinition,
  type RuntimeBackends,
} from '@everruns-ts/core';
import { InProcessRuntimeBuilder, inMemoryBackends } from '@everruns-ts/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PostgresBackends } from './postgres-backends.js';
import { createTestBackends, destroyTestBackends } from './test-support/database.js';

/** What a model call was sent, without ids and times. */
function requestShape(request: LlmRequest) {
  return {
    systemPrompt: request.systemPrompt,
    messages: request.messages.map((message) => ({
      role: message.role,
      content: message.content.map((part) =>
        part.type === 'text'
          ? { text: part.text }
          : part.type === 'tool_result'
            ? { result: part.content }
            : { type: part.type },
      ),
    })),
  };
}

async function runScenario(backends: RuntimeBackends) {
  const sent: ReturnType<typeof requestShape>[] = [];
  let runtime: Awaited<ReturnType<InProcessRuntimeBuilder['build']>> | undefined;
  let sessionId = '';
  let steered: Promise<unknown> | undefined;
  const tools = defineCapability({
    id: 'changes',
    name: 'Changes',
    description: 'Changes things while the turn runs',
    tools: [
      defineTool({
        name: 'rename_agent',
        description: 'Gives the agent a new prompt',
        inputSchema: z.object({ prompt: z.string() }),
        execute: async ({ prompt }) => {
          const agent = await backends.agents.getAgent('agent_1');
          await backends.agents.upsertAgent({ ...agent!, systemPrompt: prompt });
          return 'renamed';
        },
      }),
      defineTool({
        name: 'steer',
        description: 'Steers a message into the running turn',
        inputSchema: z.object({ text: z.string() }),
        execute: ({ text }) => {
          // Its receipt settles once the message is stored, at the next reason step.
          steered = runtime!.steerText(sessionId, text);
          return 'steered';
        },
      }),
    ],
  });
  let step = 0;
  const platform = new PlatformDefinition();
  platform.capabilities.register(tools);
  platform.drivers.register({
    providerType: 'fake',
    async generate(request): Promise<LlmResponse> {
      sent.push(requestShape(request));
      step++;
      const call = (name: string, args: Record<string, unknown>): LlmResponse => ({
        text: '',
        toolCalls: [{ id: `call_${step}`, name, arguments: args }],
        usage: { inputTokens: 1, outputTokens: 1 },
        stopReason: 'tool_calls',
      });
      if (step === 1) return call('rename_agent', { prompt: 'A renamed agent.' });
      if (step === 3) return call('steer', { text: 'one more thing' });
      return {
        text: `answer ${step}`,
        toolCalls: [],
        usage: { inputTokens: 1, outputTokens: 1 },
        stopReason: 'end_turn',
      };
    },
  });
  runtime = await new InProcessRuntimeBuilder()
    .platformDefinition(platform)
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: 'harness_1', name: 'h', capabilities: [{ id: 'changes' }] })
    .agent({ id: 'agent_1', name: 'agent', systemPrompt: 'The first agent.' } as never)
    .build();
  sessionId = (await runtime.createSession({ harnessId: 'harness_1', agentId: 'agent_1' })).id;
  const first = await runtime.runTextTurn(sessionId, 'Rename yourself.');
  const second = await runtime.runTextTurn(sessionId, 'Steer yourself.');
  await steered;
  return { sent, responses: [first.response, second.response] };
}

describe('the snapshot carried from a write to the next reason step', () => {
  let backends: PostgresBackends;
  beforeAll(async () => {
    backends = await createTestBackends();
  });
  afterAll(() => destroyTestBackends(backends));

  it('sends the model what the in-memory stores send: changes made by tools and steered messages included', async () => {
    const postgres = await runScenario(backends);
    const memory = await runScenario(inMemoryBackends());
    // A turn resolves its agent once: the new prompt is the next turn's.
    expect(postgres.sent.map((request) => request.systemPrompt)).toEqual([
      expect.stringContaining('The first agent.'),
      expect.stringContaining('The first agent.'),
      expect.stringContaining('A renamed agent.'),
      expect.stringContaining('A renamed agent.'),
    ]);
    // The tool's result reaches the answer's call in the same turn.
    expect(postgres.sent[1]?.messages.at(-1)).toEqual({
      role: 'tool_result',
      content: [{ result: 'renamed' }],
    });
    // Turn 2: the steered message reaches the model call after the tool's result.
    const afterSteer = postgres.sent[3]?.messages.at(-1);
    expect(afterSteer).toEqual({ role: 'user', content: [{ text: 'one more thing' }] });
    expect(postgres.sent).toHaveLength(memory.sent.length);
    expect(postgres.sent).toEqual(memory.sent);
    expect(postgres.responses).toEqual(memory.responses);
  });
});
