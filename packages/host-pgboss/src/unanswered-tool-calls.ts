import { MISSING_TOOL_RESULT_TEXT, type NewMessage } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from '@everruns-ts/runtime/host';

/**
 * Stores an error result for every tool call of a turn that has none (a turn that fails between
 * its model's answer and the results of its calls), so every call in the stored history keeps
 * exactly one result. Each result has the key the act step would have used
 * (`<turnId>/tool/<callId>`): whichever is stored first stays, the other is not stored. Returns
 * how many calls it answered.
 */
export async function closeUnansweredToolCalls(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
): Promise<number> {
  const { messages } = adapter.backends;
  const history = await messages.loadFiltered(sessionId, { turnId });
  const answered = new Set<string>();
  for (const message of history) {
    for (const part of message.content) {
      if (part.type === 'tool_result') answered.add(part.toolCallId);
    }
  }
  let closed = 0;
  for (const message of history) {
    for (const part of message.content) {
      if (part.type !== 'tool_call' || answered.has(part.id)) continue;
      answered.add(part.id);
      const result: NewMessage = {
        role: 'tool_result',
        turnId,
        idempotencyKey: `${turnId}/tool/${part.id}`,
        content: [
          {
            type: 'tool_result',
            toolCallId: part.id,
            content: MISSING_TOOL_RESULT_TEXT,
            isError: true,
          },
        ],
        metadata: { toolName: part.name, iteration: message.metadata?.iteration ?? null },
      };
      await messages.storeMessage(sessionId, result);
      closed += 1;
    }
  }
  return closed;
}
