import { EverrunsError } from '../errors.js';
import { formatZodError } from '../format-zod-error.js';
import { newId } from '../ids.js';
import { type InputMessage, inputMessageSchema } from '../message.js';
import { sessionNotFoundError } from './resolve-turn-setup.js';
import type { AtomDependencies } from './turn-types.js';

/** Input of the {@link input} atom. */
export interface InputAtomInput {
  sessionId: string;
  input: InputMessage;
  /** The turn id to use; generated when absent. */
  turnId?: string;
}

/** Output of the {@link input} atom (plain JSON). */
export interface InputAtomResult {
  turnId: string;
  messageId: string;
  seq: number;
}

/**
 * Persists the user's message of a turn (idempotently by `turnId`). Throws `SESSION_NOT_FOUND`
 * and `INVALID_INPUT` before writing anything.
 */
export async function input(
  dependencies: AtomDependencies,
  request: InputAtomInput,
): Promise<InputAtomResult> {
  const parsed = inputMessageSchema.safeParse(request.input);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid input message: ${formatZodError(parsed.error)}`,
    });
  }
  const { backends } = dependencies;
  const session = await backends.sessions.getSession(request.sessionId);
  if (!session) throw sessionNotFoundError(request.sessionId);
  const turnId = request.turnId ?? newId('turn');
  const message = await backends.messages.storeMessage(request.sessionId, {
    role: 'user',
    turnId,
    content: parsed.data.content,
    idempotencyKey: `${turnId}/input`,
    ...(parsed.data.metadata ? { metadata: parsed.data.metadata } : {}),
  });
  await backends.events.emit({
    type: 'input.message',
    sessionId: request.sessionId,
    turnId,
    data: { messageId: message.id, seq: message.seq },
  });
  return { turnId, messageId: message.id, seq: message.seq };
}
