import {
  DESTRUCTIVE_FILE_OPERATIONS,
  EverrunsError,
  type SessionFileSystem,
} from '@everruns-ts/core';
import type { FileApprovalRequestLike } from './inspector-approvals.js';

const DESTRUCTIVE = new Set<string>(DESTRUCTIVE_FILE_OPERATIONS);

/**
 * Asks `gate` before every destructive operation of `inner` and refuses a denied one with
 * `APPROVAL_DENIED`; everything else passes through. (The runtime's `ApprovalGatingFileStore`
 * will do this job once it lands.)
 */
export function gateDestructive(
  inner: SessionFileSystem,
  gate: (request: FileApprovalRequestLike) => Promise<'approve' | 'deny'>,
): SessionFileSystem {
  return new Proxy(inner, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof property !== 'string' || !DESTRUCTIVE.has(property)) return method.bind(target);
      return async (...args: unknown[]) => {
        const path = String(args[0]);
        const request: FileApprovalRequestLike = { operation: property, path };
        if (property === 'deleteFile') request.recursive = args[1] === true;
        if (property === 'moveFile') request.to = String(args[1]);
        const decision = await gate(request);
        if (decision !== 'approve') {
          throw new EverrunsError({
            code: 'APPROVAL_DENIED',
            message: `The user denied ${property} of ${path}`,
            details: { path, operation: property },
          });
        }
        return method.apply(target, args);
      };
    },
  });
}
