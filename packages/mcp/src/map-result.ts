import {
  MAX_TOOL_ARGUMENTS_DEPTH,
  type ToolErrorResult,
  toolArgumentsTextOverLimit,
  toolError,
} from '@everruns-ts/core';

/** One content block of an MCP tool result, as far as this package reads it. */
interface ContentBlock {
  type: string;
  text?: string;
  data?: string;
  mimeType?: string;
  uri?: string;
  name?: string;
  resource?: { uri?: string; mimeType?: string; text?: string; blob?: string };
}

/** An MCP `tools/call` result, as far as this package reads it. */
export interface CallToolResultLike {
  content?: unknown;
  structuredContent?: unknown;
  isError?: boolean;
  /** Results of servers on the 2024-10-07 protocol. */
  toolResult?: unknown;
}

/** Bytes a base64 string decodes to. */
function base64Bytes(data: string | undefined): number {
  if (!data) return 0;
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return Math.max(0, Math.floor((data.length * 3) / 4) - padding);
}

function describeBlock(block: ContentBlock): string {
  switch (block.type) {
    case 'text':
      return block.text ?? '';
    case 'image':
    case 'audio':
      return `[${block.type} ${block.mimeType ?? 'of unknown type'}, ${base64Bytes(block.data)} bytes, not shown: tool results are text]`;
    case 'resource_link':
      return `[resource link ${block.uri ?? ''}${block.name ? ` (${block.name})` : ''}${block.mimeType ? ` ${block.mimeType}` : ''}]`;
    case 'resource': {
      const resource = block.resource ?? {};
      if (typeof resource.text === 'string')
        return `[resource ${resource.uri ?? ''}]\n${resource.text}`;
      return `[resource ${resource.uri ?? ''}${resource.mimeType ? ` ${resource.mimeType}` : ''}, ${base64Bytes(resource.blob)} bytes, not shown: tool results are text]`;
    }
    default:
      return `[${String(block.type)} content not shown]`;
  }
}

/** True when `text` is JSON equal to `value` (the text copy servers send with structured content). */
function isJsonOf(text: string, value: unknown): boolean {
  // Text nested deeper than any tool's arguments may be is not parsed (a long synchronous parse).
  if (toolArgumentsTextOverLimit(text, MAX_TOOL_ARGUMENTS_DEPTH, Number.POSITIVE_INFINITY)) {
    return false;
  }
  try {
    return JSON.stringify(JSON.parse(text)) === JSON.stringify(value);
  } catch {
    return false;
  }
}

/** Cuts `text` to `limit` characters, saying how much was left out. */
export function boundText(text: string, limit: number): string {
  if (text.length <= limit) return text;
  return `${text.slice(0, limit)}\n[… ${text.length - limit} more characters cut by the MCP client]`;
}

/**
 * Turns an MCP tool result into the text the model reads: text blocks joined by newlines,
 * `structuredContent` as JSON (once: left out when a text block already holds the same JSON),
 * images and audio as a short placeholder naming their MIME type and size, resource links by
 * URI and embedded resources by URI and text. A result with `isError` becomes a
 * {@link toolError} with that text. The text is cut to `maxChars`.
 */
export function mapToolResult(
  result: CallToolResultLike,
  maxChars: number,
): string | ToolErrorResult {
  const blocks = Array.isArray(result.content) ? (result.content as ContentBlock[]) : [];
  const parts = blocks.map(describeBlock);
  if (result.structuredContent !== undefined) {
    const duplicated = blocks.some(
      (block) => block.type === 'text' && isJsonOf(block.text ?? '', result.structuredContent),
    );
    if (!duplicated) parts.push(JSON.stringify(result.structuredContent));
  }
  if (blocks.length === 0 && result.toolResult !== undefined) {
    parts.push(
      typeof result.toolResult === 'string' ? result.toolResult : JSON.stringify(result.toolResult),
    );
  }
  const text = boundText(parts.join('\n'), maxChars);
  if (result.isError === true) {
    return toolError(text === '' ? 'The MCP server reported an error without a message' : text);
  }
  return text;
}
