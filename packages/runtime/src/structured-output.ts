import {
  EverrunsError,
  formatZodError,
  type LlmRequestOptions,
  type LlmResponseFormat,
  MAX_TOOL_ARGUMENTS_DEPTH,
  type Message,
  toolArgumentsTextOverLimit,
} from '@everruns-ts/core';
import { z } from 'zod';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';
import type { RuntimeTurnPlan } from './turn-plan.js';

/**
 * A zod (v4) schema for a turn's structured output: `runTurn(..., { output })`. Its JSON schema
 * (`z.toJSONSchema`, input side) becomes the turn's `responseFormat`; its parse of the answer is
 * `TurnResult.output`.
 */
export type TurnOutputSchema = z.ZodType;

/** The `responseFormat.name` of a turn's structured output. */
export const TURN_OUTPUT_FORMAT_NAME = 'output';

/**
 * The key a non-object output schema is wrapped under: providers take only object schemas at the
 * top level (OpenAI's `json_schema`, Anthropic's tool input), so `z.array(...)` is asked for as
 * `{ "value": [...] }` and unwrapped before `TurnResult.output`.
 */
export const TURN_OUTPUT_WRAPPER_KEY = 'value';

/** Metadata key of the feedback message a turn stores when an answer fails its output schema. */
export const OUTPUT_FEEDBACK_METADATA_KEY = 'outputFeedback';

/** A `complete` plan, as `driveTurn`'s `reviewCompletion` receives it. */
export type CompletePlan = Extract<RuntimeTurnPlan, { kind: 'complete' }>;

type CheckedAnswer =
  | { ok: true; value: unknown }
  | { ok: false; problem: string; issues?: z.core.$ZodIssue[] };

function isZodSchema(value: unknown): value is TurnOutputSchema {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { _zod?: unknown })._zod === 'object' &&
    typeof (value as { safeParse?: unknown }).safeParse === 'function'
  );
}

/** The text of a model answer without one surrounding Markdown code fence, trimmed. */
function unfenced(text: string): string {
  const trimmed = text.trim();
  const fenced = /^```[A-Za-z0-9_-]*\r?\n([\s\S]*?)\r?\n?```$/.exec(trimmed);
  return fenced?.[1] !== undefined ? fenced[1].trim() : trimmed;
}

/**
 * A turn's structured output: the `responseFormat` the turn's model calls carry, the check of
 * each final answer (with one feedback step) and the typed value. One instance per turn.
 */
export class StructuredOutput {
  /** The JSON schema request every model call of the turn carries. */
  readonly responseFormat: LlmResponseFormat;
  readonly #schema: TurnOutputSchema;
  readonly #wrapped: boolean;
  #value: { text: string; value: unknown } | undefined;

  private constructor(
    schema: TurnOutputSchema,
    responseFormat: LlmResponseFormat,
    wrapped: boolean,
  ) {
    this.#schema = schema;
    this.responseFormat = responseFormat;
    this.#wrapped = wrapped;
  }

  /**
   * The structured output of a turn's `output` option; `undefined` when it is `undefined`.
   * Throws `INVALID_INPUT` when it is not a zod v4 schema or has no JSON schema (a `z.date()`,
   * a `z.custom()`, …), before the turn writes anything.
   */
  static of(output: unknown): StructuredOutput | undefined {
    if (output === undefined) return undefined;
    if (!isZodSchema(output)) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: 'options.output must be a zod schema (zod v4), such as z.object({ … })',
      });
    }
    let json: Record<string, unknown>;
    try {
      json = z.toJSONSchema(output, { io: 'input' }) as Record<string, unknown>;
    } catch (error) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `options.output has no JSON schema: ${(error as Error).message}`,
        cause: error,
      });
    }
    const { $schema: _dialect, $defs, description, ...body } = json;
    const wrapped = body.type !== 'object';
    const schema: Record<string, unknown> = wrapped
      ? {
          type: 'object',
          properties: { [TURN_OUTPUT_WRAPPER_KEY]: body },
          required: [TURN_OUTPUT_WRAPPER_KEY],
          additionalProperties: false,
        }
      : { ...body, ...(description !== undefined ? { description } : {}) };
    if ($defs !== undefined) schema.$defs = $defs;
    const responseFormat: LlmResponseFormat = {
      type: 'json_schema',
      name: TURN_OUTPUT_FORMAT_NAME,
      schema,
      ...(typeof description === 'string' ? { description } : {}),
    };
    return new StructuredOutput(output, responseFormat, wrapped);
  }

  /**
   * The turn's request options with this output's `responseFormat` added. Throws
   * `INVALID_INPUT` when they set a `responseFormat` of their own.
   */
  modelOptions(options: LlmRequestOptions | undefined): LlmRequestOptions {
    if (options?.responseFormat !== undefined) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message:
          'Give either options.output or options.modelOptions.responseFormat, not both: output sets the responseFormat',
        details: { option: 'responseFormat' },
      });
    }
    return { ...options, responseFormat: this.responseFormat };
  }

  /** Parses and validates an answer's text against the schema. */
  check(text: string): CheckedAnswer {
    let json: unknown;
    const body = unfenced(text);
    // Deeper answers are refused unparsed: parsing 100,000 nested brackets holds the event loop,
    // and code that walks the answer by recursion (JSON.stringify, zod) could overflow the stack.
    if (toolArgumentsTextOverLimit(body, MAX_TOOL_ARGUMENTS_DEPTH, Number.POSITIVE_INFINITY)) {
      return {
        ok: false,
        problem: `it nests objects and arrays more than ${MAX_TOOL_ARGUMENTS_DEPTH} levels deep`,
      };
    }
    try {
      json = JSON.parse(body);
    } catch (error) {
      return { ok: false, problem: `it is not valid JSON (${(error as Error).message})` };
    }
    if (this.#wrapped) {
      if (
        typeof json !== 'object' ||
        json === null ||
        Array.isArray(json) ||
        !Object.hasOwn(json, TURN_OUTPUT_WRAPPER_KEY)
      ) {
        return {
          ok: false,
          problem: `it must be an object whose "${TURN_OUTPUT_WRAPPER_KEY}" holds the answer`,
        };
      }
      json = (json as Record<string, unknown>)[TURN_OUTPUT_WRAPPER_KEY];
    }
    const parsed = this.#schema.safeParse(json);
    if (!parsed.success) {
      return {
        ok: false,
        problem: `it does not match the schema: ${formatZodError(parsed.error)}`,
        issues: parsed.error.issues,
      };
    }
    return { ok: true, value: parsed.data };
  }

  /**
   * `driveTurn`'s `reviewCompletion`: consulted with each successful `complete` plan. A final
   * model answer (`end_turn`) that matches the schema keeps the plan (its value is kept for
   * {@link finish}). One that does not is fed back once: a `user` message saying what is wrong
   * (idempotency key `<turnId>/output-feedback/<iteration>`, metadata
   * `outputFeedback: { iteration }`) is stored and another reason step is planned. When the turn
   * already had its feedback (or has no iteration left), the turn fails with `OUTPUT_INVALID`
   * (stop reason `error`, details `issues`, the raw text as `response`). Deterministic from the
   * stored history: a replay stores nothing twice and plans the same.
   */
  async review(
    plan: CompletePlan,
    adapter: RuntimeHostAdapter,
  ): Promise<RuntimeTurnPlan | undefined> {
    if (plan.outcome.stopReason !== 'end_turn') return undefined;
    const text = plan.outcome.response;
    const checked = this.check(text);
    if (checked.ok) {
      this.#value = { text, value: checked.value };
      return undefined;
    }
    const { sessionId, turnId, iteration, maxIterations } = plan.state;
    const messages = adapter.backends.messages;
    const feedback = (await messages.loadFiltered(sessionId, { roles: ['user'], turnId })).filter(
      (message) => feedbackIteration(message) !== undefined,
    );
    const earlier = feedback.some((message) => feedbackIteration(message) !== iteration);
    if (!earlier && iteration < maxIterations) {
      if (!feedback.some((message) => feedbackIteration(message) === iteration)) {
        await this.#storeFeedback(adapter, plan, checked.problem);
      }
      return { kind: 'scheduleReason', state: { ...plan.state, iteration: iteration + 1 } };
    }
    return {
      kind: 'complete',
      state: plan.state,
      outcome: {
        success: false,
        response: text,
        stopReason: 'error',
        error: {
          code: 'OUTPUT_INVALID',
          message: `The model's answer does not match the output schema: ${checked.problem}`,
          details: {
            issues: checked.issues ?? [],
            problem: checked.problem,
            feedbackGiven: earlier,
          },
        },
      },
    };
  }

  async #storeFeedback(
    adapter: RuntimeHostAdapter,
    plan: CompletePlan,
    problem: string,
  ): Promise<void> {
    const { sessionId, turnId, iteration } = plan.state;
    const { messages, events } = adapter.backends;
    const wrapper = this.#wrapped
      ? ` as an object whose "${TURN_OUTPUT_WRAPPER_KEY}" member holds the answer`
      : '';
    const message = await messages.storeMessage(sessionId, {
      role: 'user',
      turnId,
      content: [
        {
          type: 'text',
          text: `Your last answer cannot be used: ${problem}. Answer again with only a JSON value${wrapper} that matches the required output schema, and nothing else.`,
        },
      ],
      idempotencyKey: `${turnId}/output-feedback/${iteration}`,
      metadata: { [OUTPUT_FEEDBACK_METADATA_KEY]: { iteration } },
    });
    await events.emit({
      type: 'input.message',
      sessionId,
      turnId,
      data: { messageId: message.id, seq: message.seq, outputFeedback: true },
    });
  }

  /**
   * The turn's result with `output` set to the parsed answer when the turn ended successfully
   * with a final answer (`end_turn`) that matched the schema; otherwise the result as it is.
   */
  finish<Result extends { success: boolean; stopReason: string; response: string }>(
    result: Result,
  ): Result & { output?: unknown } {
    if (
      !result.success ||
      result.stopReason !== 'end_turn' ||
      this.#value === undefined ||
      this.#value.text !== result.response
    ) {
      return result;
    }
    return { ...result, output: this.#value.value };
  }
}

function feedbackIteration(message: Message): number | undefined {
  const feedback = message.metadata?.[OUTPUT_FEEDBACK_METADATA_KEY] as
    | { iteration?: unknown }
    | undefined;
  return typeof feedback?.iteration === 'number' ? feedback.iteration : undefined;
}
