/** Elements that never have content or a closing tag. */
const VOID_ELEMENTS = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'keygen',
  'link',
  'meta',
  'param',
  'source',
  'track',
  'wbr',
]);

/** Elements dropped with everything inside them: nothing in them is text a reader sees. */
const DROPPED_ELEMENTS = new Set(['script', 'style', 'noscript', 'template']);

/** Block elements whose opening closes an open `<p>`, as an HTML parser does. */
const CLOSES_PARAGRAPH = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'details',
  'div',
  'dl',
  'fieldset',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'table',
  'ul',
]);

/** For an opening tag, the open elements at the top of the stack it closes first. */
const CLOSED_BY_OPENING: Record<string, ReadonlySet<string>> = {
  li: new Set(['li']),
  dt: new Set(['dt', 'dd']),
  dd: new Set(['dt', 'dd']),
  td: new Set(['td', 'th']),
  th: new Set(['td', 'th']),
  tr: new Set(['td', 'th', 'tr']),
  thead: new Set(['td', 'th', 'tr', 'tbody', 'thead', 'tfoot']),
  tbody: new Set(['td', 'th', 'tr', 'tbody', 'thead', 'tfoot']),
  tfoot: new Set(['td', 'th', 'tr', 'tbody', 'thead', 'tfoot']),
  option: new Set(['option']),
  a: new Set(['a']),
};

/** Most attributes kept on one element; the rest are dropped. */
const MAX_ATTRIBUTES = 32;

/** Longest attribute value kept (a longer one is cut). */
const MAX_ATTRIBUTE_CHARS = 16_384;

const NAME_START = /[A-Za-z]/;
const TAG_NAME = /[A-Za-z][^\s/>]*/y;
const ATTRIBUTE_NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*$/;

/** True for the characters HTML counts as white space between attributes. */
function isSpace(char: string | undefined): boolean {
  return char === ' ' || char === '\n' || char === '\t' || char === '\r' || char === '\f';
}

/** The rest of a document that ends inside a tag, as text. */
function asText(rest: string): string {
  return rest.replaceAll('<', '&lt;');
}

function escapeAttribute(value: string): string {
  return value.replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * Reads the attributes of a tag from `start` to its `>`; returns them and the index after `>`,
 * or null when the document ends first (unclosed tag or quote).
 */
function readAttributes(
  html: string,
  start: number,
): { attributes: string; selfClosing: boolean; end: number } | null {
  const parts: string[] = [];
  let index = start;
  let selfClosing = false;
  const length = html.length;
  for (;;) {
    while (index < length && isSpace(html[index])) index++;
    if (index >= length) return null;
    const char = html[index] as string;
    if (char === '>') return { attributes: parts.join(''), selfClosing, end: index + 1 };
    if (char === '/') {
      selfClosing = html[index + 1] === '>';
      index++;
      continue;
    }
    const nameStart = index;
    while (index < length) {
      const char = html[index];
      if (isSpace(char) || char === '/' || char === '>' || char === '=') break;
      index++;
    }
    const name = html.slice(nameStart, index).toLowerCase();
    while (index < length && isSpace(html[index])) index++;
    let value: string | null = null;
    if (html[index] === '=') {
      index++;
      while (index < length && isSpace(html[index])) index++;
      const quote = html[index];
      if (quote === '"' || quote === "'") {
        const close = html.indexOf(quote, index + 1);
        if (close === -1) return null;
        value = html.slice(index + 1, close);
        index = close + 1;
      } else {
        const valueStart = index;
        while (index < length && !isSpace(html[index]) && html[index] !== '>') index++;
        value = html.slice(valueStart, index);
      }
    }
    if (parts.length < MAX_ATTRIBUTES && ATTRIBUTE_NAME.test(name)) {
      parts.push(
        value === null
          ? ` ${name}`
          : ` ${name}="${escapeAttribute(value.slice(0, MAX_ATTRIBUTE_CHARS))}"`,
      );
    }
  }
}

/** Elements after whose end a long document may be split into the next chunk. */
const BLOCK_ELEMENTS = new Set([
  ...CLOSES_PARAGRAPH,
  'dd',
  'dt',
  'li',
  'tbody',
  'td',
  'tfoot',
  'th',
  'thead',
  'tr',
]);

/** Output characters after which a chunk ends at the next block end outside tables and `<pre>`. */
const CHUNK_CHARS = 16_384;

/** Output characters after which a chunk ends at the next tag, wherever it is. */
const HARD_CHUNK_CHARS = 32_768;

/**
 * Rewrites untrusted HTML into a form every converter parses in linear time: in one pass, with
 * work proportional to the input, it closes every element it opens (end tags in the right order,
 * implied ends such as `<li>` after `<li>` or a block after `<p>`), drops end tags that close
 * nothing, drops opening tags nested deeper than `maxDepth` (their text stays), drops comments,
 * `<script>`, `<style>`, `<noscript>` and `<template>` with their content, and rewrites each tag
 * with at most 32 double-quoted attributes of at most 16,384 characters. A `<` that starts no
 * tag becomes `&lt;`.
 *
 * Without it, `node-html-markdown`'s parser takes time growing faster than the square of the
 * number of unclosed tags (24 KB of `<div>` took seconds), and both converters recurse once per
 * nesting level, so a deep enough page overflows the stack.
 */
export function limitHtmlNesting(html: string, maxDepth: number): string {
  return limitHtmlNestingChunks(html, maxDepth).join('');
}

/**
 * {@link limitHtmlNesting}, cut into chunks of 16 to 32 KB, each a complete fragment: at a block
 * end, every open element is closed and the next chunk opens them again. A converter whose time
 * grows with the square of its input (`node-html-markdown` rebuilds its output string on every
 * append) then takes time proportional to the whole page when run chunk by chunk.
 */
export function limitHtmlNestingChunks(html: string, maxDepth: number): string[] {
  const steps = limitHtmlNestingSteps(html, maxDepth);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Characters of input {@link limitHtmlNestingInSlices} handles between two yields to the event loop. */
const SLICE_CHARS = 32_768;

/**
 * {@link limitHtmlNestingChunks} in slices of about 32 KB of input, giving the event loop a turn
 * between slices so a large page never holds it for long. Throws the signal's reason when it aborts.
 */
export async function limitHtmlNestingInSlices(
  html: string,
  maxDepth: number,
  signal?: AbortSignal,
): Promise<string[]> {
  const steps = limitHtmlNestingSteps(html, maxDepth);
  for (;;) {
    signal?.throwIfAborted();
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function* limitHtmlNestingSteps(html: string, maxDepth: number): Generator<void, string[]> {
  const chunks: string[] = [];
  let output: string[] = [];
  let chunkChars = 0;
  let blockEnded = false;
  const stack: string[] = [];
  const openCount = new Map<string, number>();
  const length = html.length;
  let lower: string | undefined;
  let index = 0;
  let nextSlice = SLICE_CHARS;

  const emit = (text: string) => {
    output.push(text);
    chunkChars += text.length;
    blockEnded = false;
  };
  const push = (name: string) => {
    stack.push(name);
    openCount.set(name, (openCount.get(name) ?? 0) + 1);
  };
  const pop = () => {
    const name = stack.pop() as string;
    openCount.set(name, (openCount.get(name) ?? 1) - 1);
    emit(`</${name}>`);
    blockEnded = BLOCK_ELEMENTS.has(name);
  };
  const closeThrough = (name: string) => {
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      pop();
      if (top === name) return;
    }
  };
  /**
   * Ends the chunk once it is long enough: at a block end outside tables and `<pre>`, or at any
   * tag past the hard size. The next chunk opens the open elements again (without attributes,
   * so reopening costs at most a few characters per level).
   */
  const maybeSplit = () => {
    if (chunkChars < CHUNK_CHARS) return;
    const atGoodEnd =
      blockEnded && (openCount.get('table') ?? 0) === 0 && (openCount.get('pre') ?? 0) === 0;
    if (!atGoodEnd && chunkChars < HARD_CHUNK_CHARS) return;
    for (let level = stack.length - 1; level >= 0; level--) output.push(`</${stack[level]}>`);
    chunks.push(output.join(''));
    output = stack.map((name) => `<${name}>`);
    chunkChars = 0;
    blockEnded = false;
  };

  while (index < length) {
    maybeSplit();
    if (index >= nextSlice) {
      yield;
      nextSlice = index + SLICE_CHARS;
    }
    const next = html.indexOf('<', index);
    if (next === -1) {
      emit(html.slice(index));
      break;
    }
    if (next > index) emit(html.slice(index, next));
    index = next;
    const after = html[index + 1] ?? '';
    if (html.startsWith('<!--', index)) {
      const close = html.indexOf('-->', index + 4);
      index = close === -1 ? length : close + 3;
      continue;
    }
    if (after === '!' || after === '?') {
      const close = html.indexOf('>', index + 2);
      index = close === -1 ? length : close + 1;
      continue;
    }
    if (after === '/' && NAME_START.test(html[index + 2] ?? '')) {
      TAG_NAME.lastIndex = index + 2;
      const name = (TAG_NAME.exec(html)?.[0] ?? '').toLowerCase();
      const close = html.indexOf('>', index + 2 + name.length);
      if (close === -1) {
        emit(asText(html.slice(index)));
        break;
      }
      index = close + 1;
      if ((openCount.get(name) ?? 0) > 0) closeThrough(name);
      continue;
    }
    if (!NAME_START.test(after)) {
      emit('&lt;');
      index++;
      continue;
    }
    TAG_NAME.lastIndex = index + 1;
    const name = (TAG_NAME.exec(html)?.[0] ?? '').toLowerCase();
    const tag = readAttributes(html, index + 1 + name.length);
    if (!tag) {
      emit(asText(html.slice(index)));
      break;
    }
    index = tag.end;
    if (DROPPED_ELEMENTS.has(name)) {
      if (!tag.selfClosing) {
        lower ??= html.toLowerCase();
        const close = lower.indexOf(`</${name}`, index);
        const end = close === -1 ? -1 : html.indexOf('>', close);
        index = end === -1 ? length : end + 1;
      }
      continue;
    }
    if (CLOSES_PARAGRAPH.has(name) && (openCount.get('p') ?? 0) > 0) {
      while (stack.length > 0 && stack[stack.length - 1] !== 'p') {
        const top = stack[stack.length - 1] as string;
        if (CLOSES_PARAGRAPH.has(top) || top === 'td' || top === 'th') break;
        pop();
      }
      if (stack[stack.length - 1] === 'p') pop();
    }
    const closedBy = CLOSED_BY_OPENING[name];
    if (closedBy) {
      if (name === 'a' && (openCount.get('a') ?? 0) > 0) closeThrough('a');
      else
        while (stack.length > 0 && closedBy.has(stack[stack.length - 1] as string)) {
          pop();
        }
    }
    if (VOID_ELEMENTS.has(name)) {
      emit(`<${name}${tag.attributes}>`);
      continue;
    }
    if (tag.selfClosing || stack.length >= maxDepth) continue;
    emit(`<${name}${tag.attributes}>`);
    push(name);
  }
  while (stack.length > 0) pop();
  chunks.push(output.join(''));
  return chunks.filter((chunk) => chunk.length > 0);
}
