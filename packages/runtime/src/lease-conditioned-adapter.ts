import type { RuntimeSessionStore } from '@everruns-ts/core';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';

/**
 * The adapter a leased turn runs with: every session status write it makes is conditional on
 * `leaseHolder` still holding the session's turn lease (`updateSessionStatus(…, { leaseHolder })`),
 * so a turn that lost its lease to another holder gets `TURN_IN_PROGRESS` instead of marking the
 * session over the new holder's turn. Everything else is the given adapter's.
 */
export function leaseConditionedAdapter(
  adapter: RuntimeHostAdapter,
  leaseHolder: string,
): RuntimeHostAdapter {
  const sessions = adapter.backends.sessions;
  const conditioned = new Proxy(sessions, {
    get(target, property) {
      if (property === 'updateSessionStatus') {
        return ((sessionId, status, options) =>
          target.updateSessionStatus(sessionId, status, {
            leaseHolder,
            ...options,
          })) satisfies RuntimeSessionStore['updateSessionStatus'];
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...adapter, backends: { ...adapter.backends, sessions: conditioned } };
}
