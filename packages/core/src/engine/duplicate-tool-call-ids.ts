import { uuidV7Hex } from '../ids.js';
import type { Message } from '../message.js';
import { knownToolCallIds } from './repair-history.js';

/**
 * Gives every call whose id is blank, or repeats a tool call id of `history` (an earlier response
 * of the same turn or of an earlier turn) or of an earlier call of the same response, a fresh id,
 * `call_` + 32 hex digits, so tool call ids stay unique in a session and the call runs as a new
 * call instead of passing for a replay of another. The renames are kept out of band (returned,
 * and stored in the agent message's metadata), never marked inside the id. Returns the calls
 * (unchanged ones as given) and the renames, new id to original id.
 */
export function rekeyRepeatedToolCallIds<TCall extends { id: string }>(
  calls: readonly TCall[],
  history: readonly Pick<Message, 'content'>[],
): { calls: TCall[]; rekeyed: Record<string, string> } {
  const rekeyed: Record<string, string> = {};
  if (calls.length === 0) return { calls: [...calls], rekeyed };
  // A history already checked well formed has its ids at hand; otherwise collect them.
  const known = knownToolCallIds(history as readonly Message[]);
  const used = new Set<string>();
  if (known === undefined) {
    for (const message of history) {
      for (const part of message.content) {
        if (part.type === 'tool_call') used.add(part.id);
        else if (part.type === 'tool_result') used.add(part.toolCallId);
      }
    }
  }
  const isUsed = (id: string): boolean => used.has(id) || known?.has(id) === true;
  const result = calls.map((call) => {
    if (call.id.trim() !== '' && !isUsed(call.id)) {
      used.add(call.id);
      return call;
    }
    let id = `call_${uuidV7Hex()}`;
    while (isUsed(id)) id = `call_${uuidV7Hex()}`;
    used.add(id);
    rekeyed[id] = call.id;
    return { ...call, id };
  });
  return { calls: result, rekeyed };
}
