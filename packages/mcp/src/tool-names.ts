/** Longest tool name every provider accepts (OpenAI's and Anthropic's rule). */
export const MAX_TOOL_NAME_LENGTH = 64;

/** The characters every provider accepts in a tool name. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

/** Replaces what providers refuse with `_` and cuts to {@link MAX_TOOL_NAME_LENGTH}. */
function sanitize(name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, MAX_TOOL_NAME_LENGTH);
  return cleaned === '' ? '_' : cleaned;
}

/**
 * The model-facing name of a server's tool: `<server>__<tool>`, with every character outside
 * `[a-zA-Z0-9_-]` replaced by `_` and cut to 64 characters. When that name is already `taken`
 * (by another server's tool, a capability tool or a reserved name), a suffix `_2`, `_3`, … is
 * added (cutting the name further so it stays within 64), so the result is deterministic for a
 * given order of servers and tools.
 */
export function namespacedToolName(
  server: string,
  tool: string,
  taken: ReadonlySet<string>,
): string {
  const base = sanitize(`${server}__${tool}`);
  if (!taken.has(base)) return base;
  for (let counter = 2; ; counter++) {
    const suffix = `_${counter}`;
    const candidate = `${base.slice(0, MAX_TOOL_NAME_LENGTH - suffix.length)}${suffix}`;
    if (!taken.has(candidate)) return candidate;
  }
}
