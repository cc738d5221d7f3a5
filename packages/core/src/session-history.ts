import { z } from 'zod';
import type { UsageSnapshot } from './capability-hooks.js';
import { everrunsError } from './errors.js';
import { formatZodError } from './format-zod-error.js';
import { lazySchema } from './lazy-schema.js';
import { type ModelPrices, type ModelUsageTotal, UsageTally } from './llm-usage.js';
import { type Message, messageRoleSchema } from './message.js';
import type {
  MessageSearchPage,
  MessageSearchRequest,
  RuntimeMessageStore,
  SessionStorageStore,
  SumUsageOptions,
} from './stores.js';
import { SUBAGENT_LINK_PREFIX } from './subagents.js';

const PAGE = 1000;

/** Schema of {@link MessageSearchRequest} (defaults applied: `offset` 0, `limit` 20). */
export const messageSearchRequestSchema = lazySchema(() =>
  z.strictObject({
    query: z.string().min(1).max(1000),
    roles: z.array(messageRoleSchema).min(1).optional(),
    offset: z.number().int().nonnegative().max(1_000_000).default(0),
    limit: z.number().int().min(1).max(100).default(20),
  }),
);

/**
 * Validates a search request and applies its defaults. Throws `INVALID_INPUT` naming the field.
 */
export function parseMessageSearchRequest(
  request: unknown,
): Required<Pick<MessageSearchRequest, 'query' | 'offset' | 'limit'>> &
  Pick<MessageSearchRequest, 'roles'> {
  const parsed = messageSearchRequestSchema.safeParse(request);
  if (!parsed.success) {
    throw everrunsError('INVALID_INPUT', `Invalid message search: ${formatZodError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * The text a history search looks in, for one message: its text parts, its tool results' text,
 * and its tool calls' names and JSON arguments, joined by newlines (reasoning and images are not
 * searched). Every backend's `searchMessages` matches against exactly this text.
 */
export function messageSearchText(message: Pick<Message, 'content'>): string {
  const pieces: string[] = [];
  for (const part of message.content) {
    if (part.type === 'text') pieces.push(part.text);
    else if (part.type === 'tool_result') pieces.push(part.content);
    else if (part.type === 'tool_call') {
      pieces.push(part.name);
      const args =
        typeof part.arguments === 'string' ? part.arguments : JSON.stringify(part.arguments);
      if (args !== undefined) pieces.push(args);
    }
  }
  return pieces.join('\n');
}

/**
 * Whether `message` matches a parsed search: its {@link messageSearchText} contains the query
 * ignoring case (`toLowerCase` on both sides), and its role is allowed.
 */
export function messageMatchesSearch(
  message: Pick<Message, 'content' | 'role'>,
  request: Pick<MessageSearchRequest, 'query' | 'roles'>,
): boolean {
  if (request.roles && !request.roles.includes(message.role)) return false;
  return messageSearchText(message).toLowerCase().includes(request.query.toLowerCase());
}

/**
 * Searches a session's history: the store's `searchMessages` when it has one, else a scan page by
 * page with {@link messageMatchesSearch}. Throws `INVALID_INPUT` for a bad request.
 */
export async function searchSessionMessages(
  store: RuntimeMessageStore,
  sessionId: string,
  request: MessageSearchRequest,
): Promise<MessageSearchPage> {
  const parsed = parseMessageSearchRequest(request);
  if (store.searchMessages) return store.searchMessages(sessionId, parsed);
  const messages: Message[] = [];
  let skipped = 0;
  let afterSeq: number | null = 0;
  while (afterSeq !== null) {
    const page = await store.loadPage(sessionId, { afterSeq, limit: PAGE });
    for (const message of page.messages) {
      if (!messageMatchesSearch(message, parsed)) continue;
      if (skipped < parsed.offset) {
        skipped++;
        continue;
      }
      if (messages.length === parsed.limit) return { messages, hasMore: true };
      messages.push(message);
    }
    afterSeq = page.nextAfterSeq;
  }
  return { messages, hasMore: false };
}

/**
 * A session's model calls summed per model (optionally one turn's): the store's `sumUsage` when
 * it has one (one query on PostgreSQL), else a scan of the history page by page with the same
 * counting rules ({@link UsageTally}).
 */
export async function sumSessionUsage(
  store: RuntimeMessageStore,
  sessionId: string,
  options: SumUsageOptions = {},
): Promise<ModelUsageTotal[]> {
  if (store.sumUsage) {
    return options.turnId === undefined
      ? store.sumUsage(sessionId)
      : store.sumUsage(sessionId, { turnId: options.turnId });
  }
  const tally = new UsageTally();
  let afterSeq: number | null = 0;
  while (afterSeq !== null) {
    const page = await store.loadPage(sessionId, { afterSeq, limit: PAGE });
    for (const message of page.messages) {
      if (options.turnId === undefined || message.turnId === options.turnId) tally.add(message);
    }
    afterSeq = page.nextAfterSeq;
  }
  return tally.totals();
}

/** Bound on the sessions one usage snapshot reads (a session and its subagents, at any depth). */
export const MAX_USAGE_SESSIONS = 1_000;

/**
 * Usage of a session and of one of its turns as a budget sees it: the session's own model calls
 * plus those of every subagent it started (children linked under `subagents/` in its session
 * storage, at any depth), and for the turn, its own calls plus the whole usage of the children
 * its tool calls started. Without a storage store, only the session's own calls count. Reads at
 * most {@link MAX_USAGE_SESSIONS} sessions (a cycle of links is read once).
 */
export async function readUsageSnapshot(
  backends: { messages: RuntimeMessageStore; storage?: SessionStorageStore | undefined },
  sessionId: string,
  turnId: string,
  prices?: ModelPrices,
): Promise<UsageSnapshot> {
  const [ownSession, ownTurn, links] = await Promise.all([
    sumSessionUsage(backends.messages, sessionId),
    sumSessionUsage(backends.messages, sessionId, { turnId }),
    childLinks(backends.storage, sessionId),
  ]);
  const withPrices = prices ? { prices } : {};
  if (links.length === 0) return { session: ownSession, turn: ownTurn, ...withPrices };
  const session = new UsageTally();
  const turn = new UsageTally();
  for (const total of ownSession) session.addTotal(total);
  for (const total of ownTurn) turn.addTotal(total);
  const seen = new Set([sessionId]);
  const turnPrefix = `${SUBAGENT_LINK_PREFIX}${turnId}/`;
  let frontier = links.map((link) => ({ ...link, inTurn: link.key.startsWith(turnPrefix) }));
  while (frontier.length > 0 && seen.size < MAX_USAGE_SESSIONS) {
    const next: typeof frontier = [];
    for (const link of frontier) {
      if (seen.has(link.childId) || seen.size >= MAX_USAGE_SESSIONS) continue;
      seen.add(link.childId);
      const [totals, grandchildren] = await Promise.all([
        sumSessionUsage(backends.messages, link.childId),
        childLinks(backends.storage, link.childId),
      ]);
      for (const total of totals) {
        session.addTotal(total);
        if (link.inTurn) turn.addTotal(total);
      }
      for (const grandchild of grandchildren) next.push({ ...grandchild, inTurn: link.inTurn });
    }
    frontier = next;
  }
  return { session: session.totals(), turn: turn.totals(), ...withPrices };
}

async function childLinks(
  storage: SessionStorageStore | undefined,
  sessionId: string,
): Promise<{ key: string; childId: string }[]> {
  if (!storage) return [];
  const keys = await storage.listKeys(sessionId, SUBAGENT_LINK_PREFIX);
  const links = await Promise.all(
    keys.map(async (key) => ({ key, childId: await storage.getValue(sessionId, key) })),
  );
  return links.filter((link): link is { key: string; childId: string } => link.childId !== null);
}
