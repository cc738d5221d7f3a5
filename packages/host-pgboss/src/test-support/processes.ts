import { type ChildProcess, spawn } from 'node:child_process';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FixtureConfig } from './fixture.js';

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
const WORKER = new URL('./worker.ts', import.meta.url);

/** A started worker process. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves when the worker works the queue; rejects when it exits first. */
  ready: Promise<void>;
  /** Resolves with the exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote to stderr. */
  stderr(): string;
  /** Stops it with SIGTERM (a clean stop) and waits. */
  stop(): Promise<void>;
}

/** Starts `worker.ts` in a new Node process (TypeScript through tsx). */
export function startWorker(config: FixtureConfig): WorkerProcess {
  const child = spawn(process.execPath, [...nodeArgsFor(WORKER), JSON.stringify(config)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) resolve();
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`worker exited before ready (${code ?? signal}): ${stderr}`)),
    );
  });
  ready.catch(() => {});
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return {
    child,
    ready,
    exited,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
