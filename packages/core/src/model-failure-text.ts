import { EverrunsError } from './errors.js';

/**
 * The failure code of a model call that failed because no provider is set up for it: no API key,
 * no driver registered for its provider type, or a driver refusing its configuration. A turn
 * ending on it stops with `provider_not_configured`, not `llm_error`.
 */
export const PROVIDER_NOT_CONFIGURED_FAILURE = 'provider_not_configured';

/** The failure code of any other failed model call. */
export const LLM_ERROR_FAILURE = 'llm_error';

/**
 * Whether a model call's error means the provider is not set up (see
 * {@link PROVIDER_NOT_CONFIGURED_FAILURE}): `PROVIDER_NOT_CONFIGURED`, `DRIVER_NOT_FOUND` or
 * `CONFIGURATION` (what the HTTP drivers throw for a missing API key).
 */
export function isProviderNotConfigured(error: unknown): boolean {
  return (
    EverrunsError.hasCode(error, 'PROVIDER_NOT_CONFIGURED') ||
    EverrunsError.hasCode(error, 'DRIVER_NOT_FOUND') ||
    EverrunsError.hasCode(error, 'CONFIGURATION')
  );
}

/**
 * The text a failed model call leaves as the turn's response, for the person using the agent:
 * never the provider's own message (which may name internals); the error beside it has that.
 */
export function modelFailureText(failureCode: string): string {
  return failureCode === PROVIDER_NOT_CONFIGURED_FAILURE
    ? 'No answer: the model provider for this session is not set up (for example, its API key is missing). Please ask the operator to configure it.'
    : 'No answer: the model could not be reached or failed while answering. Please try again later.';
}
