import {
  type ContentPart,
  EverrunsError,
  type LlmRequest,
  type LlmRequestOptions,
  type Message,
  parseLlmRequestOptions,
  type ToolSpec,
  unsupportedRequestOptionError,
} from '@everruns-ts/core';
import { isJsonObject } from '@everruns-ts/driver-http';
import { checkChatRequestOptions } from './chat-completions-options.js';
import { storedReasoningItem } from './responses-reasoning.js';

const PROVIDER = 'OpenAI Responses';

/** Body fields the Responses driver owns besides core's reserved ones; `extraBody` may not set them. */
export const RESPONSES_RESERVED_EXTRA_BODY_KEYS = Object.freeze([
  'input',
  'instructions',
  'previous_response_id',
] as const);

/** One input item of the Responses API, as this driver writes them. */
export type ResponsesInputItem =
  | {
      role: 'user';
      content:
        | string
        | Array<{ type: 'input_text'; text: string } | { type: 'input_image'; image_url: string }>;
    }
  | { role: 'assistant'; content: string }
  | {
      type: 'message';
      id: string;
      role: 'assistant';
      status: 'completed';
      content: Array<{ type: 'output_text'; text: string; annotations: [] }>;
    }
  | { type: 'function_call'; id?: string; call_id: string; name: string; arguments: string }
  | { type: 'function_call_output'; call_id: string; output: string }
  | {
      type: 'reasoning';
      id: string;
      summary: Array<{ type: 'summary_text'; text: string }>;
      encrypted_content?: string;
    };

/** The request body of `POST /responses`. */
export interface ResponsesRequestBody {
  model: string;
  input: ResponsesInputItem[];
  instructions?: string;
  tools?: Array<{
    type: 'function';
    name: string;
    description: string;
    parameters: Record<string, unknown>;
    strict: boolean;
  }>;
  previous_response_id?: string;
  store?: boolean;
  include?: string[];
  reasoning?: { effort?: string; summary?: string };
  max_output_tokens?: number;
  stream?: boolean;
  [key: string]: unknown;
}

/** How the request body is shaped (the driver's options, resolved). */
export interface ResponsesRequestShape {
  stream: boolean;
  /** Send `previous_response_id` and only the newer input when the request continues an answer. */
  chaining: boolean;
  /** `store`; left out when `undefined` (the provider's default). */
  store?: boolean | undefined;
  /** Ask for `reasoning.encrypted_content` (`include`). */
  includeEncryptedReasoning: boolean;
  /** Send stored reasoning items (and the ids pairing them) back with the whole history. */
  sendReasoning: boolean;
  /** `reasoning.summary`, when set. */
  reasoningSummary?: 'auto' | 'concise' | 'detailed' | undefined;
  /** `strict` of every function tool (the API's own default is `true`). */
  strictTools: boolean;
}

/**
 * Throws `INVALID_INPUT` for options the Responses API cannot take: `stop` and `seed` (it has
 * neither), `thinkingBudgetTokens` (use `reasoningEffort`), `extraBody` keys the driver owns
 * (`input`, `instructions`, `previous_response_id`), and, when the request's tools are given, a
 * `toolChoice` naming a tool the request does not offer or `required` with no tools.
 */
export function checkResponsesRequestOptions(
  options: LlmRequestOptions,
  tools?: readonly ToolSpec[],
): void {
  if (options.stop !== undefined) {
    throw unsupportedRequestOptionError(
      PROVIDER,
      'stop',
      'the Responses API has no stop sequences',
    );
  }
  if (options.seed !== undefined) {
    throw unsupportedRequestOptionError(PROVIDER, 'seed', 'the Responses API has no seed');
  }
  if (options.thinkingBudgetTokens !== undefined) {
    throw unsupportedRequestOptionError(
      PROVIDER,
      'thinkingBudgetTokens',
      'there is no thinking budget; use reasoningEffort',
    );
  }
  if (options.extraBody !== undefined) {
    const reserved = RESPONSES_RESERVED_EXTRA_BODY_KEYS.find((key) =>
      Object.hasOwn(options.extraBody as object, key),
    );
    if (reserved !== undefined) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `extraBody must not set ${reserved}: the OpenAI Responses driver owns it`,
        details: { option: 'extraBody', key: reserved },
      });
    }
  }
  // The tool choice against the tools is checked as for Chat Completions.
  checkChatRequestOptions(options, tools);
}

/** Writes request options into a Responses body (validated first: `INVALID_INPUT`). */
function applyResponsesRequestOptions(
  body: ResponsesRequestBody,
  value: unknown,
  tools: readonly ToolSpec[],
): void {
  const options = parseLlmRequestOptions(value, 'request options');
  if (!options) return;
  checkResponsesRequestOptions(options, tools);
  if (options.temperature !== undefined) body.temperature = options.temperature;
  if (options.topP !== undefined) body.top_p = options.topP;
  if (options.maxOutputTokens !== undefined) body.max_output_tokens = options.maxOutputTokens;
  if (tools.length > 0) {
    const choice = options.toolChoice;
    if (choice !== undefined) {
      body.tool_choice =
        typeof choice === 'string' ? choice : { type: 'function', name: choice.name };
    }
    if (options.parallelToolCalls !== undefined) {
      body.parallel_tool_calls = options.parallelToolCalls;
    }
  }
  if (options.responseFormat !== undefined) {
    const format = options.responseFormat;
    body.text = {
      format: {
        type: 'json_schema',
        name: format.name,
        ...(format.description !== undefined ? { description: format.description } : {}),
        schema: format.schema,
        ...(format.strict !== undefined ? { strict: format.strict } : {}),
      },
    };
  }
  if (options.reasoningEffort !== undefined) {
    body.reasoning = { ...body.reasoning, effort: options.reasoningEffort };
  }
  if (options.extraBody !== undefined) Object.assign(body, options.extraBody);
}

/** Tool call arguments as the wire wants them: JSON text; a raw string passes through as is. */
function encodeArguments(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value ?? {});
}

function userContent(parts: readonly ContentPart[]): ResponsesInputItem | undefined {
  const wire: Array<
    { type: 'input_text'; text: string } | { type: 'input_image'; image_url: string }
  > = [];
  for (const part of parts) {
    if (part.type === 'text') wire.push({ type: 'input_text', text: part.text });
    else if (part.type === 'image') {
      const url = part.url ?? (part.data ? `data:${part.mediaType};base64,${part.data}` : '');
      if (url) wire.push({ type: 'input_image', image_url: url });
    }
  }
  if (wire.length === 0) return undefined;
  if (wire.length === 1 && wire[0]?.type === 'input_text') {
    return { role: 'user', content: wire[0].text };
  }
  return { role: 'user', content: wire };
}

/** The tool call ids the reason step replaced in this message: new id → the provider's. */
function rekeyedIds(message: Message): Record<string, string> {
  const value = message.metadata?.rekeyedToolCallIds;
  if (!isJsonObject(value)) return {};
  const ids: Record<string, string> = {};
  for (const [key, original] of Object.entries(value)) {
    if (typeof original === 'string') ids[key] = original;
  }
  return ids;
}

/**
 * An agent message as input items. With `sendReasoning`, each stored Responses reasoning item
 * goes first with the items that followed it, under their ids, so the API can pair them; a
 * reasoning item none of whose followers can be sent is left out (the API refuses a reasoning
 * item without its following item), as is all reasoning of a message whose tool call ids the
 * reason step replaced. Text and calls not paired with reasoning follow, without ids.
 */
function appendAgentMessage(
  items: ResponsesInputItem[],
  message: Message,
  sendReasoning: boolean,
): void {
  let text = '';
  const calls: Array<{ id: string; name: string; arguments: string }> = [];
  for (const part of message.content) {
    if (part.type === 'text') text += part.text;
    else if (part.type === 'tool_call') {
      calls.push({ id: part.id, name: part.name, arguments: encodeArguments(part.arguments) });
    }
  }
  let textSent = false;
  const callsSent = new Set<string>();
  const rekeyed = Object.keys(rekeyedIds(message)).length > 0;
  if (sendReasoning && !rekeyed) {
    for (const part of message.content) {
      if (part.type !== 'reasoning') continue;
      const stored = storedReasoningItem(part);
      if (!stored) continue;
      const followers: ResponsesInputItem[] = [];
      for (const entry of stored.following) {
        if (entry.type === 'message') {
          if (textSent || text === '') continue;
          followers.push({
            type: 'message',
            id: entry.id,
            role: 'assistant',
            status: 'completed',
            content: [{ type: 'output_text', text, annotations: [] }],
          });
          textSent = true;
        } else {
          const call = calls.find((candidate) => candidate.id === entry.callId);
          if (!call || callsSent.has(call.id)) continue;
          followers.push({
            type: 'function_call',
            id: entry.id,
            call_id: call.id,
            name: call.name,
            arguments: call.arguments,
          });
          callsSent.add(call.id);
        }
      }
      if (followers.length === 0) continue;
      items.push({
        type: 'reasoning',
        id: stored.id,
        summary: stored.text === '' ? [] : [{ type: 'summary_text', text: stored.text }],
        ...(stored.encryptedContent !== undefined
          ? { encrypted_content: stored.encryptedContent }
          : {}),
      });
      items.push(...followers);
    }
  }
  if (!textSent && text !== '') items.push({ role: 'assistant', content: text });
  for (const call of calls) {
    if (callsSent.has(call.id)) continue;
    items.push({
      type: 'function_call',
      call_id: call.id,
      name: call.name,
      arguments: call.arguments,
    });
  }
}

/** Appends one message's input items; `callIds` maps tool call ids back to the provider's. */
function appendMessage(
  items: ResponsesInputItem[],
  message: Message,
  sendReasoning: boolean,
  callIds: Record<string, string>,
): void {
  if (message.role === 'agent') {
    appendAgentMessage(items, message, sendReasoning);
    return;
  }
  for (const part of message.content) {
    if (part.type === 'tool_result') {
      items.push({
        type: 'function_call_output',
        call_id: callIds[part.toolCallId] ?? part.toolCallId,
        output: part.content,
      });
    }
  }
  const content = userContent(message.content);
  if (content !== undefined) items.push(content);
}

/**
 * Where a chained request starts: the index of the agent message whose `metadata.responseId` is
 * `previousResponseId` (the latest such), or `undefined` when the history holds none.
 */
export function chainAnchorIndex(
  messages: readonly Message[],
  previousResponseId: string,
): number | undefined {
  for (let index = messages.length - 1; index >= 0; index -= 1) {
    const message = messages[index];
    if (message?.role === 'agent' && message.metadata?.responseId === previousResponseId) {
      return index;
    }
  }
  return undefined;
}

/**
 * Translates a driver request into the body of `POST /responses`, its request options included
 * (`INVALID_INPUT` for options that are not valid or not supported).
 *
 * With `shape.chaining` and a `request.previousResponseId` found on an agent message of the
 * history, the body carries `previous_response_id` and only the input after that message (the
 * tool results answering it and any user message that came since); otherwise the whole history.
 */
export function toResponsesRequest(
  request: LlmRequest,
  shape: ResponsesRequestShape,
): ResponsesRequestBody {
  const input: ResponsesInputItem[] = [];
  const previous = request.previousResponseId;
  const anchor =
    shape.chaining && previous !== undefined
      ? chainAnchorIndex(request.messages, previous)
      : undefined;
  let chained = false;
  if (anchor !== undefined && anchor < request.messages.length - 1) {
    // Results answer the calls under the ids the provider gave them.
    const anchorMessage = request.messages[anchor] as Message;
    const callIds = rekeyedIds(anchorMessage);
    for (const message of request.messages.slice(anchor + 1)) {
      appendMessage(input, message, false, callIds);
    }
    chained = input.length > 0;
  }
  if (!chained) {
    input.length = 0;
    for (const message of request.messages) appendMessage(input, message, shape.sendReasoning, {});
  }
  const body: ResponsesRequestBody = { model: request.model.model, input };
  if (request.systemPrompt.trim() !== '') body.instructions = request.systemPrompt;
  if (chained && previous !== undefined) body.previous_response_id = previous;
  if (request.tools.length > 0) {
    body.tools = request.tools.map((tool) => ({
      type: 'function',
      name: tool.name,
      description: tool.description,
      parameters: tool.inputSchema,
      strict: shape.strictTools,
    }));
  }
  if (shape.store !== undefined) body.store = shape.store;
  if (shape.includeEncryptedReasoning) body.include = ['reasoning.encrypted_content'];
  if (shape.reasoningSummary !== undefined) body.reasoning = { summary: shape.reasoningSummary };
  if (request.maxOutputTokens !== undefined) body.max_output_tokens = request.maxOutputTokens;
  if (shape.stream) body.stream = true;
  applyResponsesRequestOptions(body, request.options, request.tools);
  return body;
}
