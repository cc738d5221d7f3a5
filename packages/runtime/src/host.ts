import {
  type ActAtomResult,
  type AtomDependencies,
  act,
  EverrunsError,
  type InputAtomResult,
  type InputMessage,
  input,
  type ReasonAtomResult,
  reason,
  resolveTurnSetup,
} from '@everruns-ts/core';
import type { RuntimeActPlan, RuntimeTurnOutcome, RuntimeTurnState } from './turn-plan.js';

/**
 * What a host supplies to run the phases of a turn: the stores, the registries, the session
 * file systems, the event bus (inside `backends`) and the limits. The in-process runtime builds
 * one; a durable host builds its own from the same pieces.
 */
export interface RuntimeHostAdapter extends AtomDependencies {}

/** Output of {@link executeInputActivity}: the input atom's result plus the turn's iteration limit. */
export interface InputActivityResult extends InputAtomResult {
  maxIterations?: number;
}

/**
 * Status changes and lifecycle events of one session, in upstream's order:
 * `session.activated` → `turn.started` … `turn.completed` (or `turn.failed`) → `session.idled`.
 */
export class RuntimeSessionLifecycle {
  readonly #adapter: RuntimeHostAdapter;
  readonly #sessionId: string;

  constructor(adapter: RuntimeHostAdapter, sessionId: string) {
    this.#adapter = adapter;
    this.#sessionId = sessionId;
  }

  /** Marks the session active and announces the turn. */
  async turnStarted(turnId: string, inputMessageId: string): Promise<void> {
    const { sessions, events } = this.#adapter.backends;
    const session = await sessions.getSession(this.#sessionId);
    if (session?.status !== 'active') {
      await sessions.updateSessionStatus(this.#sessionId, 'active');
      await events.emit({
        type: 'session.activated',
        sessionId: this.#sessionId,
        turnId,
        data: {},
      });
    }
    await events.emit({
      type: 'turn.started',
      sessionId: this.#sessionId,
      turnId,
      data: { inputMessageId },
    });
  }

  /** Marks the session as waiting for client-side tool results. */
  async waitingForToolResults(turnId: string): Promise<void> {
    await this.#adapter.backends.sessions.updateSessionStatus(
      this.#sessionId,
      'waiting_for_tool_results',
    );
    void turnId;
  }

  /** Ends the turn: `turn.completed` or `turn.failed`, then the session goes idle. */
  async turnEnded(state: RuntimeTurnState, outcome: RuntimeTurnOutcome): Promise<void> {
    const { sessions, events } = this.#adapter.backends;
    const summary = {
      inputMessageId: state.inputMessageId,
      iterations: state.iteration,
      toolCallsCount: state.toolCallsCount,
      usage: state.usage,
      stopReason: outcome.stopReason,
    };
    if (outcome.success) {
      await events.emit({
        type: 'turn.completed',
        sessionId: this.#sessionId,
        turnId: state.turnId,
        data: summary,
      });
    } else {
      await events.emit({
        type: 'turn.failed',
        sessionId: this.#sessionId,
        turnId: state.turnId,
        data: { ...summary, error: outcome.error },
      });
    }
    await sessions.updateSessionStatus(this.#sessionId, 'idle');
    await events.emit({
      type: 'session.idled',
      sessionId: this.#sessionId,
      turnId: state.turnId,
      data: { iterations: state.iteration, usage: state.usage },
    });
  }
}

/**
 * The input phase: validates and persists the user's message (idempotently by turn id), then
 * starts the turn (`session.activated`, `turn.started`). Throws `SESSION_NOT_FOUND` or
 * `INVALID_INPUT` before writing anything.
 */
export async function executeInputActivity(
  adapter: RuntimeHostAdapter,
  request: { sessionId: string; input: InputMessage; turnId?: string },
): Promise<InputActivityResult> {
  const result: InputActivityResult = await input(adapter, request);
  try {
    const setup = await resolveTurnSetup(adapter, request.sessionId, result.turnId);
    result.maxIterations = setup.maxIterations;
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) throw error;
  }
  await new RuntimeSessionLifecycle(adapter, request.sessionId).turnStarted(
    result.turnId,
    result.messageId,
  );
  return result;
}

/** The reason phase for the state's iteration (see the core `reason` atom). */
export function executeReasonActivity(
  adapter: RuntimeHostAdapter,
  state: RuntimeTurnState,
  options: { signal?: AbortSignal } = {},
): Promise<ReasonAtomResult> {
  return reason(adapter, {
    sessionId: state.sessionId,
    turnId: state.turnId,
    iteration: state.iteration,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** Options of {@link executeActActivity}. */
export interface ActActivityOptions {
  signal?: AbortSignal;
  /** Crash recovery: whether a call was recorded as started in an earlier attempt. */
  wasStarted?(toolCallId: string): Promise<boolean> | boolean;
  /** Called right before a tool runs, to record that it started. */
  onToolStarted?(toolCallId: string): Promise<void> | void;
}

/** The act phase for a planned act (see the core `act` atom). */
export function executeActActivity(
  adapter: RuntimeHostAdapter,
  plan: RuntimeActPlan,
  options: ActActivityOptions = {},
): Promise<ActAtomResult> {
  const { onToolStarted, wasStarted, signal } = options;
  return act(adapter, {
    sessionId: plan.sessionId,
    turnId: plan.turnId,
    iteration: plan.iteration,
    toolCalls: plan.toolCalls,
    ...(signal ? { signal } : {}),
    ...(wasStarted ? { wasStarted } : {}),
    ...(onToolStarted ? { onToolStarted: (call) => onToolStarted(call.id) } : {}),
  });
}
