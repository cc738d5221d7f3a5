import { EverrunsError } from './errors.js';
import { yieldToEventLoop } from './grep-scan.js';

/**
 * Text operations every `SessionFileSystem` implementation performs the same way (paging,
 * exact replacement, grep patterns), so backends agree to the letter.
 */

/** Lines with their line ends; a final line end does not start another line; `''` has none. */
export function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end === -1) {
      lines.push(text.slice(start));
      break;
    }
    lines.push(text.slice(start, end + 1));
    start = end + 1;
  }
  return lines;
}

/** A page of a text file, as `readFile` with `offset`/`limit` returns it. */
export interface TextPage {
  content: string;
  totalLines: number;
  truncated: boolean;
}

/**
 * The lines `offset` (0-based) to `offset + limit` of `text`, with their line ends. Walks the text
 * once without splitting it into an array of lines, so a page of a file of millions of short
 * lines costs one scan, not one string per line.
 */
export function pageTextLines(
  text: string,
  options: { offset?: number; limit?: number },
): TextPage {
  const scan = scanPage(text, options);
  let step = scan.next();
  while (!step.done) step = scan.next();
  return step.value;
}

/**
 * {@link pageTextLines} for large texts without holding the event loop: the same scan, cut into
 * slices of at most `sliceMs` milliseconds (default 20) with a yield to the event loop between
 * them, and one before the first. Small texts (under 256 KiB) are paged at once.
 */
export async function pageTextLinesInSlices(
  text: string,
  options: { offset?: number; limit?: number },
  sliceMs = 20,
): Promise<TextPage> {
  if (text.length < 262_144) return pageTextLines(text, options);
  // The caller has just read or decoded the text, synchronous work of its own: the loop gets a
  // turn before the first slice rather than after it.
  await yieldToEventLoop();
  const scan = scanPage(text, options);
  let sliceStarted = performance.now();
  let step = scan.next();
  while (!step.done) {
    if (performance.now() - sliceStarted >= sliceMs) {
      await yieldToEventLoop();
      sliceStarted = performance.now();
    }
    step = scan.next();
  }
  return step.value;
}

/** The page scan of both functions above; it pauses (yields) every 4,096 lines. */
function* scanPage(
  text: string,
  options: { offset?: number; limit?: number },
): Generator<void, TextPage, void> {
  const start = Math.max(0, Math.trunc(options.offset ?? 0));
  const end =
    options.limit === undefined
      ? Number.POSITIVE_INFINITY
      : start + Math.max(0, Math.trunc(options.limit));
  let line = 0;
  let position = 0;
  let pageStart = -1;
  let pageEnd = -1;
  const length = text.length;
  while (position < length) {
    if ((line & 4095) === 4095) yield;
    if (line === start) pageStart = position;
    if (line === end) pageEnd = position;
    const next = text.indexOf('\n', position);
    position = next === -1 ? length + 1 : next + 1;
    line++;
  }
  return {
    content: pageStart === -1 ? '' : text.slice(pageStart, pageEnd === -1 ? text.length : pageEnd),
    totalLines: line,
    truncated: start > 0 || end < line,
  };
}

/** How many non-overlapping times `search` (non-empty) occurs in `text`. */
export function countOccurrences(text: string, search: string): number {
  let count = 0;
  let index = text.indexOf(search);
  while (index !== -1) {
    count++;
    index = text.indexOf(search, index + search.length);
  }
  return count;
}

/**
 * `editFile`'s replacement: `oldText` must occur exactly once (or at least once with
 * `replaceAll`), else `CONTENT_MISMATCH` naming the count. Returns the new text.
 */
export function replaceExactText(
  path: string,
  text: string,
  oldText: string,
  newText: string,
  replaceAll = false,
): string {
  const occurrences = countOccurrences(text, oldText);
  if (occurrences === 0 || (occurrences > 1 && !replaceAll)) {
    throw new EverrunsError({
      code: 'CONTENT_MISMATCH',
      message: `Expected exactly one occurrence of the text to replace in ${path}, found ${occurrences}`,
      details: { path, occurrences },
    });
  }
  if (replaceAll) return text.split(oldText).join(newText);
  const index = text.indexOf(oldText);
  return text.slice(0, index) + newText + text.slice(index + oldText.length);
}

/**
 * `grepFiles`'s pattern as a RegExp; an invalid expression is `INVALID_INPUT`.
 *
 * @deprecated A JavaScript RegExp backtracks: `(a+)+$` over a 40-character line runs for hours.
 * Compile untrusted patterns with `compileGrepMatcher` on a linear-time engine.
 */
export function compileGrepPattern(pattern: string, ignoreCase = false): RegExp {
  try {
    return new RegExp(pattern, ignoreCase ? 'i' : '');
  } catch (error) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid regular expression ${JSON.stringify(pattern)}`,
      cause: error,
      details: { pattern },
    });
  }
}
