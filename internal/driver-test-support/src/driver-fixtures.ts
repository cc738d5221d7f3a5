import { randomUUID } from 'node:crypto';
import {
  EverrunsError,
  type LlmRequest,
  type LlmStreamEvent,
  type Message,
  type ToolSpec,
} from '@everruns-ts/core';

// What driver tests share besides the server: tools and messages to send, and ways to read what
// the driver gives back.

/** A tool taking two numbers, `a` and `b`. */
export const ADD_TOOL: ToolSpec = {
  name: 'add',
  description: 'Adds two numbers',
  inputSchema: {
    type: 'object',
    properties: { a: { type: 'number' }, b: { type: 'number' } },
    required: ['a', 'b'],
    additionalProperties: false,
  },
};

/** {@link ADD_TOOL}'s twin, for requests with two tools. */
export const MULTIPLY_TOOL: ToolSpec = {
  ...ADD_TOOL,
  name: 'multiply',
  description: 'Multiplies',
};

/** A message of the given session with a random id. */
export function newMessage(
  sessionId: string,
  seq: number,
  role: Message['role'],
  content: Message['content'],
): Message {
  return {
    id: `msg_${randomUUID().replaceAll('-', '')}`,
    sessionId,
    seq,
    role,
    content,
    createdAt: new Date().toISOString(),
  };
}

/**
 * A request of a new session and turn: a math assistant's system prompt, one user message
 * (`question`) and {@link ADD_TOOL}.
 */
export function mathRequest(
  model: string,
  providerType: string,
  question = 'What is 2 + 2?',
): LlmRequest {
  const sessionId = `session_${randomUUID().replaceAll('-', '')}`;
  return {
    model: { model, providerType },
    systemPrompt: 'You are a math assistant.',
    messages: [newMessage(sessionId, 1, 'user', [{ type: 'text', text: question }])],
    tools: [ADD_TOOL],
    sessionId,
    turnId: `turn_${randomUUID().replaceAll('-', '')}`,
    iteration: 1,
  };
}

/** Every event of a stream, in order. */
export async function collect(iterable: AsyncIterable<LlmStreamEvent>): Promise<LlmStreamEvent[]> {
  const events: LlmStreamEvent[] = [];
  for await (const event of iterable) events.push(event);
  return events;
}

/** The `EverrunsError` a promise rejects with; fails when it resolves or rejects otherwise. */
export async function rejection(promise: Promise<unknown>): Promise<EverrunsError> {
  try {
    await promise;
  } catch (error) {
    if (EverrunsError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}
