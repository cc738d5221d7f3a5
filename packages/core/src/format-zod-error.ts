import type { z } from 'zod';

/** Most issues {@link formatZodError} spells out; the rest are counted. */
const MAX_FORMATTED_ISSUES = 20;

/**
 * Formats a zod error as `field: problem; field: problem`, at most 20 issues, then how many more
 * there were (a value with thousands of bad items does not make a message of megabytes).
 */
export function formatZodError(error: z.ZodError): string {
  const issues = error.issues;
  const more = issues.length - MAX_FORMATTED_ISSUES;
  const shown = issues
    .slice(0, MAX_FORMATTED_ISSUES)
    .map(
      (issue) =>
        `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`,
    )
    .join('; ');
  return more > 0 ? `${shown}; and ${more} more ${more === 1 ? 'issue' : 'issues'}` : shown;
}
