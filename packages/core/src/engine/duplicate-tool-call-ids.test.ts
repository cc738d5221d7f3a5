import { describe, expect, it } from 'vitest';
import type { Message } from '../message.js';
import { rekeyRepeatedToolCallIds } from './duplicate-tool-call-ids.js';
import { repairHistory } from './repair-history.js';

const call = (id: string, name = 'add') => ({ id, name, arguments: {} });
const history = (...ids: string[]): Pick<Message, 'content'>[] => [
  {
    content: ids.map((id) => ({ type: 'tool_call' as const, id, name: 'add', arguments: {} })),
  },
];

describe('rekeyRepeatedToolCallIds', () => {
  it('keeps unique ids as given and returns no renames', () => {
    const calls = [call('a'), call('b')];
    const { calls: result, rekeyed } = rekeyRepeatedToolCallIds(calls, history('x'));
    expect(result).toEqual(calls);
    expect(rekeyed).toEqual({});
  });

  it('renames a repeat within one response, keeping the first call its id', () => {
    const { calls, rekeyed } = rekeyRepeatedToolCallIds([call('a'), call('a', 'sub')], []);
    expect(calls[0]?.id).toBe('a');
    expect(calls[1]?.id).toMatch(/^call_[0-9a-f]{32}$/);
    expect(calls[1]?.name).toBe('sub');
    expect(rekeyed).toEqual({ [calls[1]?.id as string]: 'a' });
  });

  it('renames an id an earlier response of the session already used', () => {
    const { calls, rekeyed } = rekeyRepeatedToolCallIds([call('old'), call('new')], history('old'));
    expect(calls[0]?.id).not.toBe('old');
    expect(calls[1]?.id).toBe('new');
    expect(Object.values(rekeyed)).toEqual(['old']);
  });

  it('gives blank ids fresh distinct ids', () => {
    const { calls } = rekeyRepeatedToolCallIds([call(''), call(' '), call('')], []);
    const ids = calls.map((entry) => entry.id);
    for (const id of ids) expect(id).toMatch(/^call_[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(3);
  });

  it('never marks a rename inside the id: a model id containing a marker-like text stays as is', () => {
    const { calls, rekeyed } = rekeyRepeatedToolCallIds([call('call_1__duplicate_1')], []);
    expect(calls[0]?.id).toBe('call_1__duplicate_1');
    expect(rekeyed).toEqual({});
  });

  it('rekeys a repeated id of a history already checked well formed, and not a new one', () => {
    const frozen = (seq: number, role: Message['role'], content: Message['content']): Message =>
      Object.freeze({
        id: `k${seq}`,
        sessionId: 's',
        seq,
        role,
        content: Object.freeze(content) as Message['content'],
        createdAt: '2026-01-01T00:00:00.000Z',
      });
    // Long enough (20 messages) to be remembered once checked.
    const checked = [
      ...Array.from({ length: 18 }, (_, index) =>
        frozen(index + 1, 'user', [{ type: 'text', text: `note ${index}` }]),
      ),
      frozen(19, 'agent', [{ type: 'tool_call', id: 'seen', name: 'add', arguments: {} }]),
      frozen(20, 'tool_result', [
        { type: 'tool_result', toolCallId: 'seen', content: '4', isError: false },
      ]),
    ];
    expect(repairHistory(checked)).toBe(checked);
    const { calls, rekeyed } = rekeyRepeatedToolCallIds([call('seen'), call('fresh')], checked);
    expect(calls[0]?.id).not.toBe('seen');
    expect(rekeyed[calls[0]?.id as string]).toBe('seen');
    expect(calls[1]?.id).toBe('fresh');
    // The ids of the checked history are not changed by the call.
    expect(rekeyRepeatedToolCallIds([call('fresh')], checked).calls[0]?.id).toBe('fresh');

    // Another array with the same messages (as the next load of the store gives) is known too.
    const copy = checked.slice();
    expect(rekeyRepeatedToolCallIds([call('seen')], copy).calls[0]?.id).not.toBe('seen');
    // The history grown by a call not checked yet: its new id is found, and so is the old one.
    const grown = [
      ...checked,
      frozen(21, 'agent', [{ type: 'tool_call', id: 'later', name: 'add', arguments: {} }]),
      frozen(22, 'tool_result', [
        { type: 'tool_result', toolCallId: 'later', content: '4', isError: false },
      ]),
    ];
    const both = rekeyRepeatedToolCallIds([call('later'), call('seen')], grown).calls;
    expect(both[0]?.id).not.toBe('later');
    expect(both[1]?.id).not.toBe('seen');
    // Once checked, the grown history answers from what was remembered, the new id included.
    expect(repairHistory(grown)).toBe(grown);
    const again = rekeyRepeatedToolCallIds([call('later'), call('other')], grown).calls;
    expect(again[0]?.id).not.toBe('later');
    expect(again[1]?.id).toBe('other');
    // The first history, checked before the growth, no longer holds the newer id.
    expect(rekeyRepeatedToolCallIds([call('later')], checked).calls[0]?.id).toBe('later');
  });
});
