import { closeOpenToolCalls, findOpenToolCalls, MISSING_TOOL_RESULT_TEXT } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from '@everruns-ts/runtime/host';

/**
 * Stores an error result ({@link MISSING_TOOL_RESULT_TEXT}) for every tool call of a turn that has
 * none (a turn that fails between its model's answer and the results of its calls), so every call
 * in the stored history keeps exactly one result. Each result has the key the act step would have
 * used (`<turnId>/tool/<callId>`): whichever is stored first stays, the other is not stored.
 * Returns how many calls it answered.
 */
export async function closeUnansweredToolCalls(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
): Promise<number> {
  const { messages } = adapter.backends;
  const open = findOpenToolCalls(await messages.loadFiltered(sessionId, { turnId }));
  const closed = await closeOpenToolCalls(messages, sessionId, open, MISSING_TOOL_RESULT_TEXT);
  return closed.length;
}
