import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  boundToolCallArguments,
  copyCutAtDepth,
  countValues,
  MAX_TOOL_ARGUMENTS_DEPTH,
  MAX_TOOL_ARGUMENTS_VALUES,
  nestingDepth,
  toolArgumentsTextOverLimit,
} from './bound-tool-call-arguments.js';

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let level = 0; level < depth; level++) value = level % 2 === 0 ? { a: value } : [value];
  return value;
}

describe('bounded tool call arguments', () => {
  it('measures nesting without recursion and stops past the limit', () => {
    expect(nestingDepth('text')).toBe(0);
    expect(nestingDepth({})).toBe(1);
    expect(nestingDepth({ a: [1, { b: null }] })).toBe(3);
    expect(nestingDepth(nested(1_000_000), 100)).toBe(101);
    // It stops one level past the limit: a value 200 levels down is never read.
    let trapped: unknown = {
      get a(): unknown {
        throw new Error('read a value past the limit');
      },
    };
    for (let level = 0; level < 200; level++) trapped = { a: trapped };
    expect(nestingDepth(trapped, 100)).toBe(101);
  });

  it('cuts arguments nested 100,000 levels deep one level past the limit, so recursion can walk them', () => {
    const call = { id: `call_${randomUUID()}`, name: 'write_file', arguments: nested(100_000) };
    const bounded = boundToolCallArguments(call);
    expect(bounded.id).toBe(call.id);
    expect(nestingDepth(bounded.arguments, 1_000)).toBe(MAX_TOOL_ARGUMENTS_DEPTH + 1);
    expect(() => JSON.stringify(bounded.arguments)).not.toThrow();
  });

  it('leaves arguments within the limit as they are, and keeps hostile keys as plain keys when cutting', () => {
    const shallow = { id: 'call_1', name: 'tool', arguments: nested(MAX_TOOL_ARGUMENTS_DEPTH) };
    expect(boundToolCallArguments(shallow)).toBe(shallow);
    const hostile = JSON.parse('{"__proto__": {"admin": true}, "constructor": [1, {"x": {}}]}');
    const copy = copyCutAtDepth(hostile, 2) as Record<string, unknown>;
    expect(Object.keys(copy)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect((copy as { admin?: unknown }).admin).toBeUndefined();
    expect(JSON.stringify(copy)).toBe('{"__proto__":{},"constructor":[]}');
  });
});

/** A random JSON value with awkward strings: brackets, quotes, escapes and colons inside text. */
function randomJson(random: () => number, depth: number): unknown {
  const texts = ['', '[', ']{', '"', '\\', '\\"', 'a:b,c', '\u005b', ' \n\t ', '}]'];
  const pick = random();
  if (depth <= 0 || pick < 0.3) {
    const scalar = random();
    if (scalar < 0.25) return texts[Math.floor(random() * texts.length)];
    if (scalar < 0.5) return Math.floor(random() * 1000) - 500;
    if (scalar < 0.75) return random() < 0.5;
    return null;
  }
  const size = Math.floor(random() * 5);
  if (pick < 0.65) return Array.from({ length: size }, () => randomJson(random, depth - 1));
  const value: Record<string, unknown> = {};
  for (let index = 0; index < size; index++) {
    value[`${texts[Math.floor(random() * texts.length)]}${index}`] = randomJson(random, depth - 1);
  }
  return value;
}

/** A small seeded generator, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

describe('bounds read from the arguments text before parsing', () => {
  it('agrees with the parsed value on depth and value count, whatever the strings hold', () => {
    const random = seeded(21);
    for (let round = 0; round < 2_000; round++) {
      const value = randomJson(random, 8);
      const text = JSON.stringify(value, null, round % 3 === 0 ? 2 : undefined);
      const depth = nestingDepth(value, 1_000);
      const values = countValues(value, 1_000_000);
      for (const maxDepth of [depth - 1, depth]) {
        for (const maxValues of [values - 1, values]) {
          if (maxDepth < 0 || maxValues < 0) continue;
          const expected = depth > maxDepth ? 'depth' : values > maxValues ? 'values' : undefined;
          const got = toolArgumentsTextOverLimit(text, maxDepth, maxValues);
          // Depth and values can both be over: either answer names a bound that was passed.
          if (expected === 'depth' && values > maxValues) {
            expect(['depth', 'values'], text).toContain(got);
          } else {
            expect(got, `${text} (depth ${maxDepth}, values ${maxValues})`).toBe(expected);
          }
        }
      }
    }
  });

  it('refuses 100,000 nested brackets and a million numbers without parsing them', () => {
    const deep = `{"path":"/a","offset":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    expect(toolArgumentsTextOverLimit(deep)).toBe('depth');
    const wide = `{"items":[${'1,'.repeat(1_000_000)}1]}`;
    expect(toolArgumentsTextOverLimit(wide)).toBe('values');
    // Exactly at the bounds is accepted.
    const atDepth = `${'['.repeat(MAX_TOOL_ARGUMENTS_DEPTH)}${']'.repeat(MAX_TOOL_ARGUMENTS_DEPTH)}`;
    expect(toolArgumentsTextOverLimit(atDepth)).toBeUndefined();
    const atValues = `[${'0,'.repeat(MAX_TOOL_ARGUMENTS_VALUES - 2)}0]`;
    expect(countValues(JSON.parse(atValues))).toBe(MAX_TOOL_ARGUMENTS_VALUES);
    expect(toolArgumentsTextOverLimit(atValues)).toBeUndefined();
    expect(toolArgumentsTextOverLimit(`[0,${atValues.slice(1)}`)).toBe('values');
  });

  it('passes long strings and brackets inside strings, and leaves text that is not JSON to the parser', () => {
    const content = `${'[{'.repeat(50_000)}\\"${'x'.repeat(1_000_000)}`;
    expect(toolArgumentsTextOverLimit(JSON.stringify({ path: '/a', content }))).toBeUndefined();
    expect(toolArgumentsTextOverLimit('not json at all, and not short either '.repeat(10))).toBe(
      undefined,
    );
    expect(toolArgumentsTextOverLimit(`{"open":"${'['.repeat(500)}`)).toBeUndefined();
  });
});
