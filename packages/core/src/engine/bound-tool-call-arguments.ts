import type { ToolCall } from '../message.js';

/**
 * Deepest nesting of objects and arrays accepted in a tool call's arguments. Deeper arguments are
 * a tool error: stores, drivers and tools walk arguments with recursion (`JSON.stringify`, zod),
 * and a model could otherwise send arguments nested deep enough to overflow the stack.
 */
export const MAX_TOOL_ARGUMENTS_DEPTH = 100;

/**
 * Most values (objects, arrays and scalars, counted one by one) accepted in a tool call's
 * arguments. More is a tool error before the tool's zod schema runs: validating, and reporting,
 * hundreds of thousands of bad values would hold the event loop for a noticeable time.
 */
export const MAX_TOOL_ARGUMENTS_VALUES = 20_000;

/**
 * How many values `value` holds (itself, and every member and item at any depth), counted
 * without recursion and stopping as soon as `limit` is passed.
 */
export function countValues(value: unknown, limit = MAX_TOOL_ARGUMENTS_VALUES): number {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    count++;
    if (count > limit) return count;
    if (current !== null && typeof current === 'object') {
      for (const child of Object.values(current)) stack.push(child);
    }
  }
  return count;
}

/**
 * How deeply `value` nests objects and arrays (a scalar is 0, `{}` and `[]` are 1), counted
 * without recursion and stopping as soon as `limit` is passed (so the answer is at most
 * `limit + 1`, whatever the size of `value`).
 */
export function nestingDepth(value: unknown, limit = MAX_TOOL_ARGUMENTS_DEPTH): number {
  let deepest = 0;
  const stack: Array<[value: unknown, depth: number]> = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (current === null || typeof current !== 'object') continue;
    const here = depth + 1;
    if (here > deepest) deepest = here;
    if (deepest > limit) return deepest;
    for (const child of Object.values(current)) {
      if (child !== null && typeof child === 'object') stack.push([child, here]);
    }
  }
  return deepest;
}

/** Which bound a tool call's arguments text passes, as {@link toolArgumentsTextOverLimit} reports it. */
export type ToolArgumentsLimit = 'depth' | 'values';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function isJsonWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/**
 * Which limit the JSON text of a tool call's arguments passes, read from the text without
 * parsing it: `'depth'` when it nests objects and arrays deeper than `maxDepth`, `'values'` when
 * it holds more than `maxValues` values, `undefined` otherwise. For valid JSON the two counts are
 * exactly those of {@link nestingDepth} and {@link countValues} on the parsed value; the point is
 * to refuse such text before `JSON.parse` spends tens of milliseconds on it in one go (100,000
 * nested brackets, or a million numbers, hold the event loop that long). The scan skips string
 * contents with `indexOf`, so a long string costs little; text that is not JSON gets some answer
 * here and is then refused by `JSON.parse`.
 */
export function toolArgumentsTextOverLimit(
  text: string,
  maxDepth = MAX_TOOL_ARGUMENTS_DEPTH,
  maxValues = MAX_TOOL_ARGUMENTS_VALUES,
): ToolArgumentsLimit | undefined {
  // Fewer opening brackets and separators than either limit: nothing to count.
  if (text.length <= Math.min(maxDepth, maxValues)) return undefined;
  // One bit per open container, 1 for an array; the depth never passes maxDepth + 1.
  const inArray = new Uint8Array(maxDepth + 2);
  let depth = 0;
  let values = 0;
  let expectFirstItem = false;
  let seenRoot = false;
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (isJsonWhitespace(code)) continue;
    if (expectFirstItem) {
      expectFirstItem = false;
      if (code !== CLOSE_BRACKET) values++;
    } else if (!seenRoot) {
      seenRoot = true;
      values++;
    }
    if (code === QUOTE) {
      index = closingQuote(text, index);
      if (index < 0) return values > maxValues ? 'values' : undefined;
    } else if (code === OPEN_BRACKET || code === OPEN_BRACE) {
      depth++;
      if (depth > maxDepth) return 'depth';
      inArray[depth] = code === OPEN_BRACKET ? 1 : 0;
      expectFirstItem = code === OPEN_BRACKET;
    } else if (code === CLOSE_BRACKET || code === CLOSE_BRACE) {
      if (depth > 0) depth--;
    } else if (code === COLON || (code === COMMA && inArray[depth] === 1)) {
      values++;
    }
    if (values > maxValues) return 'values';
  }
  return undefined;
}

/**
 * The arguments of a tool call from the JSON text a model wrote, as drivers hand them to the act
 * step: `{}` for empty text, the parsed value, or the text itself when it is not JSON or passes a
 * bound ({@link toolArgumentsTextOverLimit}; it is not parsed then, since `JSON.parse` would hold
 * the event loop on it). The act step answers a call whose arguments are still text with a tool
 * error saying why.
 */
export function parseToolArgumentsText(text: string): unknown {
  if (text.trim() === '') return {};
  if (toolArgumentsTextOverLimit(text) !== undefined) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Index of the quote that closes the JSON string opened at `open`, or -1 when none does. */
function closingQuote(text: string, open: number): number {
  let from = open + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return -1;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/**
 * A copy of `value` in which every object or array `maxDepth` levels deep is empty, made without
 * recursion: plain data only (object members are copied as own data properties, so a
 * `__proto__` key stays a plain key). A value within `maxDepth` levels is copied whole.
 */
export function copyCutAtDepth(value: unknown, maxDepth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  const emptyLike = (node: object) => (Array.isArray(node) ? [] : {});
  const root = emptyLike(value);
  const stack: Array<[source: object, target: object, depth: number]> = [[value, root, 1]];
  while (stack.length > 0) {
    const [source, target, depth] = stack.pop() as [object, object, number];
    if (depth >= maxDepth) continue;
    for (const key of Object.keys(source)) {
      const child = (source as Record<string, unknown>)[key];
      let copy = child;
      if (child !== null && typeof child === 'object') {
        copy = emptyLike(child);
        stack.push([child, copy as object, depth + 1]);
      }
      Object.defineProperty(target, key, {
        value: copy,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return root;
}

/**
 * `call` with arguments nested deeper than {@link MAX_TOOL_ARGUMENTS_DEPTH} cut one level past
 * the limit (the objects and arrays at that level are left empty), so the call can be stored and
 * sent back to the model by code that recurses, and the tool runner still sees arguments too deep
 * and answers with a tool error. Other calls are returned as they are.
 */
export function boundToolCallArguments(call: ToolCall): ToolCall {
  if (call.arguments === null || typeof call.arguments !== 'object') return call;
  if (nestingDepth(call.arguments) <= MAX_TOOL_ARGUMENTS_DEPTH) return call;
  return { ...call, arguments: copyCutAtDepth(call.arguments, MAX_TOOL_ARGUMENTS_DEPTH + 1) };
}
