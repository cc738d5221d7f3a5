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

/** The forms in which a secret value could leak into text: raw, Base64 (both alphabets) and URL-encoded. */
export function secretValueForms(value: string): string[] {
  let binary = '';
  for (const byte of new TextEncoder().encode(value)) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const forms = [
    value,
    base64,
    base64.replace(/=+$/, ''),
    base64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, ''),
    encodeURIComponent(value),
    encodeURI(value),
  ];
  return [...new Set(forms.filter((form) => form.length > 0))];
}

/**
 * Replaces every form of each secret value (see {@link secretValueForms}) in `text` with the
 * secret's reference, for a tool whose output might echo what it sent (an HTTP response body,
 * an error message).
 */
export function redactSecretValues(text: string, secrets: ReadonlyMap<string, string>): string {
  let result = text;
  for (const [name, value] of secrets) {
    const forms = secretValueForms(value).sort((left, right) => right.length - left.length);
    for (const form of forms) result = result.split(form).join(secretReference(name));
  }
  return result;
}
