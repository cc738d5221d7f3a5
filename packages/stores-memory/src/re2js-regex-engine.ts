import type { LinearRegexEngine, LineMatcher } from '@everruns-ts/core';

/** Largest compiled program accepted (RE2's rough measure of a pattern's matching cost). */
const MAX_PROGRAM_SIZE = 20_000;

/**
 * The part of the `re2js` module the adapter uses, spelled out here so nothing this package
 * ships names `re2js` in a static import or a type (it is an optional peer dependency).
 */
export interface Re2jsModule {
  RE2JS: {
    readonly CASE_INSENSITIVE: number;
    compile(
      pattern: string,
      flags: number,
    ): { programSize(): number; test(input: string): boolean };
    translateRegExp(pattern: string): string;
  };
}

/**
 * `grepFiles`' regular-expression engine built on a loaded `re2js` module, a pure-JavaScript port
 * of RE2 whose matching time is linear in the line's length (no backtracking, so `(a+)+$` costs
 * what `a+$` costs). JavaScript spellings RE2 lacks (`\u00e9`, `\u{1F600}`, `\cJ`, `[^]`) are
 * translated first. A pattern whose compiled program is larger than 20,000 instructions is
 * refused.
 */
export function re2jsRegexEngineFrom({ RE2JS }: Re2jsModule): LinearRegexEngine {
  return {
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
}

let loading: Promise<LinearRegexEngine> | undefined;

/**
 * The `re2js` engine, imported on first use and kept for every later call. Rejects with the
 * import's error when `re2js` is not installed (and tries again on the next call).
 */
export function loadRe2jsRegexEngine(): Promise<LinearRegexEngine> {
  if (loading === undefined) {
    loading = import('re2js').then(
      (module) => re2jsRegexEngineFrom(module),
      (error: unknown) => {
        loading = undefined;
        throw error;
      },
    );
  }
  return loading;
}
