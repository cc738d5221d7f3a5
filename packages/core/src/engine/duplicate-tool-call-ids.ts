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
