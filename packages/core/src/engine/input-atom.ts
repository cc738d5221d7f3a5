import type { SessionStatus } from '../domain.js';
import type { EventRequest } from '../event.js';
import { newId } from '../ids.js';
import type { InputMessage, Message, NewMessage } from '../message.js';
import type { SessionSetupSnapshot, TurnSnapshot } from '../stores.js';
import { emitEvents, jointMessageWrite, storeMessageAndEmit } from './emit-events.js';
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
  /**
   * The turn's start, written with the message where the bus can (one round trip): the session's
   * status and the events `events` builds from the stored message, after its `input.message`.
   * `onWritten` is called when they were; otherwise the caller writes them.
   */
  startTurn?: {
    sessionStatus: SessionStatus;
    events(stored: Message): EventRequest[];
    /**
     * Called when the start was written with the message; with the session's turn snapshot as
     * it stands after the write when `loadTurnSnapshot` asked for it and the bus read it with the
     * write (see `JointMessageOptions.loadTurnSnapshot`).
     */
    onWritten(turnSnapshot?: TurnSnapshot): void;
    /** Ask the bus for the turn snapshot with the write (for the reason step that follows). */
    loadTurnSnapshot?: boolean;
  };
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
  const { startTurn } = request;
  const newMessage: NewMessage = {
    role: 'user',
    turnId,
    content: parsed.input.content,
    idempotencyKey: `${turnId}/input`,
    ...(parsed.input.metadata ? { metadata: parsed.input.metadata } : {}),
  };
  const announce = (stored: Message): EventRequest[] => [
    {
      type: 'input.message',
      sessionId: request.sessionId,
      turnId,
      data: { messageId: stored.id, seq: stored.seq },
    },
  ];
  const { backends } = dependencies;
  // The turn's start with the message, where the bus writes them together (it then writes the
  // events only with the status): one round trip.
  const joint = startTurn
    ? await jointMessageWrite(
        backends,
        request.sessionId,
        newMessage,
        (stored) => [...announce(stored), ...startTurn.events(stored)],
        startTurn.loadTurnSnapshot
          ? { sessionStatus: startTurn.sessionStatus, loadTurnSnapshot: true }
          : { sessionStatus: startTurn.sessionStatus },
      )
    : null;
  let message: Message;
  if (startTurn && joint?.events) {
    message = joint.message;
    // A bus that wrote the events without the status (it should not): the status follows.
    if (joint.statusSet !== true) {
      await backends.sessions.updateSessionStatus(request.sessionId, startTurn.sessionStatus);
      startTurn.onWritten();
    } else {
      startTurn.onWritten(joint.turnSnapshot);
    }
  } else if (joint !== null) {
    // Stored (or found stored) without the start: announced here, started by the caller.
    message = joint.message;
    await emitEvents(backends.events, announce(message));
  } else {
    // The message and its `input.message` in one round trip where the bus can write both.
    ({ message } = await storeMessageAndEmit(backends, request.sessionId, newMessage, announce));
  }
  return { turnId, messageId: message.id, seq: message.seq };
}
