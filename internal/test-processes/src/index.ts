import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Node's arguments to run the TypeScript script at `source` (a file under a package's `src`) in a
 * child process.
 *
 * Under `pnpm test`, which builds every package first and sets `EVERRUNS_TEST_BUILT=1`, the
 * script's compiled JavaScript in the package's fresh `dist` runs with Node alone: a loader such
 * as tsx costs about a second of CPU per process. A direct vitest run needs no build: tsx runs
 * the source, resolving the workspace packages to their sources.
 */
export function nodeArgsFor(source: URL): string[] {
  const path = fileURLToPath(source);
  if (process.env.EVERRUNS_TEST_BUILT !== '1') {
    return ['--conditions=@everruns-ts/source', '--import', 'tsx', path];
  }
  const at = path.lastIndexOf(`${sep}src${sep}`);
  if (at < 0) throw new Error(`nodeArgsFor: ${path} is not under a package's src folder`);
  return [`${path.slice(0, at)}${sep}dist${sep}${path.slice(at + 5).replace(/\.ts$/, '.js')}`];
}
