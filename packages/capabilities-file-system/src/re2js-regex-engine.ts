import type { LinearRegexEngine, LineMatcher } from '@everruns-ts/core';
import { RE2JS } from 're2js';

/** Largest compiled program accepted (RE2's rough measure of a pattern's matching cost). */
const MAX_PROGRAM_SIZE = 20_000;

/**
 * `re2js` as a {@link LinearRegexEngine}: a pure-JavaScript port of RE2, whose matching time is
 * linear in the line's length (no backtracking, so `(a+)+$` costs what `a+$` costs). JavaScript
 * spellings RE2 lacks (`\u00e9`, `\u{1F600}`, `\cJ`, `[^]`) are translated first. A pattern whose
 * compiled program is larger than 20,000 instructions is refused.
 *
 * The `grep_files` tool passes it as `GrepOptions.regexEngine` on every call, so the model's
 * patterns are matched in linear time on any store. An embedder can hand it to a store of its own
 * (for example `new InMemorySessionFileStore({ regexEngine: re2jsRegexEngine })`).
 */
export const re2jsRegexEngine: LinearRegexEngine = {
  name: 're2js',
  compile(pattern: string, options: { ignoreCase: boolean }): LineMatcher {
    const compiled = RE2JS.compile(
      RE2JS.translateRegExp(pattern),
      options.ignoreCase ? RE2JS.CASE_INSENSITIVE : 0,
    );
    const size = compiled.programSize();
    if (size > MAX_PROGRAM_SIZE) {
      throw new Error(
        `the pattern compiles to ${size} instructions; the limit is ${MAX_PROGRAM_SIZE}`,
      );
    }
    return { test: (line: string) => compiled.test(line) };
  },
};
