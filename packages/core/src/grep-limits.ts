/**
 * The bounds every `SessionFileSystem.grepFiles` applies, so a pattern, glob or workspace chosen
 * by a model or a file cannot hold the process: see {@link DEFAULT_GREP_LIMITS}.
 */
export interface GrepLimits {
  /** Longest regular expression or path glob accepted, in characters; longer is `LIMIT_EXCEEDED`. */
  maxPatternLength: number;
  /**
   * Longest part of a line tested, in characters: a longer line is tested (and returned) cut to
   * this length, and the call reports the limit as reached.
   */
  maxLineLength: number;
  /** Most bytes of file content one call scans; the search then stops and reports it. */
  maxBytesScanned: number;
  /** Most time one call spends, in milliseconds; the search then stops and reports it. */
  timeLimitMs: number;
  /**
   * Longest stretch of work, in milliseconds, between two yields to the event loop, so other
   * sessions keep running while a large workspace is searched.
   */
  sliceMs: number;
}

/**
 * Defaults of {@link GrepLimits}: patterns and globs up to 1,000 characters, lines tested up to
 * 100,000 characters, 100 MiB scanned and 10 seconds per call, a yield at least every 20 ms.
 */
export const DEFAULT_GREP_LIMITS: Readonly<GrepLimits> = Object.freeze({
  maxPatternLength: 1_000,
  maxLineLength: 100_000,
  maxBytesScanned: 100 * 1024 * 1024,
  timeLimitMs: 10_000,
  sliceMs: 20,
});

/** Which limit stopped or shortened a grep (see {@link GrepLimitReached}). */
export type GrepLimitName = 'maxFiles' | 'maxLineLength' | 'maxBytesScanned' | 'timeLimitMs';

/** Told through `GrepOptions.onLimitReached` when a limit left matches out. */
export interface GrepLimitReached {
  /** The limit reached. */
  limit: GrepLimitName;
  /** Its configured value. */
  value: number;
}

/**
 * {@link DEFAULT_GREP_LIMITS} overridden by `overrides`; every value must be a positive number
 * (a `TypeError` otherwise, a programmer mistake).
 */
export function resolveGrepLimits(overrides: Partial<GrepLimits> = {}): GrepLimits {
  const limits: GrepLimits = { ...DEFAULT_GREP_LIMITS };
  for (const key of Object.keys(DEFAULT_GREP_LIMITS) as (keyof GrepLimits)[]) {
    const value = overrides[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value > 0)) {
      throw new TypeError(`grep limit ${key} must be a positive number`);
    }
    limits[key] = value;
  }
  return limits;
}
