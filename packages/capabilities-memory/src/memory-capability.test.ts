import type { Message } from '@everruns-ts/core';
import { LlmSimConfig, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { type InProcessRuntime, InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import {
  MEMORY_CAPABILITY_ID,
  memoryCapability,
  PERSISTENT_MEMORY_CAPABILITY_ID,
  persistentMemoryCapability,
} from './index.js';

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
async function memoryRuntime(
  steps: LlmSimToolCall[][],
  config?: unknown,
  capabilityId = MEMORY_CAPABILITY_ID,
) {
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
    .capability(persistentMemoryCapability)
    .llmSim(LlmSimConfig.sequence(texts).withToolCallSequence(calls))
    .harness({
      id: harnessId,
      name: 'memory',
      capabilities: [config === undefined ? { id: capabilityId } : { id: capabilityId, config }],
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
    expect(second.get('f1')?.json).toEqual({
      key: 'coffee',
      deleted: true,
      memory_id: 'coffee',
      forgotten: true,
    });
    expect(second.get('q4')?.json).toEqual({ memories: [], count: 0, total: 0 });

    const otherAgent = await turn(runtime, sessions.b1);
    expect(otherAgent.get('other')?.json).toEqual({ memories: [], count: 0, total: 0 });
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
        { id: 'extra', name: 'remember', arguments: { content: 'ok', images: [] } },
        { id: 'importance', name: 'remember', arguments: { content: 'ok', importance: 11 } },
        { id: 'kind', name: 'remember', arguments: { content: 'ok', kind: 'rumour' } },
        { id: 'reserved', name: 'remember', arguments: { content: 'ok', tags: ['everruns:x'] } },
        { id: 'recallKind', name: 'recall', arguments: { kind: 'gossip' } },
        { id: 'neither', name: 'forget', arguments: {} },
        { id: 'both', name: 'forget', arguments: { key: 'a', memory_id: 'b' } },
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
    expect(error('extra')).toContain('images');
    expect(error('importance')).toMatch(/importance: .*10/);
    expect(error('kind')).toMatch(/kind: .*fact/);
    expect(error('reserved')).toContain('reserved');
    expect(error('recallKind')).toMatch(/recall: kind:/);
    expect(error('neither')).toContain('give key (or memory_id)');
    expect(error('both')).toContain('different memories');
    expect(error('key')).toMatch(/key: use letters/);
    expect(error('limit')).toMatch(/recall: limit:/);
    // Model-supplied filters are bounded like what remember stores.
    expect(error('query')).toMatch(/recall: query: .*2000/);
    expect(error('tags')).toMatch(/recall: tags: .*10/);
    expect(error('unknown')).toContain('no memory has the key "never-saved"');
    expect(error('unknown')).toContain('not found');
  });

  it('rejects a malformed configuration with INVALID_INPUT', async () => {
    const { runtime, sessions } = await memoryRuntime([], { scope: '' });
    await expect(runtime.loadContext(sessions.a1)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it("accepts upstream's kind and importance, filters recall by kind and forgets by memory_id", async () => {
    const { runtime, sessions } = await memoryRuntime([
      [
        {
          id: 'pref',
          name: 'remember',
          arguments: {
            content: 'The user prefers dark mode.',
            kind: 'preference',
            importance: 7,
            tags: ['ui'],
          },
        },
        { id: 'plain', name: 'remember', arguments: { key: 'sky', content: 'The sky is blue.' } },
        { id: 'again', name: 'remember', arguments: { key: 'sky', content: 'The sky is grey.' } },
      ],
      [
        { id: 'byKind', name: 'recall', arguments: { kind: 'preference' } },
        { id: 'facts', name: 'recall', arguments: { kind: 'fact' } },
        { id: 'none', name: 'recall', arguments: { kind: 'procedure' } },
        // The kind and importance are not matched as text.
        { id: 'digit', name: 'recall', arguments: { query: 'importance=' } },
        { id: 'word', name: 'recall', arguments: { query: 'preference' } },
        { id: 'drop', name: 'forget', arguments: { memory_id: 'sky' } },
        { id: 'after', name: 'recall', arguments: { query: 'sky' } },
      ],
    ]);
    const first = await turn(runtime, sessions.a1);
    const created = first.get('pref')?.json as { memory_id: string; created: boolean };
    expect(created).toMatchObject({ saved: true, created: true });
    expect(created.memory_id).toMatch(/^mem_[0-9a-f]{16}$/);
    expect(first.get('plain')?.json).toEqual({
      key: 'sky',
      saved: true,
      memory_id: 'sky',
      created: true,
    });
    expect(first.get('again')?.json).toMatchObject({ memory_id: 'sky', created: false });

    const second = await turn(runtime, sessions.a2);
    expect(second.get('byKind')?.json).toEqual({
      count: 1,
      total: 1,
      memories: [
        {
          key: created.memory_id,
          id: created.memory_id,
          content: 'The user prefers dark mode.',
          content_parts: [{ type: 'text', text: 'The user prefers dark mode.' }],
          kind: 'preference',
          importance: 7,
          tags: ['ui'],
          created_at: expect.any(String),
          updated_at: expect.any(String),
        },
      ],
    });
    expect(second.get('facts')?.json).toMatchObject({
      count: 1,
      memories: [{ id: 'sky', content: 'The sky is grey.', kind: 'fact', importance: 5, tags: [] }],
    });
    expect(second.get('none')?.json).toMatchObject({ count: 0 });
    expect(second.get('digit')?.json).toMatchObject({ count: 0 });
    expect(second.get('word')?.json).toMatchObject({ count: 0 });
    expect(second.get('drop')?.json).toEqual({
      key: 'sky',
      deleted: true,
      memory_id: 'sky',
      forgotten: true,
    });
    expect(second.get('after')?.json).toMatchObject({ count: 0 });
  });

  it('reads memories stored without a kind as facts of default importance', async () => {
    const scope = `team:${suffix()}`;
    const { runtime, sessions } = await memoryRuntime(
      [[{ id: 'old', name: 'recall', arguments: { kind: 'fact' } }]],
      { scope },
    );
    await runtime.backends.memory.remember(scope, {
      key: 'legacy',
      content: 'Saved before kinds.',
      tags: ['x'],
    });
    const results = await turn(runtime, sessions.a1);
    expect(results.get('old')?.json).toMatchObject({
      count: 1,
      memories: [{ key: 'legacy', kind: 'fact', importance: 5, tags: ['x'] }],
    });
  });

  it('resolves both ids: the persistent_memory alias shares the memories of memory', async () => {
    expect(MEMORY_CAPABILITY_ID).toBe('memory');
    expect(PERSISTENT_MEMORY_CAPABILITY_ID).toBe('persistent_memory');
    const scope = `team:${suffix()}`;
    const [legacyHarness, canonicalHarness] = [`harness_${suffix()}`, `harness_${suffix()}`];
    const [legacySession, canonicalSession] = [`session_${suffix()}`, `session_${suffix()}`];
    const runtime = await new InProcessRuntimeBuilder()
      .capability(memoryCapability)
      .capability(persistentMemoryCapability)
      .llmSim(
        LlmSimConfig.sequence(['', 'done', '', 'done']).withToolCallSequence([
          [
            {
              id: 'save',
              name: 'remember',
              arguments: { key: 'standup', content: 'Standup is at 9:30.', kind: 'procedure' },
            },
          ],
          [],
          [{ id: 'find', name: 'recall', arguments: { kind: 'procedure' } }],
          [],
        ]),
      )
      .harness({
        id: legacyHarness,
        name: 'legacy',
        capabilities: [{ id: PERSISTENT_MEMORY_CAPABILITY_ID, config: { scope } }],
      })
      .harness({
        id: canonicalHarness,
        name: 'canonical',
        capabilities: [{ id: MEMORY_CAPABILITY_ID, config: { scope } }],
      })
      .session({ id: legacySession, harnessId: legacyHarness })
      .session({ id: canonicalSession, harnessId: canonicalHarness })
      .build();
    for (const sessionId of [legacySession, canonicalSession]) {
      const context = await runtime.loadContext(sessionId);
      expect(context.tools.map((tool) => tool.name)).toEqual(['remember', 'recall', 'forget']);
    }
    const saved = await turn(runtime, legacySession);
    expect(saved.get('save')).toMatchObject({ isError: false, json: { key: 'standup' } });
    const found = await turn(runtime, canonicalSession);
    expect(found.get('find')?.json).toMatchObject({
      count: 1,
      memories: [{ key: 'standup', kind: 'procedure' }],
    });
  });
});
