import type { Message, NewMessage } from '../message.js';
import type { RuntimeMessageStore } from '../stores.js';
import type { OpenToolCall } from './repair-history.js';

/** The idempotency key of the `tool_result` message of a call, `<turnId>/tool/<callId>`: the key the act step stores its result under. */
export function toolResultIdempotencyKey(turnId: string, toolCallId: string): string {
  return `${turnId}/tool/${toolCallId}`;
}

/**
 * Stores a synthetic error result (`content`) for each open tool call, in one atomic write, under
 * the call's usual idempotency key ({@link toolResultIdempotencyKey}; `repair/<messageId>/<callId>`
 * for a call made outside a turn), so an act step that later tries to store a result for the
 * same call finds this one and does not run the call. Resolves with the stored messages; none
 * when `open` is empty. Throws what the message store throws.
 */
export async function closeOpenToolCalls(
  messages: Pick<RuntimeMessageStore, 'storeMessages'>,
  sessionId: string,
  open: readonly OpenToolCall[],
  content: string,
): Promise<Message[]> {
  if (open.length === 0) return [];
  const results: NewMessage[] = open.map(({ message, call }) => {
    const iteration = message.metadata?.iteration;
    return {
      role: 'tool_result',
      ...(message.turnId !== undefined ? { turnId: message.turnId } : {}),
      idempotencyKey:
        message.turnId !== undefined
          ? toolResultIdempotencyKey(message.turnId, call.id)
          : `repair/${message.id}/${call.id}`,
      content: [{ type: 'tool_result', toolCallId: call.id, content, isError: true }],
      metadata: {
        toolName: call.name,
        ...(typeof iteration === 'number' ? { iteration } : {}),
        repaired: true,
      },
    };
  });
  return messages.storeMessages(sessionId, results);
}
