import { EverrunsError } from './errors.js';

/** Default of {@link GlobOptions.maxLength}: the longest glob compiled, in characters. */
export const DEFAULT_MAX_GLOB_LENGTH = 1_000;

/** Options of {@link compileGlob}. */
export interface GlobOptions {
  /** Longest pattern accepted; longer is `LIMIT_EXCEEDED`. Default {@link DEFAULT_MAX_GLOB_LENGTH}. */
  maxLength?: number;
}

/** A compiled glob: tests normalised workspace paths in time linear in the path's length. */
export interface PathMatcher {
  /** The glob it was compiled from. */
  readonly pattern: string;
  /** True when `path` (a normalised workspace path) matches. */
  test(path: string): boolean;
}

/**
 * One step of a compiled glob. `literal` matches one character; `segmentChar` (`?`) one
 * character other than `/`; `segmentRun` (`*`) any run without `/`; `anyRun` (`**`) any run;
 * `anyDirectories` (`**` followed by `/`) nothing or any run that ends with `/`.
 */
type GlobStep =
  | { kind: 'literal'; char: string }
  | { kind: 'segmentChar' }
  | { kind: 'segmentRun' }
  | { kind: 'anyRun' }
  | { kind: 'anyDirectories' };

/**
 * Compiles a glob (`**` any depth, `*` within a segment, `?` one character other than `/`,
 * every other character literal) into a {@link PathMatcher}. A pattern without a leading slash
 * matches at any depth. The same language as {@link globToRegExp}, but matched by simulating
 * every position of the pattern at once (no backtracking), so a test costs at most the path's
 * length times the pattern's length however many `**` the pattern holds. Throws `LIMIT_EXCEEDED`
 * for a pattern longer than `maxLength`. A leading `/workspace` segment is dropped, as from
 * paths (`/workspace/src/*.ts` is `/src/*.ts`; see {@link stripWorkspaceGlobPrefix}).
 */
export function compileGlob(pattern: string, options: GlobOptions = {}): PathMatcher {
  if (typeof pattern !== 'string') throw new TypeError('pattern must be a string');
  const maxLength = options.maxLength ?? DEFAULT_MAX_GLOB_LENGTH;
  if (pattern.length > maxLength) {
    throw new EverrunsError({
      code: 'LIMIT_EXCEEDED',
      message: `The glob is ${pattern.length} characters long; the limit is ${maxLength}`,
      details: { limit: 'maxGlobLength', maxLength, length: pattern.length },
    });
  }
  const glob = stripWorkspaceGlobPrefix(pattern);
  const anchored = glob.startsWith('/');
  const body = anchored ? glob.slice(1) : glob;
  // Anchored: the path's leading slash, then the body. Otherwise `(?:.*/)?` then the body: the
  // body may start after any `/` of the path.
  const steps: GlobStep[] = [
    anchored ? { kind: 'literal', char: '/' } : { kind: 'anyDirectories' },
  ];
  for (let index = 0; index < body.length; index++) {
    const char = body[index] as string;
    if (char === '*') {
      if (body[index + 1] === '*') {
        index++;
        if (body[index + 1] === '/') {
          index++;
          steps.push({ kind: 'anyDirectories' });
        } else steps.push({ kind: 'anyRun' });
      } else steps.push({ kind: 'segmentRun' });
    } else if (char === '?') steps.push({ kind: 'segmentChar' });
    else steps.push({ kind: 'literal', char });
  }
  return new GlobMatcher(pattern, steps);
}

/**
 * Compiles the path filter of a grep (`grepFiles`' `pathPattern`) as upstream's stores read it:
 * a pattern with a glob character (`*`, `?`, `[`, `{`) is a glob ({@link compileGlob}); one
 * without is matched as a substring of the workspace path without its leading `/` (so `docs`
 * keeps `/docs/readme.md` and `/api/docs.md`), after a leading `/workspace` is dropped. An
 * empty pattern, or `/`, matches every path. Throws `LIMIT_EXCEEDED` as {@link compileGlob}.
 */
export function compileGrepPathPattern(pattern: string, options: GlobOptions = {}): PathMatcher {
  // Compiled either way, so the length limit applies to both forms.
  const glob = compileGlob(pattern, options);
  if (/[*?[{]/.test(pattern)) return glob;
  const needle = stripWorkspaceGlobPrefix(pattern).replace(/^\/+/, '');
  if (needle === '') return { pattern, test: () => true };
  return { pattern, test: (path: string) => path.slice(1).includes(needle) };
}

/**
 * A glob with its leading `/workspace` segment dropped (`/workspace` alone is `/`), as
 * `normalizeWorkspacePath` drops it from paths: workspace paths never start with it, so such a
 * glob (upstream's spelling of the workspace root) would otherwise match nothing. Other globs are
 * returned unchanged.
 */
export function stripWorkspaceGlobPrefix(pattern: string): string {
  if (pattern === '/workspace' || pattern === '/workspace/') return '/';
  return pattern.startsWith('/workspace/') ? pattern.slice('/workspace'.length) : pattern;
}

/**
 * The simulation: a set of active positions in `steps` (position `steps.length` = accepted).
 * An `anyDirectories` step has a second, "inside" state: its run has started and ends with `/`.
 */
class GlobMatcher implements PathMatcher {
  readonly pattern: string;
  readonly #steps: readonly GlobStep[];

  constructor(pattern: string, steps: readonly GlobStep[]) {
    this.pattern = pattern;
    this.#steps = steps;
  }

  test(path: string): boolean {
    const steps = this.#steps;
    const size = steps.length + 1;
    // State `position` = before step `position`; state `size + position` = inside the run of
    // the `anyDirectories` step at `position`.
    let current = new Uint8Array(size * 2);
    let next = new Uint8Array(size * 2);
    const add = (states: Uint8Array, position: number) => {
      // Epsilon closure: runs that may match nothing let the next step start as well.
      let at = position;
      while (at < size && states[at] === 0) {
        states[at] = 1;
        const step = steps[at];
        if (step === undefined) return;
        if (
          step.kind === 'segmentRun' ||
          step.kind === 'anyRun' ||
          step.kind === 'anyDirectories'
        ) {
          at++;
        } else return;
      }
    };
    add(current, 0);
    for (let index = 0; index < path.length; index++) {
      const char = path[index] as string;
      next.fill(0);
      let alive = false;
      for (let position = 0; position < size - 1; position++) {
        const step = steps[position] as GlobStep;
        if (current[position] === 1) {
          switch (step.kind) {
            case 'literal':
              if (step.char === char) {
                add(next, position + 1);
                alive = true;
              }
              break;
            case 'segmentChar':
              if (char !== '/') {
                add(next, position + 1);
                alive = true;
              }
              break;
            case 'segmentRun':
              if (char !== '/') {
                add(next, position);
                alive = true;
              }
              break;
            case 'anyRun':
              add(next, position);
              alive = true;
              break;
            case 'anyDirectories':
              next[size + position] = 1;
              if (char === '/') add(next, position + 1);
              alive = true;
              break;
          }
        }
        if (current[size + position] === 1) {
          // Inside an `anyDirectories` run: any character continues it; `/` may end it.
          next[size + position] = 1;
          if (char === '/') add(next, position + 1);
          alive = true;
        }
      }
      if (!alive) return false;
      const swap = current;
      current = next;
      next = swap;
    }
    return current[size - 1] === 1;
  }
}
