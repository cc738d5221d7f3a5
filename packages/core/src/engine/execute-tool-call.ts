import type { SessionCapabilityChanges, ToolContext } from '../capability.js';
import type { UsageSnapshot } from '../capability-hooks.js';
import { isToolError } from '../capability-kit.js';
import type { ResolvedCapability } from '../capability-registry.js';
import type { NetworkAccessList } from '../domain.js';
import { EverrunsError, errorMessage, throwIfAborted } from '../errors.js';
import type { SessionFileSystem, SessionFileSystemFactory } from '../file-system.js';
import { formatZodError } from '../format-zod-error.js';
import { safeParseDeferringJit } from '../lazy-schema.js';
import {
  abortSignalOf,
  LazySignal,
  onAbortOf,
  type SignalSource,
  withSignalOf,
} from '../lazy-signal.js';
import type { ModelPrices } from '../llm-usage.js';
import type { ToolCall } from '../message.js';
import { createSecretRedactor } from '../secret-redactor.js';
import { readUsageSnapshot, searchSessionMessages } from '../session-history.js';
import { bindSchedules, type ScheduleHost } from '../session-schedules.js';
import type {
  MessagePageRequest,
  MessageSearchRequest,
  RuntimeBackends,
  SessionStorageStore,
} from '../stores.js';
import { bindSubagents, type SubagentHost } from '../subagents.js';
import {
  countValues,
  MAX_TOOL_ARGUMENTS_DEPTH,
  MAX_TOOL_ARGUMENTS_VALUES,
  nestingDepth,
  type ToolArgumentsLimit,
  toolArgumentsTextOverLimit,
} from './bound-tool-call-arguments.js';
import { DEFAULT_TURN_LIMITS, type TurnLimits, type TurnTool } from './turn-types.js';

/** What {@link executeToolCall} needs of the atoms' dependencies. */
export interface ToolExecutionDependencies {
  /** The stores a tool reaches through its context. */
  backends: Pick<RuntimeBackends, 'storage' | 'sessions' | 'memory'> &
    Partial<Pick<RuntimeBackends, 'messages'>>;
  /** The embedder's prices, for the usage snapshot tools read (see `ToolContext.usage`). */
  prices?: ModelPrices;
  /** The tenant of the turn, handed to tools as `ToolContext.organizationId`. */
  organizationId?: string;
  /** Decorates the session's workspace per call, when the factory offers it. */
  fileSystems: Pick<SessionFileSystemFactory, 'forToolCall'>;
  /** The default timeout of a call and the longest result the model sees. */
  limits: Pick<TurnLimits, 'toolTimeoutMs' | 'maxToolResultChars' | 'toolAbortGraceMs'>;
  /** Runs child sessions, handed to the tool bound to its call as `context.subagents`. */
  subagents?: SubagentHost;
  /** Keeps scheduled messages, handed to the tool bound to its session as `context.schedules`. */
  schedules?: ScheduleHost;
}

/** One tool call to run, with the turn it belongs to. */
export interface ExecuteToolCallRequest {
  /** The call as the model made it (arguments as an object or a JSON string). */
  call: ToolCall;
  /** The turn's tools by name. */
  tools: ReadonlyMap<string, TurnTool>;
  sessionId: string;
  turnId: string;
  /** 1-based iteration of the turn. */
  iteration: number;
  /** The session's workspace, before any per-call decoration. */
  fileSystem: SessionFileSystem;
  /**
   * Cancels the turn; the tool's context signal fires with it. A `LazySignal` is listened to
   * without making its `AbortSignal`.
   */
  signal?: SignalSource;
  /**
   * The turn's capabilities in resolved order, whose `beforeToolCall` / `afterToolCall` hooks
   * wrap the call. Without it no hook runs.
   */
  capabilities?: readonly ResolvedCapability[];
  /** Live capability changes of the session, handed to the tool as `context.capabilityChanges`. */
  capabilityChanges?: SessionCapabilityChanges;
  /** The session's folded network access list, handed to the tool as `context.networkAccess`. */
  networkAccess?: NetworkAccessList;
}

/** What the model sees of one call: the result text and whether it is an error. */
export interface ToolCallOutcome {
  /** The result, truncated to `limits.maxToolResultChars` with a visible marker. */
  content: string;
  isError: boolean;
}

/**
 * Truncates text over `limit` characters (UTF-16 code units), appending a marker with the original
 * size. The cut never splits a surrogate pair: a character that would be cut in half is left out.
 */
export function truncateResult(content: string, limit: number): string {
  if (content.length <= limit) return content;
  return cutWithMarker(content, limit, content.length);
}

/** The first `limit` characters of `content` (never half a surrogate pair) and the marker. */
function cutWithMarker(content: string, limit: number, originalLength: number): string {
  let end = Math.min(content.length, Math.max(0, limit));
  const last = content.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
  return `${content.slice(0, end)}\n…[truncated: the result was ${originalLength} characters; the limit is ${limit}]`;
}

/**
 * Runs one tool call. Model mistakes become tool errors the model can read: a duplicate call id,
 * an unknown tool, arguments that are not JSON, nested deeper than `MAX_TOOL_ARGUMENTS_DEPTH` or
 * holding more than `MAX_TOOL_ARGUMENTS_VALUES` values, not
 * an object or not valid for the tool's zod
 * schema, a tool that throws or returns `toolError(message)`, a tool that does not finish within
 * its timeout (`timeoutMs` of the tool, else `limits.toolTimeoutMs`; its context signal fires).
 * A string result is sent as is, `undefined` as `''`, anything else as JSON; every result is
 * truncated to `limits.maxToolResultChars`. Every secret value the tool read through
 * `context.storage.getSecret` is redacted from its result and error message in every form
 * {@link createSecretRedactor} knows (raw in any case, URL-encoded, hex, JSON- and HTML-escaped,
 * Base64 and base64url) and becomes `secret://<name>` before anything is stored or sent; only the
 * visible part of a huge result is searched. Throws `ABORTED`
 * only when the request's signal fires, once the running tool has settled (its signal fired
 * too) or `limits.toolAbortGraceMs` has passed.
 */
export async function executeToolCall(
  dependencies: ToolExecutionDependencies,
  request: ExecuteToolCallRequest,
): Promise<ToolCallOutcome> {
  const secrets = new Map<string, string>();
  const after = (request.capabilities ?? []).filter(
    ({ capability }) => typeof capability.afterToolCall === 'function',
  );
  const outcome = await runToolCall(dependencies, request, secrets);
  const limit = dependencies.limits.maxToolResultChars;
  if (after.length === 0 || outcome.arguments === undefined) {
    return {
      content: redactAndTruncate(outcome.content, secrets, limit),
      isError: outcome.isError,
    };
  }
  // A hook sees the whole result (a hook may keep what the model will not see), so every secret
  // is redacted from all of it first.
  let content =
    secrets.size === 0 ? outcome.content : secretRedactor(secrets).redact(outcome.content);
  let isError = outcome.isError;
  for (const { capability, config } of after) {
    throwIfAborted(request.signal);
    try {
      const changed = await capability.afterToolCall?.({
        ...hookBase(dependencies, request, config),
        toolCallId: request.call.id,
        toolName: request.call.name,
        toolCapabilityId: outcome.toolCapabilityId ?? '',
        arguments: outcome.arguments,
        content,
        isError,
      });
      if (changed?.content !== undefined) content = String(changed.content);
      if (changed?.isError !== undefined) isError = changed.isError === true;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'ABORTED') && request.signal?.aborted) throw error;
      content = `The result of ${request.call.name} could not be processed: capability ${capability.id} failed: ${errorMessage(error)}`;
      isError = true;
      break;
    }
  }
  return { content: truncateResult(content, limit), isError };
}

/** What every tool hook receives about the call's session and turn. */
function hookBase(
  dependencies: ToolExecutionDependencies,
  request: ExecuteToolCallRequest,
  config: unknown,
) {
  return {
    sessionId: request.sessionId,
    turnId: request.turnId,
    iteration: request.iteration,
    config,
    fileSystem: request.fileSystem,
    storage: dependencies.backends.storage,
    ...(request.signal ? { signal: abortSignalOf(request.signal) } : {}),
  };
}

/**
 * Redacts every form of the secrets (name → value) from `content` and truncates it to `limit`.
 * Only the part the model can see is searched (plus the longest form, so a secret straddling the
 * cut is still found whole, and a cut-off beginning of one is dropped), so a huge result costs
 * no more than one at the limit.
 */
function redactAndTruncate(
  content: string,
  secrets: ReadonlyMap<string, string>,
  limit: number,
): string {
  if (secrets.size === 0) return truncateResult(content, limit);
  const redactor = secretRedactor(secrets);
  const room = Math.max(0, limit) + redactor.longestForm;
  if (content.length <= room) return truncateResult(redactor.redact(content), limit);
  return cutWithMarker(redactor.redactCut(content.slice(0, room)), limit, content.length);
}

/**
 * The session storage a tool sees: the store itself, except that every secret value it reads is
 * remembered in `secrets` (name → value) so the outcome can be redacted.
 */
function recordingSecrets(
  storage: SessionStorageStore,
  secrets: Map<string, string>,
): SessionStorageStore {
  return new Proxy(storage, {
    get(target, property) {
      if (property === 'getSecret') {
        return async (sessionId: string, key: string) => {
          const value = await target.getSecret(sessionId, key);
          if (typeof value === 'string' && value !== '') secrets.set(key, value);
          return value;
        };
      }
      const member = Reflect.get(target, property, target);
      return typeof member === 'function' ? member.bind(target) : member;
    },
  });
}

/** The tool error for arguments past one of the bounds of `bound-tool-call-arguments.ts`. */
function argumentsOverLimitText(toolName: string, limit: ToolArgumentsLimit): string {
  return limit === 'depth'
    ? `Arguments of ${toolName} are nested more than ${MAX_TOOL_ARGUMENTS_DEPTH} levels deep; this call was not run.`
    : `Arguments of ${toolName} hold more than ${MAX_TOOL_ARGUMENTS_VALUES} values; this call was not run.`;
}

/** Why a call stopped waiting for its tool: a private tag no tool result can equal. */
interface Interruption {
  readonly interruption: 'timeout' | 'aborted';
}

const TIMED_OUT: Interruption = Object.freeze({ interruption: 'timeout' });
const ABORTED: Interruption = Object.freeze({ interruption: 'aborted' });

/** A call's outcome before redaction, with the validated arguments when it got that far. */
interface RawToolCallOutcome extends ToolCallOutcome {
  arguments?: Record<string, unknown>;
  toolCapabilityId?: string;
}

async function runToolCall(
  dependencies: ToolExecutionDependencies,
  request: ExecuteToolCallRequest,
  secrets: Map<string, string>,
): Promise<RawToolCallOutcome> {
  const { call, tools } = request;
  const fail = (content: string) => ({ content, isError: true });
  const turnTool = tools.get(call.name);
  if (!turnTool) {
    const names = [...tools.keys()].join(', ') || '(none)';
    return fail(`Unknown tool "${call.name}". Available tools: ${names}.`);
  }
  let args = call.arguments;
  const fromText = typeof args === 'string';
  if (typeof args === 'string') {
    // Text past a bound is refused before JSON.parse, which would hold the loop while it builds
    // it; what the text measures is what the parsed value would (so it is not walked again).
    const over = toolArgumentsTextOverLimit(args);
    if (over !== undefined) return fail(argumentsOverLimitText(call.name, over));
    try {
      args = args.trim() === '' ? {} : JSON.parse(args);
    } catch (error) {
      return fail(`Arguments of ${call.name} are not valid JSON: ${errorMessage(error)}`);
    }
  }
  if (args === undefined || args === null) args = {};
  if (!fromText) {
    if (nestingDepth(args) > MAX_TOOL_ARGUMENTS_DEPTH) {
      return fail(argumentsOverLimitText(call.name, 'depth'));
    }
    if (countValues(args) > MAX_TOOL_ARGUMENTS_VALUES) {
      return fail(argumentsOverLimitText(call.name, 'values'));
    }
  }
  if (typeof args !== 'object' || Array.isArray(args)) {
    return fail(
      `Arguments of ${call.name} must be a JSON object, got ${Array.isArray(args) ? 'an array' : typeof args}.`,
    );
  }
  let parsed: ReturnType<typeof turnTool.tool.inputSchema.safeParse>;
  try {
    parsed = safeParseDeferringJit(turnTool.tool.inputSchema, args);
  } catch (error) {
    // A schema whose refinement or transform throws fails this call only, not the step.
    return fail(`Arguments of ${call.name} could not be validated: ${errorMessage(error)}`);
  }
  if (!parsed.success) {
    return fail(`Invalid arguments for ${call.name}: ${formatZodError(parsed.error)}`);
  }
  let input = parsed.data as Record<string, unknown>;
  for (const { capability, config } of request.capabilities ?? []) {
    if (typeof capability.beforeToolCall !== 'function') continue;
    throwIfAborted(request.signal);
    let decision: Awaited<ReturnType<NonNullable<typeof capability.beforeToolCall>>>;
    try {
      decision = await capability.beforeToolCall({
        ...hookBase(dependencies, request, config),
        toolCallId: call.id,
        toolName: call.name,
        toolCapabilityId: turnTool.capabilityId,
        arguments: input,
      });
    } catch (error) {
      if (EverrunsError.hasCode(error, 'ABORTED') && request.signal?.aborted) throw error;
      return fail(
        `Tool ${call.name} was not run: capability ${capability.id} failed: ${errorMessage(error)}`,
      );
    }
    if (decision?.veto !== undefined) return fail(String(decision.veto));
    if (decision?.arguments !== undefined) {
      let again: ReturnType<typeof turnTool.tool.inputSchema.safeParse>;
      try {
        again = turnTool.tool.inputSchema.safeParse(decision.arguments);
      } catch (error) {
        return fail(`Arguments of ${call.name} could not be validated: ${errorMessage(error)}`);
      }
      if (!again.success) {
        return fail(
          `Capability ${capability.id} rewrote the arguments of ${call.name} into invalid ones: ${formatZodError(again.error)}`,
        );
      }
      input = again.data as Record<string, unknown>;
    }
  }
  const succeed = (content: string): RawToolCallOutcome => ({
    content,
    isError: false,
    arguments: input,
    toolCapabilityId: turnTool.capabilityId,
  });
  const failAfterRun = (content: string): RawToolCallOutcome => ({
    content,
    isError: true,
    arguments: input,
    toolCapabilityId: turnTool.capabilityId,
  });
  const timeoutMs = turnTool.tool.timeoutMs ?? dependencies.limits.toolTimeoutMs;
  const abortGraceMs =
    dependencies.limits.toolAbortGraceMs ?? (DEFAULT_TURN_LIMITS.toolAbortGraceMs as number);
  // The tool's AbortController is made only when the tool reads `context.signal`.
  const toolSignal = new LazySignal();
  // The interruption is a tagged object, never a value a tool could return. It is armed (a
  // timer and an abort listener) only for a tool that is still running when `execute` returns:
  // a tool that answers synchronously cannot be interrupted, so it needs neither.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopListening: (() => void) | undefined;
  const interruption = () =>
    new Promise<Interruption>((resolve) => {
      // Resolved before the tool's signal fires, so the interruption wins the race against a
      // tool that rejects as soon as its signal fires.
      timer = setTimeout(() => {
        resolve(TIMED_OUT);
        toolSignal.abort(new EverrunsError({ code: 'LIMIT_EXCEEDED', message: 'tool timeout' }));
      }, timeoutMs);
      const onAbort = () => {
        resolve(ABORTED);
        toolSignal.abort(request.signal?.reason);
      };
      if (request.signal?.aborted) onAbort();
      else if (request.signal) stopListening = onAbortOf(request.signal, onAbort);
    });
  const messages = dependencies.backends.messages;
  const context = {
    sessionId: request.sessionId,
    turnId: request.turnId,
    toolCallId: call.id,
    idempotencyKey: `${request.sessionId}/${request.turnId}/${call.id}`,
    iteration: request.iteration,
    ...(dependencies.organizationId !== undefined
      ? { organizationId: dependencies.organizationId }
      : {}),
    fileSystem:
      dependencies.fileSystems.forToolCall?.(
        request.fileSystem,
        // The tool's own signal, made on first read as `context.signal`; not enumerable, so the
        // scope spreads and serialises as plain data.
        withLazySignal(
          {
            sessionId: request.sessionId,
            turnId: request.turnId,
            toolCallId: call.id,
            iteration: request.iteration,
          },
          toolSignal,
          false,
        ),
      ) ?? request.fileSystem,
    storage: recordingSecrets(dependencies.backends.storage, secrets),
    sessions: dependencies.backends.sessions,
    memory: dependencies.backends.memory,
    ...(request.capabilityChanges ? { capabilityChanges: request.capabilityChanges } : {}),
    ...(request.networkAccess ? { networkAccess: request.networkAccess } : {}),
    ...(messages
      ? {
          history: {
            search: (search: MessageSearchRequest) =>
              searchSessionMessages(messages, request.sessionId, search),
            page: (page: MessagePageRequest) => messages.loadPage(request.sessionId, page),
            count: () => messages.count(request.sessionId),
          },
          usage: (): Promise<UsageSnapshot> =>
            readUsageSnapshot(
              { messages, storage: dependencies.backends.storage },
              request.sessionId,
              request.turnId,
              dependencies.prices,
            ),
        }
      : {}),
    config: turnTool.config,
  } as ToolContext;
  withLazySignal(context, toolSignal, true);
  if (dependencies.subagents) {
    context.subagents = bindSubagents(
      dependencies.subagents,
      withLazySignal(
        { sessionId: request.sessionId, turnId: request.turnId, toolCallId: call.id },
        toolSignal,
        true,
      ),
    );
  }
  if (dependencies.schedules) {
    context.schedules = bindSchedules(dependencies.schedules, request.sessionId);
  }
  const abortedError = () =>
    new EverrunsError({
      code: 'ABORTED',
      message: 'The turn was aborted',
      cause: request.signal?.reason,
    });
  try {
    let value: unknown;
    if (request.signal?.aborted) {
      // Aborted before the call: the tool still starts (as it always has), aborted.
      const interrupted = interruption();
      const execution = Promise.resolve().then(() =>
        turnTool.tool.execute(input as never, context),
      );
      value = await Promise.race([execution, interrupted]);
      if (value === ABORTED) await stoppedWithin(execution, abortGraceMs);
    } else {
      const returned: unknown = turnTool.tool.execute(input as never, context);
      if (isThenable(returned)) {
        // Still running: the timeout and an abort may end the wait.
        const execution = Promise.resolve(returned);
        value = await Promise.race([execution, interruption()]);
        if (value === TIMED_OUT) execution.catch(() => {});
        else if (value === ABORTED) await stoppedWithin(execution, abortGraceMs);
      } else if (request.signal?.aborted) {
        // The turn was aborted while the tool ran (synchronously).
        throw abortedError();
      } else value = returned;
    }
    if (value === TIMED_OUT || value === ABORTED) {
      if (value === ABORTED) throw abortedError();
      return failAfterRun(
        `Tool ${call.name} did not finish within ${timeoutMs} ms and was cancelled.`,
      );
    }
    if (isToolError(value)) return failAfterRun(value.message);
    if (typeof value === 'string') return succeed(value);
    if (value === undefined) return succeed('');
    return succeed(JSON.stringify(value) ?? '');
  } catch (error) {
    if (EverrunsError.hasCode(error, 'ABORTED') && request.signal?.aborted) throw error;
    return failAfterRun(`Tool ${call.name} failed: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
    stopListening?.();
  }
}

/**
 * Waits until a tool interrupted by the turn's abort has settled, for at most `graceMs`: a tool
 * that honours its signal has stopped (its last writes done) before the turn rejects, and one
 * that ignores it delays the rejection by no more than the grace. Its outcome is dropped.
 */
async function stoppedWithin(execution: Promise<unknown>, graceMs: number): Promise<void> {
  execution.catch(() => {});
  if (graceMs <= 0) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
    execution.then(
      () => resolve(),
      () => resolve(),
    );
  });
  clearTimeout(timer);
}

/** Gives a tool's context (or scope) the `signal` of `state`, made on its first read. */
function withLazySignal<T extends object>(
  target: T,
  state: LazySignal,
  enumerable: boolean,
): T & { readonly signal: AbortSignal } {
  return withSignalOf(target, state, enumerable) as T & { readonly signal: AbortSignal };
}

/** True for a promise or any object with a `then` method (what `await` would wait for). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** The redactor of the secrets (name → value) a tool read: each form becomes `secret://<name>`. */
function secretRedactor(secrets: ReadonlyMap<string, string>) {
  return createSecretRedactor(
    [...secrets].map(([name, value]) => ({ value, replacement: `secret://${name}` })),
  );
}
