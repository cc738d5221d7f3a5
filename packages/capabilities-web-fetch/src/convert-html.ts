import { fork } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { exitDescription, keepStderrTail, ranOutOfHeap } from '@everruns-ts/core';
import { limitHtmlNestingInSlices } from './limit-html-nesting.js';

/** The worker script, beside `src/` and `dist/` alike. */
const WORKER_PATH = fileURLToPath(new URL('../worker/html-conversion-worker.mjs', import.meta.url));

/** Why a page could not be converted: too slow, too large for the worker's memory, or it failed. */
export class HtmlConversionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HtmlConversionError';
  }
}

/** Options of {@link convertHtml}. */
export interface ConvertHtmlOptions {
  format: 'markdown' | 'text';
  /** Deepest element nesting kept; deeper tags are dropped, their text kept. */
  maxDepth: number;
  /** Time the conversion may take, in milliseconds; the converting process is killed after it. */
  timeoutMs: number;
  /** Most characters of output sent back; `cut` says when there were more. */
  maxOutputChars: number;
  /** Texts (secrets) whose rendering by the converter is returned in `renderedSamples`. */
  samples: readonly string[];
  /** Aborts the conversion (the converting process is killed). */
  signal?: AbortSignal;
}

/** What {@link convertHtml} returns. */
export interface ConvertedHtml {
  content: string;
  /** True when the output was longer than `maxOutputChars` and was cut. */
  cut: boolean;
  /** How the converter renders each of `samples` as paragraph text, in order. */
  renderedSamples: string[];
}

/**
 * Converts untrusted HTML to Markdown (`node-html-markdown`) or plain text (`html-to-text`)
 * without ever holding the event loop: the page is first rewritten by `limitHtmlNesting` in
 * slices (so the converters parse in linear time and never recurse deeply), then converted in a
 * child process with a 256 MB heap that is killed at the deadline. Throws
 * {@link HtmlConversionError}, or the signal's reason when it aborts.
 */
export async function convertHtml(
  html: string,
  options: ConvertHtmlOptions,
): Promise<ConvertedHtml> {
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new HtmlConversionError(
          `converting the page to ${options.format === 'markdown' ? 'Markdown' : 'text'} took longer than ${options.timeoutMs} ms`,
        ),
      ),
    options.timeoutMs,
  );
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  try {
    const limited = await limitHtmlNestingInSlices(html, options.maxDepth, signal);
    signal.throwIfAborted();
    return await new Promise<ConvertedHtml>((resolve, reject) => {
      // A child process, not a worker thread: when one allocation overshoots a worker's heap
      // limit V8 aborts the whole process, while a child that runs out of heap dies alone.
      const child = fork(WORKER_PATH, [], {
        execArgv: ['--max-old-space-size=256', '--max-semi-space-size=16'],
        env: {},
        cwd: tmpdir(),
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'advanced',
      });
      const stderrTail = keepStderrTail(child.stderr);
      child.send({
        chunks: limited,
        format: options.format,
        maxOutputChars: options.maxOutputChars,
        samples: [...options.samples],
      });
      let settled = false;
      const finish = (action: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        action();
      };
      const onAbort = () => finish(() => reject(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      child.on('message', (message: ConvertedHtml) => finish(() => resolve(message)));
      child.on('error', (error) =>
        finish(() =>
          reject(new HtmlConversionError(`converting the page failed: ${error.message}`)),
        ),
      );
      child.on('exit', (code, exitSignal) => {
        const explain = () =>
          finish(() =>
            reject(
              new HtmlConversionError(
                ranOutOfHeap(stderrTail.text)
                  ? 'converting the page needed more memory than allowed'
                  : `converting the page stopped early (${exitDescription(code, exitSignal)})`,
              ),
            ),
          );
        if (child.stderr && !child.stderr.readableEnded) child.stderr.once('end', explain);
        else explain();
      });
    });
  } finally {
    clearTimeout(timer);
  }
}
