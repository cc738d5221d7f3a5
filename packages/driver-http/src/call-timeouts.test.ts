import { describe, expect, it } from 'vitest';
import { resolveTimeouts } from './call-timeouts.js';
import {
  DEFAULT_DRIVER_TIMEOUTS,
  isPermanentQuotaError,
  parseDriverTimeouts,
  parseHttpCallOptions,
} from './index.js';

describe('driver-http: timeouts and quota errors', () => {
  it('lays per-call timeouts over the driver’s over the defaults, false switching one off', () => {
    expect(resolveTimeouts(undefined, undefined)).toEqual(DEFAULT_DRIVER_TIMEOUTS);
    expect(
      resolveTimeouts(
        { connectTimeoutMs: 5, idleTimeoutMs: 7 },
        { idleTimeoutMs: false, totalTimeoutMs: 9 },
      ),
    ).toEqual({
      connectTimeoutMs: 5,
      firstByteTimeoutMs: DEFAULT_DRIVER_TIMEOUTS.firstByteTimeoutMs,
      idleTimeoutMs: false,
      totalTimeoutMs: 9,
    });
  });

  it('validates timeouts and call options with zod, naming the bad field', () => {
    expect(parseDriverTimeouts({ connectTimeoutMs: 10 }, 'x')).toEqual({ connectTimeoutMs: 10 });
    expect(() => parseDriverTimeouts({ connectTimeoutMs: 0 }, 'test options')).toThrowError(
      /Invalid test options \(connectTimeoutMs\)/,
    );
    expect(() => parseHttpCallOptions({ signal: 'nope' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    const signal = new AbortController().signal;
    expect(parseHttpCallOptions({ signal, other: 1 })).toEqual({ signal, other: 1 });
  });

  it('tells a permanent quota error from a rate limit', () => {
    expect(isPermanentQuotaError({ code: 'insufficient_quota' })).toBe(true);
    expect(isPermanentQuotaError({ type: 'insufficient_quota' })).toBe(true);
    expect(isPermanentQuotaError({ code: 'billing_hard_limit_reached' })).toBe(true);
    expect(isPermanentQuotaError({ code: 'rate_limit_exceeded', type: 'tokens' })).toBe(false);
  });
});
