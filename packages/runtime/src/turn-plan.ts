import {
  type ActAtomResult,
  addLlmUsage,
  DEFAULT_TURN_LIMITS,
  EverrunsError,
  formatZodError,
  type InputAtomResult,
  type LlmRequestOptions,
  lazyField,
  lazySchema,
  llmRequestOptionsSchema,
  llmUsageSchema,
  type ReasonAtomResult,
  toolCallSchema,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Why a turn ended. */
export const turnStopReasonSchema = lazySchema(() =>
  z.enum([
    'end_turn',
    'max_iterations',
    'repeated_tool_calls',
    'waiting_for_tool_results',
    'llm_error',
    'provider_not_configured',
    'dependency_blocked',
    'budget_exhausted',
    'aborted',
    'error',
  ]),
);
/** See {@link turnStopReasonSchema}. */
export type TurnStopReason = z.infer<typeof turnStopReasonSchema>;

/** Schema of {@link RuntimeTurnState}. */
export const runtimeTurnStateSchema = lazySchema(() =>
  z.object({
    sessionId: z.string().min(1),
    turnId: z.string().min(1),
    inputMessageId: z.string().optional(),
    /** Iteration of the next or running reason step, 1-based; 0 before the first. */
    iteration: z.number().int().nonnegative(),
    /** The limit in force, fixed when the turn started (a resumed host cannot reset it). */
    maxIterations: z.number().int().positive(),
    maxRepeatedToolCalls: z.number().int().positive(),
    toolCallsCount: z.number().int().nonnegative(),
    /** Signature of the last act step's calls and how many consecutive steps had it. */
    lastCallSignature: z.string().optional(),
    repeatedCallCount: z.number().int().nonnegative(),
    /** Text of the last model answer. */
    lastResponseText: z.string(),
    /** Usage summed over the turn's model calls (detail fields present once any call reported them). */
    usage: llmUsageSchema,
    /** The turn's request options (`runTurn`'s `modelOptions`), sent with each of its model calls. */
    modelOptions: z.optional(lazyField(llmRequestOptionsSchema)),
    /**
     * The `responseId` of the turn's last model answer, handed to the next reason step's driver
     * (`LlmRequest.previousResponseId`); cleared when a turn starts, as upstream's
     * `previous_response_id`.
     */
    previousResponseId: z.string().min(1).optional(),
    /**
     * Stream the turn's model answers: reason steps emit ephemeral delta events as the answer
     * arrives (`streamTurn`, a durable host's streaming handle). Stored results are the same.
     */
    stream: z.boolean().optional(),
  }),
);
/** What a host carries between the steps of one turn: plain JSON. */
export type RuntimeTurnState = z.infer<typeof runtimeTurnStateSchema>;

/** Schema of {@link RuntimeActPlan}. */
export const runtimeActPlanSchema = lazySchema(() =>
  z.object({
    sessionId: z.string().min(1),
    turnId: z.string().min(1),
    iteration: z.number().int().positive(),
    toolCalls: z.array(toolCallSchema),
    /** The `responseId` of the answer whose tool calls these are (see {@link RuntimeTurnState}). */
    previousResponseId: z.string().min(1).optional(),
  }),
);
/** The payload of an act step. */
export type RuntimeActPlan = z.infer<typeof runtimeActPlanSchema>;

/** How a completed turn ended. */
export interface RuntimeTurnOutcome {
  success: boolean;
  response: string;
  stopReason: TurnStopReason;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

/**
 * The planner's decision. `state` is always the state the turn has reached; hosts persist it (or
 * `resume`) and hand it to the next step.
 */
export type RuntimeTurnPlan =
  | { kind: 'scheduleReason'; state: RuntimeTurnState }
  | { kind: 'scheduleAct'; state: RuntimeTurnState; act: RuntimeActPlan }
  | {
      kind: 'waitForToolResults';
      state: RuntimeTurnState;
      /**
       * The state to continue from once the client has submitted its tool results: the next
       * iteration (as upstream). Plan the continuation with {@link planResumeAfterToolResults}.
       */
      resume: RuntimeTurnState;
    }
  | { kind: 'complete'; state: RuntimeTurnState; outcome: RuntimeTurnOutcome };

/** The activities a planner decision can follow. */
export type CompletedActivity = 'input' | 'reason' | 'act';

/** The state of a turn before its input step. */
export function initialTurnState(options: {
  sessionId: string;
  turnId: string;
  maxIterations?: number;
  maxRepeatedToolCalls?: number;
  /** The turn's request options; see {@link RuntimeTurnState}. */
  modelOptions?: LlmRequestOptions;
}): RuntimeTurnState {
  return {
    sessionId: options.sessionId,
    turnId: options.turnId,
    inputMessageId: undefined,
    iteration: 0,
    maxIterations: options.maxIterations ?? DEFAULT_TURN_LIMITS.maxIterations,
    maxRepeatedToolCalls: options.maxRepeatedToolCalls ?? DEFAULT_TURN_LIMITS.maxRepeatedToolCalls,
    toolCallsCount: 0,
    lastCallSignature: undefined,
    repeatedCallCount: 0,
    lastResponseText: '',
    usage: { inputTokens: 0, outputTokens: 0 },
    modelOptions: options.modelOptions ? options.modelOptions : undefined,
    stream: undefined,
  };
}

/**
 * A copy of `state` with every key of {@link runtimeTurnStateSchema} in the schema's order, an
 * absent optional one `undefined` (which JSON leaves out, so a persisted state reads the same),
 * except `previousResponseId`, there only when given (a state without one has no such key).
 * Every state the planner makes then has one of two hidden classes: a state that gained keys as
 * the turn went on (`{ ...state, inputMessageId }`, a conditional spread) took V8's slow copy
 * path and made each planner step several times dearer (4 steps of a math turn ~9 µs → <1 µs
 * of CPU on the shared machine).
 */
function shapedState(
  state: RuntimeTurnState,
  previousResponseId: string | undefined,
): RuntimeTurnState {
  if (previousResponseId === undefined) {
    return {
      sessionId: state.sessionId,
      turnId: state.turnId,
      inputMessageId: state.inputMessageId,
      iteration: state.iteration,
      maxIterations: state.maxIterations,
      maxRepeatedToolCalls: state.maxRepeatedToolCalls,
      toolCallsCount: state.toolCallsCount,
      lastCallSignature: state.lastCallSignature,
      repeatedCallCount: state.repeatedCallCount,
      lastResponseText: state.lastResponseText,
      usage: state.usage,
      modelOptions: state.modelOptions,
      stream: state.stream,
    };
  }
  return {
    sessionId: state.sessionId,
    turnId: state.turnId,
    inputMessageId: state.inputMessageId,
    iteration: state.iteration,
    maxIterations: state.maxIterations,
    maxRepeatedToolCalls: state.maxRepeatedToolCalls,
    toolCallsCount: state.toolCallsCount,
    lastCallSignature: state.lastCallSignature,
    repeatedCallCount: state.repeatedCallCount,
    lastResponseText: state.lastResponseText,
    usage: state.usage,
    modelOptions: state.modelOptions,
    previousResponseId,
    stream: state.stream,
  };
}

const inputOutputSchema = lazySchema(() =>
  z.object({
    turnId: z.string().min(1),
    messageId: z.string().min(1),
    seq: z.number().int(),
    maxIterations: z.number().int().positive().optional(),
  }),
);
const reasonOutputSchema = lazySchema(() =>
  z.object({
    success: z.boolean(),
    messageId: z.string().optional(),
    text: z.string(),
    toolCalls: z.array(toolCallSchema),
    usage: llmUsageSchema.optional(),
    stopReason: z.string().optional(),
    responseId: z.string().optional(),
    replayed: z.boolean(),
    error: z
      .object({
        code: z.string(),
        message: z.string(),
        details: z.record(z.string(), z.unknown()).optional(),
      })
      .optional(),
  }),
);
const actOutputSchema = lazySchema(() =>
  z.object({
    results: z.array(
      z.object({ toolCallId: z.string(), toolName: z.string(), isError: z.boolean() }).loose(),
    ),
    waitingForToolResults: z.boolean(),
    blocked: z.boolean(),
    callSignature: z.string(),
    blocker: z
      .object({ code: z.string(), message: z.string(), dependencyId: z.string().optional() })
      .optional(),
  }),
);

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string, trusted: boolean): T {
  if (trusted) return value as T;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'STATE_INVALID',
      message: `Cannot plan the next step: the ${what} does not parse: ${formatZodError(parsed.error)}`,
    });
  }
  return parsed.data;
}

/** Options of {@link planNextHostTurn}. */
export interface PlanOptions {
  /**
   * Skip validation because `state` and `output` come straight from this process's own
   * activities (the in-process runtime does this). Hosts reading them from a queue must not.
   */
  trusted?: boolean;
}

/**
 * Decides the next step of a turn after an activity finished. Pure and deterministic: the same
 * arguments always give the same plan, so a host may persist `state` and `output`, crash, and
 * plan again in another process. A `state` or `output` that does not parse is a `STATE_INVALID`
 * error, never a guess.
 *
 * Rules (upstream's, plus the iteration limit enforced from the persisted state):
 * - after `input`: reason, iteration 1, with no `previousResponseId`;
 * - every state after a reason step carries that answer's `responseId` as `previousResponseId`
 *   (and the act plan too), so the next reason step's driver can continue from it;
 * - after `reason`: a failure completes the turn unsuccessfully (`llm_error`; `error` when a
 *   capability failed to build its prompt; or
 *   `dependency_blocked`); tool calls schedule an act; otherwise, user messages that arrived
 *   meanwhile schedule another reason (within the limit); otherwise the turn completes;
 * - after `act`: a blocked act completes the turn (`dependency_blocked`); client-side tools wait
 *   for results (the `resume` state is the next iteration); the same calls repeated
 *   `maxRepeatedToolCalls` times in a row stop the turn; reaching `maxIterations` completes the
 *   turn successfully with stop reason `max_iterations`; otherwise reason again with the
 *   iteration + 1.
 *
 * Unknown activities and unparseable `state` or `output` throw `STATE_INVALID`.
 */
export function planNextHostTurn(
  completedActivity: CompletedActivity,
  state: RuntimeTurnState,
  output: unknown,
  pendingUserMessages = 0,
  options: PlanOptions = {},
): RuntimeTurnPlan {
  const trusted = options.trusted === true;
  if (!Number.isInteger(pendingUserMessages) || pendingUserMessages < 0) {
    throw new TypeError('pendingUserMessages must be a non-negative integer');
  }
  const current = parseOrThrow(runtimeTurnStateSchema, state, 'turn state', trusted);
  switch (completedActivity) {
    case 'input': {
      const result = parseOrThrow(
        inputOutputSchema,
        output,
        'input output',
        trusted,
      ) as InputAtomResult & {
        maxIterations?: number;
      };
      if (result.turnId !== current.turnId) {
        throw new EverrunsError({
          code: 'STATE_INVALID',
          message: `Cannot plan the next step: the input output belongs to turn ${result.turnId}, the state to turn ${current.turnId}`,
          details: { turnId: current.turnId, outputTurnId: result.turnId },
        });
      }
      // A turn starts a new chain of model answers (upstream clears `previous_response_id`).
      const state = shapedState(current, undefined);
      state.turnId = result.turnId;
      state.inputMessageId = result.messageId;
      state.iteration = 1;
      if (result.maxIterations !== undefined && current.iteration === 0) {
        state.maxIterations = result.maxIterations;
      }
      return { kind: 'scheduleReason', state };
    }
    case 'reason': {
      const result = parseOrThrow(
        reasonOutputSchema,
        output,
        'reason output',
        trusted,
      ) as ReasonAtomResult;
      const next = shapedState(current, result.responseId ? result.responseId : undefined);
      next.lastResponseText = result.text;
      next.usage = addLlmUsage(current.usage, result.usage);
      if (!result.success) {
        return {
          kind: 'complete',
          state: next,
          outcome: {
            success: false,
            response: result.text,
            stopReason: reasonFailureStopReason(result.error?.code),
            error: result.error ?? { code: 'llm_error', message: 'The model call failed' },
          },
        };
      }
      if (result.toolCalls.length > 0) {
        next.toolCallsCount = current.toolCallsCount + result.toolCalls.length;
        return {
          kind: 'scheduleAct',
          state: next,
          act: {
            sessionId: current.sessionId,
            turnId: current.turnId,
            iteration: current.iteration,
            toolCalls: result.toolCalls,
            ...(result.responseId ? { previousResponseId: result.responseId } : {}),
          },
        };
      }
      if (pendingUserMessages > 0 && current.iteration < current.maxIterations) {
        next.iteration = current.iteration + 1;
        return { kind: 'scheduleReason', state: next };
      }
      return {
        kind: 'complete',
        state: next,
        outcome: { success: true, response: result.text, stopReason: 'end_turn' },
      };
    }
    case 'act': {
      const result = parseOrThrow(
        actOutputSchema,
        output,
        'act output',
        trusted,
      ) as unknown as ActAtomResult;
      if (result.blocked) {
        // As upstream's act activity: a session whose harness or agent went away while the turn
        // ran ends the turn as failed with the blocker's message.
        const blocker = (result as { blocker?: { code: string; message: string } }).blocker;
        const message = blocker?.message ?? 'The act step could not run: the session is blocked';
        return {
          kind: 'complete',
          state: current,
          outcome: {
            success: false,
            response: message,
            stopReason: 'dependency_blocked',
            error: {
              code: 'DEPENDENCY_BLOCKED',
              message,
              ...(blocker ? { details: { blocker } } : {}),
            },
          },
        };
      }
      if (result.waitingForToolResults) {
        const resume = shapedState(current, current.previousResponseId);
        resume.iteration = current.iteration + 1;
        return { kind: 'waitForToolResults', state: current, resume };
      }
      const repeatedCallCount =
        current.lastCallSignature === result.callSignature ? current.repeatedCallCount + 1 : 1;
      const next = shapedState(current, current.previousResponseId);
      next.lastCallSignature = result.callSignature;
      next.repeatedCallCount = repeatedCallCount;
      if (repeatedCallCount >= current.maxRepeatedToolCalls) {
        return {
          kind: 'complete',
          state: next,
          outcome: {
            success: false,
            response: current.lastResponseText,
            stopReason: 'repeated_tool_calls',
            error: {
              code: 'LIMIT_EXCEEDED',
              message: `The model repeated the same tool calls ${repeatedCallCount} times in a row`,
            },
          },
        };
      }
      if (current.iteration >= current.maxIterations) {
        return {
          kind: 'complete',
          state: next,
          outcome: {
            success: true,
            response: current.lastResponseText,
            stopReason: 'max_iterations',
          },
        };
      }
      // The next state is `next` one iteration on: no copy needed, the other plans returned.
      next.iteration = current.iteration + 1;
      return { kind: 'scheduleReason', state: next };
    }
    default:
      throw new EverrunsError({
        code: 'STATE_INVALID',
        message: `Unknown completed activity ${JSON.stringify(completedActivity)}`,
      });
  }
}

/**
 * Plans the continuation of a turn that waited for client-side tool results, from the `resume`
 * state of a `waitForToolResults` plan: reason again, or complete with `max_iterations` when the
 * persisted limit is already reached. Throws `STATE_INVALID` when `resume` does not parse.
 */
export function planResumeAfterToolResults(
  resume: RuntimeTurnState,
  options: PlanOptions = {},
): RuntimeTurnPlan {
  const current = parseOrThrow(
    runtimeTurnStateSchema,
    resume,
    'turn state',
    options.trusted === true,
  );
  if (current.iteration > current.maxIterations) {
    const state = shapedState(current, current.previousResponseId);
    state.iteration = current.maxIterations;
    return {
      kind: 'complete',
      state,
      outcome: { success: true, response: current.lastResponseText, stopReason: 'max_iterations' },
    };
  }
  return { kind: 'scheduleReason', state: current };
}

/**
 * The stop reason of a failed reason step, from its error code: a dependency blocker, a budget a
 * capability found used up, a model call without a set-up provider (`provider_not_configured`),
 * the model's failure (`llm_error`, the code of every other driver failure), or any other
 * capability failure or stop (`error`).
 */
function reasonFailureStopReason(code: string | undefined): TurnStopReason {
  switch (code) {
    case 'DEPENDENCY_BLOCKED':
      return 'dependency_blocked';
    case 'BUDGET_EXHAUSTED':
      return 'budget_exhausted';
    case undefined:
    case 'llm_error':
      return 'llm_error';
    case 'provider_not_configured':
      return 'provider_not_configured';
    default:
      return 'error';
  }
}
