import { compileGrepMatcher } from '@everruns-ts/core';
import { describe, expect, it } from 'vitest';
import { re2jsRegexEngine } from './re2js-regex-engine.js';

const matcher = (pattern: string, ignoreCase = false) =>
  compileGrepMatcher(pattern, re2jsRegexEngine, { ignoreCase });

describe('re2jsRegexEngine', () => {
  it('accepts the JavaScript spellings a model writes: \\u escapes, named groups, [^], slashes', () => {
    expect(matcher('caf\\u00e9').test('un café')).toBe(true);
    expect(matcher('(?<word>\\w+)/(?<rest>\\d+)').test('path/42')).toBe(true);
    expect(matcher('a[^]b').test('a\nb')).toBe(true);
    expect(matcher('^const [ab] = \\d;$').test('const a = 2;')).toBe(true);
    expect(matcher('todo', true).test('TODO later')).toBe(true);
  });

  it('matches (a+)+$ over a 100,000-character line in linear time', () => {
    const started = performance.now();
    expect(matcher('(a+)+$').test(`${'a'.repeat(100_000)}!`)).toBe(false);
    expect(matcher('(a+)+$').test('a'.repeat(100_000))).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('refuses a pattern that compiles to more than 20,000 instructions with INVALID_INPUT', () => {
    expect(() => matcher('(?:a{1,1000}){1,1000}')).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(() => matcher('((((a{100}){100}){100}){100})')).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});
