// What the host writes to `jsonb` (its turn rows, pg-boss jobs) reads back as it was: PostgreSQL's
// `jsonb` refuses NUL, so strings carry stand-ins made of a private-use character.
import { describe, expect, it } from 'vitest';
import { fromJsonbValue, jsonbText, toJsonbValue } from './jsonb-text.js';

const TRICKY = {
  text: 'a\u0000b',
  mark: '\uE000',
  pairs: '\uE000\uE001 \uE000\uE002 \uE000\uE000\u0000',
  'key\u0000with nul': ['\u0000', { deeper: 'x\uE000\u0000y' }, 3, null, true],
  ['__proto__']: 'an own key',
  plain: 'nothing to change',
};

describe('jsonb text', () => {
  it('writes no NUL and reads back every string and key as it was', () => {
    const value = JSON.parse(JSON.stringify(TRICKY)) as typeof TRICKY;
    const text = jsonbText(value);
    expect(text).not.toContain('\\u0000');
    const read = fromJsonbValue(JSON.parse(text));
    expect(read).toEqual(value);
    expect(Object.keys(read)).toEqual(Object.keys(value));
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
  });

  it('leaves values without NUL or the mark as they are: the same text, the same objects', () => {
    const value = { step: { activity: 'reason', texts: ['é', '😀'] }, count: 2 };
    expect(jsonbText(value)).toBe(JSON.stringify(value));
    expect(toJsonbValue(value)).toBe(value);
    expect(fromJsonbValue(value)).toBe(value);
  });

  it('keeps a text with a backslash before "u0000" apart from a NUL', () => {
    const value = { literal: '\\u0000', nul: '\u0000' };
    expect(fromJsonbValue(JSON.parse(jsonbText(value)))).toEqual(value);
  });
});
