import type { Message } from '../message.js';

/** Text of the synthetic result given to a tool call that has none. */
export const MISSING_TOOL_RESULT_TEXT =
  'The tool call was interrupted before it recorded a result; it may have partially applied.';

/**
 * Returns the history with every tool call paired with a result and no orphan result. Only the
 * tail since the last settled user message is examined, so the cost does not grow with the
 * history. Returns the same array when nothing needed repair.
 */
export function repairHistory(messages: Message[]): Message[] {
  const results = new Set<string>();
  const calls = new Set<string>();
  let start = messages.length;
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index] as Message;
    for (const part of message.content) {
      if (part.type === 'tool_result') results.add(part.toolCallId);
      else if (part.type === 'tool_call') calls.add(part.id);
    }
    start = index;
    if (message.role === 'user' && [...results].every((id) => calls.has(id))) break;
  }
  let broken = false;
  for (const id of calls) if (!results.has(id)) broken = true;
  for (const id of results) if (!calls.has(id)) broken = true;
  if (!broken) return messages;
  const repaired = messages.slice(0, start);
  for (let index = start; index < messages.length; index++) {
    const message = messages[index] as Message;
    if (message.role === 'tool_result') {
      const content = message.content.filter(
        (part) => part.type !== 'tool_result' || calls.has(part.toolCallId),
      );
      if (content.length > 0)
        repaired.push(
          content.length === message.content.length ? message : { ...message, content },
        );
      continue;
    }
    repaired.push(message);
    const missing = message.content.filter(
      (part) => part.type === 'tool_call' && !results.has(part.id),
    );
    for (const part of missing) {
      if (part.type !== 'tool_call') continue;
      repaired.push({
        ...message,
        id: `${message.id}_repair_${part.id}`,
        role: 'tool_result',
        content: [
          {
            type: 'tool_result',
            toolCallId: part.id,
            content: MISSING_TOOL_RESULT_TEXT,
            isError: true,
          },
        ],
      });
    }
  }
  return repaired;
}
