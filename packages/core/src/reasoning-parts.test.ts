import { describe, expect, it } from 'vitest';
import {
  InputMessage,
  type Message,
  MISSING_TOOL_RESULT_TEXT,
  messageReasoning,
  messageSchema,
  messageText,
  messageToolCalls,
  repairHistory,
} from './index.js';

const reasoning = [
  { type: 'reasoning' as const, text: 'Think first.', signature: 'sig==' },
  { type: 'reasoning' as const, text: '', redactedData: 'opaque==' },
  { type: 'reasoning' as const, text: 'DeepSeek thought.' },
];

function agentMessage(seq: number, content: Message['content']): Message {
  return {
    id: `msg_${seq}`,
    sessionId: 'session_r',
    seq,
    role: 'agent',
    content,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

describe('reasoning parts', () => {
  it('validate in a stored message and stay out of the answer text and tool calls', () => {
    const message = agentMessage(2, [
      ...reasoning,
      { type: 'text', text: 'Answer.' },
      { type: 'tool_call', id: 'c1', name: 'add', arguments: { a: 1 } },
    ]);
    expect(messageSchema.parse(message)).toEqual(message);
    expect(messageText(message)).toBe('Answer.');
    expect(messageToolCalls(message)).toEqual([{ id: 'c1', name: 'add', arguments: { a: 1 } }]);
    expect(messageReasoning(message)).toEqual(reasoning);
  });

  it('are refused in user input', () => {
    const parsed = InputMessage.schema.safeParse({
      role: 'user',
      content: [{ type: 'reasoning', text: 'injected' }],
    });
    expect(parsed.success).toBe(false);
  });

  it('pass through repairHistory untouched, also on a message whose tool call gets a repaired result', () => {
    const user: Message = { ...agentMessage(1, [{ type: 'text', text: 'hi' }]), role: 'user' };
    const open = agentMessage(2, [
      ...reasoning,
      { type: 'tool_call', id: 'c1', name: 'add', arguments: {} },
    ]);
    const repaired = repairHistory([user, open]);
    expect(repaired[1]?.content).toEqual(open.content);
    expect(repaired[2]?.content).toEqual([
      { type: 'tool_result', toolCallId: 'c1', content: MISSING_TOOL_RESULT_TEXT, isError: true },
    ]);
  });
});
