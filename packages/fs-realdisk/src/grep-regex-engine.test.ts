import type { LinearRegexEngine } from '@everruns-ts/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealDiskFileStore } from './real-disk-file-store.js';
import { makeSandbox, type Sandbox } from './test-support.js';

let sandbox: Sandbox;
beforeEach(() => {
  sandbox = makeSandbox();
});
afterEach(() => sandbox.cleanup());

describe('RealDiskFileStore grep engine (file-system)', () => {
  it('compiles with GrepOptions.regexEngine when given, and with re2js otherwise', async () => {
    const files = new RealDiskFileStore({ root: sandbox.root });
    await files.writeFile('/notes.txt', 'a (b) line\nab line\n');
    const compiled: string[] = [];
    const plainText: LinearRegexEngine = {
      name: 'plain-text',
      compile(pattern) {
        compiled.push(pattern);
        return { test: (line) => line.includes(pattern) };
      },
    };
    // `(b)` as plain text with the caller's engine; a group matching `b` with re2js.
    expect(await files.grepFiles('(b)', undefined, { regexEngine: plainText })).toEqual([
      { path: '/notes.txt', lineNumber: 1, line: 'a (b) line' },
    ]);
    expect(compiled).toEqual(['(b)']);
    expect((await files.grepFiles('(b)')).map((match) => match.lineNumber)).toEqual([1, 2]);
  });
});
