import { newId } from '../ids.js';
import type { InputMessage } from '../message.js';
import type { SessionSetupSnapshot } from '../stores.js';
import { storeMessageAndEmit } from './emit-events.js';
import type { AtomDependencies } from './turn-types.js';
import { validateTurnInput } from './validate-turn-input.js';

/** Input of the {@link input} atom. */
export interface InputAtomInput {
  sessionId: string;
  input: InputMessage;
  /** The turn id to use; generated when absent. */
  turnId?: string;
  /** The turn's request options, checked with the model's before anything is stored. */
  modelOptions?: unknown;
  /**
   * The session's setup as the caller just loaded it (`RuntimeBackends.loadSessionSetup`), so
   * checking the input does not load it again (see `validateTurnInput`). Default: loaded here.
   */
  setup?: SessionSetupSnapshot;
}

/** Output of the {@link input} atom (plain JSON). */
export interface InputAtomResult {
  turnId: string;
  messageId: string;
  seq: number;
}

/**
 * Persists the user's message of a turn (idempotently by `turnId`). Checks everything first (see
 * `validateTurnInput`: `INVALID_INPUT`, `LIMIT_EXCEEDED`, `SESSION_NOT_FOUND`,
 * `CAPABILITY_NOT_FOUND`, `MODEL_NOT_FOUND`, `CONFIGURATION`, `DRIVER_NOT_FOUND`), so a refused
 * message writes nothing.
 */
export async function input(
  dependencies: AtomDependencies,
  request: InputAtomInput,
): Promise<InputAtomResult> {
  const turnId = request.turnId ?? newId('turn');
  const parsed = await validateTurnInput(dependencies, {
    sessionId: request.sessionId,
    input: request.input,
    turnId,
    ...(request.modelOptions !== undefined ? { modelOptions: request.modelOptions } : {}),
    ...(request.setup !== undefined ? { setup: request.setup } : {}),
  });
  // The message and its `input.message` in one round trip where the bus can write both.
  const { message } = await storeMessageAndEmit(
    dependencies.backends,
    request.sessionId,
    {
      role: 'user',
      turnId,
      content: parsed.input.content,
      idempotencyKey: `${turnId}/input`,
      ...(parsed.input.metadata ? { metadata: parsed.input.metadata } : {}),
    },
    (stored) => [
      {
        type: 'input.message',
        sessionId: request.sessionId,
        turnId,
        data: { messageId: stored.id, seq: stored.seq },
      },
    ],
  );
  return { turnId, messageId: message.id, seq: message.seq };
}
