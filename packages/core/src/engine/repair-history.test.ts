import { describe, expect, it } from 'vitest';
import {
  findOpenToolCalls,
  type Message,
  MISSING_TOOL_RESULT_TEXT,
  repairHistory,
} from '../index.js';

describe('repairHistory', () => {
  let seq = 0;
  const message = (role: Message['role'], content: Message['content']): Message => ({
    id: `m${++seq}`,
    sessionId: 's',
    seq,
    role,
    content,
    createdAt: '2026-01-01T00:00:00.000Z',
  });

  it('returns the same history when every call has its result', () => {
    const history = [
      message('user', [{ type: 'text', text: 'hi' }]),
      message('agent', [{ type: 'tool_call', id: 'c1', name: 'add', arguments: {} }]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
      ]),
      message('agent', [{ type: 'text', text: 'done' }]),
    ];
    expect(repairHistory(history)).toBe(history);
  });

  it('adds a synthetic result to a call without one and drops an orphan result', () => {
    const history = [
      message('user', [{ type: 'text', text: 'hi' }]),
      message('agent', [
        { type: 'tool_call', id: 'c1', name: 'add', arguments: {} },
        { type: 'tool_call', id: 'c2', name: 'add', arguments: {} },
      ]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
      ]),
      message('tool_result', [
        { type: 'tool_result', toolCallId: 'ghost', content: '?', isError: false },
      ]),
    ];
    const repaired = repairHistory(history);
    const results = repaired.flatMap((entry) =>
      entry.content.filter((part) => part.type === 'tool_result'),
    );
    // One result per call, right after the calls, in the calls' order.
    expect(results).toEqual([
      { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
      { type: 'tool_result', toolCallId: 'c2', content: MISSING_TOOL_RESULT_TEXT, isError: true },
    ]);
    expect(history).toHaveLength(4);
  });
});

describe('repairHistory over the whole history', () => {
  let seq = 0;
  const message = (role: Message['role'], content: Message['content'], turnId = 't1'): Message => ({
    id: `w${++seq}`,
    sessionId: 's',
    seq,
    turnId,
    role,
    content,
    createdAt: '2026-01-01T00:00:00.000Z',
  });
  const call = (id: string) => ({ type: 'tool_call' as const, id, name: 'add', arguments: {} });
  const result = (toolCallId: string, content = 'ok') => ({
    type: 'tool_result' as const,
    toolCallId,
    content,
    isError: false,
  });
  /** The shape a provider checks: each call answered right after its message, ids unique. */
  function expectWellFormed(history: Message[]): void {
    const seen = new Set<string>();
    let pending = new Set<string>();
    for (const entry of history) {
      if (entry.role === 'tool_result') {
        for (const part of entry.content) {
          expect(part.type).toBe('tool_result');
          if (part.type === 'tool_result') expect(pending.delete(part.toolCallId)).toBe(true);
        }
        continue;
      }
      expect([...pending]).toEqual([]);
      pending = new Set();
      for (const part of entry.content) {
        if (part.type !== 'tool_call') continue;
        expect(seen.has(part.id)).toBe(false);
        seen.add(part.id);
        pending.add(part.id);
      }
    }
    expect([...pending]).toEqual([]);
  }

  it('answers a call left open several turns back, not only in the latest turn', () => {
    const history = [
      message('user', [{ type: 'text', text: 'one' }]),
      message('agent', [call('call_a')]),
      message('user', [{ type: 'text', text: 'two' }], 't2'),
      message('agent', [{ type: 'text', text: 'answer two' }], 't2'),
      message('user', [{ type: 'text', text: 'three' }], 't3'),
      message('agent', [call('call_b')], 't3'),
      message('tool_result', [result('call_b')], 't3'),
      message('agent', [{ type: 'text', text: 'answer three' }], 't3'),
    ];
    const repaired = repairHistory(history);
    expectWellFormed(repaired);
    expect(repaired[2]?.content).toEqual([
      {
        type: 'tool_result',
        toolCallId: 'call_a',
        content: MISSING_TOOL_RESULT_TEXT,
        isError: true,
      },
    ]);
    expect(repaired).toHaveLength(history.length + 1);
  });

  it('moves a result stored after the next user message right after its call', () => {
    const late = message('tool_result', [result('call_a', 'late')], 't1');
    const history = [
      message('user', [{ type: 'text', text: 'one' }]),
      message('agent', [call('call_a')]),
      message('user', [{ type: 'text', text: 'two' }], 't2'),
      late,
      message('agent', [{ type: 'text', text: 'answer two' }], 't2'),
    ];
    const repaired = repairHistory(history);
    expectWellFormed(repaired);
    expect(repaired.map((entry) => entry.id)).toEqual([
      history[0]?.id,
      history[1]?.id,
      late.id,
      history[2]?.id,
      history[4]?.id,
    ]);
  });

  it('renames a tool call id that repeats an earlier one, with its result', () => {
    const history = [
      message('user', [{ type: 'text', text: 'one' }]),
      message('agent', [call('call_1')]),
      message('tool_result', [result('call_1', 'first')]),
      message('agent', [call('call_1')]),
      message('tool_result', [result('call_1', 'second')]),
      message('agent', [{ type: 'text', text: 'done' }]),
    ];
    const repaired = repairHistory(history);
    expectWellFormed(repaired);
    const results = repaired.flatMap((entry) =>
      entry.content.flatMap((part) => (part.type === 'tool_result' ? [part] : [])),
    );
    expect(results.map((part) => part.content)).toEqual(['first', 'second']);
    expect(results[0]?.toolCallId).toBe('call_1');
    expect(results[1]?.toolCallId).not.toBe('call_1');
    expect(history[3]?.content[0]).toEqual(call('call_1'));
  });

  it('finds the open calls of the whole history', () => {
    const history = [
      message('user', [{ type: 'text', text: 'one' }]),
      message('agent', [call('x'), call('y')]),
      message('tool_result', [result('y')]),
      message('user', [{ type: 'text', text: 'two' }], 't2'),
      message('agent', [call('z')], 't2'),
    ];
    expect(findOpenToolCalls(history).map((open) => open.call.id)).toEqual(['x', 'z']);
  });
});

describe('repairHistory on a growing history of frozen messages', () => {
  let seq = 0;
  const frozen = (role: Message['role'], content: Message['content']): Message =>
    Object.freeze({
      id: `f${++seq}`,
      sessionId: 's',
      seq,
      role,
      content: Object.freeze(content.map((part) => Object.freeze(part))) as Message['content'],
      createdAt: '2026-01-01T00:00:00.000Z',
    });
  const call = (id: string): Message['content'] => [
    { type: 'tool_call', id, name: 'add', arguments: {} },
  ];
  const result = (id: string): Message['content'] => [
    { type: 'tool_result', toolCallId: id, content: '4', isError: false },
  ];
  const exchange = (id: string): Message[] => [
    frozen('user', [{ type: 'text', text: 'add' }]),
    frozen('agent', call(id)),
    frozen('tool_result', result(id)),
    frozen('agent', [{ type: 'text', text: '4' }]),
  ];

  it('still sees a repeated id, a missing result and another branch after checking a prefix', () => {
    // Long enough (20 messages) to be remembered once checked.
    const start = [
      ...exchange('a'),
      ...exchange('p1'),
      ...exchange('p2'),
      ...exchange('p3'),
      ...exchange('p4'),
    ];
    expect(repairHistory(start)).toBe(start);
    const grown = [...start, ...exchange('b')];
    expect(repairHistory(grown)).toBe(grown);
    // The same prefix grown with an id it already holds: renamed, not passed as well formed.
    const repeated = [...grown, ...exchange('a')];
    const repaired = repairHistory(repeated);
    expect(repaired).not.toBe(repeated);
    const ids = repaired.flatMap((message) =>
      message.content.flatMap((part) => (part.type === 'tool_call' ? [part.id] : [])),
    );
    expect(new Set(ids).size).toBe(ids.length);
    // A call without its result after the checked prefix.
    const open = [...grown, frozen('agent', call('c'))];
    expect(repairHistory(open).at(-1)?.content[0]).toMatchObject({
      type: 'tool_result',
      toolCallId: 'c',
      content: MISSING_TOOL_RESULT_TEXT,
    });
    // Another branch from the first prefix: checked on its own.
    const branch = [...start, ...exchange('a')];
    expect(repairHistory(branch)).not.toBe(branch);
    const otherBranch = [...start, ...exchange('d')];
    expect(repairHistory(otherBranch)).toBe(otherBranch);
    // A different array that ends with a known message but differs before it.
    const [, ...withoutFirst] = grown;
    const shuffled = [frozen('tool_result', result('zz')), ...withoutFirst];
    expect(repairHistory(shuffled)).not.toBe(shuffled);
  });
});
