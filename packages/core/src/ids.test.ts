import { describe, expect, it } from 'vitest';
import { uuidV7Hex } from './ids.js';
import { idFromWords, isIdWithPrefix, newId, newIdWithWords } from './index.js';

describe('ids', () => {
  it('makes prefixed UUID v7 ids that sort in creation order', () => {
    const ids = Array.from({ length: 5000 }, () => newId('msg'));
    for (const id of ids) expect(id).toMatch(/^msg_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('encodes the current time in the first 48 bits', () => {
    const before = Date.now();
    const hex = uuidV7Hex();
    expect(Number.parseInt(hex.slice(0, 12), 16)).toBeGreaterThanOrEqual(before);
  });

  it('makes well-formed ids when prefixes of different lengths alternate', () => {
    for (const prefix of ['session', 'msg', 'harness', 'evt', 'appr', 'msg'] as const) {
      const id = newId(prefix);
      expect(id).toMatch(new RegExp(`^${prefix}_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$`));
      expect(isIdWithPrefix(id, prefix)).toBe(true);
    }
    expect(uuidV7Hex()).toMatch(/^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  });

  it('recognises generated ids by prefix', () => {
    expect(isIdWithPrefix(newId('session'), 'session')).toBe(true);
    expect(isIdWithPrefix(newId('session'), 'agent')).toBe(false);
    expect(isIdWithPrefix('session_1', 'session')).toBe(false);
  });

  it('gives an id as four words that make the same id again', () => {
    const words = new Uint32Array(4 * 3000);
    const ids = [];
    // Enough ids to cross a refill of the random pool and many within one millisecond.
    for (let index = 0; index < 3000; index++) {
      ids.push(newIdWithWords(index % 2 === 0 ? 'evt' : 'session', words, index * 4));
    }
    for (const [index, id] of ids.entries()) {
      expect(idFromWords(index % 2 === 0 ? 'evt' : 'session', words, index * 4)).toBe(id);
    }
    expect(idFromWords('evt', new Uint32Array([0xffffffff, 0, 0x80000001, 0x0a0b0c0d]), 0)).toBe(
      'evt_ffffffff00000000800000010a0b0c0d',
    );
  });
});
