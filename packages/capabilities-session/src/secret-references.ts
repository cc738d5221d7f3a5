import { EverrunsError, type ToolContext } from '@everruns-ts/core';

/** The scheme of a secret reference: the model writes `secret://<name>`, never the value. */
export const SECRET_REFERENCE_PREFIX = 'secret://';

const REFERENCE = /secret:\/\/([A-Za-z0-9_.-]{1,255})/g;

/** The reference the model sees for a secret name. */
export function secretReference(name: string): string {
  return `${SECRET_REFERENCE_PREFIX}${name}`;
}

/** The secret names referenced in `text`, in order of first appearance. */
export function secretReferencesIn(text: string): string[] {
  return [...new Set([...text.matchAll(REFERENCE)].map((match) => match[1] as string))];
}

/**
 * Replaces every `secret://<name>` in `text` with the secret's value from session storage, for a
 * tool that must send it somewhere (a header, a connection string). The result must never be
 * returned to the model, logged or stored. Throws `INVALID_INPUT` naming the first unknown secret.
 */
export async function resolveSecretReferences(
  text: string,
  context: Pick<ToolContext, 'sessionId' | 'storage'>,
): Promise<string> {
  const values = new Map<string, string>();
  for (const name of secretReferencesIn(text)) {
    const value = await context.storage.getSecret(context.sessionId, name);
    if (value === null) {
      throw new EverrunsError({
        code: 'INVALID_INPUT',
        message: `Unknown secret ${secretReference(name)}: no secret of that name is stored for this session`,
        details: { secret: name },
      });
    }
    values.set(name, value);
  }
  return text.replace(REFERENCE, (whole, name: string) => values.get(name) ?? whole);
}

// Redaction lives in core, where the tool runner redacts every secret a tool read from its
// result; capabilities re-export it for tools that redact on their own.
export { redactSecretValues, secretValueForms } from '@everruns-ts/core';
