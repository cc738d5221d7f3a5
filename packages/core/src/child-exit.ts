/**
 * Reading why a child process (a capability's worker: a shell, an HTML converter) ended without
 * an answer, for the message a tool gives the model.
 */

/** The stderr stream of a child process, as {@link keepStderrTail} reads it. */
export interface StderrStream {
  setEncoding(encoding: 'utf8'): unknown;
  on(event: 'data', listener: (chunk: string) => void): unknown;
}

/** The end of what a child process wrote to stderr so far (see {@link keepStderrTail}). */
export interface StderrTail {
  /** The last characters written, at most the `maxChars` asked for. */
  readonly text: string;
}

/** How many characters of a child's stderr {@link keepStderrTail} keeps by default. */
export const STDERR_TAIL_CHARS = 4_096;

/**
 * Keeps the last `maxChars` characters `stderr` writes (none when there is no stream): enough to
 * tell a worker that ran out of heap ({@link ranOutOfHeap}) without holding all it printed.
 */
export function keepStderrTail(
  stderr: StderrStream | null | undefined,
  maxChars: number = STDERR_TAIL_CHARS,
): StderrTail {
  if (!Number.isInteger(maxChars) || maxChars < 1) {
    throw new TypeError('maxChars must be a positive integer');
  }
  const tail = { text: '' };
  stderr?.setEncoding('utf8');
  stderr?.on('data', (chunk) => {
    tail.text = (tail.text + chunk).slice(-maxChars);
  });
  return tail;
}

/** Whether a Node process's stderr ends with V8's report of a heap it could not grow. */
export function ranOutOfHeap(stderrText: string): boolean {
  return /heap out of memory|Reached heap limit|Allocation failed/i.test(stderrText);
}

/** How a child process ended, in words: `exit code 1`, `signal SIGKILL`. */
export function exitDescription(code: number | null, signal: string | null): string {
  return signal === null ? `exit code ${code}` : `signal ${signal}`;
}
