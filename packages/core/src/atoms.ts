import { formatZodError, isToolError, type ToolContext } from './capability.js';
import type { LlmResponse, LlmStopReason, LlmUsage } from './driver.js';
import { EverrunsError, errorMessage, throwIfAborted } from './errors.js';
import { newId } from './ids.js';
import {
  type ContentPart,
  type InputMessage,
  inputMessageSchema,
  type Message,
  messageText,
  messageToolCalls,
  type NewMessage,
  type ToolCall,
} from './message.js';
import { emitEvents } from './stores.js';
import {
  type AtomDependencies,
  assembleTurnContext,
  resolveTurnSetup,
  type TurnTool,
} from './turn-context.js';

/** Input of the {@link input} atom. */
export interface InputAtomInput {
  sessionId: string;
  input: InputMessage;
  /** The turn id to use; generated when absent. */
  turnId?: string;
}

/** Output of the {@link input} atom (plain JSON). */
export interface InputAtomResult {
  turnId: string;
  messageId: string;
  seq: number;
}

/**
 * Persists the user's message of a turn (idempotently by `turnId`). Throws `SESSION_NOT_FOUND`
 * and `INVALID_INPUT` before writing anything.
 */
export async function input(
  dependencies: AtomDependencies,
  request: InputAtomInput,
): Promise<InputAtomResult> {
  const parsed = inputMessageSchema.safeParse(request.input);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid input message: ${formatZodError(parsed.error)}`,
    });
  }
  const { backends } = dependencies;
  const session = await backends.sessions.getSession(request.sessionId);
  if (!session) {
    throw new EverrunsError({
      code: 'SESSION_NOT_FOUND',
      message: `Session ${request.sessionId} does not exist`,
      details: { sessionId: request.sessionId },
    });
  }
  const turnId = request.turnId ?? newId('turn');
  const message = await backends.messages.storeMessage(request.sessionId, {
    role: 'user',
    turnId,
    content: parsed.data.content,
    idempotencyKey: `${turnId}/input`,
    ...(parsed.data.metadata ? { metadata: parsed.data.metadata } : {}),
  });
  await backends.events.emit({
    type: 'input.message',
    sessionId: request.sessionId,
    turnId,
    data: { messageId: message.id, seq: message.seq },
  });
  return { turnId, messageId: message.id, seq: message.seq };
}

/** Input of the {@link reason} atom. */
export interface ReasonAtomInput {
  sessionId: string;
  turnId: string;
  /** 1-based iteration. */
  iteration: number;
  signal?: AbortSignal;
}

/** Output of the {@link reason} atom (plain JSON). */
export interface ReasonAtomResult {
  /** False when the model call failed or the session is blocked. */
  success: boolean;
  /** The stored agent message. */
  messageId?: string;
  text: string;
  toolCalls: ToolCall[];
  usage?: LlmUsage;
  stopReason?: LlmStopReason;
  responseId?: string;
  /** True when the answer was already stored and the model was not called again. */
  replayed: boolean;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

const DUPLICATE_MARKER = '__duplicate_';

/**
 * Assembles the turn context, calls the model and persists its answer (text and tool calls) as
 * one agent message, idempotently by `turnId` + iteration: once stored, the model is never called
 * again for that step. A model failure resolves with `success: false` and code `llm_error`; a
 * dependency blocker stores the blocker's message and resolves with code `DEPENDENCY_BLOCKED`; a
 * capability whose prompt function throws resolves with code `CAPABILITY_FAILED` (details name
 * the capability) and stores nothing. Throws only for programmer or store errors and `ABORTED`.
 */
export async function reason(
  dependencies: AtomDependencies,
  request: ReasonAtomInput,
): Promise<ReasonAtomResult> {
  const { backends } = dependencies;
  const { sessionId, turnId, iteration } = request;
  const idempotencyKey = `${turnId}/reason/${iteration}`;
  // With a snapshot loader the history it loads answers the replay check too (one round trip).
  const snapshot = backends.loadTurnSnapshot
    ? ((await backends.loadTurnSnapshot(sessionId)) ?? undefined)
    : undefined;
  const existing = snapshot
    ? snapshot.messages.find((message) => message.idempotencyKey === idempotencyKey)
    : await backends.messages.getByIdempotencyKey(sessionId, idempotencyKey);
  if (existing) return resultFromStored(existing, true);
  throwIfAborted(request.signal);
  let context: Awaited<ReturnType<typeof assembleTurnContext>>;
  try {
    context = await assembleTurnContext(dependencies, sessionId, {
      turnId,
      iteration,
      ...(snapshot ? { snapshot } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
  } catch (error) {
    if (EverrunsError.hasCode(error, 'CAPABILITY_FAILED')) {
      // A capability's prompt failed: the turn fails with the typed error; nothing is stored, so
      // a later turn (or a resumed host) tries again.
      return {
        success: false,
        text: '',
        toolCalls: [],
        replayed: false,
        error: { code: error.code, message: error.message, details: error.details },
      };
    }
    if (!EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) throw error;
    const blocker = error.details.blocker as { message: string; code: string };
    const stored = await backends.messages.storeMessage(sessionId, {
      role: 'agent',
      turnId,
      content: [{ type: 'text', text: blocker.message }],
      idempotencyKey,
      metadata: { iteration, blocker },
    });
    return {
      ...resultFromStored(stored, false),
      success: false,
      error: { code: 'DEPENDENCY_BLOCKED', message: blocker.message, details: { blocker } },
    };
  }
  dependencies.onContextAssembled?.(context);
  await backends.events.emit({
    type: 'reason.started',
    sessionId,
    turnId,
    data: { iteration, model: context.model.model, providerType: context.model.providerType },
  });
  let response: LlmResponse;
  try {
    const driver = dependencies.drivers.get(context.model.providerType);
    response = await driver.generate(
      {
        model: context.model,
        systemPrompt: context.systemPrompt,
        messages: context.messages,
        tools: context.tools,
        sessionId,
        turnId,
        iteration,
      },
      request.signal ? { signal: request.signal } : {},
    );
  } catch (error) {
    if (EverrunsError.hasCode(error, 'ABORTED') || request.signal?.aborted) {
      throw EverrunsError.hasCode(error, 'ABORTED')
        ? error
        : new EverrunsError({ code: 'ABORTED', message: 'The turn was aborted', cause: error });
    }
    const failure = {
      code: 'llm_error',
      message: errorMessage(error),
      ...(EverrunsError.isInstance(error)
        ? { details: { ...error.details, errorCode: error.code } }
        : {}),
    };
    await backends.events.emit({
      type: 'reason.completed',
      sessionId,
      turnId,
      data: { iteration, success: false, error: failure },
    });
    return { success: false, text: '', toolCalls: [], replayed: false, error: failure };
  }
  const content: ContentPart[] = [];
  if (response.text) content.push({ type: 'text', text: response.text });
  const seen = new Set<string>();
  for (const call of response.toolCalls) {
    let id = call.id;
    if (seen.has(id)) id = `${call.id}${DUPLICATE_MARKER}${seen.size}`;
    seen.add(id);
    content.push({ type: 'tool_call', id, name: call.name, arguments: call.arguments });
  }
  const metadata: Record<string, unknown> = {
    iteration,
    usage: response.usage,
    stopReason: response.stopReason,
    model: response.model ?? context.model.model,
  };
  if (response.responseId !== undefined) metadata.responseId = response.responseId;
  const stored = await backends.messages.storeMessage(sessionId, {
    role: 'agent',
    turnId,
    content,
    idempotencyKey,
    metadata,
  });
  const result = resultFromStored(stored, false);
  await emitEvents(backends.events, [
    {
      type: 'output.message.completed',
      sessionId,
      turnId,
      data: {
        messageId: stored.id,
        seq: stored.seq,
        text: result.text,
        toolCalls: result.toolCalls.length,
      },
    },
    {
      type: 'reason.completed',
      sessionId,
      turnId,
      data: { iteration, success: true, toolCalls: result.toolCalls.length, usage: response.usage },
    },
  ]);
  return result;
}

function resultFromStored(message: Message, replayed: boolean): ReasonAtomResult {
  const metadata = message.metadata ?? {};
  const result: ReasonAtomResult = {
    success: true,
    messageId: message.id,
    text: messageText(message),
    toolCalls: messageToolCalls(message),
    replayed,
  };
  if (metadata.usage) result.usage = metadata.usage as LlmUsage;
  if (metadata.stopReason) result.stopReason = metadata.stopReason as LlmStopReason;
  if (typeof metadata.responseId === 'string') result.responseId = metadata.responseId;
  if (metadata.blocker) {
    const blocker = metadata.blocker as { message: string };
    result.success = false;
    result.error = { code: 'DEPENDENCY_BLOCKED', message: blocker.message, details: { blocker } };
  }
  return result;
}

/** Input of the {@link act} atom. */
export interface ActAtomInput {
  sessionId: string;
  turnId: string;
  iteration: number;
  /** The calls of the reason step, in order. */
  toolCalls: ToolCall[];
  signal?: AbortSignal;
  /**
   * How to treat a call whose `tool.started` was recorded but has no result (crash recovery):
   * `rerun` runs it again; `interrupted` stores a synthetic error result. The atom asks this
   * only through {@link ActAtomInput.wasStarted}.
   */
  wasStarted?(toolCallId: string): Promise<boolean> | boolean;
  /** Called right before a tool runs (a host records "started" here). */
  onToolStarted?(call: ToolCall): Promise<void> | void;
}

/** One call's outcome in {@link ActAtomResult}. */
export interface ActCallOutcome {
  toolCallId: string;
  toolName: string;
  isError: boolean;
  messageId: string;
  /** True when the result was already stored (a replayed step). */
  replayed: boolean;
  durationMs: number;
}

/** Output of the {@link act} atom (plain JSON). */
export interface ActAtomResult {
  results: ActCallOutcome[];
  /** True when client-side tools wait for results from the host. */
  waitingForToolResults: boolean;
  /** True when the act could not run (for example a blocked session). */
  blocked: boolean;
  /** Identity of this step's calls (names + arguments), for the repeated-call limit. */
  callSignature: string;
}

/** Text of the synthetic result of a non-idempotent call interrupted by a crash. */
export const INTERRUPTED_TOOL_RESULT_TEXT =
  'The tool call was interrupted before it finished; it may have partially applied. It was not run again.';

/**
 * Runs the tool calls of a reason step in order and persists one `tool_result` per call,
 * idempotently by call id. Model mistakes (unknown tool, arguments that are not JSON, not an
 * object or not valid for the schema, a throwing or timed-out tool, a duplicate call id) become
 * tool errors; results longer than the limit are truncated with a visible marker.
 */
export async function act(
  dependencies: AtomDependencies,
  request: ActAtomInput,
): Promise<ActAtomResult> {
  const { backends, limits } = dependencies;
  const { sessionId, turnId, iteration } = request;
  const setup = await resolveTurnSetup(dependencies, sessionId, turnId).catch((error: unknown) => {
    if (EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) return null;
    throw error;
  });
  const callSignature = signatureOf(request.toolCalls);
  if (!setup) return { results: [], waitingForToolResults: false, blocked: true, callSignature };
  const results: ActCallOutcome[] = [];
  let waitingForToolResults = false;
  for (const call of request.toolCalls) {
    const idempotencyKey = `${turnId}/tool/${call.id}`;
    const existing = await backends.messages.getByIdempotencyKey(sessionId, idempotencyKey);
    if (existing) {
      const part = existing.content.find((entry) => entry.type === 'tool_result');
      results.push({
        toolCallId: call.id,
        toolName: call.name,
        isError: part?.type === 'tool_result' ? part.isError : false,
        messageId: existing.id,
        replayed: true,
        durationMs: 0,
      });
      continue;
    }
    const turnTool = setup.tools.get(call.name);
    if (turnTool?.tool.clientSide) {
      waitingForToolResults = true;
      continue;
    }
    throwIfAborted(request.signal);
    const started = Date.now();
    let outcome: { content: string; isError: boolean };
    if (request.wasStarted && (await request.wasStarted(call.id)) && !turnTool?.tool.idempotent) {
      outcome = { content: INTERRUPTED_TOOL_RESULT_TEXT, isError: true };
    } else {
      await request.onToolStarted?.(call);
      await backends.events.emit({
        type: 'tool.started',
        sessionId,
        turnId,
        data: { toolCallId: call.id, toolName: call.name, iteration },
      });
      outcome = await runToolCall(dependencies, setup.tools, call, {
        sessionId,
        turnId,
        iteration,
        fileSystem: setup.fileSystem,
        ...(request.signal ? { signal: request.signal } : {}),
      });
    }
    if (request.signal?.aborted) throwIfAborted(request.signal);
    const content = truncateResult(outcome.content, limits.maxToolResultChars);
    const newMessage: NewMessage = {
      role: 'tool_result',
      turnId,
      idempotencyKey,
      content: [{ type: 'tool_result', toolCallId: call.id, content, isError: outcome.isError }],
      metadata: { toolName: call.name, iteration },
    };
    const stored = await backends.messages.storeMessage(sessionId, newMessage);
    const durationMs = Date.now() - started;
    await backends.events.emit({
      type: 'tool.completed',
      sessionId,
      turnId,
      data: {
        toolCallId: call.id,
        toolName: call.name,
        isError: outcome.isError,
        durationMs,
        messageId: stored.id,
      },
    });
    results.push({
      toolCallId: call.id,
      toolName: call.name,
      isError: outcome.isError,
      messageId: stored.id,
      replayed: false,
      durationMs,
    });
  }
  return { results, waitingForToolResults, blocked: false, callSignature };
}

/** Truncates text over `limit` characters, appending a marker with the original size. */
export function truncateResult(content: string, limit: number): string {
  if (content.length <= limit) return content;
  return `${content.slice(0, limit)}\n…[truncated: the result was ${content.length} characters; the limit is ${limit}]`;
}

function signatureOf(calls: readonly ToolCall[]): string {
  return calls
    .map(
      (call) =>
        `${call.name}:${typeof call.arguments === 'string' ? call.arguments : stableStringify(call.arguments)}`,
    )
    .join('|');
}

function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const keys = Object.keys(value as object).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${stableStringify((value as Record<string, unknown>)[key])}`).join(',')}}`;
}

interface CallScope {
  sessionId: string;
  turnId: string;
  iteration: number;
  fileSystem: ToolContext['fileSystem'];
  signal?: AbortSignal;
}

async function runToolCall(
  dependencies: AtomDependencies,
  tools: Map<string, TurnTool>,
  call: ToolCall,
  scope: CallScope,
): Promise<{ content: string; isError: boolean }> {
  const fail = (content: string) => ({ content, isError: true });
  if (call.id.includes(DUPLICATE_MARKER)) {
    const original = call.id.slice(0, call.id.indexOf(DUPLICATE_MARKER));
    return fail(
      `Duplicate tool call id "${original}" in one response; this call was not run. Use a unique id per call.`,
    );
  }
  const turnTool = tools.get(call.name);
  if (!turnTool) {
    const names = [...tools.keys()].join(', ') || '(none)';
    return fail(`Unknown tool "${call.name}". Available tools: ${names}.`);
  }
  let args = call.arguments;
  if (typeof args === 'string') {
    try {
      args = args.trim() === '' ? {} : JSON.parse(args);
    } catch (error) {
      return fail(`Arguments of ${call.name} are not valid JSON: ${errorMessage(error)}`);
    }
  }
  if (args === undefined || args === null) args = {};
  if (typeof args !== 'object' || Array.isArray(args)) {
    return fail(
      `Arguments of ${call.name} must be a JSON object, got ${Array.isArray(args) ? 'an array' : typeof args}.`,
    );
  }
  const parsed = turnTool.tool.inputSchema.safeParse(args);
  if (!parsed.success) {
    return fail(`Invalid arguments for ${call.name}: ${formatZodError(parsed.error)}`);
  }
  const timeoutMs = turnTool.tool.timeoutMs ?? dependencies.limits.toolTimeoutMs;
  // The tool's AbortController is made only when the tool reads `context.signal`.
  let controller: AbortController | undefined;
  let abortReason: unknown;
  let aborted = false;
  const abort = (reason: unknown) => {
    aborted = true;
    abortReason = reason;
    controller?.abort(reason);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const interrupted = new Promise<'timeout' | 'aborted'>((resolve) => {
    timer = setTimeout(() => {
      abort(new EverrunsError({ code: 'LIMIT_EXCEEDED', message: 'tool timeout' }));
      resolve('timeout');
    }, timeoutMs);
    onAbort = () => {
      abort(scope.signal?.reason);
      resolve('aborted');
    };
    if (scope.signal?.aborted) onAbort();
    else scope.signal?.addEventListener('abort', onAbort, { once: true });
  });
  const context: ToolContext = {
    sessionId: scope.sessionId,
    turnId: scope.turnId,
    toolCallId: call.id,
    idempotencyKey: `${scope.sessionId}/${scope.turnId}/${call.id}`,
    iteration: scope.iteration,
    fileSystem:
      dependencies.fileSystems.forToolCall?.(scope.fileSystem, {
        sessionId: scope.sessionId,
        turnId: scope.turnId,
        toolCallId: call.id,
        iteration: scope.iteration,
      }) ?? scope.fileSystem,
    storage: dependencies.backends.storage,
    sessions: dependencies.backends.sessions,
    memory: dependencies.backends.memory,
    config: turnTool.config,
    get signal() {
      if (!controller) {
        controller = new AbortController();
        if (aborted) controller.abort(abortReason);
      }
      return controller.signal;
    },
  };
  try {
    const execution = Promise.resolve().then(() =>
      turnTool.tool.execute(parsed.data as never, context),
    );
    const value = await Promise.race([execution, interrupted]);
    if (value === 'timeout' || value === 'aborted') {
      execution.catch(() => {});
      if (value === 'aborted') {
        throw new EverrunsError({
          code: 'ABORTED',
          message: 'The turn was aborted',
          cause: scope.signal?.reason,
        });
      }
      return fail(`Tool ${call.name} did not finish within ${timeoutMs} ms and was cancelled.`);
    }
    if (isToolError(value)) return fail(value.message);
    if (typeof value === 'string') return { content: value, isError: false };
    if (value === undefined) return { content: '', isError: false };
    return { content: JSON.stringify(value) ?? '', isError: false };
  } catch (error) {
    if (EverrunsError.hasCode(error, 'ABORTED') && scope.signal?.aborted) throw error;
    return fail(`Tool ${call.name} failed: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
    if (onAbort) scope.signal?.removeEventListener('abort', onAbort);
  }
}
