import { describe, expect, it } from 'vitest';
import { type Message, MISSING_TOOL_RESULT_TEXT, repairHistory } from '../index.js';

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
    expect(results).toEqual([
      { type: 'tool_result', toolCallId: 'c2', content: MISSING_TOOL_RESULT_TEXT, isError: true },
      { type: 'tool_result', toolCallId: 'c1', content: '2', isError: false },
    ]);
    expect(history).toHaveLength(4);
  });
});
