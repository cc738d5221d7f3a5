import { describe, expect, it } from 'vitest';
import {
  compileGrepMatcher,
  findUnsupportedRegexSyntax,
  type LinearRegexEngine,
} from './grep-pattern.js';

/** A stand-in engine: the tests here are about what core checks before any engine runs. */
const engine: LinearRegexEngine = {
  name: 'test',
  compile(pattern, options) {
    const regex = new RegExp(pattern, options.ignoreCase ? 'i' : '');
    return { test: (line) => regex.test(line) };
  },
};

describe('findUnsupportedRegexSyntax', () => {
  it('names backreferences, lookaround, atomic groups and possessive quantifiers', () => {
    expect(findUnsupportedRegexSyntax('(a)\\1')).toBe('backreference `\\1`');
    expect(findUnsupportedRegexSyntax('(?<n>a)\\k<n>')).toBe('named backreference `\\k<…>`');
    expect(findUnsupportedRegexSyntax('a(?=b)')).toBe('lookahead `(?=`');
    expect(findUnsupportedRegexSyntax('a(?!b)')).toBe('negative lookahead `(?!`');
    expect(findUnsupportedRegexSyntax('(?<=a)b')).toBe('lookbehind `(?<=`');
    expect(findUnsupportedRegexSyntax('(?<!a)b')).toBe('negative lookbehind `(?<!`');
    expect(findUnsupportedRegexSyntax('(?>a)')).toBe('atomic group `(?>`');
    expect(findUnsupportedRegexSyntax('a++')).toBe('possessive quantifier `++`');
  });

  it('accepts what RE2 accepts, escapes and character classes included', () => {
    for (const pattern of [
      '(a+)+$',
      '\\\\1',
      '[\\1]',
      '[(?=]',
      '(?:a)',
      '(?i)x',
      '(?<n>a)',
      '[]1]',
      '\\++',
      'a*?',
    ]) {
      expect({ pattern, found: findUnsupportedRegexSyntax(pattern) }).toEqual({
        pattern,
        found: undefined,
      });
    }
  });
});

describe('compileGrepMatcher', () => {
  it('refuses unsupported syntax with INVALID_INPUT naming it', () => {
    expect(() => compileGrepMatcher('(a)\\1', engine)).toThrowError(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message: expect.stringContaining('backreference'),
        details: expect.objectContaining({ unsupported: 'backreference `\\1`' }),
      }),
    );
  });

  it('refuses a pattern past maxPatternLength with LIMIT_EXCEEDED', () => {
    expect(() => compileGrepMatcher('a'.repeat(1_001), engine)).toThrowError(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED' }),
    );
    expect(() => compileGrepMatcher('abc', engine, { maxPatternLength: 2 })).toThrowError(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED' }),
    );
  });

  it("turns the engine's refusal into INVALID_INPUT with its reason", () => {
    expect(() => compileGrepMatcher('(unclosed', engine)).toThrowError(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message: expect.stringContaining('(unclosed'),
      }),
    );
    expect(compileGrepMatcher('TODO', engine, { ignoreCase: true }).test('a todo')).toBe(true);
  });
});
