import { lazySchema, llmUsageSchema } from '@everruns-ts/core';
import { z } from 'zod';
import { turnStopReasonSchema } from './turn-plan.js';

// The parts a streamed turn yields, in the order they happen. The schemas are the contract: the
// in-process `streamTurn`, a durable host's streaming handle and the web adapters all speak them.

const turnErrorSchema = lazySchema(() =>
  z.object({
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
);

/** Schema of `TurnResult`: the outcome of one turn. */
export const turnResultSchema = lazySchema(() =>
  z.object({
    turnId: z.string(),
    /** The model's final text. */
    response: z.string(),
    /** Reason steps run. */
    iterations: z.number().int().nonnegative(),
    toolCallsCount: z.number().int().nonnegative(),
    /** False when the model failed, the session is blocked or a limit stopped the turn. */
    success: z.boolean(),
    error: turnErrorSchema.optional(),
    stopReason: turnStopReasonSchema,
    /** The structured output of a turn run with an `output` schema (see `TurnResult.output`). */
    output: z.unknown().optional(),
    /** The turn's model calls' usage added up (see `TurnResult.usage`). */
    usage: llmUsageSchema.optional(),
    /** What the turn cost, when the runtime has prices for its models (see `TurnResult.cost`). */
    cost: z.number().nonnegative().optional(),
  }),
);

/** The turn began: its input is stored and the session is active. */
export const turnStartPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('turn-start'),
    sessionId: z.string(),
    turnId: z.string(),
  }),
);

/** A reason step began: the model is being called (1-based `iteration`). */
export const stepStartPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('step-start'),
    iteration: z.number().int().positive(),
  }),
);

/** A piece of the model's answer text, as it arrives. */
export const textDeltaPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('text-delta'),
    iteration: z.number().int().positive(),
    text: z.string(),
  }),
);

/** A piece of the model's reasoning (thinking) text; never part of the answer. */
export const reasoningDeltaPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('reasoning-delta'),
    iteration: z.number().int().positive(),
    text: z.string(),
  }),
);

/**
 * The model began a tool call. `toolCallId` is the provider's id; the `tool-call` part that
 * completes it carries the id the call is stored under, which differs only when the provider
 * repeated an id the session already holds (the runtime then stores the call under a fresh one).
 */
export const toolCallStartPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('tool-call-start'),
    iteration: z.number().int().positive(),
    toolCallId: z.string(),
    toolName: z.string(),
  }),
);

/** A piece of a tool call's argument text (JSON, possibly incomplete), as it arrives. */
export const toolCallDeltaPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('tool-call-delta'),
    iteration: z.number().int().positive(),
    toolCallId: z.string(),
    argumentsDelta: z.string(),
  }),
);

/** A complete tool call of the stored answer, with its parsed arguments. */
export const toolCallPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('tool-call'),
    iteration: z.number().int().positive(),
    toolCallId: z.string(),
    toolName: z.string(),
    arguments: z.record(z.string(), z.unknown()),
  }),
);

/** A tool call's result as stored for the model (`isError` for a tool error). */
export const toolResultPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('tool-result'),
    iteration: z.number().int().positive(),
    toolCallId: z.string(),
    toolName: z.string(),
    result: z.string(),
    isError: z.boolean(),
  }),
);

/** A reason step ended: its answer is stored (or the model call failed: `success: false`). */
export const stepFinishPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('step-finish'),
    iteration: z.number().int().positive(),
    success: z.boolean(),
    usage: llmUsageSchema.optional(),
    stopReason: z.string().optional(),
  }),
);

/** The turn ended (or waits for client tool results); always the last part of a turn that ended. */
export const turnFinishPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('turn-finish'),
    result: turnResultSchema,
  }),
);

/**
 * Something went wrong: a failed model call or a failed turn (then `turn-finish` follows with
 * `success: false`), or the turn could not run or was aborted (then the stream ends here and
 * `result` rejects with the same typed error).
 */
export const errorPartSchema = lazySchema(() =>
  z.object({
    type: z.literal('error'),
    error: turnErrorSchema,
  }),
);

/** Schema of {@link TurnStreamPart}. */
export const turnStreamPartSchema = lazySchema(() =>
  z.discriminatedUnion('type', [
    turnStartPartSchema,
    stepStartPartSchema,
    textDeltaPartSchema,
    reasoningDeltaPartSchema,
    toolCallStartPartSchema,
    toolCallDeltaPartSchema,
    toolCallPartSchema,
    toolResultPartSchema,
    stepFinishPartSchema,
    turnFinishPartSchema,
    errorPartSchema,
  ]),
);

/** One part of a streamed turn (plain JSON). */
export type TurnStreamPart = z.infer<typeof turnStreamPartSchema>;

/** The `type` of a {@link TurnStreamPart}. */
export type TurnStreamPartType = TurnStreamPart['type'];

/**
 * A turn as it runs: iterate it for its parts (once), await `result` for its outcome. `result`
 * settles whether or not anyone iterates.
 */
export interface TurnStreamLike extends AsyncIterable<TurnStreamPart> {
  /** The turn's result; rejects with the typed error of a turn that could not run or was aborted. */
  readonly result: Promise<z.infer<typeof turnResultSchema>>;
}
