import type {
  LanguageModelV3Prompt,
  LanguageModelV4FilePart,
  LanguageModelV4FunctionTool,
  LanguageModelV4Message,
  LanguageModelV4Prompt,
  LanguageModelV4ToolResultPart,
} from '@ai-sdk/provider';
import type { ContentPart, LlmRequest, Message, ToolSpec } from '@everruns-ts/core';

type ImagePart = Extract<ContentPart, { type: 'image' }>;
type ToolMessage = Extract<LanguageModelV4Message, { role: 'tool' }>;

function filePart(part: ImagePart): LanguageModelV4FilePart | undefined {
  if (part.data !== undefined) {
    return { type: 'file', mediaType: part.mediaType, data: { type: 'data', data: part.data } };
  }
  if (part.url !== undefined) {
    return {
      type: 'file',
      mediaType: part.mediaType,
      data: { type: 'url', url: new URL(part.url) },
    };
  }
  return undefined;
}

function toolResultPart(
  part: Extract<ContentPart, { type: 'tool_result' }>,
  toolNames: ReadonlyMap<string, string>,
): LanguageModelV4ToolResultPart {
  return {
    type: 'tool-result',
    toolCallId: part.toolCallId,
    toolName: toolNames.get(part.toolCallId) ?? '',
    output: part.isError
      ? { type: 'error-text', value: part.content }
      : { type: 'text', value: part.content },
  };
}

/** Appends tool results to the prompt, joining them to a `tool` message right before. */
function appendToolResults(
  prompt: LanguageModelV4Message[],
  results: LanguageModelV4ToolResultPart[],
): void {
  if (results.length === 0) return;
  const last = prompt.at(-1);
  if (last?.role === 'tool') (last as ToolMessage).content.push(...results);
  else prompt.push({ role: 'tool', content: results });
}

function appendMessage(
  prompt: LanguageModelV4Message[],
  message: Message,
  toolNames: Map<string, string>,
): void {
  if (message.role === 'agent') {
    const content: Extract<LanguageModelV4Message, { role: 'assistant' }>['content'] = [];
    for (const part of message.content) {
      if (part.type === 'text') {
        if (part.text !== '') content.push({ type: 'text', text: part.text });
      } else if (part.type === 'reasoning') {
        // Anthropic's signature or redacted data rides in provider options, as its provider
        // reads them back; other providers take or ignore the text as they do.
        const anthropic: Record<string, string> = {};
        if (part.signature !== undefined) anthropic.signature = part.signature;
        if (part.redactedData !== undefined) anthropic.redactedData = part.redactedData;
        content.push({
          type: 'reasoning',
          text: part.text,
          ...(Object.keys(anthropic).length > 0 ? { providerOptions: { anthropic } } : {}),
        });
      } else if (part.type === 'tool_call') {
        toolNames.set(part.id, part.name);
        content.push({
          type: 'tool-call',
          toolCallId: part.id,
          toolName: part.name,
          input: part.arguments ?? {},
        });
      }
    }
    // An agent message with nothing in it (no text, no calls) is left out: several providers
    // refuse an empty assistant message.
    if (content.length > 0) prompt.push({ role: 'assistant', content });
    return;
  }
  // `tool_result` and `user` messages: tool results first (they answer the agent message right
  // before), then any user content as its own message.
  appendToolResults(
    prompt,
    message.content
      .filter((part) => part.type === 'tool_result')
      .map((part) => toolResultPart(part, toolNames)),
  );
  const content: Extract<LanguageModelV4Message, { role: 'user' }>['content'] = [];
  for (const part of message.content) {
    if (part.type === 'text') content.push({ type: 'text', text: part.text });
    else if (part.type === 'image') {
      const file = filePart(part);
      if (file) content.push(file);
    }
  }
  if (content.length > 0) prompt.push({ role: 'user', content });
}

/**
 * The AI SDK prompt (`LanguageModelV4Prompt`) of a driver request: the system prompt (when not
 * blank), then the history. Agent messages become `assistant` messages with `tool-call` parts;
 * tool results become `tool` messages (consecutive ones joined), with `error-text` output when
 * the result is an error; images become `file` parts.
 */
export function toAiSdkPrompt(
  request: Pick<LlmRequest, 'systemPrompt' | 'messages'>,
): LanguageModelV4Prompt {
  const prompt: LanguageModelV4Message[] = [];
  if (request.systemPrompt.trim() !== '') {
    prompt.push({ role: 'system', content: request.systemPrompt });
  }
  const toolNames = new Map<string, string>();
  for (const message of request.messages) appendMessage(prompt, message, toolNames);
  return prompt;
}

/**
 * The same prompt for a `LanguageModelV3` model: identical but for file data, which V3 carries
 * as a base64 string or a `URL` instead of a tagged object.
 */
export function toV3Prompt(prompt: LanguageModelV4Prompt): LanguageModelV3Prompt {
  return prompt.map((message) => {
    if (message.role !== 'user') return message;
    return {
      ...message,
      content: message.content.map((part) => {
        if (part.type !== 'file') return part;
        const data = part.data;
        return {
          type: 'file',
          mediaType: part.mediaType,
          data: data.type === 'url' ? data.url : data.type === 'data' ? data.data : '',
        };
      }),
    };
  }) as LanguageModelV3Prompt;
}

/** The AI SDK function tools of a request's tool specs (their JSON Schemas pass through). */
export function toAiSdkTools(tools: readonly ToolSpec[]): LanguageModelV4FunctionTool[] {
  return tools.map((tool) => ({
    type: 'function',
    name: tool.name,
    description: tool.description,
    inputSchema: tool.inputSchema as LanguageModelV4FunctionTool['inputSchema'],
  }));
}
