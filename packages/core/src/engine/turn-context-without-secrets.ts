import type { ModelWithProvider } from '../model.js';
import type { AssembledTurnContext } from './turn-types.js';

/**
 * The model as it may be shown: without `apiKey`, and without credentials in `baseUrl`
 * (`https://user:password@host` keeps only the host). Only a driver gets the key.
 */
export function modelWithoutSecrets(model: ModelWithProvider): ModelWithProvider {
  const { apiKey: _apiKey, ...shown } = model;
  if (shown.baseUrl !== undefined) {
    try {
      const url = new URL(shown.baseUrl);
      if (url.username !== '' || url.password !== '') {
        url.username = '';
        url.password = '';
        shown.baseUrl = url.toString();
      }
    } catch {
      // Not a URL: the schema refuses those; shown as it is.
    }
  }
  return shown;
}

/**
 * A copy of a turn context that is safe to expose (`loadContext`, `turnContext`, the
 * `onContextAssembled` hook, the inspector): the model without its secrets (see
 * {@link modelWithoutSecrets}). The reason step keeps the key for the driver.
 */
export function turnContextWithoutSecrets(context: AssembledTurnContext): AssembledTurnContext {
  return { ...context, model: modelWithoutSecrets(context.model) };
}

/**
 * Replaces a provider key, wherever it appears in `text` (a driver's error message), with
 * `[redacted api key]`.
 */
export function redactApiKey(text: string, apiKey: string | undefined): string {
  return apiKey ? text.split(apiKey).join('[redacted api key]') : text;
}

/**
 * {@link redactApiKey} over plain JSON data (a driver error's details): the key is replaced in
 * every string inside it. Data without the key is returned as it is.
 */
export function redactApiKeyInData<T>(value: T, apiKey: string | undefined): T {
  if (!apiKey) return value;
  const text = JSON.stringify(value);
  const escaped = JSON.stringify(apiKey).slice(1, -1);
  if (text === undefined || !text.includes(escaped)) return value;
  return JSON.parse(text.split(escaped).join('[redacted api key]')) as T;
}
