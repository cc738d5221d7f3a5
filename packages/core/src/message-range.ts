import { everrunsError } from './errors.js';
import type { Message } from './message.js';
import type { RuntimeMessageStore } from './stores.js';

const PAGE = 1000;

/**
 * Every message of a session with `seq` greater than `afterSeq`, in `seq` order: the store's
 * `loadAfter` when it has one, else pages of `loadPage`. Throws `INVALID_INPUT` for an `afterSeq`
 * that is not a non-negative integer.
 */
export async function loadMessagesAfter(
  store: RuntimeMessageStore,
  sessionId: string,
  afterSeq: number,
): Promise<Message[]> {
  checkAfterSeq(afterSeq);
  if (store.loadAfter) return store.loadAfter(sessionId, afterSeq);
  const messages: Message[] = [];
  let next: number | null = afterSeq;
  while (next !== null) {
    const page = await store.loadPage(sessionId, { afterSeq: next, limit: PAGE });
    messages.push(...page.messages);
    next = page.nextAfterSeq;
  }
  return messages;
}

/**
 * The last `limit` messages of a session (all when there are fewer), in `seq` order: the store's
 * `loadLatest` when it has one, else `count` and pages of `loadPage`. Throws `INVALID_INPUT` for
 * a `limit` that is not a positive integer.
 */
export async function loadLatestMessages(
  store: RuntimeMessageStore,
  sessionId: string,
  limit: number,
): Promise<Message[]> {
  checkLatestLimit(limit);
  if (store.loadLatest) return store.loadLatest(sessionId, limit);
  const count = await store.count(sessionId);
  return loadMessagesAfter(store, sessionId, Math.max(0, count - limit));
}

/** Throws `INVALID_INPUT` unless `afterSeq` is a non-negative integer. */
export function checkAfterSeq(afterSeq: unknown): asserts afterSeq is number {
  if (!Number.isSafeInteger(afterSeq) || (afterSeq as number) < 0) {
    throw everrunsError('INVALID_INPUT', 'afterSeq must be a non-negative integer', {
      details: { afterSeq: String(afterSeq) },
    });
  }
}

/** Throws `INVALID_INPUT` unless `limit` is a positive integer. */
export function checkLatestLimit(limit: unknown): asserts limit is number {
  if (!Number.isSafeInteger(limit) || (limit as number) < 1) {
    throw everrunsError('INVALID_INPUT', 'limit must be a positive integer', {
      details: { limit: String(limit) },
    });
  }
}

/**
 * Where a `loadPage` request starts: the `seq` its first message follows, from `offset` or
 * `afterSeq` (the same thing, positions being gapless from 1). Throws `INVALID_INPUT` when either
 * is not a non-negative integer, or both are given with different values.
 */
export function messagePageStart(page: { afterSeq?: number; offset?: number }): number {
  const { afterSeq, offset } = page;
  if (offset !== undefined) {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw everrunsError('INVALID_INPUT', 'offset must be a non-negative integer', {
        details: { offset: String(offset) },
      });
    }
    if (afterSeq !== undefined && afterSeq !== offset) {
      throw everrunsError('INVALID_INPUT', 'give either offset or afterSeq, not both', {
        details: { offset, afterSeq: String(afterSeq) },
      });
    }
    return offset;
  }
  const start = afterSeq ?? 0;
  checkAfterSeq(start);
  return start;
}
