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
 * secret's reference `secret://<name>`, longest forms first, so a tool's output or error that
 * echoes what it sent (an HTTP response body, an error message) never carries the value. `secrets`
 * maps secret names to values.
 */
export function redactSecretValues(text: string, secrets: ReadonlyMap<string, string>): string {
  const replacements: Array<[form: string, reference: string]> = [];
  for (const [name, value] of secrets) {
    for (const form of secretValueForms(value)) replacements.push([form, `secret://${name}`]);
  }
  replacements.sort((left, right) => right[0].length - left[0].length);
  let result = text;
  for (const [form, reference] of replacements) result = result.split(form).join(reference);
  return result;
}
