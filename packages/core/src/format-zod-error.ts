import type { z } from 'zod';

/** Formats a zod error as `field: problem; field: problem`. */
export function formatZodError(error: z.ZodError): string {
  return error.issues
    .map(
      (issue) =>
        `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`,
    )
    .join('; ');
}
