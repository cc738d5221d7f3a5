import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  boundToolCallArguments,
  copyCutAtDepth,
  MAX_TOOL_ARGUMENTS_DEPTH,
  nestingDepth,
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
