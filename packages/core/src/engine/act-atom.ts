import { EverrunsError, throwIfAborted } from '../errors.js';
import type { EventRequest } from '../event.js';
import type { SignalSource } from '../lazy-signal.js';
import type { NewMessage, ToolCall } from '../message.js';
import type { TurnSnapshot } from '../stores.js';
import {
  copyCutAtDepth,
  MAX_TOOL_ARGUMENTS_DEPTH,
  nestingDepth,
} from './bound-tool-call-arguments.js';
import { storeMessageAndEmit } from './emit-events.js';
import { executeToolCall, type ToolCallOutcome, truncateResult } from './execute-tool-call.js';
import { resolveTurnSetup } from './resolve-turn-setup.js';
import { sessionCapabilityChanges } from './session-capability-changes.js';
import { toolCompletedRequest, toolStartedRequest } from './tool-completed.js';
import type { AtomDependencies } from './turn-types.js';

/** Input of the {@link act} atom. */
export interface ActAtomInput {
  sessionId: string;
  turnId: string;
  iteration: number;
  /** The calls of the reason step, in order. */
  toolCalls: ToolCall[];
  /** Cancels the step; a `LazySignal` makes its `AbortSignal` only if a tool reads it. */
  signal?: SignalSource;
  /**
   * How to treat a call whose `tool.started` was recorded but has no result (crash recovery):
   * `rerun` runs it again; `interrupted` stores a synthetic error result. The atom asks this
   * only through {@link ActAtomInput.wasStarted}.
   */
  wasStarted?(toolCallId: string): Promise<boolean> | boolean;
  /** Called right before a tool runs (a host records "started" here). */
  onToolStarted?(call: ToolCall): Promise<void> | void;
  /**
   * Crash recovery in one step: claims a call of a tool that is not idempotent and emits its
   * `tool.started` (`started`) with the claim, in one round trip where the backends can
   * (`setValueIfAbsentAndEmit` of core). Resolves `false`, emitting nothing, when the call was
   * started before (it then gets the interrupted result). Used instead of `wasStarted` and
   * `onToolStarted` for such calls.
   */
  startCall?(call: ToolCall, started: EventRequest): Promise<boolean>;
  /**
   * The calls come from a reason step this caller has just run in the same process, which
   * stored its answer itself (`replayed: false`): no result of them can be stored yet, so the
   * atom does not look for one (one read per call less). Never set it for a step read back from
   * a queue, retried or resumed: those must look.
   */
  freshCalls?: boolean;
  /**
   * Calls whose `tool.started` (and journal claim) the reason step just wrote with its answer in
   * this process (its result's `startedCallIds`): they run without being started again. Never
   * set for a step read back from a queue, retried or resumed.
   */
  startedCalls?: readonly string[];
  /**
   * Called with the session's turn snapshot as it stands after the step's last write, when the
   * bus read it with that write (see `JointMessageOptions.loadTurnSnapshot`): for the reason step
   * that follows in the same process. Not called when the step waits for client-side results.
   */
  onTurnSnapshot?(snapshot: TurnSnapshot): void;
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
  const setup = await resolveTurnSetup(
    dependencies,
    sessionId,
    turnId,
    undefined,
    request.signal,
  ).catch((error: unknown) => {
    if (EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) return null;
    throw error;
  });
  const callSignature = signatureOf(request.toolCalls);
  if (!setup) return { results: [], waitingForToolResults: false, blocked: true, callSignature };
  const results: ActCallOutcome[] = [];
  let waitingForToolResults = false;
  let turnSnapshot: TurnSnapshot | undefined;
  const lastCall = request.toolCalls[request.toolCalls.length - 1];
  for (const call of request.toolCalls) {
    const idempotencyKey = `${turnId}/tool/${call.id}`;
    const existing = request.freshCalls
      ? null
      : await backends.messages.getByIdempotencyKey(sessionId, idempotencyKey);
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
    let outcome: ToolCallOutcome;
    const startedEvent = toolStartedRequest(sessionId, turnId, call, iteration);
    // An idempotent tool runs again after a crash whether or not it started: it is not asked
    // about (nor claimed in a journal). Another is claimed with its `tool.started` where the
    // caller can (`startCall`), else asked about, then announced. A call whose start the reason
    // step wrote with its answer (`startedCalls`) is started already.
    const claims = !turnTool?.tool.idempotent;
    let interrupted: boolean;
    if (request.startedCalls?.includes(call.id)) {
      interrupted = false;
    } else if (claims && request.startCall) {
      interrupted = !(await request.startCall(call, startedEvent));
    } else {
      interrupted =
        claims && request.wasStarted !== undefined && (await request.wasStarted(call.id));
      if (!interrupted) {
        await request.onToolStarted?.(call);
        await backends.events.emit(startedEvent);
      }
    }
    if (interrupted) {
      outcome = {
        content: truncateResult(INTERRUPTED_TOOL_RESULT_TEXT, limits.maxToolResultChars),
        isError: true,
      };
    } else {
      outcome = await executeToolCall(dependencies, {
        call,
        tools: setup.tools,
        sessionId,
        turnId,
        iteration,
        fileSystem: setup.fileSystem,
        capabilities: setup.capabilities,
        ...(setup.overlay.networkAccess ? { networkAccess: setup.overlay.networkAccess } : {}),
        capabilityChanges: sessionCapabilityChanges(dependencies, sessionId, {
          turnId,
          source: `tool:${call.name}`,
        }),
        ...(request.signal ? { signal: request.signal } : {}),
      });
    }
    if (request.signal?.aborted) throwIfAborted(request.signal);
    const newMessage: NewMessage = {
      role: 'tool_result',
      turnId,
      idempotencyKey,
      content: [
        {
          type: 'tool_result',
          toolCallId: call.id,
          content: outcome.content,
          isError: outcome.isError,
        },
      ],
      metadata: { toolName: call.name, iteration },
    };
    // The tool's time, up to its result (the write of the result is not part of it).
    const durationMs = Date.now() - started;
    // The result and its `tool.completed` in one round trip where the bus can write both.
    // The step's last write also reads the snapshot the next reason step needs, where it can.
    const wantsSnapshot = request.onTurnSnapshot !== undefined && call === lastCall;
    const { message: stored, turnSnapshot: written } = await storeMessageAndEmit(
      backends,
      sessionId,
      newMessage,
      (result) => [
        toolCompletedRequest({
          sessionId,
          turnId,
          toolCallId: call.id,
          toolName: call.name,
          isError: outcome.isError,
          durationMs,
          messageId: result.id,
          iteration,
          // The result as stored for the model (bounded by maxToolResultChars, secrets redacted).
          result: outcome.content,
        }),
      ],
      wantsSnapshot ? { loadTurnSnapshot: true } : undefined,
    );
    turnSnapshot = written;
    results.push({
      toolCallId: call.id,
      toolName: call.name,
      isError: outcome.isError,
      messageId: stored.id,
      replayed: false,
      durationMs,
    });
  }
  if (turnSnapshot && !waitingForToolResults) request.onTurnSnapshot?.(turnSnapshot);
  return { results, waitingForToolResults, blocked: false, callSignature };
}

function signatureOf(calls: readonly ToolCall[]): string {
  return calls
    .map(
      (call) =>
        `${call.name}:${typeof call.arguments === 'string' ? call.arguments : argumentsSignature(call.arguments)}`,
    )
    .join('|');
}

/** Arguments as stable text; arguments too deep to walk by recursion are cut first. */
function argumentsSignature(value: unknown): string {
  return stableStringify(
    nestingDepth(value) > MAX_TOOL_ARGUMENTS_DEPTH
      ? copyCutAtDepth(value, MAX_TOOL_ARGUMENTS_DEPTH + 1)
      : value,
  );
}

function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const keys = Object.keys(value as object).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${stableStringify((value as Record<string, unknown>)[key])}`).join(',')}}`;
}
