import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SessionFileSystem } from '@everruns-ts/core';
import { SHELL_WORKER_SOURCE } from './shell-worker-source.js';
import { type ShellFileError, WorkspaceShellFiles } from './workspace-shell-files.js';

/** Limits of one shell run, as just-bash names them, plus the wall time. */
export interface ShellRunLimits {
  /** Wall time of the run in milliseconds; the worker is stopped when it passes. */
  timeoutMs: number;
  maxCommandCount: number;
  maxLoopIterations: number;
  maxCallDepth: number;
  maxSourceBytes: number;
  /** just-bash's cap on the stdout plus stderr it buffers. */
  maxOutputSize: number;
  /** Old-generation heap of the worker, in MiB. */
  maxWorkerMemoryMb: number;
}

/** How a shell run ended. */
export type ShellRunOutcome =
  | {
      kind: 'exited';
      stdout: string;
      stderr: string;
      exitCode: number;
      /** Messages of the file operations the workspace refused (see `WorkspaceShellFiles`). */
      refusals: string[];
    }
  | { kind: 'timed_out' }
  | { kind: 'aborted' }
  | { kind: 'failed'; message: string };

const justBashPath = createRequire(import.meta.url).resolve('just-bash');

/**
 * Runs `script` in just-bash on a worker thread whose file system is `fileSystem` (through
 * {@link WorkspaceShellFiles}). Resolves when the script ends, when `limits.timeoutMs` passes or
 * when `signal` fires; in the two last cases the worker is terminated, whatever it is doing, and
 * the event loop of the caller was never held by the script.
 */
export function runShell(options: {
  script: string;
  cwd: string;
  env: Record<string, string>;
  fileSystem: SessionFileSystem;
  limits: ShellRunLimits;
  signal: AbortSignal;
}): Promise<ShellRunOutcome> {
  const { limits, signal } = options;
  if (signal.aborted) return Promise.resolve({ kind: 'aborted' });
  const files = new WorkspaceShellFiles(options.fileSystem, signal);
  const worker = new Worker(SHELL_WORKER_SOURCE, {
    eval: true,
    workerData: {
      justBashPath,
      script: options.script,
      cwd: options.cwd,
      env: options.env,
      limits: {
        maxCommandCount: limits.maxCommandCount,
        maxLoopIterations: limits.maxLoopIterations,
        maxCallDepth: limits.maxCallDepth,
        maxSourceBytes: limits.maxSourceBytes,
        maxOutputSize: limits.maxOutputSize,
        maxExecutionTimeMs: limits.timeoutMs,
      },
    },
    // The worker sees no variable of the host: just-bash gets only the environment given above.
    env: {},
    resourceLimits: { maxOldGenerationSizeMb: limits.maxWorkerMemoryMb },
  });
  return new Promise<ShellRunOutcome>((resolve) => {
    let settled = false;
    // File operations the parent is performing for the worker: a stopped shell resolves only
    // once they are done, so nothing it asked for lands in the workspace after the tool returned.
    const inFlight = new Set<Promise<unknown>>();
    const finish = (outcome: ShellRunOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      const stopped = worker.terminate().catch(() => undefined);
      if (inFlight.size === 0 && outcome.kind === 'exited') {
        resolve(outcome);
        return;
      }
      void Promise.allSettled([stopped, ...inFlight]).then(() => resolve(outcome));
    };
    const timer = setTimeout(() => finish({ kind: 'timed_out' }), limits.timeoutMs);
    const onAbort = () => finish({ kind: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'fs') {
        // A request queued before the worker was stopped is not performed.
        if (settled) return;
        const operation = files.perform(message.op, message.args);
        inFlight.add(operation);
        operation.then(
          (value) => {
            inFlight.delete(operation);
            if (!settled) worker.postMessage({ id: message.id, ok: true, value });
          },
          (error: ShellFileError) => {
            inFlight.delete(operation);
            if (!settled) {
              worker.postMessage({
                id: message.id,
                ok: false,
                errno: error.errno,
                message: error.message,
              });
            }
          },
        );
      } else if (message.type === 'result') {
        void files.flush().then(() =>
          finish({
            kind: 'exited',
            stdout: message.stdout,
            stderr: message.stderr,
            exitCode: message.exitCode,
            refusals: files.refusals,
          }),
        );
      } else {
        finish({ kind: 'failed', message: message.message });
      }
    });
    worker.on('error', (error) => finish({ kind: 'failed', message: error.message }));
    worker.on('exit', () =>
      finish({ kind: 'failed', message: 'the shell stopped without a result' }),
    );
  });
}

type WorkerMessage =
  | { type: 'fs'; id: number; op: string; args: unknown[] }
  | { type: 'result'; stdout: string; stderr: string; exitCode: number }
  | { type: 'failure'; message: string };
