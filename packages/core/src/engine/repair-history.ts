import type { Message, ToolCallPart, ToolResultPart } from '../message.js';

/** Text of the synthetic result given to a tool call that has none. */
export const MISSING_TOOL_RESULT_TEXT =
  'The tool call was interrupted before it recorded a result; it may have partially applied.';

/** Where a part sits in a history: message index, part index. */
interface PartLocation {
  message: number;
  part: number;
}

/**
 * Pairs every tool call of a history with the result that answers it: the first result with the
 * call's id that comes after the call and before the next call with the same id. Returns, by
 * `"message:part"` of each call, the location of its result (calls without one are absent), and
 * the set of result locations that answer a call (the others are orphans).
 */
function pairToolCalls(messages: readonly Message[]): {
  resultOf: Map<string, PartLocation>;
  answering: Set<string>;
} {
  const open = new Map<string, PartLocation>();
  const resultOf = new Map<string, PartLocation>();
  const answering = new Set<string>();
  messages.forEach((message, messageIndex) => {
    message.content.forEach((part, partIndex) => {
      if (part.type === 'tool_call') {
        // A later call with the same id leaves an earlier unanswered one unanswered for good.
        open.set(part.id, { message: messageIndex, part: partIndex });
      } else if (part.type === 'tool_result') {
        const call = open.get(part.toolCallId);
        if (!call) return;
        open.delete(part.toolCallId);
        resultOf.set(`${call.message}:${call.part}`, { message: messageIndex, part: partIndex });
        answering.add(`${messageIndex}:${partIndex}`);
      }
    });
  });
  return { resultOf, answering };
}

/** A tool call of a history that has no result, with the message that holds it. */
export interface OpenToolCall {
  /** The agent message that made the call. */
  message: Message;
  call: ToolCallPart;
}

/**
 * The tool calls of a history that no result answers (see {@link repairHistory} for how calls
 * and results pair up), oldest first. Looks at the whole history.
 */
export function findOpenToolCalls(messages: readonly Message[]): OpenToolCall[] {
  const { resultOf } = pairToolCalls(messages);
  const open: OpenToolCall[] = [];
  messages.forEach((message, messageIndex) => {
    message.content.forEach((part, partIndex) => {
      if (part.type === 'tool_call' && !resultOf.has(`${messageIndex}:${partIndex}`)) {
        open.push({ message, call: part });
      }
    });
  });
  return open;
}

/**
 * True when the history is what a provider accepts: every message with tool calls is followed
 * directly by results answering each of its calls, every result answers such a call, and no tool
 * call id appears twice.
 */
function isWellFormed(messages: readonly Message[]): boolean {
  const seen = new Set<string>();
  const pending = new Set<string>();
  for (const message of messages) {
    if (message.role === 'tool_result') {
      for (const part of message.content) {
        if (part.type !== 'tool_result' || !pending.delete(part.toolCallId)) return false;
      }
      continue;
    }
    if (pending.size > 0) return false;
    for (const part of message.content) {
      if (part.type === 'tool_result') return false;
      if (part.type !== 'tool_call') continue;
      if (seen.has(part.id)) return false;
      seen.add(part.id);
      pending.add(part.id);
    }
  }
  return pending.size === 0;
}

/**
 * Returns the history as a provider accepts it, looking at the whole history: each message with
 * tool calls is followed directly by one result per call, in the calls' order (a result stored
 * later, for example after the next user message, is moved up; a call without a result gets a
 * synthetic error result, {@link MISSING_TOOL_RESULT_TEXT}); results that answer no call are
 * dropped; a tool call id that repeats an earlier one is renamed (with its result) so every id
 * sent is unique. A call is answered by the first result with its id after it and before the next
 * call with the same id. Returns the same array when nothing needed repair; never changes the
 * given messages.
 */
export function repairHistory(messages: Message[]): Message[] {
  if (isWellFormed(messages)) return messages;
  const { resultOf, answering } = pairToolCalls(messages);
  const allIds = new Set<string>();
  for (const message of messages) {
    for (const part of message.content) if (part.type === 'tool_call') allIds.add(part.id);
  }
  const sentIds = new Set<string>();
  const uniqueId = (id: string): string => {
    if (!sentIds.has(id)) return id;
    let index = 2;
    while (allIds.has(`${id}_${index}`) || sentIds.has(`${id}_${index}`)) index++;
    return `${id}_${index}`;
  };
  const repaired: Message[] = [];
  messages.forEach((message, messageIndex) => {
    if (message.content.some((part) => part.type === 'tool_result')) {
      // Results are placed right after their calls; what remains here are orphans.
      const rest = message.content.filter((part) => part.type !== 'tool_result');
      if (rest.length > 0 && message.role !== 'tool_result') {
        repaired.push({ ...message, content: rest });
      }
      return;
    }
    if (!message.content.some((part) => part.type === 'tool_call')) {
      repaired.push(message);
      return;
    }
    const results: Message[] = [];
    let renamed = false;
    const content = message.content.map((part, partIndex) => {
      if (part.type !== 'tool_call') return part;
      const id = uniqueId(part.id);
      sentIds.add(id);
      const location = resultOf.get(`${messageIndex}:${partIndex}`);
      const source = location ? (messages[location.message] as Message) : undefined;
      const answer = location
        ? (source?.content[location.part] as ToolResultPart | undefined)
        : undefined;
      if (source && answer && answering.has(`${location?.message}:${location?.part}`)) {
        results.push(
          source.content.length === 1 && id === part.id
            ? source
            : { ...source, content: [{ ...answer, toolCallId: id }] },
        );
      } else {
        results.push({
          ...message,
          id: `${message.id}_repair_${id}`,
          role: 'tool_result',
          content: [
            {
              type: 'tool_result',
              toolCallId: id,
              content: MISSING_TOOL_RESULT_TEXT,
              isError: true,
            },
          ],
        });
      }
      if (id === part.id) return part;
      renamed = true;
      return { ...part, id };
    });
    repaired.push(renamed ? { ...message, content } : message);
    repaired.push(...results);
  });
  return repaired;
}
