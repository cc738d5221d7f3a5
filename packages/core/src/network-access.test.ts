import { describe, expect, it } from 'vitest';
import { foldNetworkAccess, isUrlAllowed, NETWORK_ACCESS_NONE } from './index.js';

const allowOnly = (...allowed: string[]) => ({ allowed, blocked: [] as string[] });
const block = (...blocked: string[]) => ({ allowed: [] as string[], blocked });

describe('isUrlAllowed', () => {
  it('matches exact hosts, wildcard hosts and URL prefixes; blocked wins', () => {
    const list = {
      allowed: ['Example.COM', '*.docs.test', 'https://api.test/v1/'],
      blocked: ['private.docs.test'],
    };
    expect(isUrlAllowed(list, 'https://example.com:8443/x')).toBe(true);
    expect(isUrlAllowed(list, 'https://sub.example.com')).toBe(false);
    expect(isUrlAllowed(list, 'https://example.com.evil.test')).toBe(false);
    expect(isUrlAllowed(list, 'https://example.com@outside.test')).toBe(false);
    expect(isUrlAllowed(list, 'https://docs.test')).toBe(true);
    expect(isUrlAllowed(list, 'https://a.b.docs.test')).toBe(true);
    expect(isUrlAllowed(list, 'https://private.docs.test')).toBe(false);
    expect(isUrlAllowed(list, 'https://api.test/v1/users')).toBe(true);
    expect(isUrlAllowed(list, 'https://api.test/v2/users')).toBe(false);
    expect(isUrlAllowed(list, 'http://api.test/v1/users')).toBe(false);
    expect(isUrlAllowed(list, 'not a url')).toBe(false);
    expect(isUrlAllowed(undefined, 'https://anything.test')).toBe(true);
    expect(isUrlAllowed(block('evil.test'), 'https://good.test')).toBe(true);
    expect(isUrlAllowed(block('evil.test'), 'https://evil.test/x')).toBe(false);
  });
});

describe('foldNetworkAccess', () => {
  it('adds blocked lists and narrows allowed lists', () => {
    expect(foldNetworkAccess(undefined, undefined)).toBeUndefined();
    expect(foldNetworkAccess(block('evil.com'), block('bad.com', 'evil.com'))?.blocked).toEqual([
      'evil.com',
      'bad.com',
    ]);
    expect(
      foldNetworkAccess(
        allowOnly('*.example.com', '*.github.com'),
        allowOnly('api.example.com', 'other.com'),
      )?.allowed,
    ).toEqual(['api.example.com']);
    expect(foldNetworkAccess(allowOnly('example.com'), block('evil.com'))).toEqual({
      allowed: ['example.com'],
      blocked: ['evil.com'],
    });
    // An exact host does not cover its subdomains.
    expect(
      foldNetworkAccess(allowOnly('example.com'), allowOnly('*.example.com'))?.allowed,
    ).toEqual([NETWORK_ACCESS_NONE]);
  });

  it('denies everything when two allow-lists have nothing in common, and a later layer cannot reopen it', () => {
    const closed = foldNetworkAccess(allowOnly('parent.com'), allowOnly('child.com'));
    for (const next of [allowOnly(), allowOnly('parent.com'), allowOnly('child.com')]) {
      const folded = foldNetworkAccess(closed, next);
      for (const url of ['https://parent.com', 'https://child.com', 'https://any.test']) {
        expect(isUrlAllowed(folded, url)).toBe(false);
      }
    }
  });

  it('keeps a URL prefix only inside its parent, after normalisation', () => {
    const folded = foldNetworkAccess(
      allowOnly('https://api.example.com/v1/'),
      allowOnly('https://api.example.com/v1/../admin'),
    );
    expect(isUrlAllowed(folded, 'https://api.example.com/admin')).toBe(false);
    const escaped = foldNetworkAccess(
      allowOnly('*.example.com'),
      allowOnly('https://outside.test/path.example.com'),
    );
    expect(isUrlAllowed(escaped, 'https://outside.test/path.example.com')).toBe(false);
    const narrowed = foldNetworkAccess(
      allowOnly('*.example.com'),
      allowOnly('https://api.example.com/v1/'),
    );
    expect(isUrlAllowed(narrowed, 'https://api.example.com/v1/users')).toBe(true);
    expect(isUrlAllowed(narrowed, 'https://other.example.com/v1/users')).toBe(false);
  });
});
