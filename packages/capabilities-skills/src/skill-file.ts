import { parse as parseYaml } from 'yaml';

/** A parsed `SKILL.md`: front matter fields and the instructions below it. */
export interface SkillFile {
  name: string;
  description: string;
  /** The Markdown after the front matter. */
  body: string;
  /** Every front-matter field, as parsed. */
  metadata: Record<string, unknown>;
}

/** Why a `SKILL.md` could not be used. */
export class SkillFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkillFileError';
  }
}

/** Limits on a front matter, checked before the YAML parser sees it. */
export interface FrontMatterLimits {
  /** Most UTF-8 bytes between the `---` lines. Default {@link MAX_FRONT_MATTER_BYTES}. */
  maxFrontMatterBytes: number;
  /** Most mapping keys (`key:` indicators) in it. Default {@link MAX_FRONT_MATTER_KEYS}. */
  maxFrontMatterKeys: number;
}

/**
 * Default most bytes of front matter (8 KiB): `name` and `description` need far less, and the
 * `yaml` parser takes about 1.5 ms per KiB, so a front matter is parsed in a few milliseconds.
 */
export const MAX_FRONT_MATTER_BYTES = 8_192;

/** Default most keys of a front matter (the `yaml` parser's duplicate-key check grows with their square). */
export const MAX_FRONT_MATTER_KEYS = 64;

/** Deepest `[`/`{` nesting accepted in a front matter (the parser recurses once per level). */
export const MAX_FRONT_MATTER_NESTING = 32;

/** Most aliases (`*name`) expanded in a front matter, against "billion laughs" documents. */
export const MAX_FRONT_MATTER_ALIASES = 32;

const DEFAULT_LIMITS: FrontMatterLimits = {
  maxFrontMatterBytes: MAX_FRONT_MATTER_BYTES,
  maxFrontMatterKeys: MAX_FRONT_MATTER_KEYS,
};

const OPENING = /^\uFEFF?---[ \t]*\r?\n/;
/** The closing `---` line, followed by a line break or the end of the file. */
const CLOSING = /\r?\n---[ \t]*(?:\r?\n|$)/g;
/** The closing `---` line inside a window cut from a longer file: the line break must be there. */
const CLOSING_IN_WINDOW = /\r?\n---[ \t]*\r?\n/g;
/** A mapping key indicator: `:` before white space, a flow delimiter or the end, or after a quote. */
const KEY_INDICATOR = /:(?=[\s,[\]{}]|$)|["']:/g;

function deepestFlowNesting(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (char === '[' || char === '{') deepest = Math.max(deepest, ++depth);
    else if ((char === ']' || char === '}') && depth > 0) depth--;
  }
  return deepest;
}

/**
 * Parses a `SKILL.md`: YAML front matter between `---` lines with a non-empty string `name` and
 * `description`, then the Markdown body. The front matter is untrusted workspace content, so it
 * is bounded before the `yaml` package parses it: at most `maxFrontMatterBytes` bytes, and
 * `maxFrontMatterKeys` keys, `[`/`{` nesting of at most {@link MAX_FRONT_MATTER_NESTING}; then it
 * is parsed with the YAML 1.2 core schema, no custom tags (an unknown tag such as `!!js/function`
 * stays a plain string and runs nothing), no merge keys, and at most
 * {@link MAX_FRONT_MATTER_ALIASES} aliases. Throws {@link SkillFileError} naming what is wrong.
 */
export function parseSkillFile(
  content: string,
  limits: FrontMatterLimits = DEFAULT_LIMITS,
): SkillFile {
  const opening = OPENING.exec(content);
  if (!opening) throw new SkillFileError('no YAML front matter between "---" lines at the top');
  // Look for the closing line only as far as the limit allows: a huge front matter is refused
  // without scanning (or parsing) all of it.
  const window = content.slice(0, opening[0].length + limits.maxFrontMatterBytes + 8);
  const closingPattern = window.length === content.length ? CLOSING : CLOSING_IN_WINDOW;
  closingPattern.lastIndex = opening[0].length;
  const closing = closingPattern.exec(window);
  if (!closing) {
    throw new SkillFileError(
      content.length > window.length
        ? `the front matter is longer than ${limits.maxFrontMatterBytes} bytes, or not closed by a "---" line`
        : 'no YAML front matter between "---" lines at the top',
    );
  }
  const frontMatter = content.slice(opening[0].length, closing.index);
  if (Buffer.byteLength(frontMatter) > limits.maxFrontMatterBytes) {
    throw new SkillFileError(`the front matter is longer than ${limits.maxFrontMatterBytes} bytes`);
  }
  const keys = frontMatter.match(KEY_INDICATOR)?.length ?? 0;
  if (keys > limits.maxFrontMatterKeys) {
    throw new SkillFileError(
      `the front matter has more than ${limits.maxFrontMatterKeys} keys (${keys})`,
    );
  }
  if (deepestFlowNesting(frontMatter) > MAX_FRONT_MATTER_NESTING) {
    throw new SkillFileError(
      `the front matter nests "[" or "{" deeper than ${MAX_FRONT_MATTER_NESTING} levels`,
    );
  }
  let metadata: unknown;
  try {
    metadata = parseYaml(frontMatter, {
      schema: 'core',
      customTags: [],
      merge: false,
      maxAliasCount: MAX_FRONT_MATTER_ALIASES,
      logLevel: 'error',
    });
  } catch (error) {
    throw new SkillFileError(`the front matter is not valid YAML: ${(error as Error).message}`);
  }
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new SkillFileError('the front matter must be a YAML mapping');
  }
  const fields = metadata as Record<string, unknown>;
  for (const field of ['name', 'description'] as const) {
    const value = fields[field];
    if (typeof value !== 'string' || value.trim() === '') {
      throw new SkillFileError(`the front matter needs a non-empty string "${field}"`);
    }
  }
  return {
    name: (fields.name as string).trim(),
    description: (fields.description as string).trim(),
    body: content.slice(closing.index + closing[0].length).trim(),
    metadata: fields,
  };
}
