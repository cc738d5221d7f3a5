import { throwIfAborted } from './errors.js';
import type { GrepMatch } from './file-system.js';
import type { GrepLimitName, GrepLimitReached, GrepLimits } from './grep-limits.js';
import type { LineMatcher } from './grep-pattern.js';

/** Options of {@link GrepScan}. */
export interface GrepScanOptions {
  /** Stop after this many matches (no report: the caller asked for this many). */
  maxMatches: number;
  /** Most files looked into; past it the search stops and reports `maxFiles`. */
  maxFiles?: number;
  signal?: AbortSignal;
  /** Told once per limit that left matches out. */
  onLimitReached?: (reached: GrepLimitReached) => void;
}

/**
 * Lets timers and I/O run before the caller goes on: the pause between slices of long work.
 * Two `setImmediate`s: work resumed from an I/O callback that queued only one would go on in the
 * same turn of the loop (the check phase follows the poll phase) before any timer ran, so a
 * timer could wait two slices; the second queues past the next timers phase, at no clock cost.
 */
export const yieldToEventLoop: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)))
    : () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * One `grepFiles` call's progress under its {@link GrepLimits}: it tests lines, collects
 * matches, counts files and bytes, watches the clock, and yields to the event loop whenever
 * `sliceMs` of work has gone by, so a search of a large workspace never holds the process.
 * Both built-in backends search through it, so they agree to the letter.
 */
export class GrepScan {
  /** Matches found so far, in the order files were scanned. */
  readonly matches: GrepMatch[] = [];
  readonly #limits: GrepLimits;
  readonly #options: GrepScanOptions;
  readonly #started = performance.now();
  readonly #reported = new Set<GrepLimitName>();
  #sliceStarted = performance.now();
  #files = 0;
  #bytes = 0;
  #stopped = false;

  constructor(limits: GrepLimits, options: GrepScanOptions) {
    this.#limits = limits;
    this.#options = options;
    if (options.maxMatches <= 0) this.#stopped = true;
  }

  /** True once a limit (or `maxMatches`) ended the search. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Called between units of work (a directory entry, a file): throws `ABORTED` on an aborted
   * signal, yields when the slice is used up, stops on the time limit. Returns false when the
   * search must end.
   */
  async checkpoint(): Promise<boolean> {
    if (this.#stopped) return false;
    throwIfAborted(this.#options.signal);
    const now = performance.now();
    if (now - this.#started > this.#limits.timeLimitMs) {
      this.#stop('timeLimitMs', this.#limits.timeLimitMs);
      return false;
    }
    if (now - this.#sliceStarted >= this.#limits.sliceMs) {
      await yieldToEventLoop();
      throwIfAborted(this.#options.signal);
      this.#sliceStarted = performance.now();
    }
    return true;
  }

  /**
   * Counts a file about to be scanned; false (and the search ends, reporting `maxFiles`) when
   * it is one more than `maxFiles`.
   */
  enterFile(): boolean {
    if (this.#stopped) return false;
    this.#files++;
    if (this.#options.maxFiles !== undefined && this.#files > this.#options.maxFiles) {
      this.#stop('maxFiles', this.#options.maxFiles);
      return false;
    }
    return true;
  }

  /**
   * Tests every line of `text` (the file at `path`, `bytes` long) with `matcher`, line ends
   * `\n` or `\r\n`, a final line end starting no further line. Yields between lines as the slice
   * requires. Returns false when the search must end.
   */
  async scanText(
    path: string,
    text: string,
    bytes: number,
    matcher: LineMatcher,
  ): Promise<boolean> {
    if (!(await this.checkpoint())) return false;
    if (this.#bytes + bytes > this.#limits.maxBytesScanned) {
      this.#stop('maxBytesScanned', this.#limits.maxBytesScanned);
      return false;
    }
    this.#bytes += bytes;
    const maxLineLength = this.#limits.maxLineLength;
    let start = 0;
    let lineNumber = 0;
    let sinceCheck = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      lineNumber++;
      let line: string;
      if (end - start > maxLineLength) {
        line = text.slice(start, start + maxLineLength);
        this.#report('maxLineLength', maxLineLength);
      } else {
        line = text.slice(start, end);
        if (line.endsWith('\r')) line = line.slice(0, -1);
      }
      start = end + 1;
      if (matcher.test(line)) {
        this.matches.push({ path, lineNumber, line });
        if (this.matches.length >= this.#options.maxMatches) {
          this.#stopped = true;
          return false;
        }
      }
      sinceCheck += line.length + 1;
      // The clock is read every 16 KiB of text or so, which keeps reading it cheap.
      if (sinceCheck >= 16_384) {
        sinceCheck = 0;
        if (!(await this.checkpoint())) return false;
      }
    }
    return true;
  }

  #report(limit: GrepLimitName, value: number): void {
    if (this.#reported.has(limit)) return;
    this.#reported.add(limit);
    this.#options.onLimitReached?.({ limit, value });
  }

  #stop(limit: GrepLimitName, value: number): void {
    this.#stopped = true;
    this.#report(limit, value);
  }
}
