import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeArgsFor } from '@everruns-ts/test-processes';

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
