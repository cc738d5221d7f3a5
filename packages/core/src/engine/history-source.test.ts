import { describe, expect, it } from 'vitest';
import type { Message } from '../message.js';
import { markHistorySource, repairHistory } from './repair-history.js';

let seq = 0;
const frozen = (role: Message['role'], content: Message['content']): Message =>
  Object.freeze({
    id: `h${++seq}`,
    sessionId: 's',
    seq,
    role,
    content: Object.freeze(content.map((part) => Object.freeze(part))) as Message['content'],
    createdAt: '2026-01-01T00:00:00.000Z',
  });
const text = (value: string) => frozen('user', [{ type: 'text', text: value }]);
const callAndResult = (id: string) => [
  frozen('agent', [{ type: 'tool_call', id, name: 'add', arguments: {} }]),
  frozen('tool_result', [{ type: 'tool_result', toolCallId: id, content: '4', isError: false }]),
];

describe('histories read with their source', () => {
  it('stay well formed as they grow, and a grown history with a repeated call id is repaired', () => {
    const source = {};
    const list: Message[] = [...Array.from({ length: 20 }, (_, i) => text(`n${i}`))];
    list.push(...callAndResult('first'));
    const read = () => {
      const copy = list.slice();
      markHistorySource(copy, source);
      return copy;
    };
    const one = read();
    expect(repairHistory(one)).toBe(one);
    list.push(text('next'), ...callAndResult('second'));
    const two = read();
    expect(repairHistory(two)).toBe(two);
    // The repeat of an id in the part checked before is still found past that part.
    list.push(...callAndResult('first'));
    const three = read();
    const repaired = repairHistory(three);
    expect(repaired).not.toBe(three);
    const ids = repaired.flatMap((message) =>
      message.content.flatMap((part) => (part.type === 'tool_call' ? [part.id] : [])),
    );
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('compares a history of another source, or of none, message by message', () => {
    const source = {};
    const base = [...Array.from({ length: 20 }, (_, i) => text(`m${i}`)), ...callAndResult('a')];
    const checked = base.slice();
    markHistorySource(checked, source);
    expect(repairHistory(checked)).toBe(checked);
    // Same length and last message, a call without its result in the middle: not the same list.
    const changed = base.slice();
    changed[5] = frozen('agent', [{ type: 'tool_call', id: 'open', name: 'add', arguments: {} }]);
    expect(repairHistory(changed)).not.toBe(changed);
    const otherSource = changed.slice();
    markHistorySource(otherSource, {});
    expect(repairHistory(otherSource)).not.toBe(otherSource);
    // The checked list itself is still known well formed.
    const again = base.slice();
    markHistorySource(again, source);
    expect(repairHistory(again)).toBe(again);
  });
});
