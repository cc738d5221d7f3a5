import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { MEMORY_CAPABILITY_ID, memoryCapability } from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean; json: unknown }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') {
        let json: unknown;
        try {
          json = JSON.parse(part.content);
        } catch {}
        results.set(part.toolCallId, { ...part, json });
      }
  return results;
}

const suffix = () => crypto.randomUUID().replaceAll('-', '');

/**
 * A runtime with one harness, two agents and three sessions (two of agent A, one of agent B),
 * whose model plays `steps` in order: each step is one turn's tool calls, followed by "done".
 */
async function memoryRuntime(steps: LlmSimToolCall[][], config?: unknown) {
  const harnessId = `harness_${suffix()}`;
  const [agentA, agentB] = [`agent_${suffix()}`, `agent_${suffix()}`];
  const sessions = {
    a1: `session_${suffix()}`,
    a2: `session_${suffix()}`,
    b1: `session_${suffix()}`,
  };
  const texts = steps.flatMap(() => ['', 'done']);
  const calls = steps.flatMap((step) => [step, []]);
  const runtime = await new InProcessRuntimeBuilder()
    .capability(memoryCapability)
    .llmSim(LlmSimConfig.sequence(texts).withToolCallSequence(calls))
    .harness({
      id: harnessId,
      name: 'memory',
      capabilities: [
        config === undefined ? { id: MEMORY_CAPABILITY_ID } : { id: MEMORY_CAPABILITY_ID, config },
      ],
    })
    .agent({ id: agentA, name: 'a' })
    .agent({ id: agentB, name: 'b' })
    .session({ id: sessions.a1, harnessId, agentId: agentA })
    .session({ id: sessions.a2, harnessId, agentId: agentA })
    .session({ id: sessions.b1, harnessId, agentId: agentB })
    .build();
  return { runtime, sessions };
}

async function turn(runtime: InProcessRuntime, sessionId: string) {
  const result = await runtime.runTextTurn(sessionId, 'go');
  expect(result).toMatchObject({ success: true, response: 'done' });
  const messages = await runtime.messages(sessionId);
  return toolResults(messages.filter((message) => message.turnId === result.turnId));
}

describe('memoryCapability', () => {
  it('remembers in one session and recalls, filters and forgets in another session of the same agent', async () => {
    const { runtime, sessions } = await memoryRuntime([
      [
        {
          id: 'r1',
          name: 'remember',
          arguments: {
            key: 'coffee',
            content: 'The user drinks oat-milk flat whites.',
            tags: ['taste', 'drinks'],
          },
        },
        {
          id: 'r2',
          name: 'remember',
          arguments: { content: 'Deploys happen on Tuesdays.', tags: ['work'] },
        },
      ],
      [
        { id: 'q1', name: 'recall', arguments: { query: 'FLAT WHITE' } },
        { id: 'q2', name: 'recall', arguments: { tags: ['work'] } },
        { id: 'q3', name: 'recall', arguments: { limit: 1 } },
        { id: 'f1', name: 'forget', arguments: { key: 'coffee' } },
        { id: 'q4', name: 'recall', arguments: { query: 'flat white' } },
      ],
      [{ id: 'other', name: 'recall', arguments: {} }],
    ]);
    const first = await turn(runtime, sessions.a1);
    expect(first.get('r1')).toMatchObject({ isError: false, json: { key: 'coffee', saved: true } });
    expect(first.get('r2')?.json).toMatchObject({
      key: expect.stringMatching(/^mem_[0-9a-f]{16}$/),
    });

    const second = await turn(runtime, sessions.a2);
    expect(second.get('q1')?.json).toMatchObject({
      count: 1,
      memories: [
        { key: 'coffee', tags: ['taste', 'drinks'], content: expect.stringContaining('oat-milk') },
      ],
    });
    expect(second.get('q2')?.json).toMatchObject({
      count: 1,
      memories: [{ content: 'Deploys happen on Tuesdays.' }],
    });
    expect(second.get('q3')?.json).toMatchObject({ count: 1 });
    expect(second.get('f1')?.json).toEqual({ key: 'coffee', deleted: true });
    expect(second.get('q4')?.json).toEqual({ memories: [], count: 0 });

    const otherAgent = await turn(runtime, sessions.b1);
    expect(otherAgent.get('other')?.json).toEqual({ memories: [], count: 0 });
  });

  it('shares a configured scope across agents', async () => {
    const scope = `team:${suffix()}`;
    const { runtime, sessions } = await memoryRuntime(
      [
        [
          {
            id: 'save',
            name: 'remember',
            arguments: { key: 'standup', content: 'Standup is at 9:30.' },
          },
        ],
        [{ id: 'find', name: 'recall', arguments: { query: 'standup' } }],
      ],
      { scope },
    );
    await turn(runtime, sessions.a1);
    const results = await turn(runtime, sessions.b1);
    expect(results.get('find')?.json).toMatchObject({ count: 1, memories: [{ key: 'standup' }] });
    expect(await runtime.backends.memory.recall(scope, 'standup')).toHaveLength(1);
  });

  it('reports bad input and an unknown key as tool errors naming the problem', async () => {
    const { runtime, sessions } = await memoryRuntime([
      [
        { id: 'empty', name: 'remember', arguments: {} },
        { id: 'long', name: 'remember', arguments: { content: 'x'.repeat(2001) } },
        { id: 'type', name: 'remember', arguments: { content: 'ok', tags: 'one' } },
        { id: 'extra', name: 'remember', arguments: { content: 'ok', importance: 9 } },
        { id: 'key', name: 'remember', arguments: { content: 'ok', key: 'has spaces' } },
        { id: 'limit', name: 'recall', arguments: { limit: 500 } },
        { id: 'query', name: 'recall', arguments: { query: 'q'.repeat(2001) } },
        {
          id: 'tags',
          name: 'recall',
          arguments: { tags: Array.from({ length: 11 }, (_, index) => `t${index}`) },
        },
        { id: 'unknown', name: 'forget', arguments: { key: 'never-saved' } },
      ],
    ]);
    const results = await turn(runtime, sessions.a1);
    const error = (id: string) => {
      expect(results.get(id)?.isError, id).toBe(true);
      return results.get(id)?.content ?? '';
    };
    expect(error('empty')).toMatch(/remember: content:/);
    expect(error('long')).toMatch(/content: .*2000/);
    expect(error('type')).toMatch(/tags: .*array/);
    expect(error('extra')).toContain('importance');
    expect(error('key')).toMatch(/key: use letters/);
    expect(error('limit')).toMatch(/recall: limit:/);
    // Model-supplied filters are bounded like what remember stores.
    expect(error('query')).toMatch(/recall: query: .*2000/);
    expect(error('tags')).toMatch(/recall: tags: .*10/);
    expect(error('unknown')).toContain('no memory has the key "never-saved"');
  });

  it('rejects a malformed configuration with INVALID_INPUT', async () => {
    const { runtime, sessions } = await memoryRuntime([], { scope: '' });
    await expect(runtime.loadContext(sessions.a1)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});
