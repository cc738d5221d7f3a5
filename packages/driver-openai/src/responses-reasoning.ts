import type { ReasoningPart } from '@everruns-ts/core';
import { isJsonObject, stringOrUndefined } from '@everruns-ts/driver-http';

// How a Responses API reasoning item is kept in a core reasoning part, and read back.
//
// - `text`: the item's summary texts (or, without a summary, its reasoning texts) joined by a
//   blank line;
// - `signature`: JSON `{ "responsesReasoningId": "rs_…", "following": [...] }`: the item's id and
//   the ids of the output items that followed it up to the next reasoning item (`message` and
//   `function_call` items, the latter with their `call_id`). The API pairs a reasoning item
//   with the item that followed it by id, so both go back together or not at all;
// - `redactedData`: the item's `encrypted_content`, when the request asked for it.

/** An output item that followed a reasoning item, as kept in the reasoning part's signature. */
export type FollowingItem =
  | { type: 'message'; id: string }
  | { type: 'function_call'; id: string; callId: string };

/** A Responses API reasoning item as read from a stored reasoning part. */
export interface StoredReasoningItem {
  id: string;
  text: string;
  encryptedContent?: string;
  following: FollowingItem[];
}

/** The reasoning part that keeps one Responses API reasoning item. */
export function reasoningPartOf(item: {
  id: string;
  text: string;
  encryptedContent?: string | undefined;
  following: FollowingItem[];
}): ReasoningPart {
  return {
    type: 'reasoning',
    text: item.text,
    signature: JSON.stringify({
      responsesReasoningId: item.id,
      following: item.following.map((entry) =>
        entry.type === 'message'
          ? { type: 'message', id: entry.id }
          : { type: 'function_call', id: entry.id, call_id: entry.callId },
      ),
    }),
    ...(item.encryptedContent !== undefined ? { redactedData: item.encryptedContent } : {}),
  };
}

/**
 * The Responses API reasoning item a reasoning part keeps, or `undefined` for reasoning of any
 * other kind (plain text of a Chat Completions server, an Anthropic thinking block).
 */
export function storedReasoningItem(part: ReasoningPart): StoredReasoningItem | undefined {
  if (part.signature === undefined || !part.signature.startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(part.signature);
  } catch {
    return undefined;
  }
  if (!isJsonObject(parsed)) return undefined;
  const id = stringOrUndefined(parsed.responsesReasoningId);
  if (!id) return undefined;
  const following: FollowingItem[] = [];
  for (const entry of Array.isArray(parsed.following) ? parsed.following : []) {
    if (!isJsonObject(entry)) continue;
    const entryId = stringOrUndefined(entry.id);
    if (!entryId) continue;
    if (entry.type === 'message') following.push({ type: 'message', id: entryId });
    else if (entry.type === 'function_call') {
      const callId = stringOrUndefined(entry.call_id);
      if (callId) following.push({ type: 'function_call', id: entryId, callId });
    }
  }
  return {
    id,
    text: part.text,
    ...(part.redactedData !== undefined ? { encryptedContent: part.redactedData } : {}),
    following,
  };
}
