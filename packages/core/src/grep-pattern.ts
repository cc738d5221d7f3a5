import { EverrunsError } from './errors.js';
import { DEFAULT_GREP_LIMITS } from './grep-limits.js';

/** A compiled grep pattern: tests one line. */
export interface LineMatcher {
  /** True when the pattern matches somewhere in `line`. */
  test(line: string): boolean;
}

/**
 * A regular-expression engine whose matching time is linear in the input (RE2 and its ports),
 * handed to {@link compileGrepMatcher} by a file-system backend. Core ships none, so it keeps
 * depending on zod only; the backends bring one (ours use `re2js`).
 */
export interface LinearRegexEngine {
  /** Name shown in errors, for example `re2js`. */
  readonly name: string;
  /**
   * Compiles `pattern`; throws (anything) when the engine refuses it, with a message saying
   * why. Must not match by backtracking.
   */
  compile(pattern: string, options: { ignoreCase: boolean }): LineMatcher;
}

/** Options of {@link compileGrepMatcher}. */
export interface GrepMatcherOptions {
  ignoreCase?: boolean;
  /** Longest pattern accepted. Default `DEFAULT_GREP_LIMITS.maxPatternLength`. */
  maxPatternLength?: number;
}

/**
 * Syntax a backtracking engine has and a linear-time one refuses, found outside character
 * classes: backreferences, lookahead, lookbehind, atomic groups and possessive quantifiers.
 * Returns the name of the first construct found (with the text that shows it), or undefined.
 */
export function findUnsupportedRegexSyntax(pattern: string): string | undefined {
  let inClass = false;
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index];
    if (char === '\\') {
      const next = pattern[index + 1];
      if (!inClass && next !== undefined && next >= '1' && next <= '9') {
        return `backreference \`\\${next}\``;
      }
      if (!inClass && next === 'k' && pattern[index + 2] === '<')
        return 'named backreference `\\k<…>`';
      index++;
      continue;
    }
    if (inClass) {
      if (char === ']') inClass = false;
      continue;
    }
    if (char === '[') {
      inClass = true;
      // A `]` right after `[` or `[^` is a literal member of the class.
      if (pattern[index + 1] === '^') index++;
      if (pattern[index + 1] === ']') index++;
      continue;
    }
    if (char === '(' && pattern[index + 1] === '?') {
      const rest = pattern.slice(index + 2, index + 4);
      if (rest.startsWith('=')) return 'lookahead `(?=`';
      if (rest.startsWith('!')) return 'negative lookahead `(?!`';
      if (rest === '<=') return 'lookbehind `(?<=`';
      if (rest === '<!') return 'negative lookbehind `(?<!`';
      if (rest.startsWith('>')) return 'atomic group `(?>`';
    }
    if (
      (char === '+' || char === '*' || char === '?' || char === '}') &&
      pattern[index + 1] === '+'
    ) {
      return `possessive quantifier \`${char}+\``;
    }
  }
  return undefined;
}

function shown(pattern: string): string {
  return JSON.stringify(pattern.length > 100 ? `${pattern.slice(0, 100)}…` : pattern);
}

/**
 * Compiles `grepFiles`' pattern on a linear-time `engine`. Throws `LIMIT_EXCEEDED` for a pattern
 * longer than `maxPatternLength`; `INVALID_INPUT` naming the construct for syntax only a
 * backtracking engine has (backreferences, lookaround; `details.unsupported`); `INVALID_INPUT`
 * with the engine's reason for any other pattern the engine refuses.
 */
export function compileGrepMatcher(
  pattern: string,
  engine: LinearRegexEngine,
  options: GrepMatcherOptions = {},
): LineMatcher {
  if (typeof pattern !== 'string') throw new TypeError('pattern must be a string');
  const maxPatternLength = options.maxPatternLength ?? DEFAULT_GREP_LIMITS.maxPatternLength;
  if (pattern.length > maxPatternLength) {
    throw new EverrunsError({
      code: 'LIMIT_EXCEEDED',
      message: `The regular expression is ${pattern.length} characters long; the limit is ${maxPatternLength}`,
      details: { limit: 'maxPatternLength', maxPatternLength, length: pattern.length },
    });
  }
  const unsupported = findUnsupportedRegexSyntax(pattern);
  if (unsupported !== undefined) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Unsupported regular expression ${shown(pattern)}: ${unsupported} is not supported (patterns run on a linear-time engine, RE2 syntax)`,
      details: { pattern: pattern.slice(0, 100), unsupported },
    });
  }
  try {
    return engine.compile(pattern, { ignoreCase: options.ignoreCase ?? false });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid regular expression ${shown(pattern)}: ${reason}`,
      cause: error,
      details: { pattern: pattern.slice(0, 100) },
    });
  }
}
