import {
  type Capability,
  defineCapability,
  defineTool,
  type Message,
  type MessageRole,
  messageSearchText,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link infinityContextCapability}, as upstream (`infinity_context`). */
export const INFINITY_CONTEXT_CAPABILITY_ID = 'infinity_context';

/** Most matches one `query_history` call returns (a larger `limit` is lowered to it), as upstream. */
export const QUERY_HISTORY_MAX_LIMIT = 50;

/** Default of `limit`, as upstream. */
export const QUERY_HISTORY_DEFAULT_LIMIT = 20;

/** Configuration of `infinity_context` (all optional). */
export const infinityContextConfigSchema = z
  .strictObject({
    /**
     * Characters of one message's text a result shows at most (default 500, as upstream); a
     * longer text is cut to an excerpt around the first match.
     */
    maxMessageChars: z.number().int().min(50).max(100_000).optional(),
    /**
     * Characters of message text one result holds at most, all messages together (default
     * 16,000); the page ends early when the next message would pass it (`truncated: true`).
     */
    maxResultChars: z.number().int().min(200).max(1_000_000).optional(),
  })
  .refine(
    (config) =>
      (config.maxMessageChars ?? DEFAULT_MAX_MESSAGE_CHARS) <=
      (config.maxResultChars ?? DEFAULT_MAX_RESULT_CHARS),
    { message: 'maxMessageChars must not exceed maxResultChars', path: ['maxMessageChars'] },
  );

/** Configuration of `infinity_context`. */
export type InfinityContextConfig = z.infer<typeof infinityContextConfigSchema>;

const DEFAULT_MAX_MESSAGE_CHARS = 500;
const DEFAULT_MAX_RESULT_CHARS = 16_000;

/** One message in a {@link QueryHistoryResult}. */
export interface QueryHistoryMessage {
  /** 1-based position in the session's history. */
  seq: number;
  /** 0-based position (`seq - 1`), as upstream's `index`. */
  index: number;
  role: MessageRole;
  createdAt: string;
  turnId?: string;
  /**
   * The message's searchable text (text parts, tool results, tool call names and JSON arguments,
   * joined by newlines), or an excerpt of it around the first match marked with `…`.
   */
  content: string;
  /** Length of the whole text, in UTF-16 code units. */
  contentChars: number;
  /** True when `content` is an excerpt. */
  contentTruncated?: true;
}

/** What `query_history` returns. */
export interface QueryHistoryResult {
  /** The query searched for; absent when messages were read by position. */
  query?: string;
  /** Messages in this result. */
  count: number;
  /** The messages, oldest first. */
  messages: QueryHistoryMessage[];
  /** Messages in the whole history (when the runtime can count them). */
  totalInHistory?: number;
  /** The `offset` of a search. */
  offset?: number;
  /** The positions read, 1-based and inclusive (`"3-7"`), for `messageRange` and the latest. */
  range?: string;
  /** True when more follow: for a search call again with `offset: nextOffset`, for a range with `messageRange: nextRange`. */
  hasMore: boolean;
  /** Where the next page of a search starts; only with `hasMore`. */
  nextOffset?: number;
  /** The rest of a `messageRange` not returned; only with `hasMore`. */
  nextRange?: { from: number; to: number };
  /** True when the result ended early to stay within `maxResultChars`. */
  truncated?: true;
  /** Set when nothing was found, or to say how to read more. */
  message?: string;
}

const queryHistoryInput = z.strictObject({
  query: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .describe('Text to find in earlier messages; case-insensitive substring match.'),
  messageRange: z
    .strictObject({
      from: z.number().int().min(0).describe('First position, 0-based, inclusive.'),
      to: z.number().int().min(0).describe('End position, 0-based, exclusive.'),
    })
    .optional()
    .describe('Read messages by position instead of searching (wins over query).'),
  roles: z
    .array(z.enum(['user', 'agent', 'tool_result']))
    .min(1)
    .optional()
    .describe(
      'Only messages of these roles (user, agent, tool_result); for a query. Default: all.',
    ),
  offset: z
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .optional()
    .describe('Skip this many matches of a query (use the nextOffset of the last result).'),
  limit: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      `Most messages to return (default ${QUERY_HISTORY_DEFAULT_LIMIT}, at most ${QUERY_HISTORY_MAX_LIMIT}).`,
    ),
});

type QueryHistoryInput = z.infer<typeof queryHistoryInput>;
type HistoryAccess = NonNullable<ToolContext['history']>;

/** Per-message overhead counted against `maxResultChars` (the JSON around the text). */
const MESSAGE_OVERHEAD = 120;

/** Messages described until `maxResultChars` is reached (the first one always fits). */
function describeBounded(
  messages: readonly Message[],
  needle: string,
  config: { maxMessageChars: number; maxResultChars: number },
  skip: (message: Message) => boolean = () => false,
): { entries: QueryHistoryMessage[]; consumed: number; truncated: boolean } {
  const entries: QueryHistoryMessage[] = [];
  let consumed = 0;
  let used = 0;
  for (const message of messages) {
    if (skip(message)) {
      consumed++;
      continue;
    }
    const entry = describeMessage(message, needle, config.maxMessageChars);
    const size = entry.content.length + MESSAGE_OVERHEAD;
    if (entries.length > 0 && used + size > config.maxResultChars) {
      return { entries, consumed, truncated: true };
    }
    used += size;
    entries.push(entry);
    consumed++;
  }
  return { entries, consumed, truncated: false };
}

async function searchHistory(
  history: HistoryAccess,
  input: QueryHistoryInput & { query: string },
  limit: number,
  toolCallId: string,
  config: { maxMessageChars: number; maxResultChars: number },
): Promise<QueryHistoryResult> {
  const offset = input.offset ?? 0;
  const page = await history.search({
    query: input.query,
    ...(input.roles ? { roles: input.roles } : {}),
    offset,
    limit,
  });
  // The message holding this very call matches its own arguments: leave it out.
  const { entries, consumed, truncated } = describeBounded(
    page.messages,
    input.query.toLowerCase(),
    config,
    (message) => holdsToolCall(message, toolCallId),
  );
  const hasMore = truncated || page.hasMore;
  const result: QueryHistoryResult = {
    query: input.query,
    count: entries.length,
    messages: entries,
    offset,
    hasMore,
  };
  if (hasMore) result.nextOffset = offset + consumed;
  if (truncated) result.truncated = true;
  if (entries.length === 0 && !hasMore) result.message = 'No message of this session matches.';
  return result;
}

/** Messages `[from, to)` by 0-based position (at most `limit`), or the latest `limit`. */
async function readByPosition(
  history: HistoryAccess,
  range: { from: number; to: number } | undefined,
  limit: number,
  config: { maxMessageChars: number; maxResultChars: number },
): Promise<QueryHistoryResult | ReturnType<typeof toolError>> {
  if (!history.page || !history.count) {
    return toolError('This runtime can only search the history: give a query.');
  }
  const total = await history.count();
  const from = range ? Math.min(range.from, total) : Math.max(0, total - limit);
  const to = range ? Math.max(from, Math.min(range.to, total)) : total;
  const wanted = Math.min(to - from, limit);
  const page =
    wanted === 0 ? { messages: [] } : await history.page({ afterSeq: from, limit: wanted });
  const { entries, truncated } = describeBounded(page.messages, '', config);
  const end = from + entries.length;
  const result: QueryHistoryResult = {
    count: entries.length,
    messages: entries,
    totalInHistory: total,
    hasMore: end < to,
  };
  if (entries.length > 0) result.range = `${from + 1}-${end}`;
  if (end < to) result.nextRange = { from: end, to };
  if (truncated) result.truncated = true;
  if (entries.length === 0) {
    result.message = total === 0 ? 'The history is empty.' : 'No messages in the requested range.';
  } else if (!range) {
    result.message =
      'The latest messages. Give a query to search, or messageRange to read older ones.';
  }
  return result;
}

const queryHistoryTool = defineTool<typeof queryHistoryInput, InfinityContextConfig | undefined>({
  name: 'query_history',
  description:
    'Search or read the whole history of this conversation, including messages no longer in your context. With query: messages whose text, tool calls or tool results contain it (case-insensitive), oldest first, paged with offset. With messageRange: messages by position. With neither: the latest messages.',
  inputSchema: queryHistoryInput,
  idempotent: true,
  async execute(input, context): Promise<QueryHistoryResult | ReturnType<typeof toolError>> {
    if (!context.history) {
      return toolError('This runtime gives tools no access to the session history.');
    }
    const config = {
      maxMessageChars: context.config?.maxMessageChars ?? DEFAULT_MAX_MESSAGE_CHARS,
      maxResultChars: context.config?.maxResultChars ?? DEFAULT_MAX_RESULT_CHARS,
    };
    const limit = Math.min(input.limit ?? QUERY_HISTORY_DEFAULT_LIMIT, QUERY_HISTORY_MAX_LIMIT);
    if (input.messageRange === undefined && input.query !== undefined) {
      return searchHistory(
        context.history,
        { ...input, query: input.query },
        limit,
        context.toolCallId,
        config,
      );
    }
    return readByPosition(context.history, input.messageRange, limit, config);
  },
});

function holdsToolCall(message: Message, toolCallId: string): boolean {
  return (
    message.role === 'agent' &&
    message.content.some((part) => part.type === 'tool_call' && part.id === toolCallId)
  );
}

function describeMessage(message: Message, needle: string, maxChars: number): QueryHistoryMessage {
  const text = messageSearchText(message);
  const entry: QueryHistoryMessage = {
    seq: message.seq,
    index: message.seq - 1,
    role: message.role,
    createdAt: message.createdAt,
    content: text,
    contentChars: text.length,
  };
  if (message.turnId !== undefined) entry.turnId = message.turnId;
  if (text.length > maxChars) {
    entry.content = excerpt(text, needle, maxChars);
    entry.contentTruncated = true;
  }
  return entry;
}

/**
 * At most `maxChars` of `text` (plus `…` marks) around the first match of `needle` (lower-cased):
 * a quarter of the room before it, the rest after. Never splits a surrogate pair.
 */
export function excerpt(text: string, needle: string, maxChars: number): string {
  const lowered = text.toLowerCase();
  let at = lowered.indexOf(needle);
  // toLowerCase changes the length of a few characters (İ); map the position proportionally.
  if (at > 0 && lowered.length !== text.length) {
    at = Math.floor((at * text.length) / lowered.length);
  }
  let start = at <= 0 ? 0 : Math.max(0, at - Math.floor(maxChars / 4));
  let end = Math.min(text.length, start + maxChars);
  start = Math.max(0, Math.min(start, end - maxChars));
  if (isLowSurrogate(text.charCodeAt(start))) start++;
  if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
  return `${start > 0 ? '…' : ''}${text.slice(start, end)}${end < text.length ? '…' : ''}`;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/**
 * The `infinity_context` capability (upstream's id): the tool `query_history` searches the
 * session's whole stored history, messages no longer in the model's context included (after
 * compaction, say). The search is the store's `searchMessages` when it has one (an indexed query
 * on PostgreSQL), else a scan page by page: case-insensitive substring over text parts, tool
 * results and tool calls, oldest first, paged by `offset`/`limit` (at most 50). Each message's
 * text is cut to `maxMessageChars` around the match and a result holds at most `maxResultChars`
 * of text. The history itself is not trimmed here: pair it with `compaction` for that.
 */
export const infinityContextCapability: Capability<InfinityContextConfig | undefined> =
  defineCapability<InfinityContextConfig | undefined>({
    id: INFINITY_CONTEXT_CAPABILITY_ID,
    name: 'Infinity Context',
    description:
      'Keeps the whole session history searchable: query_history finds earlier messages, including those no longer in the prompt.',
    configSchema: infinityContextConfigSchema.optional() as unknown as z.ZodType<
      InfinityContextConfig | undefined
    >,
    systemPrompt:
      'Every message of this conversation stays stored, also those that no longer appear in your context (older turns may have been summarised or left out). When you need an earlier detail (a name, a value, a decision, a tool result), call query_history with words it contains instead of guessing; results come oldest first with their position (seq), long texts as excerpts around the match, and nextOffset pages on.',
    tools: [queryHistoryTool],
  });
