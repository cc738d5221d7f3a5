import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exitDescription, keepStderrTail, ranOutOfHeap } from './index.js';

describe('child exits', () => {
  it('keeps the last characters a real child writes to stderr', async () => {
    const child = spawn(
      process.execPath,
      ['-e', "process.stderr.write('a'.repeat(5000)); process.stderr.write('the end')"],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const tail = keepStderrTail(child.stderr, 100);
    await new Promise((resolve) => child.stderr.once('end', resolve));
    expect(tail.text).toHaveLength(100);
    expect(tail.text.endsWith('the end')).toBe(true);
  });

  it('tells a child that ran out of heap from one that failed otherwise', async () => {
    const child = spawn(
      process.execPath,
      ['--max-old-space-size=16', '-e', 'const a = []; for (;;) a.push({ x: [1, 2, 3] });'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const tail = keepStderrTail(child.stderr);
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
    );
    await new Promise((resolve) =>
      child.stderr.readableEnded ? resolve(undefined) : child.stderr.once('end', resolve),
    );
    expect(ranOutOfHeap(tail.text)).toBe(true);
    expect(exitDescription(code, signal)).toMatch(/^(exit code \d+|signal SIG[A-Z]+)$/);
    expect(ranOutOfHeap('TypeError: x is not a function')).toBe(false);
  });

  it('describes exit codes and signals', () => {
    expect(exitDescription(1, null)).toBe('exit code 1');
    expect(exitDescription(null, 'SIGKILL')).toBe('signal SIGKILL');
  });

  it('refuses a tail length that is not a positive integer', () => {
    expect(() => keepStderrTail(undefined, 0)).toThrow(TypeError);
    expect(keepStderrTail(undefined).text).toBe('');
  });
});
