import {
  type ActAtomResult,
  act,
  closeOpenToolCalls,
  type DependencyBlocker,
  type EventRequest,
  EverrunsError,
  type InputAtomInput,
  type InputAtomResult,
  type InputMessage,
  input,
  messageText,
  type OpenToolCall,
  onAbortOf,
  type ReasonAtomInput,
  type ReasonAtomResult,
  reason,
  resolveTurnSetup,
  type SessionSetupSnapshot,
  type SignalSource,
  type ToolCall,
  type TurnSnapshot,
  toolResultIdempotencyKey,
} from '@everruns-ts/core';
import { assertNoTurnWaitsForToolResults, WAITING_TURN_KEY_PREFIX } from './client-tool-results.js';
import { type RuntimeHostAdapter, toolCallJournalOf } from './runtime-host-adapter.js';
import { RuntimeSessionLifecycle } from './runtime-session-lifecycle.js';
import type { RuntimeActPlan, RuntimeTurnState } from './turn-plan.js';

/** Output of {@link executeInputActivity}: the input atom's result plus the turn's iteration limit. */
export interface InputActivityResult extends InputAtomResult {
  maxIterations?: number;
}

/**
 * The input phase: validates and persists the user's message (idempotently by turn id), then
 * starts the turn (status active, `session.activated`, `turn.started`). Throws
 * `SESSION_NOT_FOUND`, `INVALID_INPUT` or `TURN_WAITING_FOR_TOOL_RESULTS` (another turn of the
 * session waits for client-side tool results) before writing anything. Replaying it for the same turn
 * id stores nothing new. When the backends offer `loadSessionSetup`, the session's setup, the
 * default model and the keys of waiting turns are read with it in one round trip.
 */
export async function executeInputActivity(
  adapter: RuntimeHostAdapter,
  request: {
    sessionId: string;
    input: InputMessage;
    turnId?: string;
    modelOptions?: unknown;
    /**
     * The session's setup as the caller just loaded it, with the keys of waiting turns
     * (`loadSessionSetup` with `storageKeyPrefix` {@link WAITING_TURN_KEY_PREFIX}, or
     * `claimTurnLeaseAndLoadSetup`): not loaded again.
     */
    setup?: SessionSetupSnapshot;
    /**
     * Called with the session's turn snapshot when the bus read it with the turn's start (see
     * `JointMessageOptions.loadTurnSnapshot`), for the reason step that follows in this process.
     */
    onTurnSnapshot?(snapshot: TurnSnapshot): void;
  },
): Promise<InputActivityResult> {
  const { backends } = adapter;
  // A failed read leaves every check to the single stores, which report it where they did.
  const setup =
    request.setup ??
    (backends.loadSessionSetup
      ? await backends
          .loadSessionSetup(request.sessionId, { storageKeyPrefix: WAITING_TURN_KEY_PREFIX })
          .catch(() => null)
      : null);
  await assertNoTurnWaitsForToolResults(
    adapter,
    request.sessionId,
    request.turnId ?? '',
    setup?.storageKeys,
  );
  const lifecycle = new RuntimeSessionLifecycle(adapter, request.sessionId);
  const inputContent = messageText(request.input);
  let started = false;
  let turnSnapshot: TurnSnapshot | undefined;
  const { onTurnSnapshot, ...atomRequest } = request;
  const startTurn: NonNullable<InputAtomInput['startTurn']> = {
    sessionStatus: 'active',
    events: (stored) => lifecycle.turnStartedRequests(stored.turnId ?? '', stored.id, inputContent),
    onWritten: (snapshot) => {
      started = true;
      turnSnapshot = snapshot;
    },
  };
  if (onTurnSnapshot) startTurn.loadTurnSnapshot = true;
  // An unknown session (no setup) is reported by the input atom, after its own checks. The turn
  // starts with the message where the bus writes them together (status active first in that
  // step, then `input.message`, `session.activated`, `turn.started`). Built by `Object.assign`,
  // not spreads followed by properties: on Node 20 those keep young objects alive through
  // scavenges (`bench/RESULTS.md`).
  const atomInput: InputAtomInput = Object.assign({}, atomRequest, { startTurn });
  if (setup) atomInput.setup = setup;
  const result: InputActivityResult = await input(adapter, atomInput);
  try {
    const setup = await resolveTurnSetup(adapter, request.sessionId, result.turnId);
    result.maxIterations = setup.maxIterations;
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) throw error;
  }
  if (!started) await lifecycle.turnStarted(result.turnId, result.messageId, inputContent);
  else if (turnSnapshot) onTurnSnapshot?.(turnSnapshot);
  return result;
}

/**
 * The reason phase for the state's iteration (see the core `reason` atom): once the model's
 * answer of this iteration is stored, replaying the phase returns it without calling the model.
 */
export function executeReasonActivity(
  adapter: RuntimeHostAdapter,
  state: RuntimeTurnState,
  options: {
    /** Cancels the step (see {@link ActActivityOptions.signal}). */
    signal?: SignalSource;
    /**
     * The session's turn snapshot as the step just before read it with its last write (nothing
     * written since), used instead of loading one.
     */
    turnSnapshot?: TurnSnapshot;
    /** The turn's end, written with an answer that ends it (the core reason atom's `endTurn`). */
    endTurn?: ReasonAtomInput['endTurn'];
    /** The first call's start, written with the answer (the reason atom's `startFirstCall`). */
    startFirstCall?: ReasonAtomInput['startFirstCall'];
  } = {},
): Promise<ReasonAtomResult> {
  // Built by assignment, not conditional spreads: one object per step on the hot path.
  const request: ReasonAtomInput = {
    sessionId: state.sessionId,
    turnId: state.turnId,
    iteration: state.iteration,
  };
  if (options.signal) request.signal = options.signal;
  if (state.modelOptions) request.modelOptions = state.modelOptions;
  if (state.previousResponseId !== undefined) request.previousResponseId = state.previousResponseId;
  if (state.stream) request.stream = true;
  if (options.turnSnapshot) request.snapshot = options.turnSnapshot;
  if (options.endTurn) request.endTurn = options.endTurn;
  if (options.startFirstCall) request.startFirstCall = options.startFirstCall;
  const running = reason(adapter, request);
  return options.signal ? settleOnAbort(running, options.signal) : running;
}

/**
 * `running`, or `ABORTED` as soon as `signal` fires: a driver that ignores its signal cannot hold
 * an aborted turn (what it answers later is dropped; an in-process turn's late writes are refused
 * once its lease is released).
 */
function settleOnAbort<T>(running: Promise<T>, signal: SignalSource): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      running.catch(() => undefined);
      reject(
        new EverrunsError({
          code: 'ABORTED',
          message: 'The turn was aborted',
          cause: signal.reason,
        }),
      );
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    const stopListening = onAbortOf(signal, onAbort);
    running.then(
      (value) => {
        stopListening();
        resolve(value);
      },
      (error: unknown) => {
        stopListening();
        reject(error);
      },
    );
  });
}

/** Options of {@link executeActActivity}. */
export interface ActActivityOptions {
  /**
   * Cancels the step: an `AbortSignal`, or a core `LazySignal`, which makes its `AbortSignal` only
   * when a tool (or a hook) reads its context's `signal`.
   */
  signal?: SignalSource;
  /**
   * Crash recovery: whether a call was started by an earlier attempt. Overrides the adapter's
   * {@link ToolCallJournal} (together with `onToolStarted`).
   */
  wasStarted?(toolCallId: string): Promise<boolean> | boolean;
  /** Called right before a tool runs, to record that it started. */
  onToolStarted?(toolCallId: string): Promise<void> | void;
  /**
   * The plan's calls come from a reason step the caller has just run in this process, whose
   * answer it stored itself (`replayed: false`), so no result can be stored yet and none is
   * looked for (see the core act atom's `freshCalls`). Never set for a step read back from a
   * queue, retried or resumed.
   */
  freshCalls?: boolean;
  /**
   * Called with the session's turn snapshot when the bus read it with the step's last write (see
   * the core act atom's `onTurnSnapshot`), for the reason step that follows in this process.
   */
  onTurnSnapshot?(snapshot: TurnSnapshot): void;
  /**
   * Calls whose `tool.started` and journal claim the reason step just run here wrote with its
   * answer (its `startedCallIds`; see the core act atom's `startedCalls`).
   */
  startedCalls?: readonly string[];
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
 * disabled harness or agent resolves with `blocked: true` and the blocker, running nothing; each
 * call of the step gets an error result with the blocker's message.
 * Pass the adapter a `setupCache` shared by the step to resolve the session's setup once.
 */
export async function executeActActivity(
  adapter: RuntimeHostAdapter,
  plan: RuntimeActPlan,
  options: ActActivityOptions = {},
): Promise<ActActivityResult> {
  const { onToolStarted, signal } = options;
  try {
    await resolveTurnSetup(adapter, plan.sessionId, plan.turnId, undefined, signal);
  } catch (error) {
    if (!EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) throw error;
    const blocker = error.details.blocker as DependencyBlocker;
    await answerBlockedCalls(adapter, plan, blocker);
    return {
      results: [],
      waitingForToolResults: false,
      blocked: true,
      callSignature: '',
      blocker,
    };
  }
  let wasStarted = options.wasStarted;
  let startCall: ((call: ToolCall, started: EventRequest) => Promise<boolean>) | undefined;
  if (!wasStarted && !onToolStarted) {
    const journal = toolCallJournalOf(adapter);
    if (journal.claimAndEmit) {
      // The claim and the call's `tool.started` in one round trip where the bus can.
      startCall = (call, started) =>
        journal.claimAndEmit!(plan.sessionId, plan.turnId, call.id, adapter.backends.events, [
          started,
        ]);
    } else {
      wasStarted = async (toolCallId) =>
        !(await journal.claim(plan.sessionId, plan.turnId, toolCallId));
    }
  }
  return act(adapter, {
    sessionId: plan.sessionId,
    turnId: plan.turnId,
    iteration: plan.iteration,
    toolCalls: plan.toolCalls,
    ...(signal ? { signal } : {}),
    ...(wasStarted ? { wasStarted } : {}),
    ...(startCall ? { startCall } : {}),
    ...(onToolStarted ? { onToolStarted: (call: ToolCall) => onToolStarted(call.id) } : {}),
    ...(options.freshCalls ? { freshCalls: true } : {}),
    ...(options.onTurnSnapshot ? { onTurnSnapshot: options.onTurnSnapshot } : {}),
    ...(options.startedCalls ? { startedCalls: options.startedCalls } : {}),
  });
}

/**
 * Stores an error result (the blocker's message; the call was not run) for each call of a
 * blocked act step that has none, so the turn's end leaves no tool call without its result.
 */
async function answerBlockedCalls(
  adapter: RuntimeHostAdapter,
  plan: RuntimeActPlan,
  blocker: DependencyBlocker,
): Promise<void> {
  const { messages } = adapter.backends;
  const answer = await messages.getByIdempotencyKey(
    plan.sessionId,
    `${plan.turnId}/reason/${plan.iteration}`,
  );
  if (!answer) return;
  const open: OpenToolCall[] = [];
  for (const part of answer.content) {
    if (part.type !== 'tool_call' || !plan.toolCalls.some((call) => call.id === part.id)) continue;
    const key = toolResultIdempotencyKey(plan.turnId, part.id);
    if (!(await messages.getByIdempotencyKey(plan.sessionId, key))) {
      open.push({ message: answer, call: part });
    }
  }
  await closeOpenToolCalls(
    messages,
    plan.sessionId,
    open,
    `The tool call was not run: ${blocker.message}`,
  );
}
