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
 * What is known of a well-formed prefix of frozen messages: the prefix itself (the same message
 * objects, in order) and every tool call id in it. A prefix that is well formed stays so, and
 * frozen messages cannot change, so a history that extends it is checked only past its end.
 */
interface WellFormedPrefix {
  messages: Message[];
  toolCallIds: Set<string>;
  /**
   * The source (see {@link markHistorySource}) every message of the prefix was read from, when
   * one was: a history of the same source starts with the same messages, without comparing them.
   */
  source: object | undefined;
}

/** Histories the engine read with their source (`RuntimeMessageStore.loadWithSource`). */
const historySources = new WeakMap<readonly Message[], object>();

/**
 * Notes that `messages`, just read by the engine and not handed on yet, is the list `source`
 * stands for as it was then: histories of one source agree on their common prefix (the store's
 * promise), so {@link repairHistory} finds the part of it already checked without comparing it
 * message by message. @internal
 */
export function markHistorySource(messages: readonly Message[], source: object): void {
  // A history too short to be remembered is checked whole anyway.
  if (messages.length >= REMEMBER_FROM_LENGTH) historySources.set(messages, source);
}

/**
 * The latest well-formed prefix seen, by its last message. A prefix is moved on (not copied) when
 * a longer history extends it, so each holds the ids of exactly its own messages.
 */
const wellFormedPrefixes = new WeakMap<Message, WellFormedPrefix>();

/**
 * The history {@link isWellFormed} last found well formed whole (its prefix covering all of it),
 * for {@link knownToolCallIds} asked about the same array right after: the reason atom asks about
 * the context it has just assembled. The same array object with the same length and end messages
 * skips a second walk over the whole prefix (O(history) per step otherwise).
 */
let lastWhole:
  | {
      messages: readonly Message[];
      length: number;
      first: Message;
      last: Message;
      prefix: WellFormedPrefix;
    }
  | undefined;

/** How long a history must be before its well-formed prefix is remembered. */
const REMEMBER_FROM_LENGTH = 16;

/** True when a message and its parts cannot change (stores hand out deeply frozen messages). */
function isFrozenMessage(message: Message): boolean {
  return Object.isFrozen(message) && Object.isFrozen(message.content);
}

/**
 * The known well-formed prefix that `messages` starts with (same objects in the same order), if
 * any. Looks back from the end for the last message that closes one.
 */
function knownPrefixOf(messages: readonly Message[]): WellFormedPrefix | undefined {
  for (let index = messages.length - 1; index >= 0; index--) {
    const prefix = wellFormedPrefixes.get(messages[index] as Message);
    if (prefix === undefined) continue;
    if (prefix.messages.length !== index + 1) return undefined;
    // Read from the list the prefix was read from: the same messages, by the store's promise.
    if (prefix.source !== undefined && historySources.get(messages) === prefix.source) {
      return prefix;
    }
    for (let at = 0; at < index; at++) if (prefix.messages[at] !== messages[at]) return undefined;
    return prefix;
  }
  return undefined;
}

/**
 * The tool call ids of `messages` (every tool result answers one of them) when the whole history
 * is known well formed, else undefined. The set is shared: read it, never change it, and do not
 * keep it past the call that asked.
 */
export function knownToolCallIds(messages: readonly Message[]): ReadonlySet<string> | undefined {
  const last = messages[messages.length - 1];
  if (last === undefined) return undefined;
  const whole = lastWhole;
  if (
    whole !== undefined &&
    whole.messages === messages &&
    whole.length === messages.length &&
    whole.last === last &&
    whole.first === messages[0] &&
    whole.prefix.messages.length === messages.length
  ) {
    return whole.prefix.toolCallIds;
  }
  const prefix = knownPrefixOf(messages);
  return prefix !== undefined && prefix.messages.length === messages.length
    ? prefix.toolCallIds
    : undefined;
}

/**
 * True when the history is what a provider accepts: every message with tool calls is followed
 * directly by results answering each of its calls, every result answers such a call, and no tool
 * call id appears twice. A history of frozen messages is remembered, so the next check of the same
 * history grown by a few messages looks only at the new ones.
 */
function isWellFormed(messages: readonly Message[]): boolean {
  const prefix = knownPrefixOf(messages);
  const start = prefix?.messages.length ?? 0;
  const known = prefix?.toolCallIds;
  const seen = new Set<string>();
  const pending = new Set<string>();
  for (let index = start; index < messages.length; index++) {
    const message = messages[index] as Message;
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
      if (seen.has(part.id) || known?.has(part.id)) return false;
      seen.add(part.id);
      pending.add(part.id);
    }
  }
  if (pending.size > 0) return false;
  const remembered = rememberWellFormed(messages, prefix, start, seen);
  lastWhole =
    remembered !== undefined && remembered.messages.length === messages.length
      ? {
          messages,
          length: messages.length,
          first: messages[0] as Message,
          last: messages[messages.length - 1] as Message,
          prefix: remembered,
        }
      : undefined;
  return true;
}

/**
 * Records a well-formed history of frozen messages, moving on the prefix it extends; returns the
 * prefix that now ends with its last message (undefined when it is not remembered).
 */
function rememberWellFormed(
  messages: readonly Message[],
  prefix: WellFormedPrefix | undefined,
  start: number,
  newIds: Set<string>,
): WellFormedPrefix | undefined {
  const last = messages[messages.length - 1];
  if (last === undefined) return undefined;
  if (start === messages.length) return prefix;
  // A short history is checked whole faster than it is remembered.
  if (prefix === undefined && messages.length < REMEMBER_FROM_LENGTH) return undefined;
  for (let index = start; index < messages.length; index++) {
    if (!isFrozenMessage(messages[index] as Message)) return undefined;
  }
  if (prefix === undefined) {
    for (const message of messages) if (!isFrozenMessage(message)) return undefined;
    const remembered = {
      messages: [...messages],
      toolCallIds: newIds,
      source: historySources.get(messages),
    };
    wellFormedPrefixes.set(last, remembered);
    return remembered;
  }
  wellFormedPrefixes.delete(prefix.messages[start - 1] as Message);
  // Messages from elsewhere (or another list) end what the prefix can promise of its source.
  if (prefix.source !== historySources.get(messages)) prefix.source = undefined;
  for (let index = start; index < messages.length; index++) {
    prefix.messages.push(messages[index] as Message);
  }
  for (const id of newIds) prefix.toolCallIds.add(id);
  wellFormedPrefixes.set(last, prefix);
  return prefix;
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
