import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeArgsFor } from '@everruns-ts/test-processes';
import type { FixtureConfig } from './fixture.js';

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
