import type { SessionFileSystem } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { withEventLoopProbe } from './event-loop-probe.js';
import { expectErrorCode } from './helpers.js';

/** Longest the event loop may stall during one call; the backends aim for about 20 ms. */
const MAX_EVENT_LOOP_DELAY_MS = 100;
/** A generous bound on the time one attack call may take, far below what backtracking costs. */
const MAX_ATTACK_MS = 5_000;

/** Lines of `aaaa…!`: `(a+)+$` backtracks exponentially on each of them. */
function backtrackingBait(lines: number, length: number): string {
  return `${'a'.repeat(length)}!\n`.repeat(lines);
}

/**
 * Registers the hostile-input cases every session file system must survive: patterns and globs
 * that make a backtracking engine run for hours, paths long or deep enough to overflow a
 * recursive walk, and a workspace large enough that an unyielding grep would stall every other
 * session. Each asserts its bound: time, typed error, and the longest event-loop stall. Files
 * are sized to fit `maxFileBytes` (the backend's declared limit), so the same bytes are scanned
 * in more, smaller files where the limit is small.
 */
export function sessionFileSystemAttackTests(
  fileSystem: () => SessionFileSystem,
  maxFileBytes: number,
): void {
  /** Characters of one backtracking bait line; a 30-character line already takes seconds to backtrack. */
  const baitLength = Math.min(1_000, Math.floor(maxFileBytes / 3) - 2);
  const matchLength = Math.min(3_000, maxFileBytes - 1);
  describe('attacks', () => {
    it('greps (a+)+$ over long lines in linear time without stalling the event loop', async () => {
      const files = fileSystem();
      await files.writeFile('/bait.txt', backtrackingBait(3, baitLength));
      await files.writeFile('/match.txt', `${'a'.repeat(matchLength)}\n`);
      const { result, maxDelayMs, elapsedMs } = await withEventLoopProbe(() =>
        files.grepFiles('(a+)+$'),
      );
      expect(result.map((match) => match.path)).toEqual(['/match.txt']);
      expect(elapsedMs).toBeLessThan(MAX_ATTACK_MS);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      const nested = await withEventLoopProbe(() => files.grepFiles('^(\\w+\\s?)*$!', '*.txt'));
      expect(nested.result).toEqual([]);
      expect(nested.elapsedMs).toBeLessThan(MAX_ATTACK_MS);
    });

    it('refuses backreferences and lookaround with INVALID_INPUT naming the construct', async () => {
      const files = fileSystem();
      await files.writeFile('/a.txt', 'abab\n');
      const backreference = await expectErrorCode(files.grepFiles('(ab)\\1'), 'INVALID_INPUT');
      expect(backreference.message).toContain('backreference');
      const lookahead = await expectErrorCode(files.grepFiles('a(?=b)'), 'INVALID_INPUT');
      expect(lookahead.message).toContain('lookahead');
      const lookbehind = await expectErrorCode(files.grepFiles('(?<=a)b'), 'INVALID_INPUT');
      expect(lookbehind.message).toContain('lookbehind');
    });

    it('refuses a pattern or glob longer than 1,000 characters with LIMIT_EXCEEDED', async () => {
      const files = fileSystem();
      await expectErrorCode(files.grepFiles('a'.repeat(1_001)), 'LIMIT_EXCEEDED');
      await expectErrorCode(files.grepFiles('a', '*'.repeat(1_001)), 'LIMIT_EXCEEDED');
      await expectErrorCode(files.globFiles('*'.repeat(1_001)), 'LIMIT_EXCEEDED');
    });

    it('matches globs of many ** segments in linear time (glob and grep path_pattern)', async () => {
      const files = fileSystem();
      const deep = `/${'abcdefghij/'.repeat(30)}file.txt`;
      await files.writeFile(deep, 'needle\n');
      await files.writeFile('/top.txt', 'needle\n');
      const glob = `${'**/'.repeat(60)}*.none`;
      const globbed = await withEventLoopProbe(() => files.globFiles(glob));
      expect(globbed.result).toEqual([]);
      expect(globbed.elapsedMs).toBeLessThan(MAX_ATTACK_MS);
      expect(globbed.maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      const pathPattern = `/${'**a'.repeat(300)}b`;
      const grepped = await withEventLoopProbe(() => files.grepFiles('needle', pathPattern));
      expect(grepped.result).toEqual([]);
      expect(grepped.elapsedMs).toBeLessThan(MAX_ATTACK_MS);
      expect(grepped.maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      expect((await files.grepFiles('needle', `${'**/'.repeat(60)}*.txt`)).length).toBe(2);
    });

    it('refuses a 10,000-character path with INVALID_PATH on every operation', async () => {
      const files = fileSystem();
      const long = `/${'a'.repeat(10_000)}`;
      await expectErrorCode(files.writeFile(long, 'x'), 'INVALID_PATH');
      await expectErrorCode(files.readFile(long), 'INVALID_PATH');
      await expectErrorCode(files.statFile(long), 'INVALID_PATH');
      await expectErrorCode(files.deleteFile(long, true), 'INVALID_PATH');
      await expectErrorCode(files.createDirectory(long), 'INVALID_PATH');
      await expectErrorCode(files.moveFile('/x', long), 'INVALID_PATH');
      await expectErrorCode(files.listDirectory(long), 'INVALID_PATH');
    });

    it('refuses a 5,000-deep path with INVALID_PATH and deletes a 250-deep tree recursively', async () => {
      const files = fileSystem();
      const tooDeep = `/${'d/'.repeat(5_000)}f.txt`;
      await expectErrorCode(files.writeFile(tooDeep, 'x'), 'INVALID_PATH');
      await expectErrorCode(files.deleteFile(tooDeep, true), 'INVALID_PATH');
      await expectErrorCode(files.createDirectory(tooDeep), 'INVALID_PATH');
      const deepest = `/${'d/'.repeat(249)}f.txt`;
      await files.writeFile(deepest, 'x');
      expect((await files.readFile(deepest)).content).toBe('x');
      expect((await files.grepFiles('x')).map((match) => match.path)).toEqual([deepest]);
      expect(await files.deleteFile('/d', true)).toBe(true);
      expect(await files.statFile('/d')).toBeNull();
      // A backend that resolves every path component by component (fs-realdisk's path mode)
      // does O(depth²) work here: ~6 s alone on the 2-core machine, past 30 s under a full run.
    }, 120_000);

    it('greps a large workspace in slices: the event loop never stalls and other calls go on', async () => {
      const files = fileSystem();
      const line = `${'word '.repeat(7)}\n`;
      // 60,000 lines in all, in files of up to 100 lines that fit the backend's size limit.
      const linesPerFile = Math.max(1, Math.min(100, Math.floor(maxFileBytes / line.length)));
      const fileCount = Math.ceil(60_000 / linesPerFile);
      const body = line.repeat(linesPerFile);
      const writes: Promise<unknown>[] = [];
      for (let index = 0; index < fileCount; index++) {
        writes.push(files.writeFile(`/big/${index % 20}/file-${index}.txt`, body));
        if (writes.length >= 50) await Promise.all(writes.splice(0));
      }
      await Promise.all(writes);
      await files.writeFile('/other.txt', 'still reachable\n');
      let otherCallMs: number | undefined;
      const { result, maxDelayMs, elapsedMs } = await withEventLoopProbe(async () => {
        const grep = files.grepFiles('^(\\w+\\s?)+$!');
        const started = performance.now();
        await files.readFile('/other.txt');
        otherCallMs = performance.now() - started;
        return grep;
      });
      expect(result).toEqual([]);
      expect(elapsedMs).toBeLessThan(MAX_ATTACK_MS * 4);
      expect(maxDelayMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      expect(otherCallMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS * 5);
    });
  });
}
