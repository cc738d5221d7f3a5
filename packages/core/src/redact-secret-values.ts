import { createSecretRedactor, secretForms } from './secret-redactor.js';

/**
 * The exact strings in which a secret value could leak into text: raw, URL-encoded, hex, JSON-
 * and HTML-escaped, and whole Base64 in both alphabets with and without padding. The redactor
 * ({@link createSecretRedactor}) matches more than these (any case, Base64 at an offset inside a
 * longer text); this list is for callers that look for a value themselves.
 */
export function secretValueForms(value: string): string[] {
  if (value.length === 0) return [];
  const forms = secretForms(value);
  let binary = '';
  for (const byte of new TextEncoder().encode(value)) binary += String.fromCharCode(byte);
  const base64 = btoa(binary);
  const base64Url = base64.replaceAll('+', '-').replaceAll('/', '_');
  return [
    ...new Set([
      ...forms.caseInsensitive,
      base64,
      base64.replace(/=+$/, ''),
      base64Url,
      base64Url.replace(/=+$/, ''),
    ]),
  ];
}

/**
 * Replaces every form of each secret value in `text` with the secret's reference
 * `secret://<name>` (the forms of {@link createSecretRedactor}), so a tool's output or error that
 * echoes what it sent never carries the value. `secrets` maps secret names to values.
 */
export function redactSecretValues(text: string, secrets: ReadonlyMap<string, string>): string {
  if (secrets.size === 0) return text;
  return createSecretRedactor(
    [...secrets].map(([name, value]) => ({ value, replacement: `secret://${name}` })),
  ).redact(text);
}
