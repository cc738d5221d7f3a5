import { EverrunsError, formatZodError } from '@everruns-ts/core';
import {
  type ClientToolResult,
  clientToolResultsSchema,
  forgetWaitingTurn,
  loadWaitingTurn,
  planResumeAfterToolResults,
  type RuntimeTurnState,
  type RuntimeTurnStep,
  storeClientToolResults,
} from '@everruns-ts/runtime/host';
import { fencedStepAdapter } from './fenced-step-adapter.js';
import { assertRunning, type HostContext } from './host-context.js';
import { assertTurnId, StaleStepError } from './host-errors.js';
import { claimTurnLease, releaseTurnLease } from './host-turn-lease.js';
import { deliverEnding } from './turn-ending.js';
import type { PendingEnding } from './turn-records.js';

/**
 * Results of client-side tools: stores them for a turn paused in `waiting_for_tool_results` and,
 * once no call of the pause lacks one, puts the turn back on the step queue (or completes it when
 * the pause used the last iteration).
 */
export class ClientToolSubmission {
  readonly #context: HostContext;

  constructor(context: HostContext) {
    this.#context = context;
  }

  /**
   * Stores one `tool_result` message per call (idempotent by `<turnId>/tool/<callId>`) and
   * continues the turn once nothing is pending. Throws, writing nothing: `INVALID_INPUT` (bad
   * arguments, a turn of another session or not waiting, a call id that is not pending),
   * `SESSION_NOT_FOUND`, and `TURN_IN_PROGRESS` when another turn runs on the session.
   */
  async submitToolResults(
    sessionId: string,
    turnId: string,
    results: ClientToolResult[],
  ): Promise<void> {
    const { adapter, turns } = this.#context;
    assertRunning(this.#context);
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'sessionId must be a non-empty string',
      });
    }
    assertTurnId(turnId);
    const parsed = clientToolResultsSchema.safeParse(results);
    if (!parsed.success) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Invalid tool results: ${formatZodError(parsed.error)}`,
      });
    }
    if (!(await adapter.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    const row = await turns.get(turnId);
    const resume =
      row?.sessionId === sessionId && row.status === 'waiting_for_tool_results'
        ? await loadWaitingTurn(adapter, sessionId, turnId)
        : null;
    if (!resume) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Turn ${turnId} of session ${sessionId} does not wait for tool results`,
        details: { sessionId, turnId },
      });
    }
    const running = await turns.runningTurnOf(sessionId);
    if (running !== null) {
      throw new EverrunsError({
        code: 'TURN_IN_PROGRESS',
        message: `A turn is already running on session ${sessionId}`,
        details: { sessionId, turnId: running },
      });
    }
    // The session's lease before anything is written: no other runtime's turn runs meanwhile.
    const { sessions } = adapter.backends;
    await claimTurnLease(sessions, sessionId, turnId, this.#context.turnLeaseMs);
    let continued = false;
    try {
      const { remaining } = await storeClientToolResults(adapter, resume, parsed.data);
      if (remaining.length === 0) {
        continued = await this.#continueWaitingTurn(sessionId, turnId, resume);
      }
    } finally {
      // Still waiting (or failed before it ran on): the turn holds no lease.
      if (!continued) await releaseTurnLease(sessions, sessionId, turnId);
    }
  }

  /** Continues the turn once every call of the pause has its result; true once it runs on. */
  async #continueWaitingTurn(
    sessionId: string,
    turnId: string,
    resume: RuntimeTurnState,
  ): Promise<boolean> {
    const { adapter, turns, steps } = this.#context;
    const plan = planResumeAfterToolResults(resume);
    const step: RuntimeTurnStep = { activity: 'reason', state: plan.state };
    // Claims the turn (a new fencing token): a step still running from before the pause can no
    // longer write to it.
    const resumed = await turns.resumeWaiting(turnId, step);
    // Another caller continued the turn first (under the same lease holder).
    if (resumed === null) return true;
    // Forgotten before the turn can pause again (a later pause remembers its own state).
    await forgetWaitingTurn(adapter, sessionId, turnId);
    try {
      if (plan.kind === 'scheduleReason') {
        const fenced = fencedStepAdapter(adapter, turns, turnId, resumed.fence);
        await fenced.backends.sessions.updateSessionStatus(sessionId, 'active');
        await steps.send(step, resumed.generation, true);
        return true;
      }
      // The pause used the last iteration: the turn completes here.
      const ending: PendingEnding = { kind: 'settle', plan };
      const recorded = await turns.beginEnding(turnId, resumed.fence, ending);
      if (!recorded) return true;
      try {
        await deliverEnding(adapter, turns, {
          turnId,
          sessionId,
          fence: resumed.fence,
          ending: recorded,
          endingStarted: 0,
          endingDone: 0,
          firstEffectBegun: true,
        });
      } catch (error) {
        if (StaleStepError.isInstance(error)) throw error;
        // The ending is recorded: a worker delivers the rest of it.
        await steps.enqueueEnding(turnId, resumed.fence, step, resumed.generation);
        await steps.wake(true);
        this.#context.onError(error);
      }
    } catch (error) {
      // A newer claim (resumeTurn) carries the turn on.
      if (!StaleStepError.isInstance(error)) throw error;
    }
    return true;
  }
}
