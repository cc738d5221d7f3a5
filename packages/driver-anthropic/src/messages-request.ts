import type { ContentPart, LlmRequest, Message } from '@everruns-ts/core';
import {
  applyMessagesRequestOptions,
  parseMessagesRequestOptions,
  structuredOutputTool,
} from './messages-options.js';
import {
  type AnthropicCacheControl,
  applyPromptCaching,
  type PromptCachingPlan,
} from './prompt-caching.js';

/** One content block of a Messages API request; all but thinking may carry `cache_control`. */
export type AnthropicContentBlock =
  | { type: 'text'; text: string; cache_control?: AnthropicCacheControl }
  | {
      type: 'image';
      source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };
      cache_control?: AnthropicCacheControl;
    }
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string }
  | {
      type: 'tool_use';
      id: string;
      name: string;
      input: Record<string, unknown>;
      cache_control?: AnthropicCacheControl;
    }
  | {
      type: 'tool_result';
      tool_use_id: string;
      content: string;
      is_error?: boolean;
      cache_control?: AnthropicCacheControl;
    };

/** One message of a Messages API request. */
export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicContentBlock[];
}

/** The request body of `POST /v1/messages`. */
export interface MessagesRequestBody {
  model: string;
  max_tokens: number;
  /** A string, or one text block carrying `cache_control` when prompt caching is on. */
  system?: string | Array<{ type: 'text'; text: string; cache_control?: AnthropicCacheControl }>;
  messages: AnthropicMessage[];
  tools?: Array<{
    name: string;
    description: string;
    input_schema: Record<string, unknown>;
    cache_control?: AnthropicCacheControl;
  }>;
  stream?: boolean;
}

/** How the request body is shaped. */
export interface MessagesRequestShape {
  stream: boolean;
  /** `max_tokens` when the request sets no `maxOutputTokens`. */
  defaultMaxTokens: number;
  /** Where `cache_control` breakpoints go; none when `undefined`. */
  promptCaching?: PromptCachingPlan;
}

/**
 * A `tool_use` block's `input` must be an object. Arguments that were not (a raw string the
 * driver could not parse, or another JSON value) are sent as `{}`; the tool result that follows
 * already tells the model what went wrong.
 */
function toolInput(value: unknown): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  return {};
}

function block(part: ContentPart, role: Message['role']): AnthropicContentBlock | undefined {
  switch (part.type) {
    case 'text':
      // The API rejects empty text blocks.
      return part.text === '' ? undefined : { type: 'text', text: part.text };
    case 'image':
      if (role === 'agent') return undefined;
      if (part.data) {
        return {
          type: 'image',
          source: { type: 'base64', media_type: part.mediaType, data: part.data },
        };
      }
      if (part.url) return { type: 'image', source: { type: 'url', url: part.url } };
      return undefined;
    case 'tool_call':
      if (role !== 'agent') return undefined;
      return { type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments) };
    case 'tool_result':
      if (role === 'agent') return undefined;
      return {
        type: 'tool_result',
        tool_use_id: part.toolCallId,
        content: part.content,
        ...(part.isError ? { is_error: true } : {}),
      };
    case 'reasoning':
      // Thinking goes back exactly as it came, signature and all, so the API can verify it;
      // reasoning without a signature (another provider's) cannot be sent and is left out.
      if (role !== 'agent') return undefined;
      if (part.redactedData !== undefined) {
        return { type: 'redacted_thinking', data: part.redactedData };
      }
      if (part.signature !== undefined) {
        return { type: 'thinking', thinking: part.text, signature: part.signature };
      }
      return undefined;
  }
}

/**
 * Converts the session history to Messages API messages: `agent` is `assistant`, tool results
 * travel in `user` messages, and consecutive messages of one role are merged (the API wants
 * roles to alternate), with tool results first in a merged user message.
 */
export function toAnthropicMessages(messages: readonly Message[]): AnthropicMessage[] {
  const result: AnthropicMessage[] = [];
  for (const message of messages) {
    const role = message.role === 'agent' ? 'assistant' : 'user';
    const blocks: AnthropicContentBlock[] = [];
    for (const part of message.content) {
      const converted = block(part, message.role);
      if (converted) blocks.push(converted);
    }
    if (blocks.length === 0) continue;
    const previous = result.at(-1);
    if (previous && previous.role === role) previous.content.push(...blocks);
    else result.push({ role, content: blocks });
  }
  for (const message of result) {
    if (message.role !== 'user') continue;
    const results = message.content.filter((entry) => entry.type === 'tool_result');
    if (results.length === 0 || results.length === message.content.length) continue;
    const others = message.content.filter((entry) => entry.type !== 'tool_result');
    message.content = [...results, ...others];
  }
  return result;
}

/**
 * Translates a driver request into the body of `POST /v1/messages`. With `responseFormat`, the
 * structured output tool is offered after the request's own tools.
 */
export function toMessagesRequest(
  request: LlmRequest,
  shape: MessagesRequestShape,
): MessagesRequestBody {
  const options = parseMessagesRequestOptions(request.options);
  const body: MessagesRequestBody = {
    model: request.model.model,
    max_tokens: request.maxOutputTokens ?? shape.defaultMaxTokens,
    messages: toAnthropicMessages(request.messages),
  };
  if (request.systemPrompt.trim() !== '') body.system = request.systemPrompt;
  const tools = request.tools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    input_schema: tool.inputSchema,
  }));
  const outputTool = structuredOutputTool(options);
  if (outputTool) tools.push(outputTool);
  if (tools.length > 0) body.tools = tools;
  if (shape.stream) body.stream = true;
  if (shape.promptCaching) applyPromptCaching(body, shape.promptCaching);
  applyMessagesRequestOptions(
    body as unknown as Record<string, unknown> & { max_tokens: number },
    options,
    request.tools,
  );
  return body;
}
