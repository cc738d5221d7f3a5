import {
  type DependencyBlocker,
  type EventRequest,
  updateSessionStatusAndEmit,
} from '@everruns-ts/core';
import { type RuntimeHostAdapter, toolCallJournalOf } from './runtime-host-adapter.js';
import type { RuntimeTurnOutcome, RuntimeTurnState } from './turn-plan.js';

/**
 * Status changes and lifecycle events of one session, in upstream's order:
 * `session.activated` → `turn.started` … then `turn.completed` → `session.idled` on success, or
 * `turn.failed` → `session.idled` on failure (a dependency blocker first announces its message
 * with `output.message.completed`). Status and event failures are thrown, so a durable host
 * retries the step instead of leaving a session marked active.
 */
export class RuntimeSessionLifecycle {
  readonly #adapter: RuntimeHostAdapter;
  readonly #sessionId: string;

  constructor(adapter: RuntimeHostAdapter, sessionId: string) {
    this.#adapter = adapter;
    this.#sessionId = sessionId;
  }

  /** Marks the session active, then emits `session.activated` and `turn.started`. */
  async turnStarted(turnId: string, inputMessageId: string, inputContent?: string): Promise<void> {
    // The status and the events in one round trip where the bus can write them together.
    await updateSessionStatusAndEmit(
      this.#adapter.backends,
      this.#sessionId,
      'active',
      this.turnStartedRequests(turnId, inputMessageId, inputContent),
    );
  }

  /** The events announcing a turn's start: `session.activated`, then `turn.started`. */
  turnStartedRequests(
    turnId: string,
    inputMessageId: string,
    inputContent?: string,
  ): EventRequest[] {
    return [
      {
        type: 'session.activated',
        sessionId: this.#sessionId,
        turnId,
        data: { turnId, inputMessageId },
      },
      {
        type: 'turn.started',
        sessionId: this.#sessionId,
        turnId,
        data: { turnId, inputMessageId, ...(inputContent !== undefined ? { inputContent } : {}) },
      },
    ];
  }

  /** Marks the session as waiting for client-side tool results. */
  async waitingForToolResults(_turnId?: string): Promise<void> {
    await this.#adapter.backends.sessions.updateSessionStatus(
      this.#sessionId,
      'waiting_for_tool_results',
    );
  }

  /**
   * Ends the turn. Success: status idle, `turn.completed`, `session.idled`. Failure: status idle,
   * `turn.failed`, `session.idled`; a dependency blocker emits its message as
   * `output.message.completed` first. The two end events go as one batch (in one round trip,
   * stored both or neither) when the bus batches. Then forgets the turn's tool-call journal
   * entries.
   */
  async turnEnded(state: RuntimeTurnState, outcome: RuntimeTurnOutcome): Promise<void> {
    const { events } = this.#adapter.backends;
    const sessionId = this.#sessionId;
    const { turnId } = state;
    const blocker = outcome.error?.details?.blocker as DependencyBlocker | undefined;
    if (!outcome.success && outcome.stopReason === 'dependency_blocked' && blocker) {
      await events.emit({
        type: 'output.message.completed',
        sessionId,
        turnId,
        data: { text: blocker.message, toolCalls: 0, blocker },
      });
    }
    // Status first (in the same atomic step where the bus writes both): a turn that lost its
    // lease is refused there, before announcing anything.
    // The turn's last write: where a lease is held and the bus can, it is released here too
    // (the leased adapter fills in the holder and the journal's prefix).
    await updateSessionStatusAndEmit(
      this.#adapter.backends,
      sessionId,
      'idle',
      this.turnEndedRequests(state, outcome),
      { releaseLease: {} },
    );
    if (state.toolCallsCount > 0) await this.forgetTurnJournal(state);
  }

  /**
   * The events that end a turn, after its status is set idle: `turn.completed` (success) or
   * `turn.failed`, then `session.idled` (see {@link turnEnded}).
   */
  turnEndedRequests(state: RuntimeTurnState, outcome: RuntimeTurnOutcome): EventRequest[] {
    const sessionId = this.#sessionId;
    const { turnId } = state;
    const summary = {
      turnId,
      inputMessageId: state.inputMessageId,
      iterations: state.iteration,
      toolCallsCount: state.toolCallsCount,
      usage: state.usage,
      stopReason: outcome.stopReason,
    };
    let ended: EventRequest;
    if (outcome.success) {
      ended = { type: 'turn.completed', sessionId, turnId, data: summary };
    } else {
      const blocker = outcome.error?.details?.blocker as DependencyBlocker | undefined;
      ended = {
        type: 'turn.failed',
        sessionId,
        turnId,
        data: {
          ...summary,
          // The user-facing text of the failure (a failed model call's), kept for whoever shows it.
          response: outcome.response,
          error: outcome.error,
          errorCode: blocker?.code ?? outcome.error?.code ?? outcome.stopReason,
        },
      };
    }
    return [
      ended,
      {
        type: 'session.idled',
        sessionId,
        turnId,
        data: { turnId, iterations: state.iteration, usage: state.usage },
      },
    ];
  }

  /** Forgets the tool-call journal entries of a turn that ended (when it made calls). */
  async forgetTurnJournal(state: RuntimeTurnState): Promise<void> {
    if (state.toolCallsCount > 0) {
      await toolCallJournalOf(this.#adapter).forgetTurn?.(this.#sessionId, state.turnId);
    }
  }
}
