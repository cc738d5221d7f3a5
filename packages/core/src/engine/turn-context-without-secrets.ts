import type { McpServerConfig } from '../mcp.js';
import type { ModelWithProvider } from '../model.js';
import type { SessionOverlay } from './fold-overlay.js';
import type { AssembledTurnContext } from './turn-types.js';

/** What replaces each `extraBody` value of a model's request options in an exposed context. */
export const REDACTED_OPTION_VALUE = '[redacted]';

/**
 * The model as it may be shown: without `apiKey`, without credentials in `baseUrl`
 * (`https://user:password@host` keeps only the host), and with every value of
 * `options.extraBody` replaced by {@link REDACTED_OPTION_VALUE} (its keys are kept, so an
 * embedder sees what was set; a proxy may take credentials there). Only a driver gets them.
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
  if (shown.options?.extraBody !== undefined) {
    const extraBody: Record<string, unknown> = {};
    for (const key of Object.keys(shown.options.extraBody)) {
      Object.defineProperty(extraBody, key, {
        value: REDACTED_OPTION_VALUE,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    shown.options = { ...shown.options, extraBody };
  }
  return shown;
}

/**
 * MCP server configurations as they may be shown: every value of a stdio server's `env` and of
 * an HTTP server's `headers` replaced by {@link REDACTED_OPTION_VALUE} (the names are kept), and
 * credentials removed from an HTTP server's URL. Only the platform's MCP tool source gets them.
 */
export function mcpServersWithoutSecrets<T extends Readonly<Record<string, McpServerConfig>>>(
  servers: T,
): T {
  const shown: Record<string, McpServerConfig> = {};
  for (const [name, server] of Object.entries(servers)) {
    let copy: McpServerConfig;
    if (server.transport === 'stdio') {
      copy = { ...server };
      if (server.env !== undefined) copy.env = redactedValues(server.env);
    } else {
      copy = { ...server, url: urlWithoutCredentials(server.url) };
      if (server.headers !== undefined) copy.headers = redactedValues(server.headers);
    }
    Object.defineProperty(shown, name, {
      value: copy,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return shown as T;
}

/**
 * A harness, agent or session as it may be shown: its `mcpServers` through
 * {@link mcpServersWithoutSecrets}; a definition without MCP servers is returned as it is.
 */
export function definitionWithoutSecrets<
  T extends { mcpServers?: Record<string, McpServerConfig> },
>(definition: T): T {
  if (!definition.mcpServers || Object.keys(definition.mcpServers).length === 0) return definition;
  return { ...definition, mcpServers: mcpServersWithoutSecrets(definition.mcpServers) };
}

function redactedValues(values: Record<string, string>): Record<string, string> {
  const shown: Record<string, string> = {};
  for (const key of Object.keys(values)) {
    Object.defineProperty(shown, key, {
      value: REDACTED_OPTION_VALUE,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return shown;
}

function urlWithoutCredentials(text: string): string {
  try {
    const url = new URL(text);
    if (url.username === '' && url.password === '') return text;
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return text;
  }
}

function overlayWithoutSecrets(overlay: SessionOverlay): SessionOverlay {
  return {
    ...overlay,
    harnessChain: overlay.harnessChain.map(definitionWithoutSecrets),
    agent: overlay.agent && definitionWithoutSecrets(overlay.agent),
    session: definitionWithoutSecrets(overlay.session),
    mcpServers: mcpServersWithoutSecrets(overlay.mcpServers),
  };
}

/**
 * A copy of a turn context that is safe to expose (`loadContext`, `turnContext`, the
 * `onContextAssembled` hook, the inspector): the model without its secrets (see
 * {@link modelWithoutSecrets}), and the MCP servers of the overlay and of its harnesses, agent
 * and session without their `env` and `headers` values (see {@link mcpServersWithoutSecrets}).
 * The reason step keeps the key for the driver.
 */
export function turnContextWithoutSecrets(context: AssembledTurnContext): AssembledTurnContext {
  return {
    ...context,
    overlay: overlayWithoutSecrets(context.overlay),
    model: modelWithoutSecrets(context.model),
  };
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
