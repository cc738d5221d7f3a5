import { type ChildProcess, spawn } from 'node:child_process';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Node's arguments to run the TypeScript script at `source` in a child process. Under
 * `pnpm test`, which builds every package first (`EVERRUNS_TEST_BUILT=1`), the script's compiled
 * JavaScript in the package's fresh `dist` runs with Node alone (a loader such as tsx costs about
 * a second of CPU per process); a direct vitest run needs no build: tsx runs the source against
 * the workspace packages' sources.
 */
function nodeArgsFor(source: URL): string[] {
  const path = fileURLToPath(source);
  if (process.env.EVERRUNS_TEST_BUILT !== '1') {
    return ['--conditions=@everruns-ts/source', '--import', 'tsx', path];
  }
  const at = path.lastIndexOf(`${sep}src${sep}`);
  return [`${path.slice(0, at)}${sep}dist${sep}${path.slice(at + 5).replace(/\.ts$/, '.js')}`];
}

const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const WORKER = new URL('./append-worker.ts', import.meta.url);

/** A started writer process. */
export interface Worker {
  child: ChildProcess;
  /** Resolves when the worker printed `ready`. */
  ready: Promise<void>;
  /** Resolves with the worker's last stdout line when it exits with status 0. */
  done: Promise<string>;
  /** What the worker printed so far. */
  output(): string;
}

/**
 * Starts a worker script of this folder (default `append-worker.ts`) in a new Node process
 * (TypeScript through tsx).
 */
export function startWorker(task: Record<string, unknown>, script = 'append-worker.ts'): Worker {
  const worker = script === 'append-worker.ts' ? WORKER : new URL(`./${script}`, import.meta.url);
  const child = spawn(process.execPath, [...nodeArgsFor(worker), JSON.stringify(task)], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.includes('ready\n')) markReady();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(stdout.trim().split('\n').at(-1) ?? '');
      else reject(new Error(`worker exited with ${code}: ${stderr}`));
    });
  });
  // A worker that dies before printing `ready` must not leave the test waiting.
  done.catch(() => markReady());
  return { child, ready, done, output: () => stdout };
}

/** Tells a ready worker to start. */
export function go(worker: Worker): void {
  worker.child.stdin?.write('go\n');
  worker.child.stdin?.end();
}
