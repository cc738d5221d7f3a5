import {
  DEFAULT_TURN_LIMITS,
  EverrunsError,
  formatZodError,
  type InputMessage,
  inputMessageSchema,
  type LlmUsage,
  lazySchema,
  type MessageEventBus,
  type ReasonAtomInput,
  type ReasonAtomResult,
  type SessionSetupSnapshot,
  type SignalSource,
  type TurnSnapshot,
} from '@everruns-ts/core';
import { z } from 'zod';
import {
  type ActActivityOptions,
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
} from './activities.js';
import { rememberWaitingTurn } from './client-tool-results.js';
import { type RuntimeHostAdapter, toolCallJournalOf } from './runtime-host-adapter.js';
import { RuntimeSessionLifecycle } from './runtime-session-lifecycle.js';
import {
  initialTurnState,
  planNextHostTurn,
  type RuntimeTurnOutcome,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
  runtimeActPlanSchema,
  runtimeTurnStateSchema,
  type TurnStopReason,
} from './turn-plan.js';

/**
 * The outcome of one turn. `Output` is the type of {@link TurnResult.output}: `z.infer` of the
 * turn's `output` schema when it has one.
 */
export interface TurnResult<Output = unknown> {
  turnId: string;
  /** The model's final text. */
  response: string;
  /** Reason steps run. */
  iterations: number;
  toolCallsCount: number;
  /** False when the model failed, the session is blocked or a limit stopped the turn. */
  success: boolean;
  error?: { code: string; message: string; details?: Record<string, unknown> };
  stopReason: TurnStopReason;
  /**
   * The final answer parsed and validated by the turn's `output` schema (structured output);
   * present when the turn had one and ended successfully with a final answer (`end_turn`).
   */
  output?: Output;
  /**
   * The turn's model calls' usage added up (a detail field such as `cachedInputTokens` is present
   * when any call reported it). Set on every result the runtime's turn steps produce; absent on
   * a result rebuilt from events that did not carry it.
   */
  usage?: LlmUsage;
  /**
   * What the turn's model calls cost, in the currency of the runtime's prices
   * (`InProcessRuntimeBuilder.prices`): present when prices are configured and every call's model
   * has one.
   */
  cost?: number;
}

/** Schema of {@link RuntimeTurnStep}. */
export const runtimeTurnStepSchema = lazySchema(() =>
  z.discriminatedUnion('activity', [
    z.object({
      activity: z.literal('input'),
      state: runtimeTurnStateSchema,
      input: inputMessageSchema,
    }),
    z.object({ activity: z.literal('reason'), state: runtimeTurnStateSchema }),
    z.object({
      activity: z.literal('act'),
      state: runtimeTurnStateSchema,
      act: runtimeActPlanSchema,
    }),
  ]),
);

/**
 * One step of a turn as a host persists it before running it (a queue job, a checkpoint row):
 * plain JSON. Running the same step twice, in one process or two, stores nothing twice.
 */
export type RuntimeTurnStep = z.infer<typeof runtimeTurnStepSchema>;

/** Parses a persisted step. Throws `STATE_INVALID` (never guesses) when it does not parse. */
export function parseRuntimeTurnStep(value: unknown): RuntimeTurnStep {
  const parsed = runtimeTurnStepSchema.safeParse(value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'STATE_INVALID',
      message: `The persisted turn step does not parse: ${formatZodError(parsed.error)}`,
    });
  }
  const step = parsed.data;
  if (
    step.activity === 'act' &&
    (step.act.sessionId !== step.state.sessionId ||
      step.act.turnId !== step.state.turnId ||
      step.act.iteration !== step.state.iteration)
  ) {
    throw new EverrunsError({
      code: 'STATE_INVALID',
      message: 'The persisted act step names another session, turn or iteration than its state',
      details: { sessionId: step.state.sessionId, turnId: step.state.turnId },
    });
  }
  return step;
}

/** The first step of a new turn: the input activity with the turn's initial state. */
export function initialTurnStep(options: {
  sessionId: string;
  turnId: string;
  input: InputMessage;
  /** Default limits of the host; the session's overlay may set its own `maxIterations`. */
  maxIterations?: number;
  maxRepeatedToolCalls?: number;
}): RuntimeTurnStep {
  return {
    activity: 'input',
    input: options.input,
    state: initialTurnState({
      sessionId: options.sessionId,
      turnId: options.turnId,
      maxIterations: options.maxIterations ?? DEFAULT_TURN_LIMITS.maxIterations,
      maxRepeatedToolCalls:
        options.maxRepeatedToolCalls ?? DEFAULT_TURN_LIMITS.maxRepeatedToolCalls,
    }),
  };
}

/**
 * A deterministic name of a step, `turnId/activity/iteration`: the same step always has the same
 * key, so a host can derive idempotent job ids or checkpoint keys from it.
 */
export function turnStepKey(step: RuntimeTurnStep): string {
  return `${step.state.turnId}/${step.activity}/${step.state.iteration}`;
}

/** Options of {@link executeTurnStep}. */
export interface ExecuteTurnStepOptions {
  /** Cancels the step: an `AbortSignal` or a core `LazySignal`. */
  signal?: SignalSource;
  /** User messages that arrived while the turn ran (see `planNextHostTurn`). Default 0. */
  pendingUserMessages?: number;
  /**
   * The chain of steps this one belongs to: steps of one turn run one after another by one caller
   * in this process (a host job that runs its turn's next steps itself). See {@link TurnStepChain}.
   */
  chain?: TurnStepChain;
  /**
   * For a reason step: write the `tool.started` of the answer's first call with the answer, in the
   * same round trip, where the bus writes a message with its events (`MessageEventBus`): a call of
   * an idempotent tool, or one whose claim the tool-call journal can give with it
   * (`claimRecord`). The outcome's `startedCalls` lists the calls so started: give them to the act
   * step that runs the answer's calls (its `startedCalls`, which a chain carries by itself), or
   * that step starts them a second time (a second `tool.started` event). The in-process runtime
   * does the same. Default false.
   */
  startFirstCall?: boolean;
  /**
   * For an act step: the calls whose `tool.started` the reason step before it wrote with its
   * answer (that step's outcome's `startedCalls`); they run without being started again. Give
   * them only with the act step that reason step planned: a crash between the two is no reason
   * to drop them (the start was written with the answer, all or nothing).
   */
  startedCalls?: readonly string[];
}

/**
 * What a step of a turn leaves to the step run right after it by the same caller in this process,
 * with nothing written to the session between them (as `InProcessRuntime` runs a turn): a reason
 * step uses the turn snapshot the step before it read with its last write instead of loading one,
 * and an act step right after a reason step that stored a new answer skips looking for stored
 * results of the calls that answer has just made. Pass one chain to {@link executeTurnStep} for
 * each step of a run; start a new chain for a step read back from storage (a retried or resumed
 * job) or after anything else may have written to the session. A chain only carries over to the
 * very step the previous one planned next, so passing it to any other step changes nothing.
 */
export class TurnStepChain {}

/** What a {@link TurnStepChain} holds between two steps (kept off its public face). */
interface ChainState {
  /** The key ({@link turnStepKey}) of the step the last step planned next. */
  expected: string | undefined;
  /** The turn snapshot the last step read with its last write. */
  turnSnapshot: TurnSnapshot | undefined;
  /** True when the last step was a reason step that stored a new answer. */
  freshAnswer: boolean;
  /** The calls that reason step started with its answer (see `startFirstCall`). */
  startedCalls: readonly string[] | undefined;
}

const chainStates = new WeakMap<TurnStepChain, ChainState>();

/** The state of `chain`, empty on its first step. */
function chainStateOf(chain: TurnStepChain): ChainState {
  let state = chainStates.get(chain);
  if (state === undefined) {
    state = {
      expected: undefined,
      turnSnapshot: undefined,
      freshAnswer: false,
      startedCalls: undefined,
    };
    chainStates.set(chain, state);
  }
  return state;
}

/** The options `chain` gives `step` (added to `options`); the chain is emptied meanwhile. */
function chainedOptions(
  chain: TurnStepChain,
  step: RuntimeTurnStep,
  options: RunTurnStepOptions,
): RunTurnStepOptions {
  const state = chainStateOf(chain);
  const follows = state.expected !== undefined && state.expected === turnStepKey(step);
  if (step.activity === 'reason') {
    if (follows && state.turnSnapshot) options.turnSnapshot = state.turnSnapshot;
  } else {
    if (step.activity === 'act' && follows && state.freshAnswer) {
      options.freshCalls = true;
      if (state.startedCalls) options.startedCalls = state.startedCalls;
    }
    options.onTurnSnapshot = (snapshot) => {
      state.turnSnapshot = snapshot;
    };
  }
  state.expected = undefined;
  state.turnSnapshot = undefined;
  state.freshAnswer = false;
  state.startedCalls = undefined;
  return options;
}

/** Records in `chain` what `step` leaves to the next (nothing once user messages arrived). */
function recordInChain(
  chain: TurnStepChain,
  step: RuntimeTurnStep,
  outcome: TurnStepOutcome,
  pendingUserMessages: number,
): void {
  const state = chainStateOf(chain);
  if (pendingUserMessages > 0 || !outcome.next) {
    state.turnSnapshot = undefined;
    return;
  }
  state.expected = turnStepKey(outcome.next);
  state.freshAnswer =
    step.activity === 'reason' && (outcome.output as ReasonAtomResult).replayed === false;
  state.startedCalls = outcome.startedCalls;
}

/** What {@link executeTurnStep} did and what comes next. */
export interface TurnStepOutcome {
  /** The activity's output (plain JSON). */
  output: unknown;
  /** The planner's decision. */
  plan: RuntimeTurnPlan;
  /** The step to run next, or `null` when the plan waits or completes (then call {@link settleTurn}). */
  next: RuntimeTurnStep | null;
  /**
   * For a reason step run with `startFirstCall`: the answer's calls whose `tool.started` went with
   * it (give them to the act step next, see {@link ExecuteTurnStepOptions.startedCalls}).
   */
  startedCalls?: readonly string[];
}

/**
 * Runs one persisted step (its activity, then `planNextHostTurn`) and says what comes next. The
 * step is validated first (`STATE_INVALID` when it does not parse). Replaying a step whose writes
 * are already stored returns the same plan without calling the model or re-running tools.
 */
export async function executeTurnStep(
  adapter: RuntimeHostAdapter,
  persisted: unknown,
  options: ExecuteTurnStepOptions = {},
): Promise<TurnStepOutcome> {
  const step = parseRuntimeTurnStep(persisted);
  const pending = options.pendingUserMessages ?? 0;
  const stepOptions: RunTurnStepOptions = {
    ...signalOf(options.signal),
    pendingUserMessages: () => pending,
  };
  const { chain, startedCalls } = options;
  if (startedCalls !== undefined) {
    if (!Array.isArray(startedCalls) || !startedCalls.every((id) => typeof id === 'string')) {
      throw new TypeError('options.startedCalls must be an array of tool call ids');
    }
    if (step.activity === 'act') stepOptions.startedCalls = startedCalls;
  }
  if (options.startFirstCall === true && step.activity === 'reason') {
    const start = startFirstCallOf(adapter, step.state);
    if (start) stepOptions.startFirstCall = start;
  }
  if (chain !== undefined && (typeof chain !== 'object' || chain === null)) {
    throw new TypeError('options.chain must be a TurnStepChain');
  }
  const outcome = await runTurnStep(
    adapter,
    step,
    chain === undefined ? stepOptions : chainedOptions(chain, step, stepOptions),
  );
  if (step.activity === 'reason') {
    const answer = outcome.output as ReasonAtomResult;
    if (answer.replayed === false && answer.startedCallIds) {
      outcome.startedCalls = answer.startedCallIds;
    }
  }
  if (chain !== undefined) recordInChain(chain, step, outcome, pending);
  return outcome;
}

/** True when the adapter's bus writes a message with its events in one round trip (`MessageEventBus`). */
function writesMessagesWithEvents(adapter: RuntimeHostAdapter): boolean {
  return (
    typeof (adapter.backends.events as Partial<MessageEventBus>).storeMessageAndEmit === 'function'
  );
}

/**
 * The `startFirstCall` of a reason step of `state` (see the core reason atom): only on a bus that
 * writes a message with its events; a call that is not idempotent needs its journal's claim.
 */
function startFirstCallOf(
  adapter: RuntimeHostAdapter,
  state: RuntimeTurnState,
): ReasonAtomInput['startFirstCall'] | undefined {
  if (!writesMessagesWithEvents(adapter)) return undefined;
  return {
    claimOf: (call) =>
      toolCallJournalOf(adapter).claimRecord?.(state.sessionId, state.turnId, call.id),
  };
}

/** Options of {@link runTurnStep}. */
export interface RunTurnStepOptions {
  /** Cancels the step: an `AbortSignal` or a core `LazySignal`. */
  signal?: SignalSource;
  /** How many user messages arrived while the activity ran, given its output. Default 0. */
  pendingUserMessages?(output: unknown): number | Promise<number>;
  /** For an act step: its calls come from a reason step just run here (see `freshCalls`). */
  freshCalls?: boolean;
  /** For an input step: the session's setup the caller just loaded (see `executeInputActivity`). */
  inputSetup?: SessionSetupSnapshot;
  /**
   * For a reason step: the session's turn snapshot the step just before read with its last write
   * (nothing written to the session since), used instead of loading one.
   */
  turnSnapshot?: TurnSnapshot;
  /**
   * For an input or act step: called with the session's turn snapshot when the bus read it with
   * the step's last write, for a reason step run next in this process.
   */
  onTurnSnapshot?(snapshot: TurnSnapshot): void;
  /**
   * For a reason step: the turn's end, written with an answer that ends it (see `endTurn` of the
   * core reason atom).
   */
  endTurn?: ReasonAtomInput['endTurn'];
  /**
   * For a reason step: the first call's start, written with the answer (see `startFirstCall` of
   * the core reason atom).
   */
  startFirstCall?: ReasonAtomInput['startFirstCall'];
  /** For an act step: the calls the reason step just run here started with its answer. */
  startedCalls?: readonly string[];
}

/**
 * Runs a parsed step's activity, then `planNextHostTurn`: the one step {@link executeTurnStep}
 * and {@link driveTurn} (so `InProcessRuntime`) share. Internal to the package.
 */
export async function runTurnStep(
  adapter: RuntimeHostAdapter,
  step: RuntimeTurnStep,
  options: RunTurnStepOptions = {},
): Promise<TurnStepOutcome> {
  // The work between the awaits is in plain functions: an async function's frame holds every
  // register of its body and is allocated on each call, so this one keeps only a few.
  const output = await startActivity(adapter, step, options);
  // No promise to wait for when the count is known at once (no steering message waits).
  const counted = options.pendingUserMessages?.(output);
  const pending = counted === undefined ? 0 : typeof counted === 'number' ? counted : await counted;
  return outcomeOf(step, output, pending);
}

/** Starts the activity of `step` with what `options` gives it; resolves its output. */
function startActivity(
  adapter: RuntimeHostAdapter,
  step: RuntimeTurnStep,
  options: RunTurnStepOptions,
): Promise<unknown> {
  // The activities' options are built by assignment, not conditional spreads (the hot path).
  switch (step.activity) {
    case 'input': {
      const request: Parameters<typeof executeInputActivity>[1] = {
        sessionId: step.state.sessionId,
        turnId: step.state.turnId,
        input: step.input,
      };
      if (step.state.modelOptions) request.modelOptions = step.state.modelOptions;
      if (options.inputSetup) request.setup = options.inputSetup;
      if (options.onTurnSnapshot) request.onTurnSnapshot = options.onTurnSnapshot;
      return executeInputActivity(adapter, request);
    }
    case 'reason': {
      const reasonOptions: Parameters<typeof executeReasonActivity>[2] = {};
      if (options.signal) reasonOptions.signal = options.signal;
      if (options.turnSnapshot) reasonOptions.turnSnapshot = options.turnSnapshot;
      if (options.endTurn) reasonOptions.endTurn = options.endTurn;
      if (options.startFirstCall) reasonOptions.startFirstCall = options.startFirstCall;
      return executeReasonActivity(adapter, step.state, reasonOptions);
    }
    case 'act': {
      const actOptions: ActActivityOptions = {};
      if (options.signal) actOptions.signal = options.signal;
      if (options.freshCalls) actOptions.freshCalls = true;
      if (options.onTurnSnapshot) actOptions.onTurnSnapshot = options.onTurnSnapshot;
      if (options.startedCalls) actOptions.startedCalls = options.startedCalls;
      return executeActActivity(adapter, step.act, actOptions);
    }
  }
}

/** The outcome of `step` given its activity's output: the planner's decision and the next step. */
function outcomeOf(step: RuntimeTurnStep, output: unknown, pending: number): TurnStepOutcome {
  const plan = planNextHostTurn(step.activity, step.state, output, pending, { trusted: true });
  return { output, plan, next: nextTurnStep(plan) };
}

function signalOf(signal: SignalSource | undefined): { signal?: SignalSource } {
  return signal ? { signal } : {};
}

/** The step a `scheduleReason` or `scheduleAct` plan asks for; `null` for the others. */
export function nextTurnStep(plan: RuntimeTurnPlan): RuntimeTurnStep | null {
  if (plan.kind === 'scheduleReason') return { activity: 'reason', state: plan.state };
  if (plan.kind === 'scheduleAct') return { activity: 'act', state: plan.state, act: plan.act };
  return null;
}

/**
 * Applies a final plan: `waitForToolResults` persists the state to resume from (see
 * {@link rememberWaitingTurn}) and marks the session as waiting; `complete` ends the
 * turn (`turn.completed` / `turn.failed`, then `session.idled`). Returns the turn's result.
 * Throws `TypeError` for a plan that schedules another step.
 */
export async function settleTurn(
  adapter: RuntimeHostAdapter,
  plan: RuntimeTurnPlan,
): Promise<TurnResult> {
  const lifecycle = new RuntimeSessionLifecycle(adapter, plan.state.sessionId);
  if (plan.kind === 'waitForToolResults') {
    await rememberWaitingTurn(adapter, plan.resume);
    await lifecycle.waitingForToolResults(plan.state.turnId);
    return turnResultOf(plan.state, {
      success: true,
      response: plan.state.lastResponseText,
      stopReason: 'waiting_for_tool_results',
    });
  }
  if (plan.kind === 'complete') {
    await lifecycle.turnEnded(plan.state, plan.outcome);
    return turnResultOf(plan.state, plan.outcome);
  }
  throw new TypeError(`settleTurn needs a final plan, got ${plan.kind}`);
}

/** The {@link TurnResult} of a turn state and its outcome. */
export function turnResultOf(state: RuntimeTurnState, outcome: RuntimeTurnOutcome): TurnResult {
  const result: TurnResult = {
    turnId: state.turnId,
    response: outcome.response,
    iterations: state.iteration,
    toolCallsCount: state.toolCallsCount,
    success: outcome.success,
    stopReason: outcome.stopReason,
    usage: { ...state.usage },
  };
  if (outcome.error) result.error = outcome.error;
  return result;
}

/**
 * Steering messages of a turn run in one process: user messages sent while the turn runs, stored
 * by {@link TurnSteering.take} at the points where the history may take them.
 */
export interface TurnSteering {
  /** Stores the messages waiting now; resolves how many it stored. */
  take(): Promise<number>;
  /**
   * How many messages wait to be taken now. Without it a final answer is never written with the
   * turn's end (a message could be waiting for it).
   */
  waiting?(): number;
}

/** Whether `steering` may have messages to take: always, unless it can tell none wait. */
function hasWaiting(steering: TurnSteering): boolean {
  return steering.waiting === undefined || steering.waiting() > 0;
}

/** Options of {@link driveTurn}. */
export interface DriveTurnOptions {
  /**
   * Cancels the turn: model calls and tools see it. A core `LazySignal` makes its `AbortSignal`
   * only when a driver, tool or hook reads it.
   */
  signal?: SignalSource;
  /** Messages to steer the turn with (see {@link TurnSteering}). */
  steering?: TurnSteering;
  /** Called with each plan before it is carried out, so the caller knows the state reached. */
  onPlan?(plan: RuntimeTurnPlan): void;
  /**
   * Consulted with each successful `complete` plan before it is carried out (and before
   * `onPlan`): it may resolve another plan to carry out instead (another reason step, or a
   * failed completion), or `undefined` to keep it. A plan it returns is not consulted again,
   * but the plans that follow it are. Structured output uses it to check the final answer and
   * feed a failing one back; it must be deterministic from the stored history, so a host that
   * replays a step plans the same.
   */
  reviewCompletion?(
    plan: Extract<RuntimeTurnPlan, { kind: 'complete' }>,
    adapter: RuntimeHostAdapter,
  ): Promise<RuntimeTurnPlan | undefined>;
  /**
   * The session's turn snapshot the step that planned `first` read with its last write (see
   * {@link RunTurnStepOptions.onTurnSnapshot}), for `first`'s reason step.
   */
  turnSnapshot?: TurnSnapshot;
}

/**
 * Runs a turn to its end in this process: the step each plan schedules (through the same
 * {@link runTurnStep} as {@link executeTurnStep}), until a plan waits or completes, then
 * {@link settleTurn}. Steering messages join the history before every reason step, and after a
 * model answer without tool calls (they then count as pending user messages for the planner, so
 * the model reads them instead of the turn ending).
 */
export async function driveTurn(
  adapter: RuntimeHostAdapter,
  first: RuntimeTurnPlan,
  options: DriveTurnOptions = {},
): Promise<TurnResult> {
  const { steering } = options;
  let plan = first;
  // Whether the last step was a reason step that stored its answer itself (so the act step after
  // it has no stored results to look for).
  let freshAnswer = false;
  // The calls that reason step started with its answer (see `startFirstCall`).
  let startedCalls: readonly string[] | undefined;
  // The answer's write can carry the first call's start and the turn's end only on a bus that
  // writes a message with its events (the reason atom asks for neither on another).
  const jointBus = writesMessagesWithEvents(adapter);
  const startFirstCall = startFirstCallOf(adapter, first.state);
  // The snapshot the last step read with its last write, for a reason step right after it.
  let carried = options.turnSnapshot;
  const onTurnSnapshot = (snapshot: TurnSnapshot) => {
    carried = snapshot;
  };
  // Set when a reason step wrote the turn's end with its final answer (see `endTurnWith`).
  let endedWithAnswer = false;
  const endTurn =
    options.reviewCompletion || !jointBus
      ? undefined
      : endTurnWith(adapter, steering, () => {
          endedWithAnswer = true;
        });
  for (;;) {
    if (plan.kind === 'complete' && plan.outcome.success && options.reviewCompletion) {
      const reviewed = await options.reviewCompletion(plan, adapter);
      if (reviewed) {
        plan = reviewed;
        carried = undefined;
      }
    }
    options.onPlan?.(plan);
    const step = nextTurnStep(plan);
    if (!step) {
      if (!endedWithAnswer || plan.kind !== 'complete') return settleTurn(adapter, plan);
      // Its end went with the final answer: what settling does after the end's write is left.
      await new RuntimeSessionLifecycle(adapter, plan.state.sessionId).forgetTurnJournal(
        plan.state,
      );
      return turnResultOf(plan.state, plan.outcome);
    }
    let turnSnapshot = carried;
    carried = undefined;
    // Steering messages that arrived during the previous step join the history first (a
    // snapshot read before them is then out of date).
    if (
      step.activity === 'reason' &&
      steering &&
      hasWaiting(steering) &&
      (await steering.take()) > 0
    ) {
      turnSnapshot = undefined;
    }
    const stepOptions: RunTurnStepOptions = {
      // Messages that arrived while the model answered: stored now unless tool calls must get
      // their results first (they are then stored before the next reason step).
      // Not after the turn's end was written with the answer: a message that came since is
      // left for the turn that comes next.
      pendingUserMessages: (output) =>
        steering &&
        step.activity === 'reason' &&
        !endedWithAnswer &&
        answersWithoutToolCalls(output as ReasonAtomResult) &&
        hasWaiting(steering)
          ? steering.take()
          : 0,
    };
    if (options.signal) stepOptions.signal = options.signal;
    if (step.activity === 'reason') {
      if (turnSnapshot) stepOptions.turnSnapshot = turnSnapshot;
      if (endTurn) stepOptions.endTurn = endTurn(step.state);
      if (startFirstCall) stepOptions.startFirstCall = startFirstCall;
    } else if (step.activity === 'act') {
      stepOptions.onTurnSnapshot = onTurnSnapshot;
      if (freshAnswer) {
        stepOptions.freshCalls = true;
        if (startedCalls) stepOptions.startedCalls = startedCalls;
      }
    }
    const outcome = await runTurnStep(adapter, step, stepOptions);
    freshAnswer =
      step.activity === 'reason' && (outcome.output as ReasonAtomResult).replayed === false;
    startedCalls = freshAnswer ? (outcome.output as ReasonAtomResult).startedCallIds : undefined;
    plan = outcome.plan;
  }
}

/**
 * For a reason step of `state`: the turn's end to write with an answer that ends the turn, as
 * `settleTurn` would write it once the planner completes the turn successfully. `undefined`
 * (the end left to settling) when the planner would not complete it or steering messages wait.
 * `onWritten` is told once the end is written.
 */
function endTurnWith(
  adapter: RuntimeHostAdapter,
  steering: TurnSteering | undefined,
  onWritten: () => void,
): ((state: RuntimeTurnState) => ReasonAtomInput['endTurn']) | undefined {
  if (steering && !steering.waiting) return undefined;
  return (state) => (answer) => {
    if (steering?.waiting && steering.waiting() > 0) return undefined;
    const plan = planNextHostTurn('reason', state, answer, 0, { trusted: true });
    if (plan.kind !== 'complete' || !plan.outcome.success) return undefined;
    const lifecycle = new RuntimeSessionLifecycle(adapter, state.sessionId);
    return {
      sessionStatus: 'idle',
      events: lifecycle.turnEndedRequests(plan.state, plan.outcome),
      releaseLease: {},
      onWritten,
    };
  };
}

function answersWithoutToolCalls(output: ReasonAtomResult): boolean {
  return output.success && output.toolCalls.length === 0;
}
