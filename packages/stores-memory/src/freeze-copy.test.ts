import { describe, expect, it } from 'vitest';
import { CollectingEventBus } from './collecting-event-bus.js';
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

describe('freezeCopy objects', () => {
  it('are plain objects of any key count, keys in order', () => {
    for (const count of [0, 1, 4, 5, 16, 17, 40]) {
      const value = Object.fromEntries(
        Array.from({ length: count }, (_, index) => [`k${index}`, { v: index }]),
      );
      const copy = freezeCopy(value);
      expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
      expect(copy.constructor).toBe(Object);
      expect(Object.keys(copy)).toEqual(Object.keys(value));
      expect(copy).toStrictEqual(value);
      expect(copy).not.toBe(value);
    }
  });
});

describe('copies and inherited keys', () => {
  it('copy own keys only, in Object.keys order, when Object.prototype has an enumerable key', () => {
    const bus = new CollectingEventBus();
    const polluted = Object.prototype as Record<string, unknown>;
    polluted.injected = 'from the prototype';
    try {
      const value = { 2: 'two', b: { nested: [1, { c: 3 }] }, 1: 'one', a: 'x' };
      const copy = freezeCopy(value);
      expect(Object.keys(copy)).toEqual(['1', '2', 'b', 'a']);
      expect(Object.hasOwn(copy, 'injected')).toBe(false);
      expect(Object.hasOwn((copy as typeof value).b, 'injected')).toBe(false);
      // Event data: the flat copy and the deep one alike.
      const flat = bus.emitSync({ type: 'turn.started', sessionId: 's', data: { z: 1, y: 'y' } });
      const deep = bus.emitSync({
        type: 'turn.started',
        sessionId: 's',
        data: { z: 1, y: { w: 2 } },
      });
      expect(Object.keys(flat.data)).toEqual(['z', 'y']);
      expect(Object.hasOwn(flat.data, 'injected')).toBe(false);
      expect(Object.hasOwn(deep.data, 'injected')).toBe(false);
      expect(Object.hasOwn(deep.data.y as object, 'injected')).toBe(false);
      expect(JSON.stringify(deep.data)).toBe('{"z":1,"y":{"w":2}}');
    } finally {
      delete polluted.injected;
    }
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

describe('freezeCopy of deeply nested data', () => {
  it('copies arrays and objects nested 100,000 levels deep without running out of stack', () => {
    let value: unknown = 'bottom';
    for (let depth = 0; depth < 100_000; depth++) {
      value = depth % 2 === 0 ? [value] : { next: value };
    }
    const copy = freezeCopy(value);
    let node: unknown = copy;
    let depth = 0;
    while (typeof node === 'object' && node !== null) {
      expect(Object.isFrozen(node)).toBe(true);
      node = Array.isArray(node) ? node[0] : (node as { next: unknown }).next;
      depth++;
    }
    expect({ depth, node }).toEqual({ depth: 100_000, node: 'bottom' });
  });

  it('copies shared references apart and refuses a value that contains itself', () => {
    const shared = { a: 1 };
    const copy = freezeCopy({ left: shared, right: [shared] });
    expect(copy).toEqual({ left: { a: 1 }, right: [{ a: 1 }] });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = [cyclic];
    expect(() => freezeCopy(cyclic)).toThrow(TypeError);
  });
});
