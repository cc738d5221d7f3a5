import {
  EverrunsError,
  formatZodError,
  type InputMessage,
  inputMessageSchema,
  newId,
  validateTurnInput,
} from '@everruns-ts/core';
import {
  initialTurnStep,
  loadWaitingTurn,
  parseRuntimeTurnStep,
  pendingClientToolCalls,
  type RuntimeHostAdapter,
  type TurnResult,
} from '@everruns-ts/runtime/host';
import { assertRunning, type HostContext } from './host-context.js';
import { failedTurnError, unknownTurnError } from './host-errors.js';
import { claimTurnLease, releaseTurnLease } from './host-turn-lease.js';
import type { HostTurnStatus } from './turn-records.js';

/** Options of `PgBossHost.submitTurn`. */
export interface SubmitTurnOptions {
  /** The turn id; generated when absent. */
  turnId?: string;
}

/** Options of {@link TurnHandle.result}. */
export interface TurnResultOptions {
  /** Stops waiting (rejects with `ABORTED`). */
  signal?: AbortSignal;
  /** Gives up waiting after this many milliseconds (rejects with `LIMIT_EXCEEDED`). */
  timeoutMs?: number;
}

/** A submitted turn: await its result or poll its status. */
export interface TurnHandle {
  readonly turnId: string;
  readonly sessionId: string;
  /** The turn as the host's table has it now. */
  status(): Promise<HostTurnStatus>;
  /**
   * Waits until the turn completes (or waits for client tool results) and resolves with its
   * result; rejects with the host's error when the turn `failed`.
   */
  result(options?: TurnResultOptions): Promise<TurnResult>;
}

/**
 * The client side of turns: submitting one (a row in the `turns` table and its input step job),
 * handles that poll or await it, and resuming one from its checkpoint.
 */
export class TurnSubmission {
  readonly #context: HostContext;

  constructor(context: HostContext) {
    this.#context = context;
  }

  /**
   * Records a turn and enqueues its input step. Throws `INVALID_INPUT`, `SESSION_NOT_FOUND`,
   * `LIMIT_EXCEEDED` (input size), `CAPABILITY_NOT_FOUND`, `MODEL_NOT_FOUND`, `CONFIGURATION`,
   * `DRIVER_NOT_FOUND` (as the input step checks them), `TURN_IN_PROGRESS`, `TURN_WAITING_FOR_TOOL_RESULTS` (a turn of the session waits for client
   * tool results: submit them first) and `DUPLICATE_ID` before anything runs.
   */
  async submitTurn(
    sessionId: string,
    input: InputMessage,
    options: SubmitTurnOptions = {},
  ): Promise<TurnHandle> {
    const { adapter, turns, steps } = this.#context;
    assertRunning(this.#context);
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'sessionId must be a non-empty string',
      });
    }
    const parsed = inputMessageSchema.safeParse(input);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid input message: ${formatZodError(parsed.error)}`,
      });
    }
    if (!(await adapter.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    // Everything the input step would check before writing, checked here first: a refused turn
    // is never recorded (its size, capabilities, model and driver).
    await validateTurnInput(adapter, { sessionId, input: parsed.data });
    const turnId = options.turnId ?? newId('turn');
    const step = initialTurnStep({
      sessionId,
      turnId,
      input: parsed.data,
      maxIterations: adapter.limits.maxIterations,
      maxRepeatedToolCalls: adapter.limits.maxRepeatedToolCalls,
    });
    // The session's lease first: no other runtime on these stores runs a turn on it meanwhile.
    const { sessions } = adapter.backends;
    await claimTurnLease(sessions, sessionId, turnId, this.#context.turnLeaseMs);
    let waiting: string | null;
    try {
      waiting = await turns.insert(turnId, sessionId, step);
    } catch (error) {
      await releaseTurnLease(sessions, sessionId, turnId);
      throw error;
    }
    if (waiting !== null) {
      await releaseTurnLease(sessions, sessionId, turnId);
      throw await waitingForToolResultsError(adapter, sessionId, waiting);
    }
    try {
      await steps.send(step, 0, true);
    } catch (error) {
      await turns.delete(turnId).catch(() => {});
      await releaseTurnLease(sessions, sessionId, turnId);
      throw error;
    }
    return this.handle(turnId, sessionId);
  }

  /** A handle on a turn submitted earlier (by any process). */
  handle(turnId: string, sessionId: string): TurnHandle {
    return {
      turnId,
      sessionId,
      status: async () => {
        const status = await this.status(turnId);
        if (!status) throw unknownTurnError(turnId);
        return status;
      },
      result: (options) => this.#awaitResult(turnId, options ?? {}),
    };
  }

  /** The turn as the host's table has it, or `null` for an unknown turn. */
  async status(turnId: string): Promise<HostTurnStatus | null> {
    const row = await this.#context.turns.get(turnId);
    if (!row) return null;
    const { stepValue: _step, ...status } = row;
    return status;
  }

  /**
   * Resumes a failed or stuck turn from its checkpoint as a new generation of jobs; does nothing
   * for a completed turn. Throws `INVALID_INPUT` for an unknown turn.
   */
  async resumeTurn(turnId: string): Promise<void> {
    assertRunning(this.#context);
    const next = await this.#context.turns.nextGeneration(turnId);
    if (!next) return;
    await this.#context.steps.send(parseRuntimeTurnStep(next.step), next.generation, true);
  }

  async #awaitResult(turnId: string, options: TurnResultOptions): Promise<TurnResult> {
    const { notifications } = this.#context;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    await notifications.listen();
    for (;;) {
      if (options.signal?.aborted) {
        throw new EverrunsError({
          code: 'ABORTED',
          message: 'Stopped waiting for the turn',
          cause: options.signal.reason,
        });
      }
      const status = await this.status(turnId);
      if (!status) throw unknownTurnError(turnId);
      if (status.result && status.status !== 'running') return status.result;
      if (status.status === 'failed') throw failedTurnError(turnId, status.error);
      if (this.#context.stopped) {
        throw new EverrunsError({ code: 'ABORTED', message: 'The host was stopped' });
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new EverrunsError({
          code: 'LIMIT_EXCEEDED',
          message: `Turn ${turnId} did not finish within ${options.timeoutMs} ms`,
          details: { turnId },
        });
      }
      await notifications.waitForChange(turnId, Math.min(remaining, 1_000), options.signal);
    }
  }
}

/**
 * The `TURN_WAITING_FOR_TOOL_RESULTS` error for a new turn refused because `waitingTurnId` waits
 * for client tool results (details `sessionId`, `turnId`, `pendingToolCallIds`).
 */
async function waitingForToolResultsError(
  adapter: RuntimeHostAdapter,
  sessionId: string,
  waitingTurnId: string,
): Promise<EverrunsError> {
  const resume = await loadWaitingTurn(adapter, sessionId, waitingTurnId).catch(() => null);
  const pending = resume ? await pendingClientToolCalls(adapter, resume) : [];
  const ids = pending.map((call) => call.id);
  return new EverrunsError({
    code: 'TURN_WAITING_FOR_TOOL_RESULTS',
    message: `Turn ${waitingTurnId} of session ${sessionId} waits for the results of client-side tool calls ${ids.join(', ')}; submit them (isError: true abandons a call) before starting a new turn`,
    details: { sessionId, turnId: waitingTurnId, pendingToolCallIds: ids },
  });
}
