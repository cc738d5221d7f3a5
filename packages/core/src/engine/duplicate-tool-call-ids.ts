import { uuidV7Hex } from '../ids.js';
import type { Message } from '../message.js';

const DUPLICATE_MARKER = '__duplicate_';

/**
 * Renames every repeat of a tool call id within one model response to a distinct id that marks
 * it a duplicate, so each stored call still gets exactly one result (the duplicate's result is
 * an error; see {@link duplicatedToolCallId}). Calls whose id is unique are returned unchanged.
 */
export function markDuplicateToolCallIds<TCall extends { id: string }>(
  calls: readonly TCall[],
): TCall[] {
  const seen = new Set<string>();
  return calls.map((call) => {
    let id = call.id;
    if (seen.has(id)) id = `${call.id}${DUPLICATE_MARKER}${seen.size}`;
    seen.add(id);
    return id === call.id ? call : { ...call, id };
  });
}

/** The original id of a call renamed by {@link markDuplicateToolCallIds}, or `undefined`. */
export function duplicatedToolCallId(id: string): string | undefined {
  const index = id.indexOf(DUPLICATE_MARKER);
  return index === -1 ? undefined : id.slice(0, index);
}

/**
 * Gives every call whose id repeats a tool call id of `history` (an earlier response of the same
 * turn or of an earlier turn) a fresh id, `call_` + 32 hex digits, so tool call ids stay unique in
 * a session and the call runs as a new call instead of passing for a replay of the earlier one.
 * Returns the calls (unchanged ones as given) and the renames, new id to original id.
 */
export function rekeyRepeatedToolCallIds<TCall extends { id: string }>(
  calls: readonly TCall[],
  history: readonly Pick<Message, 'content'>[],
): { calls: TCall[]; rekeyed: Record<string, string> } {
  const rekeyed: Record<string, string> = {};
  if (calls.length === 0) return { calls: [...calls], rekeyed };
  const used = new Set<string>();
  for (const message of history) {
    for (const part of message.content) {
      if (part.type === 'tool_call') used.add(part.id);
      else if (part.type === 'tool_result') used.add(part.toolCallId);
    }
  }
  const result = calls.map((call) => {
    if (!used.has(call.id)) {
      used.add(call.id);
      return call;
    }
    let id = `call_${uuidV7Hex()}`;
    while (used.has(id)) id = `call_${uuidV7Hex()}`;
    used.add(id);
    rekeyed[id] = call.id;
    return { ...call, id };
  });
  return { calls: result, rekeyed };
}
