import { EverrunsError, formatZodError } from '@everruns-ts/core';
import type { z } from 'zod';

/** `INVALID_INPUT` naming what failed to parse and why. */
export function invalidInputError(what: string, error: z.ZodError): EverrunsError {
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `Invalid ${what}: ${formatZodError(error)}`,
  });
}

/** `ABORTED` for a turn whose signal fired, with the signal's reason as the cause. */
export function abortedError(signal: { readonly reason?: unknown }): EverrunsError {
  return new EverrunsError({
    code: 'ABORTED',
    message: 'The turn was aborted',
    cause: signal.reason,
  });
}
