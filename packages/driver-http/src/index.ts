// The public face of @everruns-ts/driver-http, listed by name: what a provider driver needs.

// The call glue: options, request preparation, whole and streamed answers.
// Timeouts of a call: connect, first byte, idle between chunks, whole call.
export {
  DEFAULT_DRIVER_TIMEOUTS,
  type DriverTimeoutPhase,
  type DriverTimeouts,
  driverTimeoutsSchema,
  type HttpCallOptions,
  httpCallOptionsSchema,
  parseDriverTimeouts,
  parseHttpCallOptions,
} from './call-timeouts.js';
export {
  checkHttpDriverOptions,
  endpoint,
  environmentVariable,
  generateFromStream,
  type HttpDriverOptions,
  type PreparePostSettings,
  preparePost,
  protocolViolation,
  requestWholeAnswer,
  type StreamProtocol,
  streamAnswer,
} from './driver-call.js';
// HTTP: retries, backoff, server-sent events, redaction, typed errors.
export {
  abortedError,
  isPermanentQuotaError,
  llmError,
  MAX_RESPONSE_BODY_CHARS,
  MAX_STREAM_DATA_CHARS,
  MAX_UNFINISHED_EVENT_CHARS,
  PERMANENT_QUOTA_ERRORS,
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
  timeoutError,
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
