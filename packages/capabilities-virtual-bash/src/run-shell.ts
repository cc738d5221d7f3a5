import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import {
  exitDescription,
  keepStderrTail,
  ranOutOfHeap,
  type SessionFileSystem,
} from '@everruns-ts/core';
import { SHELL_PROCESS_SOURCE } from './shell-process-source.js';
import { type ShellFileError, WorkspaceShellFiles } from './workspace-shell-files.js';

/** Limits of one shell run, as just-bash names them, plus the wall time. */
export interface ShellRunLimits {
  /** Wall time of the run in milliseconds; the shell's process is killed when it passes. */
  timeoutMs: number;
  maxCommandCount: number;
  maxLoopIterations: number;
  maxCallDepth: number;
  maxSourceBytes: number;
  /** just-bash's cap on the stdout plus stderr it buffers. */
  maxOutputSize: number;
  /** Old-generation heap of the shell's process (`--max-old-space-size`), in MiB. */
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
 * Runs `script` in just-bash in a child Node process whose file system is `fileSystem` (through
 * {@link WorkspaceShellFiles}, over the IPC channel). Resolves when the script ends, when
 * `limits.timeoutMs` passes or when `signal` fires; in the two last cases the child is killed,
 * whatever it is doing. The caller's event loop is never held by the script, and a script that
 * exhausts its heap ends only its own process: the outcome is then `failed` with a message that
 * names the memory limit.
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
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${limits.maxWorkerMemoryMb}`, '-e', SHELL_PROCESS_SOURCE],
    {
      // The child sees no variable of the host (NODE_OPTIONS included): just-bash gets only the
      // environment sent with the script. Node adds the IPC channel's own variables.
      env: {},
      cwd: tmpdir(),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
      windowsHide: true,
    },
  );
  const stderrTail = keepStderrTail(child.stderr);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  return new Promise<ShellRunOutcome>((resolve) => {
    let settled = false;
    // File operations the parent is performing for the shell: a stopped shell resolves only
    // once they are done, so nothing it asked for lands in the workspace after the tool returned.
    const inFlight = new Set<Promise<unknown>>();
    const send = (message: unknown) => {
      if (child.connected) child.send(message as never, () => undefined);
    };
    const finish = (outcome: ShellRunOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      const stopped = outcome.kind === 'exited' ? Promise.resolve() : exited;
      if (inFlight.size === 0 && outcome.kind === 'exited') {
        resolve(outcome);
        return;
      }
      void Promise.allSettled([stopped, ...inFlight]).then(() => resolve(outcome));
    };
    const timer = setTimeout(() => finish({ kind: 'timed_out' }), limits.timeoutMs);
    const onAbort = () => finish({ kind: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('message', (message: ShellMessage) => {
      if (message.type === 'fs') {
        // A request queued before the shell was stopped is not performed.
        if (settled) return;
        const operation = files.perform(message.op, message.args);
        inFlight.add(operation);
        operation.then(
          (value) => {
            inFlight.delete(operation);
            if (!settled) send({ id: message.id, ok: true, value });
          },
          (error: ShellFileError) => {
            inFlight.delete(operation);
            if (!settled) {
              send({ id: message.id, ok: false, errno: error.errno, message: error.message });
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
    child.on('error', (error) => finish({ kind: 'failed', message: error.message }));
    child.on('exit', (code, exitSignal) => {
      // Let the stderr pipe drain first, so an out-of-memory report is read in full.
      const explain = () =>
        finish({
          kind: 'failed',
          message: earlyExitMessage(code, exitSignal, stderrTail.text, limits.maxWorkerMemoryMb),
        });
      if (child.stderr && !child.stderr.readableEnded) child.stderr.once('end', explain);
      else explain();
    });
    send({
      type: 'start',
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
    });
  });
}

/** Why the shell's process ended without sending a result, in words for the model. */
function earlyExitMessage(
  code: number | null,
  exitSignal: NodeJS.Signals | null,
  stderrTail: string,
  memoryMb: number,
): string {
  if (ranOutOfHeap(stderrTail)) {
    return `the script ran out of memory and was stopped (memory limit ${memoryMb} MiB)`;
  }
  return `the shell stopped without a result (${exitDescription(code, exitSignal)})`;
}

type ShellMessage =
  | { type: 'fs'; id: number; op: string; args: unknown[] }
  | { type: 'result'; stdout: string; stderr: string; exitCode: number }
  | { type: 'failure'; message: string };
