// The public face of @everruns-ts/driver-http, listed by name: what a provider driver needs.

// The call glue: options, request preparation, whole and streamed answers.
export {
  endpoint,
  environmentVariable,
  generateFromStream,
  type HttpDriverOptions,
  type PreparePostSettings,
  preparePost,
  requestWholeAnswer,
  type StreamProtocol,
  streamAnswer,
} from './driver-call.js';
// HTTP: retries, backoff, server-sent events, redaction, typed errors.
export {
  abortedError,
  llmError,
  type PostRequest,
  type ProviderErrorBody,
  postWithRetries,
  type RetryInfo,
  type RetrySettings,
  readJsonBody,
  readServerSentEvents,
  redact,
  retryAfterMs,
  sleep,
} from './http.js';
// JSON readers of provider answers.
export {
  isJsonObject,
  type JsonObject,
  type LlmResponseParts,
  parseToolArgumentsText,
  stringOrUndefined,
  tokenCount,
  toLlmResponse,
} from './json.js';
