import { EverrunsError, formatZodError } from '@everruns-ts/core';
import { z } from 'zod';

/** How long a cache entry lives: the API's default five minutes, or one hour. */
export const ANTHROPIC_CACHE_TTLS = Object.freeze(['5m', '1h'] as const);

/** The object form of {@link AnthropicPromptCaching}. */
const promptCachingPlacesSchema = z
  .object({
    /** A breakpoint on the last system block. Defaults to `true`. */
    system: z.boolean().optional(),
    /** A breakpoint on the last tool definition. Defaults to `true`. */
    tools: z.boolean().optional(),
    /** A breakpoint on the last block of the last message sent. Defaults to `true`. */
    messages: z.boolean().optional(),
    /** `cache_control.ttl`; left out (the API's five minutes) unless set. */
    ttl: z.enum(ANTHROPIC_CACHE_TTLS).optional(),
  })
  .strict();

/** Schema of {@link AnthropicPromptCaching}. Unknown keys are refused. */
export const anthropicPromptCachingSchema = z.union([z.boolean(), promptCachingPlacesSchema]);

/**
 * Prompt caching of the Anthropic driver: `true` (the default) places `cache_control`
 * breakpoints on the system prompt, the tools and the latest message; `false` sends none; an
 * object switches each place off (`system`, `tools`, `messages`, each `true` unless `false`) and
 * may set the entry's `ttl`.
 */
export type AnthropicPromptCaching = z.infer<typeof anthropicPromptCachingSchema>;

/** The `cache_control` value put on a block. */
export interface AnthropicCacheControl {
  type: 'ephemeral';
  ttl?: (typeof ANTHROPIC_CACHE_TTLS)[number];
}

/** Where breakpoints go, resolved from {@link AnthropicPromptCaching}. */
export interface PromptCachingPlan {
  system: boolean;
  tools: boolean;
  messages: boolean;
  cacheControl: AnthropicCacheControl;
}

/**
 * Checks a `promptCaching` option (`INVALID_INPUT` naming each problem) and resolves where the
 * breakpoints go; `undefined` when no breakpoint is to be placed.
 */
export function resolvePromptCaching(
  value: unknown,
  what = 'AnthropicDriver options',
): PromptCachingPlan | undefined {
  // An object is checked against the object form alone, so each bad field is named.
  const parsed = (
    typeof value === 'object' && value !== null
      ? promptCachingPlacesSchema
      : anthropicPromptCachingSchema
  ).safeParse(value ?? true);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid ${what}: promptCaching ${formatZodError(parsed.error)}`,
      details: { option: 'promptCaching' },
    });
  }
  const caching = parsed.data;
  if (caching === false) return undefined;
  const settings = caching === true ? {} : caching;
  const plan: PromptCachingPlan = {
    system: settings.system ?? true,
    tools: settings.tools ?? true,
    messages: settings.messages ?? true,
    cacheControl: settings.ttl ? { type: 'ephemeral', ttl: settings.ttl } : { type: 'ephemeral' },
  };
  return plan.system || plan.tools || plan.messages ? plan : undefined;
}

/** The most breakpoints the Messages API accepts in one request. */
export const ANTHROPIC_MAX_CACHE_BREAKPOINTS = 4;

interface CacheableBody {
  system?: string | Array<{ type: 'text'; text: string; cache_control?: AnthropicCacheControl }>;
  tools?: Array<{ cache_control?: AnthropicCacheControl }>;
  messages: Array<{ content: Array<{ type: string; cache_control?: AnthropicCacheControl }> }>;
}

/**
 * Places the breakpoints of `plan` on a Messages body: the system prompt becomes one text block
 * carrying `cache_control`; the last tool definition carries it; and the last block of the last
 * message that can carry it (thinking blocks cannot) does, so each request of a tool loop reads
 * the prefix the one before it wrote. Empty parts get none; at most three are placed, within the
 * API's four.
 */
export function applyPromptCaching(body: CacheableBody, plan: PromptCachingPlan): void {
  let placed = 0;
  const mark = () => {
    placed += 1;
    return { ...plan.cacheControl };
  };
  if (plan.system && typeof body.system === 'string' && body.system.trim() !== '') {
    body.system = [{ type: 'text', text: body.system, cache_control: mark() }];
  }
  const lastTool = body.tools?.at(-1);
  if (plan.tools && lastTool) lastTool.cache_control = mark();
  if (!plan.messages || placed >= ANTHROPIC_MAX_CACHE_BREAKPOINTS) return;
  for (let index = body.messages.length - 1; index >= 0; index -= 1) {
    const content = body.messages[index]?.content ?? [];
    const block = content.findLast(
      (entry) => entry.type !== 'thinking' && entry.type !== 'redacted_thinking',
    );
    if (block) {
      block.cache_control = mark();
      return;
    }
  }
}
