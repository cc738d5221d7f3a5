import {
  closeOpenToolCalls,
  EverrunsError,
  errorMessage,
  findOpenToolCalls,
  type Message,
  type SignalSource,
} from '@everruns-ts/core';
import { abortedError } from './runtime-errors.js';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';
import { RuntimeSessionLifecycle } from './runtime-session-lifecycle.js';
import { initialTurnState, type RuntimeTurnOutcome, type RuntimeTurnState } from './turn-plan.js';

/** Text of the result stored for a call of a turn that was aborted before the call had one. */
export const ABORTED_TOOL_RESULT_TEXT =
  'The turn was aborted before this tool call recorded a result; the call may have run in part or not at all.';

/** Text of the result stored for a call of a turn that failed before the call had one. */
export const FAILED_TURN_TOOL_RESULT_TEXT =
  'The turn failed before this tool call recorded a result; the call may have run in part or not at all.';

/** What {@link endFailedTurn} needs to know about the turn that failed. */
export interface FailedTurn {
  sessionId: string;
  turnId: string;
  /** The state the turn reached; `undefined` when its input step did not finish. */
  state: RuntimeTurnState | undefined;
  /**
   * True when the turn threw while being ended or paused (its final plan was being carried out):
   * its end events may be out already, so none are emitted again; the resume error is returned.
   */
  settling?: boolean;
  /** What the turn threw. */
  error: unknown;
  /** The turn's signal (an `AbortSignal` or a core `LazySignal`). */
  signal?: SignalSource;
  /**
   * When `state` is `undefined`: whether to look for the turn's stored user message and end the
   * turn if it is there (a new turn's input step may have failed after writing). A turn resumed
   * from a waiting state passes `false`: it keeps waiting.
   */
  endIfInputStored: boolean;
}

/**
 * Ends a turn that threw after it started, so the session is never left `active` (unless it lost
 * its turn lease, `TURN_IN_PROGRESS`: the new holder owns the session and this turn writes
 * nothing more): stores an
 * error result for each of the turn's tool calls without one (best effort: when the store still
 * fails, the session's next reason step stores them), then `turn.failed` (stop reason `aborted`
 * for an abort, `error` otherwise) and `session.idled` with status idle. Resolves with the error
 * the caller should throw: the turn's own error (`ABORTED` when the signal fired; anything not an `EverrunsError` as
 * `INTERNAL` with it as the cause), unchanged when
 * the turn had not started; or, when ending the turn fails too (or the turn failed while being
 * ended), an error of the ending failure's code whose `details.resume` says how to resume: run the
 * next turn once the store is reachable.
 */
export async function endFailedTurn(
  adapter: RuntimeHostAdapter,
  turn: FailedTurn,
): Promise<unknown> {
  const { sessionId, turnId, signal } = turn;
  const aborted = EverrunsError.hasCode(turn.error, 'ABORTED') || signal?.aborted === true;
  const thrown =
    aborted && !EverrunsError.hasCode(turn.error, 'ABORTED')
      ? abortedError(signal as SignalSource)
      : typedError(turn.error);
  let state = turn.state;
  // The turn lost its lease to another holder (its renewal found it gone, or a conditional status
  // write was refused): that holder owns the session now, so this turn writes nothing more (no
  // result, status or end event over the new turn; the new turn's reason step answers any call
  // this one left open) and its error says why.
  if (
    EverrunsError.hasCode(turn.error, 'TURN_IN_PROGRESS') ||
    EverrunsError.hasCode(signal?.reason, 'TURN_IN_PROGRESS')
  ) {
    return thrown;
  }
  try {
    if (turn.settling) throw turn.error;
    if (!state) {
      if (!turn.endIfInputStored) return thrown;
      const input = await adapter.backends.messages.getByIdempotencyKey(
        sessionId,
        `${turnId}/input`,
      );
      // Nothing was written: the call changed nothing and its error stands as it is.
      if (!input) return thrown;
      state = {
        ...initialTurnState({
          sessionId,
          turnId,
          maxIterations: adapter.limits.maxIterations,
          maxRepeatedToolCalls: adapter.limits.maxRepeatedToolCalls,
        }),
        inputMessageId: input.id,
      };
    }
    await closeTurnToolCalls(adapter, sessionId, turnId, aborted).catch(() => undefined);
    await new RuntimeSessionLifecycle(adapter, sessionId).turnEnded(
      state,
      failedOutcome(state, turn.error, aborted),
    );
    return thrown;
  } catch (endError) {
    if (EverrunsError.hasCode(endError, 'SESSION_NOT_FOUND')) {
      // The session was deleted while the turn ran: nothing is left to end or resume.
      return new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} no longer exists; turn ${turnId} stopped (${errorMessage(thrown)})`,
        details: { sessionId, turnId },
        cause: thrown,
      });
    }
    return new EverrunsError({
      code: EverrunsError.isInstance(endError) ? endError.code : 'INTERNAL',
      message: `Turn ${turnId} of session ${sessionId} ${endError === turn.error ? '' : `failed (${errorMessage(thrown)}) and `}could not be ended: ${errorMessage(endError)}. The session may still be marked active; run the next turn on it once the store is reachable again (it starts normally and gives any tool call left without a result an error result).`,
      details: {
        sessionId,
        turnId,
        turnError: {
          code: EverrunsError.isInstance(thrown) ? thrown.code : 'INTERNAL',
          message: errorMessage(thrown),
        },
        resume: 'Run the next turn on the session once the store is reachable again.',
      },
      cause: thrown,
    });
  }
}

/**
 * What a turn throws is always an {@link EverrunsError}: anything else (a bug, an event bus or a
 * store throwing a plain `Error`) becomes `INTERNAL` with the same message and the original as
 * its cause.
 */
function typedError(error: unknown): unknown {
  if (EverrunsError.isInstance(error)) return error;
  return new EverrunsError({ code: 'INTERNAL', message: errorMessage(error), cause: error });
}

function failedOutcome(
  state: RuntimeTurnState,
  error: unknown,
  aborted: boolean,
): RuntimeTurnOutcome {
  if (aborted) {
    return {
      success: false,
      response: state.lastResponseText,
      stopReason: 'aborted',
      error: { code: 'ABORTED', message: 'The turn was aborted' },
    };
  }
  return {
    success: false,
    response: state.lastResponseText,
    stopReason: 'error',
    error: {
      code: EverrunsError.isInstance(error) ? error.code : 'INTERNAL',
      message: errorMessage(error),
    },
  };
}

/** Stores an error result for each tool call of the turn that has none. */
async function closeTurnToolCalls(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  turnId: string,
  aborted: boolean,
): Promise<Message[]> {
  const history = await adapter.backends.messages.load(sessionId);
  const open = findOpenToolCalls(history).filter(({ message }) => message.turnId === turnId);
  return closeOpenToolCalls(
    adapter.backends.messages,
    sessionId,
    open,
    aborted ? ABORTED_TOOL_RESULT_TEXT : FAILED_TURN_TOOL_RESULT_TEXT,
  );
}
