import { describe, expect, it } from 'vitest';
import { type GrepLimitReached, resolveGrepLimits } from './grep-limits.js';
import { GrepScan } from './grep-scan.js';

const contains = (needle: string) => ({ test: (line: string) => line.includes(needle) });

describe('GrepScan', () => {
  it('finds lines with their numbers, \\r\\n line ends and no line after a final line end', async () => {
    const scan = new GrepScan(resolveGrepLimits(), { maxMatches: 10 });
    await scan.scanText('/a', 'x1\r\ny\nx2\n', 9, contains('x'));
    expect(scan.matches).toEqual([
      { path: '/a', lineNumber: 1, line: 'x1' },
      { path: '/a', lineNumber: 3, line: 'x2' },
    ]);
  });

  it('stops at maxMatches without reporting a limit', async () => {
    const reached: GrepLimitReached[] = [];
    const scan = new GrepScan(resolveGrepLimits(), {
      maxMatches: 2,
      onLimitReached: (limit) => reached.push(limit),
    });
    expect(await scan.scanText('/a', 'x\nx\nx\n', 6, contains('x'))).toBe(false);
    expect(scan.matches).toHaveLength(2);
    expect(scan.stopped).toBe(true);
    expect(reached).toEqual([]);
  });

  it('reports maxBytesScanned, maxFiles and a line cut to maxLineLength', async () => {
    const reached: GrepLimitReached[] = [];
    const onLimitReached = (limit: GrepLimitReached) => reached.push(limit);
    const limits = resolveGrepLimits({ maxBytesScanned: 10, maxLineLength: 4 });
    const scan = new GrepScan(limits, { maxMatches: 10, maxFiles: 1, onLimitReached });
    expect(scan.enterFile()).toBe(true);
    expect(await scan.scanText('/a', 'abcdefx\nab', 10, contains('a'))).toBe(true);
    expect(scan.matches).toEqual([
      { path: '/a', lineNumber: 1, line: 'abcd' },
      { path: '/a', lineNumber: 2, line: 'ab' },
    ]);
    expect(await scan.scanText('/b', 'a', 1, contains('a'))).toBe(false);
    expect(new GrepScan(limits, { maxMatches: 1, maxFiles: 0, onLimitReached }).enterFile()).toBe(
      false,
    );
    expect(reached).toEqual([
      { limit: 'maxLineLength', value: 4 },
      { limit: 'maxBytesScanned', value: 10 },
      { limit: 'maxFiles', value: 0 },
    ]);
  });

  it('stops at timeLimitMs and yields to the event loop every sliceMs', async () => {
    const reached: GrepLimitReached[] = [];
    let tested = 0;
    const slow = {
      test: () => {
        tested++;
        const until = performance.now() + 2;
        while (performance.now() < until) {}
        return false;
      },
    };
    const scan = new GrepScan(resolveGrepLimits({ timeLimitMs: 200, sliceMs: 10 }), {
      maxMatches: 10,
      onLimitReached: (limit) => reached.push(limit),
    });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    // 300 lines of 2 ms each: longer than the limit. Each line is past the 16 KiB the scan reads
    // the clock after; the text is flattened before the clock starts, so the first slice is work.
    const text = `${'y'.repeat(16_400)}\n`.repeat(300);
    expect(text.indexOf('z')).toBe(-1);
    expect(await scan.scanText('/a', text, text.length, slow)).toBe(false);
    clearInterval(timer);
    // Stopped by the limit: the lines after it were never tested (each takes at least 2 ms, so
    // at most about 100 fit in 200 ms however loaded the machine), rather than timing the call.
    expect(tested).toBeGreaterThan(0);
    expect(tested).toBeLessThan(150);
    expect(reached).toEqual([{ limit: 'timeLimitMs', value: 200 }]);
    expect(ticks).toBeGreaterThan(3);
  });

  it('rejects a non-positive limit as a programmer mistake', () => {
    expect(() => resolveGrepLimits({ sliceMs: 0 })).toThrow(TypeError);
  });
});
