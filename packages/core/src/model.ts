import { z } from 'zod';
import { lazyField, lazySchema } from './lazy-schema.js';
import { llmRequestOptionsSchema } from './llm-request-options.js';

/** Provider types with drivers shipped by everruns-ts. Third-party drivers may use any other name. */
export const LLM_PROVIDER_TYPES = ['llmsim', 'openai', 'anthropic'] as const;

/**
 * The provider type a model runs on. It is the key under which a driver is registered in the
 * `DriverRegistry`. Known values are listed in {@link LLM_PROVIDER_TYPES}; any non-empty name works.
 */
export type LlmProviderType = (typeof LLM_PROVIDER_TYPES)[number] | (string & {});

/** Schema of {@link LlmProviderType}. */
export const llmProviderTypeSchema = z.string().min(1) as z.ZodType<LlmProviderType>;

/** Schema of {@link ModelWithProvider}. */
export const modelWithProviderSchema = lazySchema(() =>
  z.object({
    /** The provider's model name, for example `gpt-4.1` or `llmsim-model`. */
    model: z.string().min(1),
    /** Which driver runs this model. */
    providerType: llmProviderTypeSchema,
    /** Credential for the provider; drivers fall back to their environment variable. Never logged. */
    apiKey: z.string().optional(),
    /** Base URL of an API-compatible server. */
    baseUrl: z.string().url().optional(),
    /** Request options sent with every call of this model; a turn's `modelOptions` win over them. */
    options: z.optional(lazyField(llmRequestOptionsSchema)),
    /**
     * The model's context window in tokens (input and output together), for capabilities that
     * keep the context inside it (compaction). Optional: they fall back to their own default.
     */
    contextWindow: z.number().int().positive().optional(),
  }),
);

/** A model resolved together with what is needed to call it. */
export type ModelWithProvider = z.infer<typeof modelWithProviderSchema>;

/** The model the runtime falls back to for `llmSim(...)` when no default model is given. */
export const LLMSIM_DEFAULT_MODEL: ModelWithProvider = Object.freeze({
  model: 'llmsim-model',
  providerType: 'llmsim',
  apiKey: 'fake-key',
});
