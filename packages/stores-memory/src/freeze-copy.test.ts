import { describe, expect, it } from 'vitest';
import { freezeCopy } from './freeze-copy.js';
import { InMemoryMessageStore } from './in-memory-message-store.js';

// Issue 13, invariant 6: keys are data, `__proto__` included.

describe('freezeCopy', () => {
  it('copies __proto__, constructor and prototype as plain own keys, at any depth', () => {
    const value = JSON.parse(
      '{"__proto__":{"polluted":true},"constructor":1,"prototype":[{"__proto__":null}],"toString":"x"}',
    ) as Record<string, unknown>;
    const copy = freezeCopy(value);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(['__proto__', 'constructor', 'prototype', 'toString']);
    expect(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value).toEqual({ polluted: true });
    expect(JSON.stringify(copy)).toBe(JSON.stringify(value));
    expect(Object.isFrozen(copy)).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('InMemoryMessageStore and hostile keys', () => {
  it('stores and loads tool-call arguments with a __proto__ key unchanged', async () => {
    const store = new InMemoryMessageStore();
    const args = JSON.parse('{"__proto__":{"a":1},"constructor":{"prototype":2}}');
    await store.storeMessage('session_hostile', {
      role: 'agent',
      content: [{ type: 'tool_call', id: 'call_1', name: 'tool', arguments: args }],
    });
    const [message] = await store.load('session_hostile');
    const part = message?.content[0];
    if (part?.type !== 'tool_call') throw new Error('expected a tool call');
    expect(JSON.stringify(part.arguments)).toBe(JSON.stringify(args));
    expect(Object.getPrototypeOf(part.arguments)).toBe(Object.prototype);
  });
});
