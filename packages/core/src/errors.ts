const MARKER = Symbol.for('@everruns-ts/error');

/**
 * Every stable error code of everruns-ts. Codes never change meaning once published; messages
 * may change between releases, so match on `code`, not on `message`.
 */
export const ERROR_CODES = [
  /** A value given to a public API failed validation (the message names the field). */
  'INVALID_INPUT',
  /** The runtime or a component was configured inconsistently (for example no default model). */
  'CONFIGURATION',
  'SESSION_NOT_FOUND',
  'HARNESS_NOT_FOUND',
  'AGENT_NOT_FOUND',
  'MESSAGE_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'DRIVER_NOT_FOUND',
  'CAPABILITY_NOT_FOUND',
  /** No capability of the session declares the slash command (details: `command`, `available`). */
  'COMMAND_NOT_FOUND',
  /** Capability dependencies form a cycle. */
  'CAPABILITY_CYCLE',
  /** Two things were registered under the same id. */
  'DUPLICATE_ID',
  /**
   * A turn is already running on this session, in this process or another one (its turn lease is
   * held). Details: {@link TurnInProgressDetails}. Retry once that turn has ended.
   */
  'TURN_IN_PROGRESS',
  /**
   * A turn of this session waits for client-side tool results (details: `sessionId`, `turnId`,
   * `pendingToolCallIds`). Submit them first; results with `isError: true` abandon the calls.
   */
  'TURN_WAITING_FOR_TOOL_RESULTS',
  /**
   * The runtime was closed (`close()`); it runs no more turns. Build a new one on the stores to go
   * on.
   */
  'RUNTIME_CLOSED',
  /** A write lost a race (for example an append at a position another writer took); retry it. */
  'STORE_CONFLICT',
  /** A store could not be reached or gave up after its retries. */
  'STORE_UNAVAILABLE',
  /** A value is larger than the store's documented limit. */
  'VALUE_TOO_LARGE',
  /** Stored data could not be parsed (for example a host's persisted turn state). */
  'STATE_INVALID',
  /** A secret could not be decrypted with the configured key. */
  'SECRET_KEY_MISMATCH',
  /** The stored schema is newer than this code understands. */
  'SCHEMA_TOO_NEW',
  /** A path resolves outside the workspace root. */
  'PATH_OUTSIDE_ROOT',
  /** A path is malformed: empty, NUL bytes, `..` segments, drive letters and the like. */
  'INVALID_PATH',
  'FILE_NOT_FOUND',
  'IS_A_DIRECTORY',
  'NOT_A_DIRECTORY',
  /** The path names something that is neither a regular file nor a directory (FIFO, socket, device, hard link to outside). */
  'NOT_A_REGULAR_FILE',
  'FILE_ALREADY_EXISTS',
  'FILE_TOO_LARGE',
  'FILE_READ_ONLY',
  /** A compare-and-set write found different content than expected. */
  'CONTENT_MISMATCH',
  /** A write targets a blocklisted directory. */
  'WRITE_BLOCKED',
  /** The embedder's approval gate denied a destructive file operation. */
  'APPROVAL_DENIED',
  /** A model provider returned an error or could not be reached. */
  'LLM_ERROR',
  /** A tool failed; the failure is fed back to the model. */
  'TOOL_ERROR',
  /** The operation was cancelled through its AbortSignal. */
  'ABORTED',
  /** A limit was reached (iterations, repeated calls, sizes). */
  'LIMIT_EXCEEDED',
  /** A harness or agent the session depends on is missing or disabled. */
  'DEPENDENCY_BLOCKED',
  /** A capability failed while building its system-prompt contribution (details name it). */
  'CAPABILITY_FAILED',
  /**
   * A turn asked for structured output (`runTurn(..., { output })`) and the model's answer did
   * not match the schema, even after being told what was wrong once (details: `issues`).
   */
  'OUTPUT_INVALID',
  /**
   * A budget (tokens or cost, per turn or per session) is used up: the turn stopped before a
   * model call (stop reason `budget_exhausted`; details: what was used and the limit).
   */
  'BUDGET_EXHAUSTED',
  /**
   * The model's provider is not set up: no API key, no driver for its provider type. A turn whose
   * model call fails so ends with stop reason `provider_not_configured`.
   */
  'PROVIDER_NOT_CONFIGURED',
  /** Anything else: a bug or an unexpected failure of a dependency. */
  'INTERNAL',
] as const;

/** A stable error code. See {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Constructor options of {@link EverrunsError}. */
export interface EverrunsErrorOptions {
  /** Stable code to match on. */
  code: ErrorCode;
  /** Human-readable description; may change between releases. */
  message: string;
  /** The underlying error, if any. */
  cause?: unknown;
  /** Structured facts about the failure (ids, paths, limits). Never secrets. */
  details?: Record<string, unknown>;
  /** Whether retrying the same operation may succeed. Defaults to `false`. */
  retryable?: boolean;
}

/**
 * The one error class of everruns-ts. Recognise it with {@link EverrunsError.isInstance} rather
 * than `instanceof`, so two installed copies of the package still agree.
 */
export class EverrunsError extends Error {
  readonly [MARKER] = true;
  /** Stable code; see {@link ERROR_CODES}. */
  readonly code: ErrorCode;
  /** Structured facts about the failure. */
  readonly details: Record<string, unknown>;
  /** Whether retrying the same operation may succeed. */
  readonly retryable: boolean;

  constructor(options: EverrunsErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EverrunsError';
    this.code = options.code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? false;
  }

  /** True when `error` is an {@link EverrunsError} from any copy of this package. */
  static isInstance(error: unknown): error is EverrunsError {
    return (
      typeof error === 'object' &&
      error !== null &&
      (error as Record<symbol, unknown>)[MARKER] === true
    );
  }

  /** True when `error` is an {@link EverrunsError} with the given code. */
  static hasCode(error: unknown, code: ErrorCode): error is EverrunsError {
    return EverrunsError.isInstance(error) && error.code === code;
  }

  /** A plain JSON form, safe to persist or send over a queue. */
  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Shorthand for `new EverrunsError({ code, message, ...rest })`. */
export function everrunsError(
  code: ErrorCode,
  message: string,
  rest: Omit<EverrunsErrorOptions, 'code' | 'message'> = {},
): EverrunsError {
  return new EverrunsError({ code, message, ...rest });
}

/** The `details` of a `TURN_IN_PROGRESS` error. */
export interface TurnInProgressDetails {
  /** The busy session. */
  sessionId: string;
  /** Who holds the session's turn lease, when a lease refused the call. */
  holder?: string;
  /**
   * When the holder's lease lapses unless renewed (ISO 8601, by the store's clock), when a lease
   * refused the call. After that time another caller may take the lease over.
   */
  expiresAt?: string;
}

/**
 * A `TURN_IN_PROGRESS` error with typed {@link TurnInProgressDetails}: one message for every
 * place that refuses a second turn on a busy session.
 */
export function turnInProgressError(
  details: TurnInProgressDetails,
  rest: Omit<EverrunsErrorOptions, 'code' | 'message' | 'details'> = {},
): EverrunsError {
  const holder = details.holder === undefined ? '' : ` (held by ${details.holder}`;
  const until =
    details.expiresAt === undefined
      ? ''
      : `${holder ? ',' : ' ('} lease until ${details.expiresAt}`;
  const suffix = holder || until ? `${holder}${until})` : '';
  return new EverrunsError({
    code: 'TURN_IN_PROGRESS',
    message: `A turn is already running on session ${details.sessionId}${suffix}`,
    details: { ...details },
    ...rest,
  });
}

/** Turns anything thrown into a short message (for tool errors fed back to a model). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

/** Throws an {@link EverrunsError} with code `ABORTED` if the signal (or a `LazySignal`) has fired. */
export function throwIfAborted(
  signal: { readonly aborted: boolean; readonly reason?: unknown } | undefined,
): void {
  if (signal?.aborted) {
    throw new EverrunsError({
      code: 'ABORTED',
      message: 'The operation was aborted',
      cause: signal.reason,
    });
  }
}
