import { z } from 'zod';
import { EverrunsError } from './errors.js';
import { formatZodError } from './format-zod-error.js';
import { lazyField, lazySchema } from './lazy-schema.js';

/**
 * Body fields `extraBody` may not set: the driver owns them (the model, the history, the tools
 * and whether the answer streams). A request that names one is `INVALID_INPUT`, never a silent
 * override. Every other key of `extraBody` is merged last and wins over the driver's own fields.
 */
export const RESERVED_EXTRA_BODY_KEYS = Object.freeze([
  'model',
  'messages',
  'tools',
  'stream',
  'stream_options',
  'system',
] as const);

/** Schema of {@link LlmToolChoice}. */
export const llmToolChoiceSchema = lazySchema(() =>
  z.union([
    z.enum(['auto', 'none', 'required']),
    z.object({ type: z.literal('tool'), name: z.string().min(1) }).strict(),
  ]),
);

/**
 * Which tools the model may or must call: `auto` (the model decides, the providers' default),
 * `none` (no tool call), `required` (at least one tool call), or `{ type: 'tool', name }` (that
 * tool; a name the request does not offer is `INVALID_INPUT`).
 */
export type LlmToolChoice = z.infer<typeof llmToolChoiceSchema>;

/** Schema of {@link LlmResponseFormat}. */
export const llmResponseFormatSchema = lazySchema(() =>
  z
    .object({
      type: z.literal('json_schema'),
      /** Name of the schema: letters, digits, `_` and `-`, at most 64 characters. */
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ or -, 1 to 64 of them'),
      /** What the answer is for, shown to the model where the provider supports it. */
      description: z.string().optional(),
      /** The JSON schema the answer must match. */
      schema: z.record(z.string(), z.unknown()),
      /** Whether the provider must follow the schema exactly (OpenAI's `strict`). */
      strict: z.boolean().optional(),
    })
    .strict(),
);

/** Structured output: the answer's text is JSON matching `schema`. */
export type LlmResponseFormat = z.infer<typeof llmResponseFormatSchema>;

/** Reasoning effort values (OpenAI's `reasoning_effort`; the AI SDK's `reasoning`). */
export const LLM_REASONING_EFFORTS = Object.freeze([
  'none',
  'minimal',
  'low',
  'medium',
  'high',
  'xhigh',
] as const);

/** Schema of {@link LlmRequestOptions}. Unknown keys are refused. */
export const llmRequestOptionsSchema = lazySchema(() =>
  z
    .object({
      /** Sampling temperature, 0 to 2. */
      temperature: z.number().min(0).max(2).optional(),
      /** Nucleus sampling, greater than 0 and at most 1. */
      topP: z.number().gt(0).max(1).optional(),
      /** Upper bound on generated tokens; wins over the request's own `maxOutputTokens`. */
      maxOutputTokens: z.number().int().positive().optional(),
      /** Stop sequences, 1 to 16 non-empty strings. */
      stop: z.array(z.string().min(1)).min(1).max(16).optional(),
      /** Seed for repeatable sampling, where the provider supports it. */
      seed: z.number().int().optional(),
      /** Which tools the model may or must call. */
      toolChoice: z.optional(lazyField(llmToolChoiceSchema)),
      /** Whether the model may ask for several tool calls in one answer. */
      parallelToolCalls: z.boolean().optional(),
      /** Structured output against a JSON schema. */
      responseFormat: z.optional(lazyField(llmResponseFormatSchema)),
      /** Reasoning effort of reasoning models (OpenAI `reasoning_effort`). */
      reasoningEffort: z.enum(LLM_REASONING_EFFORTS).optional(),
      /** Token budget of extended thinking (Anthropic `thinking.budget_tokens`). */
      thinkingBudgetTokens: z.number().int().positive().optional(),
      /**
       * Extra JSON body fields for compatible servers, merged last into the body. Keys in
       * {@link RESERVED_EXTRA_BODY_KEYS} are refused.
       */
      extraBody: z
        .record(z.string(), z.unknown())
        .refine(
          (body) => !RESERVED_EXTRA_BODY_KEYS.some((key) => Object.hasOwn(body, key)),
          `must not set ${RESERVED_EXTRA_BODY_KEYS.join(', ')} (the driver owns them)`,
        )
        .optional(),
    })
    .strict(),
);

/**
 * Request options of a model call: on the model configuration (`ModelWithProvider.options`), per
 * turn (`runTurn(..., { modelOptions })`) and so per driver call (`LlmRequest.options`). Each
 * driver maps what its provider supports and refuses the rest with `INVALID_INPUT` before
 * sending anything.
 */
export type LlmRequestOptions = z.infer<typeof llmRequestOptionsSchema>;

/**
 * Parses request options, throwing `INVALID_INPUT` (message naming `what` and each problem) when
 * they are not valid. `undefined` passes as `undefined`.
 */
export function parseLlmRequestOptions(
  value: unknown,
  what = 'model options',
): LlmRequestOptions | undefined {
  if (value === undefined) return undefined;
  const parsed = llmRequestOptionsSchema.safeParse(value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid ${what}: ${formatZodError(parsed.error)}`,
    });
  }
  return parsed.data;
}

/**
 * Layers request options, later layers winning key by key (`undefined` keeps the earlier value);
 * `extraBody` objects merge key by key too. Resolves `undefined` when no layer sets anything.
 */
export function mergeLlmRequestOptions(
  ...layers: ReadonlyArray<LlmRequestOptions | undefined>
): LlmRequestOptions | undefined {
  let merged: LlmRequestOptions | undefined;
  for (const layer of layers) {
    if (!layer) continue;
    const next: Record<string, unknown> = { ...merged };
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      next[key] =
        key === 'extraBody' ? { ...merged?.extraBody, ...(value as object) } : (value as unknown);
    }
    merged = next as LlmRequestOptions;
  }
  return merged && Object.keys(merged).length > 0 ? merged : undefined;
}

/** The `INVALID_INPUT` error a driver throws for an option its provider cannot honour. */
export function unsupportedRequestOptionError(
  provider: string,
  option: keyof LlmRequestOptions,
  reason: string,
): EverrunsError {
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `${provider} does not support the request option ${option}: ${reason}`,
    details: { provider, option },
  });
}
