import {
  type ActAtomResult,
  type AtomDependencies,
  act,
  type DependencyBlocker,
  EverrunsError,
  emitEvents,
  type InputAtomResult,
  type InputMessage,
  input,
  messageText,
  type ReasonAtomResult,
  reason,
  resolveTurnSetup,
  type ToolCall,
} from '@everruns-ts/core';
import { SessionStorageToolCallJournal, type ToolCallJournal } from './tool-call-journal.js';
import type { RuntimeActPlan, RuntimeTurnOutcome, RuntimeTurnState } from './turn-plan.js';

/**
 * What a host supplies to run the phases of a turn: the stores, the registries, the session
 * file systems, the event bus (inside `backends`) and the limits. The in-process runtime builds
 * one; a durable host builds its own from the same pieces.
 */
export interface RuntimeHostAdapter extends AtomDependencies {
  /**
   * Where tool calls are recorded as started before they run. Defaults to a
   * {@link SessionStorageToolCallJournal} on `backends.storage`.
   */
  toolCallJournal?: ToolCallJournal;
}

/** The journal an adapter uses: its own, or one on its session storage. */
export function toolCallJournalOf(adapter: RuntimeHostAdapter): ToolCallJournal {
  return adapter.toolCallJournal ?? new SessionStorageToolCallJournal(adapter.backends.storage);
}

/** Output of {@link executeInputActivity}: the input atom's result plus the turn's iteration limit. */
export interface InputActivityResult extends InputAtomResult {
  maxIterations?: number;
}

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
    const { sessions, events } = this.#adapter.backends;
    await sessions.updateSessionStatus(this.#sessionId, 'active');
    await emitEvents(events, [
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
    ]);
  }

  /** Marks the session as waiting for client-side tool results. */
  async waitingForToolResults(_turnId?: string): Promise<void> {
    await this.#adapter.backends.sessions.updateSessionStatus(
      this.#sessionId,
      'waiting_for_tool_results',
    );
  }

  /**
   * Ends the turn. Success: `turn.completed`, status idle, `session.idled`. Failure: status idle,
   * `turn.failed`, `session.idled`; a dependency blocker emits its message as
   * `output.message.completed` first. Then forgets the turn's tool-call journal entries.
   */
  async turnEnded(state: RuntimeTurnState, outcome: RuntimeTurnOutcome): Promise<void> {
    const { sessions, events } = this.#adapter.backends;
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
    if (outcome.success) {
      await events.emit({ type: 'turn.completed', sessionId, turnId, data: summary });
      await sessions.updateSessionStatus(sessionId, 'idle');
    } else {
      const blocker = outcome.error?.details?.blocker as DependencyBlocker | undefined;
      if (outcome.stopReason === 'dependency_blocked' && blocker) {
        await events.emit({
          type: 'output.message.completed',
          sessionId,
          turnId,
          data: { text: blocker.message, toolCalls: 0, blocker },
        });
      }
      await sessions.updateSessionStatus(sessionId, 'idle');
      await events.emit({
        type: 'turn.failed',
        sessionId,
        turnId,
        data: {
          ...summary,
          error: outcome.error,
          errorCode: blocker?.code ?? outcome.error?.code ?? outcome.stopReason,
        },
      });
    }
    await events.emit({
      type: 'session.idled',
      sessionId,
      turnId,
      data: { turnId, iterations: state.iteration, usage: state.usage },
    });
    if (state.toolCallsCount > 0) {
      await toolCallJournalOf(this.#adapter).forgetTurn?.(sessionId, turnId);
    }
  }
}

/**
 * The input phase: validates and persists the user's message (idempotently by turn id), then
 * starts the turn (status active, `session.activated`, `turn.started`). Throws
 * `SESSION_NOT_FOUND` or `INVALID_INPUT` before writing anything. Replaying it for the same turn
 * id stores nothing new.
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
    messageText(request.input),
  );
  return result;
}

/**
 * The reason phase for the state's iteration (see the core `reason` atom): once the model's
 * answer of this iteration is stored, replaying the phase returns it without calling the model.
 */
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
  /**
   * Crash recovery: whether a call was started by an earlier attempt. Overrides the adapter's
   * {@link ToolCallJournal} (together with `onToolStarted`).
   */
  wasStarted?(toolCallId: string): Promise<boolean> | boolean;
  /** Called right before a tool runs, to record that it started. */
  onToolStarted?(toolCallId: string): Promise<void> | void;
}

/** Output of {@link executeActActivity}: the act atom's result, plus the blocker of a blocked session. */
export interface ActActivityResult extends ActAtomResult {
  blocker?: DependencyBlocker;
}

/**
 * The act phase for a planned act (see the core `act` atom). Each call is claimed in the
 * adapter's {@link ToolCallJournal} before it runs; on a replay, a call with a stored result is
 * not run again, and a claimed call without a result is re-run only when its tool is idempotent
 * (otherwise it gets a synthetic "interrupted" error result). A session blocked by a missing or
 * disabled harness or agent resolves with `blocked: true` and the blocker, running nothing.
 * Pass the adapter a `setupCache` shared by the step to resolve the session's setup once.
 */
export async function executeActActivity(
  adapter: RuntimeHostAdapter,
  plan: RuntimeActPlan,
  options: ActActivityOptions = {},
): Promise<ActActivityResult> {
  const { onToolStarted, signal } = options;
  try {
    await resolveTurnSetup(adapter, plan.sessionId, plan.turnId);
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) throw error;
    const blocker = error.details.blocker as DependencyBlocker;
    return {
      results: [],
      waitingForToolResults: false,
      blocked: true,
      callSignature: '',
      blocker,
    };
  }
  let wasStarted = options.wasStarted;
  if (!wasStarted && !onToolStarted) {
    const journal = toolCallJournalOf(adapter);
    wasStarted = async (toolCallId) =>
      !(await journal.claim(plan.sessionId, plan.turnId, toolCallId));
  }
  return act(adapter, {
    sessionId: plan.sessionId,
    turnId: plan.turnId,
    iteration: plan.iteration,
    toolCalls: plan.toolCalls,
    ...(signal ? { signal } : {}),
    ...(wasStarted ? { wasStarted } : {}),
    ...(onToolStarted ? { onToolStarted: (call: ToolCall) => onToolStarted(call.id) } : {}),
  });
}
