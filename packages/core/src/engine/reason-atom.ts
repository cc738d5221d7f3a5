import type { SessionStatus } from '../domain.js';
import type {
  LlmCallOptions,
  LlmDriver,
  LlmRequest,
  LlmResponse,
  LlmStopReason,
  LlmUsage,
} from '../driver.js';
import { EverrunsError, errorMessage, throwIfAborted } from '../errors.js';
import type { EventBus, EventRequest } from '../event.js';
import { type SignalSource, withSignalOf } from '../lazy-signal.js';
import { type LlmRequestOptions, mergeLlmRequestOptions } from '../llm-request-options.js';
import {
  type ContentPart,
  type Message,
  messageText,
  messageToolCalls,
  type ToolCall,
} from '../message.js';
import {
  isProviderNotConfigured,
  LLM_ERROR_FAILURE,
  modelFailureText,
  PROVIDER_NOT_CONFIGURED_FAILURE,
} from '../model-failure-text.js';
import type { MessageEventBus, SessionStorageStore, TurnSnapshot } from '../stores.js';
import { isoNow } from '../time.js';
import {
  type AssembleTurnContextOptions,
  assembleTurnContextWithSetup,
} from './assemble-turn-context.js';
import { boundToolCallArguments } from './bound-tool-call-arguments.js';
import { rekeyRepeatedToolCallIds } from './duplicate-tool-call-ids.js';
import { emitEvents, storeMessageAndEmit } from './emit-events.js';
import type { ModelCallHooksOutcome, ModelCallHooksRequest } from './model-call-hooks.js';
import { runBeforeModelCallHooks } from './model-call-hooks.js';
import { toolStartedRequest } from './tool-completed.js';
import {
  redactApiKey,
  redactApiKeyInData,
  turnContextWithoutSecrets,
} from './turn-context-without-secrets.js';
import type { AssembledTurnContext, AtomDependencies, TurnSetup } from './turn-types.js';

/** Input of the {@link reason} atom. */
export interface ReasonAtomInput {
  sessionId: string;
  turnId: string;
  /** 1-based iteration. */
  iteration: number;
  /** Cancels the step; a `LazySignal` makes its `AbortSignal` only if the driver reads it. */
  signal?: SignalSource;
  /** The turn's request options; they win over the model configuration's, key by key. */
  modelOptions?: LlmRequestOptions;
  /** Passed to the driver as `LlmRequest.previousResponseId` (see there). */
  previousResponseId?: string;
  /**
   * Stream the answer: call the driver's `stream` (when it has one; `generate` otherwise) and
   * emit its pieces as ephemeral events (`output.message.delta`, `reason.thinking.delta`,
   * `tool.call.delta`) while it arrives. What is stored is the same either way.
   */
  stream?: boolean;
  /**
   * The session's turn snapshot as the caller's previous write read it (see
   * `JointMessageOptions.loadTurnSnapshot`), used instead of loading one. Only for a snapshot
   * nothing has written to the session since (the in-process turn driver passes it straight from
   * the step before).
   */
  snapshot?: TurnSnapshot;
  /**
   * The turn's end, to write with an answer that ends it. Asked only where the bus writes a
   * message with its events in one round trip (`MessageEventBus`), before the write, with what
   * the answer will be (success, no tool calls, no `messageId` yet); it returns the end to write,
   * or `undefined` to leave the end to the caller. The answer, its events, then `end.events`, the
   * status and (with `releaseLease`) the lease's release then go in that one write (the status
   * apart when the bus did not set it with them), and `end.onWritten` is called: the caller must
   * not end the turn again.
   */
  endTurn?(answer: ReasonAtomResult): ReasonTurnEnd | undefined;
  /**
   * The act step that follows runs the answer's calls at once in this process and takes the
   * result's `startedCallIds` (see the act atom's `startedCalls`): the first call's `tool.started`
   * may then go with the answer's write (where the bus writes a message with its events in one
   * round trip), with the call's journal claim that `claimOf` gives for a tool that is not
   * idempotent (`undefined`: that call is left to the act step).
   */
  startFirstCall?: {
    claimOf(
      call: ToolCall,
    ): { storage: SessionStorageStore; key: string; value: string } | undefined;
  };
}

/** The end of a turn written with its final answer (see {@link ReasonAtomInput.endTurn}). */
export interface ReasonTurnEnd {
  /** The status the turn leaves the session in. */
  sessionStatus: SessionStatus;
  /** The events that end the turn, stored after the answer's own. */
  events: EventRequest[];
  /** Release the turn lease with the write (see `JointMessageOptions.releaseLease`). */
  releaseLease?: { deleteValuesWithPrefix?: string };
  /** Called once the end was written with the answer; `leaseReleased` as the bus reports. */
  onWritten(written: { leaseReleased: boolean }): void;
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
  /**
   * Calls whose `tool.started` (and journal claim) were written with the answer (see
   * `startFirstCall`): the act step must not start them again.
   */
  startedCallIds?: string[];
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

/**
 * Assembles the turn context, calls the model and persists its answer (text and tool calls) as
 * one agent message, idempotently by `turnId` + iteration: once stored, the model is never called
 * again for that step. Tool calls of the history left without a result get a synthetic error
 * result stored first. A tool call whose id repeats one the session already holds is stored under
 * a fresh id (metadata `rekeyedToolCallIds` maps new to original) and runs as a new call; a
 * repeat inside one response is renamed as a duplicate and answered with a tool error. A model
 * failure resolves with `success: false`, code `llm_error` (`provider_not_configured` when no
 * provider is set up: see `isProviderNotConfigured`) and a user-facing `text`
 * (`modelFailureText`), stored nowhere; a
 * dependency blocker stores the blocker's message and resolves with code `DEPENDENCY_BLOCKED`; a
 * capability whose prompt function throws resolves with code `CAPABILITY_FAILED` (details name
 * the capability) and stores nothing. Throws only for programmer or store errors and `ABORTED`.
 *
 * With `stream`, a driver that has `stream` is read piece by piece and each piece is emitted as an
 * ephemeral event (`output.message.delta`, `reason.thinking.delta`, `tool.call.delta`, each with
 * the `iteration`); its `finish` response is then stored and announced exactly as `generate`'s
 * answer would be. A driver without `stream` is called with `generate`. `output.message.completed`
 * carries the stored calls (`calls`: id, name, arguments) and `reason.completed` the `stopReason`.
 *
 * `reason.started` is stamped when the model is called. On a bus that stores a message with its
 * events in one round trip (`MessageEventBus`) and for an answer that is not streamed, it is
 * stored with the step's end (the answer's events, or a failed call's `reason.completed`): one
 * round trip less, the same events in the same order. An aborted model call then leaves none.
 */
export async function reason(
  dependencies: AtomDependencies,
  request: ReasonAtomInput,
): Promise<ReasonAtomResult> {
  const { backends } = dependencies;
  const { sessionId, turnId, iteration } = request;
  const idempotencyKey = `${turnId}/reason/${iteration}`;
  // With a snapshot loader the history it loads answers the replay check too (one round trip).
  const snapshot =
    request.snapshot ??
    (backends.loadTurnSnapshot
      ? ((await backends.loadTurnSnapshot(sessionId)) ?? undefined)
      : undefined);
  const found = snapshot
    ? storedSinceInput(snapshot.messages, turnId, idempotencyKey, iteration)
    : LOOK_UP;
  const existing =
    found === LOOK_UP
      ? await backends.messages.getByIdempotencyKey(sessionId, idempotencyKey)
      : found;
  if (existing) return resultFromStored(existing, true);
  throwIfAborted(request.signal);
  let context: AssembledTurnContext;
  let setup: TurnSetup;
  let hookStop: ModelCallHooksOutcome['stop'];
  try {
    // Options built by assignment, not conditional spreads (each a temporary object per step).
    const assembleOptions: AssembleTurnContextOptions = {
      turnId,
      iteration,
      closeOpenToolCalls: true,
    };
    if (snapshot) assembleOptions.snapshot = snapshot;
    if (request.signal) assembleOptions.signal = request.signal;
    const assembled = await assembleTurnContextWithSetup(dependencies, sessionId, assembleOptions);
    const hookOptions: ModelCallHooksRequest = {
      turnId,
      iteration,
    };
    if (request.signal) hookOptions.signal = request.signal;
    const hooked = await runBeforeModelCallHooks(
      dependencies,
      assembled.setup,
      assembled.context,
      hookOptions,
    );
    context = hooked.context;
    setup = assembled.setup;
    hookStop = hooked.stop;
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
  if (hookStop) {
    // A capability stopped the turn before the model call (a budget used up): nothing is stored,
    // the step fails with the capability's code and the planner ends the turn.
    const failure = {
      code: hookStop.stop.code,
      message: hookStop.stop.message,
      details: { ...(hookStop.stop.details ?? {}), capabilityId: hookStop.capabilityId },
    };
    await backends.events.emit({
      type: 'reason.completed',
      sessionId,
      turnId,
      data: { iteration, success: false, error: failure },
    });
    return { success: false, text: '', toolCalls: [], replayed: false, error: failure };
  }
  // What the hook sees is shown to people: never the provider key (only the driver gets it).
  dependencies.onContextAssembled?.(turnContextWithoutSecrets(context));
  const startedData: Record<string, unknown> = {
    iteration,
    model: context.model.model,
    providerType: context.model.providerType,
  };
  if (context.compaction) startedData.compactedThroughSeq = context.compaction.throughSeq;
  if (context.hookChanges) startedData.hooks = context.hookChanges;
  const startedRequest: EventRequest = {
    type: 'reason.started',
    sessionId,
    turnId,
    data: startedData,
  };
  let driver: LlmDriver;
  try {
    driver = dependencies.drivers.get(context.model.providerType);
  } catch (error) {
    return modelFailure(backends.events, request, context, error, [startedRequest]);
  }
  const streams = request.stream === true && typeof driver.stream === 'function';
  // Where the bus writes a message with its events in one round trip, `reason.started` (stamped
  // now) is stored with what ends the step: the answer, or the failure's `reason.completed`; it
  // comes before them all the same, and nothing else of the step is emitted in between. A
  // streamed answer's pieces must follow it, so it is emitted first then, as on any other bus.
  const jointBus =
    typeof (backends.events as Partial<MessageEventBus>).storeMessageAndEmit === 'function';
  let pendingStarted: EventRequest[] = [];
  // `ts` set on a copy by `Object.assign`: a spread followed by a property keeps young objects
  // alive through scavenges on Node 20 (`bench/RESULTS.md`).
  if (jointBus && !streams) {
    pendingStarted = [Object.assign({}, startedRequest, { ts: isoNow() })];
  } else await backends.events.emit(startedRequest);
  let response: LlmResponse;
  try {
    const options = mergeLlmRequestOptions(context.model.options, request.modelOptions);
    const llmRequest: LlmRequest = {
      model: context.model,
      systemPrompt: context.systemPrompt,
      messages: context.messages,
      tools: context.tools,
      sessionId,
      turnId,
      iteration,
    };
    if (options) llmRequest.options = options;
    if (request.previousResponseId !== undefined) {
      llmRequest.previousResponseId = request.previousResponseId;
    }
    const callOptions = withSignalOf({}, request.signal);
    response = streams
      ? await streamAnswer(driver, llmRequest, callOptions, request.signal, backends.events)
      : await driver.generate(llmRequest, callOptions);
  } catch (error) {
    // A delta the bus could not take is a store error, not the model's.
    if (error instanceof DeltaEmitFailure) throw error.cause;
    if (EverrunsError.hasCode(error, 'ABORTED') || request.signal?.aborted) {
      throw EverrunsError.hasCode(error, 'ABORTED')
        ? error
        : new EverrunsError({ code: 'ABORTED', message: 'The turn was aborted', cause: error });
    }
    return modelFailure(backends.events, request, context, error, pendingStarted);
  }
  const content: ContentPart[] = [];
  // Reasoning first, in the order it came: the providers that want it back want it there.
  for (const part of response.reasoning ?? []) {
    content.push({
      type: 'reasoning',
      text: part.text,
      ...(part.signature !== undefined ? { signature: part.signature } : {}),
      ...(part.redactedData !== undefined ? { redactedData: part.redactedData } : {}),
    });
  }
  if (response.text) content.push({ type: 'text', text: response.text });
  const { calls, rekeyed } = rekeyRepeatedToolCallIds(response.toolCalls, context.messages);
  for (const call of calls.map(boundToolCallArguments)) {
    content.push({ type: 'tool_call', id: call.id, name: call.name, arguments: call.arguments });
  }
  const metadata: Record<string, unknown> = {
    iteration,
    usage: response.usage,
    stopReason: response.stopReason,
    model: response.model ?? context.model.model,
  };
  if (Object.keys(rekeyed).length > 0) metadata.rekeyedToolCallIds = rekeyed;
  if (response.responseId !== undefined) metadata.responseId = response.responseId;
  // The first call's start may go with the answer (see `startFirstCall`), where the bus can.
  const firstCall = jointBus ? firstCallStart(request, setup, content) : undefined;
  // An answer that ends the turn may carry the end (see `endTurn`), where the bus can write it.
  const end =
    jointBus && calls.length === 0 && request.endTurn
      ? request.endTurn(answerToBe(response, metadata))
      : undefined;
  // The answer and the events announcing it in one round trip where the bus can write them.
  const written = await storeMessageAndEmit(
    backends,
    sessionId,
    { role: 'agent', turnId, content, idempotencyKey, metadata },
    (answer) => {
      const announced = resultFromStored(answer, false);
      return [
        ...pendingStarted,
        {
          type: 'output.message.completed',
          sessionId,
          turnId,
          data: {
            messageId: answer.id,
            seq: answer.seq,
            text: announced.text,
            toolCalls: announced.toolCalls.length,
            iteration,
            // The stored calls themselves (ids as stored, bounded arguments), so a subscriber can
            // show them without loading the message.
            calls: announced.toolCalls.map((call) => ({
              id: call.id,
              name: call.name,
              arguments: call.arguments,
            })),
          },
        },
        {
          type: 'reason.completed',
          sessionId,
          turnId,
          data: {
            iteration,
            success: true,
            toolCalls: announced.toolCalls.length,
            usage: response.usage,
            stopReason: response.stopReason,
          },
        },
        ...(end ? end.events : []),
        ...(firstCall ? [firstCall.started] : []),
      ];
    },
    end
      ? {
          sessionStatus: end.sessionStatus,
          ...(end.releaseLease ? { releaseLease: end.releaseLease } : {}),
        }
      : firstCall?.claim
        ? { claimValue: firstCall.claim }
        : undefined,
  );
  if (end) {
    // The end's events went out with the answer's either way: a bus that did not set the status
    // with them (it wrote the events apart, or found the answer stored) leaves it to this step.
    if (written.statusSet !== true) {
      await backends.sessions.updateSessionStatus(sessionId, end.sessionStatus);
    }
    end.onWritten({ leaseReleased: written.leaseReleased === true });
  }
  const result = resultFromStored(written.message, false);
  if (firstCall) {
    // Its `tool.started` went out with the answer's events either way; a claim the bus did not
    // write with them is made here (a call claimed before is left to the act step).
    const { claim } = firstCall;
    if (!claim || written.valueClaimed === true || (await claimApart(claim, sessionId))) {
      result.startedCallIds = [firstCall.started.data.toolCallId as string];
    }
  }
  return result;
}

/**
 * The `tool.started` of the answer's first call, and its journal claim, to write with the answer
 * (see `startFirstCall`): none for a client-side tool, nor for a claim the caller cannot give.
 */
function firstCallStart(
  request: ReasonAtomInput,
  setup: TurnSetup,
  content: readonly ContentPart[],
):
  | {
      started: EventRequest;
      claim?: { storage: SessionStorageStore; key: string; value: string };
    }
  | undefined {
  if (!request.startFirstCall) return undefined;
  const part = content.find((entry) => entry.type === 'tool_call');
  if (part?.type !== 'tool_call') return undefined;
  const call: ToolCall = { id: part.id, name: part.name, arguments: part.arguments };
  const tool = setup.tools.get(call.name)?.tool;
  if (tool?.clientSide) return undefined;
  const started = toolStartedRequest(request.sessionId, request.turnId, call, request.iteration);
  // An idempotent tool is not claimed (it runs again after a crash); another tool is.
  if (tool?.idempotent) return { started };
  const claim = request.startFirstCall.claimOf(call);
  return claim ? { started, claim } : undefined;
}

/** `storage.setValueIfAbsent` (read then write where the store has none): whether it set it. */
async function claimApart(
  claim: { storage: SessionStorageStore; key: string; value: string },
  sessionId: string,
): Promise<boolean> {
  const { storage, key, value } = claim;
  if (storage.setValueIfAbsent) return storage.setValueIfAbsent(sessionId, key, value);
  if ((await storage.getValue(sessionId, key)) !== null) return false;
  await storage.setValue(sessionId, key, value);
  return true;
}

/** The result an answer without tool calls will have once stored (no `messageId` yet). */
function answerToBe(response: LlmResponse, metadata: Record<string, unknown>): ReasonAtomResult {
  const result: ReasonAtomResult = {
    success: true,
    text: response.text ?? '',
    toolCalls: [],
    replayed: false,
  };
  if (metadata.usage) result.usage = metadata.usage as LlmUsage;
  if (metadata.stopReason) result.stopReason = metadata.stopReason as LlmStopReason;
  if (typeof metadata.responseId === 'string') result.responseId = metadata.responseId;
  return result;
}

/**
 * A failed model call: its `reason.completed` (after `started`, the step's `reason.started` when
 * it was held back to be stored with the step's end) and the result with the user-facing text.
 */
async function modelFailure(
  events: EventBus,
  request: ReasonAtomInput,
  context: AssembledTurnContext,
  error: unknown,
  started: EventRequest[],
): Promise<ReasonAtomResult> {
  const failureCode = isProviderNotConfigured(error)
    ? PROVIDER_NOT_CONFIGURED_FAILURE
    : LLM_ERROR_FAILURE;
  const failure = {
    code: failureCode,
    message: redactApiKey(errorMessage(error), context.model.apiKey),
    ...(EverrunsError.isInstance(error)
      ? {
          details: redactApiKeyInData(
            { ...error.details, errorCode: error.code },
            context.model.apiKey,
          ),
        }
      : {}),
  };
  // The person using the agent gets a plain answer; the error beside it says what failed.
  const text = modelFailureText(failureCode);
  await emitEvents(events, [
    ...started,
    {
      type: 'reason.completed',
      sessionId: request.sessionId,
      turnId: request.turnId,
      data: { iteration: request.iteration, success: false, text, error: failure },
    },
  ]);
  return { success: false, text, toolCalls: [], replayed: false, error: failure };
}

/** Returned by {@link storedSinceInput} when only the message store can tell. */
const LOOK_UP: unique symbol = Symbol('look up');

/**
 * The message stored under `idempotencyKey`, one of turn `turnId`'s: looked for from the end of
 * the history back to the turn's input message (the turn's writes all come after it), so the cost
 * is the turn's, not the session's history's. `undefined` when it is not stored; {@link LOOK_UP}
 * when the history was cut (compacted) past the turn's input and a message of the turn from
 * `iteration` on is kept, so the answer exists but may have been cut (a step replayed after later
 * steps of its turn compacted the history).
 */
function storedSinceInput(
  messages: readonly Message[],
  turnId: string,
  idempotencyKey: string,
  iteration: number,
): Message | undefined | typeof LOOK_UP {
  const inputKey = `${turnId}/input`;
  let later = false;
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index] as Message;
    if (message.idempotencyKey === idempotencyKey) return message;
    if (message.idempotencyKey === inputKey) return undefined;
    if (!later && message.turnId === turnId) {
      const at = message.metadata?.iteration;
      later = typeof at === 'number' && at >= iteration;
    }
  }
  return later ? LOOK_UP : undefined;
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

/** A delta event the bus refused; carries the bus's error (thrown as it is, not as the model's). */
class DeltaEmitFailure extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super('The event bus refused a delta event');
    this.cause = cause;
  }
}

/** `events.emit(request)`, a refusal (thrown or rejected) wrapped as a {@link DeltaEmitFailure}. */
async function emitAwaited(events: EventBus, request: EventRequest): Promise<void> {
  try {
    await events.emit(request);
  } catch (error) {
    throw new DeltaEmitFailure(error);
  }
}

/**
 * Calls the driver's `stream` and emits each piece as an ephemeral event while it arrives:
 * `output.message.delta` (answer text), `reason.thinking.delta` (reasoning text) and
 * `tool.call.delta` (tool-call argument text; the call's id and name, once a piece named them,
 * ride on every later piece of the same call). Resolves with the `finish` event's response, the
 * one `generate` would have given. A stream that ends without `finish` is the model's failure
 * (`LLM_ERROR`); an abort between pieces stops reading at once.
 */
async function streamAnswer(
  driver: LlmDriver,
  llmRequest: LlmRequest,
  callOptions: LlmCallOptions,
  signal: SignalSource | undefined,
  events: EventBus,
): Promise<LlmResponse> {
  const { sessionId, turnId, iteration } = llmRequest;
  const stream = (driver.stream as NonNullable<LlmDriver['stream']>).call(
    driver,
    llmRequest,
    callOptions,
  );
  const calls = new Map<number, { id?: string; name?: string }>();
  let textOffset = 0;
  let reasoningOffset = 0;
  // A bus that can emit synchronously (the in-memory one) takes each delta without a promise;
  // any other bus is awaited piece by piece, so deltas arrive in order.
  const emitSync = events.emitSync?.bind(events);
  for await (const piece of stream) {
    throwIfAborted(signal);
    let request: EventRequest;
    switch (piece.type) {
      case 'text_delta':
        if (piece.text.length === 0) continue;
        request = {
          type: 'output.message.delta',
          sessionId,
          turnId,
          data: { iteration, delta: piece.text, offset: textOffset },
        };
        textOffset += piece.text.length;
        break;
      case 'reasoning_delta':
        if (piece.text.length === 0) continue;
        request = {
          type: 'reason.thinking.delta',
          sessionId,
          turnId,
          data: { iteration, delta: piece.text, offset: reasoningOffset },
        };
        reasoningOffset += piece.text.length;
        break;
      case 'tool_call_delta': {
        let known = calls.get(piece.index);
        if (!known) {
          known = {};
          calls.set(piece.index, known);
        }
        if (piece.id !== undefined && piece.id !== '') known.id = piece.id;
        if (piece.name !== undefined && piece.name !== '') known.name = piece.name;
        const data: Record<string, unknown> = { iteration, index: piece.index };
        if (known.id !== undefined) data.toolCallId = known.id;
        if (known.name !== undefined) data.toolName = known.name;
        data.argumentsDelta = piece.argumentsDelta;
        request = { type: 'tool.call.delta', sessionId, turnId, data };
        break;
      }
      case 'finish':
        return piece.response;
      default:
        continue;
    }
    if (emitSync !== undefined) {
      try {
        emitSync(request);
      } catch (error) {
        throw new DeltaEmitFailure(error);
      }
    } else {
      await emitAwaited(events, request);
    }
  }
  throwIfAborted(signal);
  throw new EverrunsError({
    code: 'LLM_ERROR',
    message: 'The model stream ended without its finish event',
  });
}
