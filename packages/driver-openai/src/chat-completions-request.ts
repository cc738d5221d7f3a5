import type { ContentPart, LlmRequest, Message } from '@everruns-ts/core';
import { applyChatRequestOptions } from './chat-completions-options.js';

/** One tool call as the Chat Completions API writes it. */
export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** One part of a user message's content. */
export type ChatUserContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string } };

/** One message of the Chat Completions API. */
export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string | ChatUserContentPart[] }
  | {
      role: 'assistant';
      content: string | null;
      tool_calls?: ChatToolCall[];
      /** The reasoning of a tool-calling answer, sent back (DeepSeek thinking mode, Kimi, GLM). */
      reasoning_content?: string;
    }
  | { role: 'tool'; tool_call_id: string; content: string };

/** The request body of `POST /chat/completions`. */
export interface ChatCompletionRequestBody {
  model: string;
  messages: ChatMessage[];
  tools?: Array<{
    type: 'function';
    function: { name: string; description: string; parameters: Record<string, unknown> };
  }>;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage: boolean };
}

/** How the request body is shaped. */
export interface ChatRequestShape {
  stream: boolean;
  streamUsage: boolean;
  maxTokensParameter: 'max_completion_tokens' | 'max_tokens';
  /**
   * Whether an assistant message with tool calls carries its stored reasoning back as
   * `reasoning_content` (reasoning text without a provider signature or redacted data).
   */
  sendReasoningContent?: boolean;
}

/** Tool call arguments as the wire wants them: JSON text; a raw string passes through as is. */
function encodeArguments(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value ?? {});
}

function imageUrl(part: Extract<ContentPart, { type: 'image' }>): string | undefined {
  if (part.url) return part.url;
  if (part.data) return `data:${part.mediaType};base64,${part.data}`;
  return undefined;
}

function userContent(parts: ContentPart[]): string | ChatUserContentPart[] | undefined {
  const wire: ChatUserContentPart[] = [];
  for (const part of parts) {
    if (part.type === 'text') wire.push({ type: 'text', text: part.text });
    else if (part.type === 'image') {
      const url = imageUrl(part);
      if (url) wire.push({ type: 'image_url', image_url: { url } });
    }
  }
  if (wire.length === 0) return undefined;
  if (wire.length === 1 && wire[0]?.type === 'text') return wire[0].text;
  return wire;
}

function appendMessage(
  messages: ChatMessage[],
  message: Message,
  sendReasoningContent: boolean,
): void {
  if (message.role === 'agent') {
    let text = '';
    let reasoning = '';
    const toolCalls: ChatToolCall[] = [];
    for (const part of message.content) {
      if (part.type === 'text') text += part.text;
      // Signed or redacted reasoning is another provider's (Anthropic's); it is not sent here.
      else if (
        part.type === 'reasoning' &&
        part.signature === undefined &&
        part.redactedData === undefined
      ) {
        reasoning += part.text;
      } else if (part.type === 'tool_call') {
        toolCalls.push({
          id: part.id,
          type: 'function',
          function: { name: part.name, arguments: encodeArguments(part.arguments) },
        });
      }
    }
    if (toolCalls.length === 0) {
      messages.push({ role: 'assistant', content: text });
    } else {
      messages.push({
        role: 'assistant',
        content: text === '' ? null : text,
        tool_calls: toolCalls,
        ...(sendReasoningContent && reasoning !== '' ? { reasoning_content: reasoning } : {}),
      });
    }
    return;
  }
  // `user` and `tool_result` messages: each tool result becomes its own `tool` message (they
  // must directly follow the assistant message that asked for them), then any user content.
  for (const part of message.content) {
    if (part.type === 'tool_result') {
      messages.push({ role: 'tool', tool_call_id: part.toolCallId, content: part.content });
    }
  }
  const content = userContent(message.content);
  if (content !== undefined) messages.push({ role: 'user', content });
}

/**
 * Translates a driver request into the body of `POST /chat/completions`, its request options
 * included (`INVALID_INPUT` for options that are not valid or not supported).
 */
export function toChatCompletionRequest(
  request: LlmRequest,
  shape: ChatRequestShape,
): ChatCompletionRequestBody {
  const messages: ChatMessage[] = [];
  if (request.systemPrompt.trim() !== '') {
    messages.push({ role: 'system', content: request.systemPrompt });
  }
  const sendReasoningContent = shape.sendReasoningContent ?? true;
  for (const message of request.messages) appendMessage(messages, message, sendReasoningContent);
  const body: ChatCompletionRequestBody = { model: request.model.model, messages };
  if (request.tools.length > 0) {
    body.tools = request.tools.map((tool) => ({
      type: 'function',
      function: { name: tool.name, description: tool.description, parameters: tool.inputSchema },
    }));
  }
  if (request.maxOutputTokens !== undefined)
    body[shape.maxTokensParameter] = request.maxOutputTokens;
  if (shape.stream) {
    body.stream = true;
    if (shape.streamUsage) body.stream_options = { include_usage: true };
  }
  applyChatRequestOptions(
    body as unknown as Record<string, unknown>,
    request.options,
    request.tools,
    shape.maxTokensParameter,
  );
  return body;
}
