import { Worker } from 'node:worker_threads';
import { limitHtmlNestingInSlices } from './limit-html-nesting.js';

/** The worker script, beside `src/` and `dist/` alike. */
const WORKER_URL = new URL('../worker/html-conversion-worker.mjs', import.meta.url);

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
  /** Time the conversion may take, in milliseconds; the worker is terminated after it. */
  timeoutMs: number;
  /** Most characters of output sent back; `cut` says when there were more. */
  maxOutputChars: number;
  /** Texts (secrets) whose rendering by the converter is returned in `renderedSamples`. */
  samples: readonly string[];
  /** Aborts the conversion (the worker is terminated). */
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
 * worker thread with a 256 MB heap that is terminated at the deadline. Throws
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
      const worker = new Worker(WORKER_URL, {
        workerData: {
          chunks: limited,
          format: options.format,
          maxOutputChars: options.maxOutputChars,
          samples: [...options.samples],
        },
        resourceLimits: {
          maxOldGenerationSizeMb: 256,
          maxYoungGenerationSizeMb: 32,
          stackSizeMb: 4,
        },
        stdout: true,
        stderr: true,
      });
      worker.unref();
      let settled = false;
      const finish = (action: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        void worker.terminate();
        action();
      };
      const onAbort = () => finish(() => reject(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      worker.on('message', (message: ConvertedHtml) => finish(() => resolve(message)));
      worker.on('error', (error: NodeJS.ErrnoException) =>
        finish(() =>
          reject(
            new HtmlConversionError(
              error.code === 'ERR_WORKER_OUT_OF_MEMORY'
                ? 'converting the page needed more memory than allowed'
                : `converting the page failed: ${error.message}`,
            ),
          ),
        ),
      );
      worker.on('exit', (code) =>
        finish(() =>
          reject(new HtmlConversionError(`converting the page stopped early (exit code ${code})`)),
        ),
      );
    });
  } finally {
    clearTimeout(timer);
  }
}
