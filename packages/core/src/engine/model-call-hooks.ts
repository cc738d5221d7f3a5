import type {
  BeforeModelCallContext,
  BeforeModelCallResult,
  HookModelCallRequest,
  ModelCallStop,
  UsageSnapshot,
} from '../capability-hooks.js';
import { compactionRecordSchema, compactionSection } from '../compaction.js';
import type { LlmResponse } from '../driver.js';
import { EverrunsError, errorMessage, throwIfAborted } from '../errors.js';
import { lazySchema } from '../lazy-schema.js';
import { abortSignalOf, type SignalSource } from '../lazy-signal.js';
import type { Message } from '../message.js';
import { messageSchema } from '../message.js';
import { readUsageSnapshot } from '../session-history.js';
import { resolveModel } from './assemble-turn-context.js';
import { repairHistory } from './repair-history.js';
import type { AssembledTurnContext, AtomDependencies, TurnSetup } from './turn-types.js';

/** What {@link runBeforeModelCallHooks} decided. */
export interface ModelCallHooksOutcome {
  /** The context to send (the assembled one when no hook changed anything). */
  context: AssembledTurnContext;
  /** Set when a hook stopped the turn: the capability and its stop. */
  stop?: { capabilityId: string; stop: ModelCallStop };
}

const messagesSchema = lazySchema(() => messageSchema.array());

/**
 * Runs every `beforeModelCall` hook of the turn's capabilities, in their resolved order, on the
 * assembled context: each sees the previous hooks' changes. A replaced history is repaired (every
 * tool call keeps its one result); a prompt addition becomes the capability's section at the end
 * of the system prompt; the first stop ends the loop. A hook that throws, or returns a malformed
 * history, throws `CAPABILITY_FAILED` naming the capability (`ABORTED` passes through).
 */
export function runBeforeModelCallHooks(
  dependencies: AtomDependencies,
  setup: Pick<TurnSetup, 'capabilities' | 'fileSystem'>,
  assembled: AssembledTurnContext,
  request: ModelCallHooksRequest,
): Promise<ModelCallHooksOutcome> {
  // Without hooks (the common case) no async function runs: one resolved promise per step.
  if (!setup.capabilities.some(hasModelCallHook)) return Promise.resolve({ context: assembled });
  return runHooks(dependencies, setup, assembled, request);
}

/** The step a {@link runBeforeModelCallHooks} call is for. */
export interface ModelCallHooksRequest {
  turnId: string;
  iteration: number;
  signal?: SignalSource;
}

/** Whether a resolved capability has a `beforeModelCall` hook. */
function hasModelCallHook({ capability }: TurnSetup['capabilities'][number]): boolean {
  return typeof capability.beforeModelCall === 'function';
}

/** {@link runBeforeModelCallHooks} once a capability has a hook. */
async function runHooks(
  dependencies: AtomDependencies,
  setup: Pick<TurnSetup, 'capabilities' | 'fileSystem'>,
  assembled: AssembledTurnContext,
  request: ModelCallHooksRequest,
): Promise<ModelCallHooksOutcome> {
  const hooked = setup.capabilities.filter(hasModelCallHook);
  const { backends } = dependencies;
  const { sessionId } = assembled;
  let context = assembled;
  let usage: Promise<UsageSnapshot> | undefined;
  const readUsage = (): Promise<UsageSnapshot> => {
    usage ??= readUsageSnapshot(backends, sessionId, request.turnId, dependencies.prices);
    return usage;
  };
  const { apiKey: _apiKey, ...model } = assembled.model;
  for (const { capability, config } of hooked) {
    throwIfAborted(request.signal);
    const hookContext: BeforeModelCallContext = {
      sessionId,
      turnId: request.turnId,
      iteration: request.iteration,
      config,
      fileSystem: setup.fileSystem,
      storage: backends.storage,
      ...(request.signal ? { signal: abortSignalOf(request.signal) } : {}),
      model,
      systemPrompt: context.systemPrompt,
      messages: context.messages,
      tools: context.tools,
      ...(context.compaction ? { compaction: context.compaction } : {}),
      usage: readUsage,
      callModel: (call) => callModelForHook(dependencies, context, request, call),
    };
    let result: BeforeModelCallResult | undefined;
    try {
      result = (await capability.beforeModelCall?.(hookContext)) ?? undefined;
    } catch (error) {
      if (EverrunsError.hasCode(error, 'ABORTED') || request.signal?.aborted) throw error;
      throw hookFailure(capability.id, errorMessage(error), error);
    }
    if (!result) continue;
    if (result.stop) {
      return { context, stop: { capabilityId: capability.id, stop: result.stop } };
    }
    const changes: Record<string, unknown> = { ...(result.annotations ?? {}) };
    let next = context;
    if (result.messages !== undefined) {
      const parsed = messagesSchema.safeParse(result.messages);
      if (!parsed.success) {
        throw hookFailure(capability.id, 'its beforeModelCall hook returned malformed messages');
      }
      next = { ...next, messages: repairHistory(parsed.data as Message[]) };
      changes.messagesReplaced = true;
    }
    if (result.compaction !== undefined) {
      next = await applyCompaction(dependencies, capability.id, next, result.compaction, {
        ...request,
        before: context.messages,
      });
      changes.compacted = {
        throughSeq: next.compaction?.throughSeq,
        ...(result.compaction.previousThroughSeq !== undefined
          ? { previousThroughSeq: result.compaction.previousThroughSeq }
          : {}),
      };
    }
    if (result.systemPromptAddition?.trim()) {
      const section = `<capability id="${capability.id}">\n${result.systemPromptAddition}\n</capability>`;
      next = {
        ...next,
        systemPrompt: next.systemPrompt ? `${next.systemPrompt}\n\n${section}` : section,
      };
      changes.systemPromptAdded = true;
    }
    if (Object.keys(changes).length > 0) {
      next = { ...next, hookChanges: { ...(next.hookChanges ?? {}), [capability.id]: changes } };
    }
    context = next;
  }
  return { context };
}

/**
 * Puts a record a hook just stored in force for this call: checks it, swaps the summary section
 * of the system prompt (or adds one after the prompt) and emits `context.compacted`.
 */
async function applyCompaction(
  dependencies: AtomDependencies,
  capabilityId: string,
  context: AssembledTurnContext,
  candidate: unknown,
  request: { turnId: string; iteration: number; before: readonly Message[] },
): Promise<AssembledTurnContext> {
  const parsed = compactionRecordSchema.safeParse(candidate);
  if (!parsed.success) {
    throw hookFailure(
      capabilityId,
      'its beforeModelCall hook returned a malformed compaction record',
    );
  }
  const record = parsed.data;
  // The current turn is never compacted: a replayed step finds its stored answer among the
  // messages after the cut.
  const cutsTurn = [...request.before, ...context.messages].some(
    (message) => message.turnId === request.turnId && message.seq <= record.throughSeq,
  );
  if (cutsTurn) {
    throw hookFailure(capabilityId, 'its compaction record cuts into the current turn');
  }
  const section = compactionSection(record);
  const previous = context.compaction ? compactionSection(context.compaction) : undefined;
  let systemPrompt: string;
  if (previous !== undefined && context.systemPrompt.includes(previous)) {
    systemPrompt = context.systemPrompt.replace(previous, () => section);
  } else {
    systemPrompt = context.systemPrompt ? `${context.systemPrompt}\n\n${section}` : section;
  }
  await dependencies.backends.events.emit({
    type: 'context.compacted',
    sessionId: context.sessionId,
    turnId: request.turnId,
    data: {
      iteration: request.iteration,
      capabilityId,
      throughSeq: record.throughSeq,
      ...(record.previousThroughSeq !== undefined
        ? { previousThroughSeq: record.previousThroughSeq }
        : {}),
      ...(record.tokensBefore !== undefined ? { tokensBefore: record.tokensBefore } : {}),
      ...(record.tokensAfter !== undefined ? { tokensAfter: record.tokensAfter } : {}),
      ...(record.model !== undefined ? { model: record.model } : {}),
      summary: record.summary,
    },
  });
  return { ...context, systemPrompt, compaction: record };
}

function hookFailure(capabilityId: string, message: string, cause?: unknown): EverrunsError {
  return new EverrunsError({
    code: 'CAPABILITY_FAILED',
    message: `Capability ${capabilityId} failed before the model call: ${message}`,
    details: { capabilityId, hook: 'beforeModelCall' },
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** A model call a hook makes: the session's model (or a registered one), nothing stored. */
async function callModelForHook(
  dependencies: AtomDependencies,
  context: AssembledTurnContext,
  request: ModelCallHooksRequest,
  call: HookModelCallRequest,
): Promise<LlmResponse> {
  const model =
    call.modelId === undefined
      ? context.model
      : await resolveModel(dependencies, call.modelId, undefined);
  const driver = dependencies.drivers.get(model.providerType);
  const signal = call.signal ?? abortSignalOf(request.signal);
  return driver.generate(
    {
      model,
      systemPrompt: call.systemPrompt,
      messages: call.messages,
      tools: [],
      sessionId: context.sessionId,
      turnId: request.turnId,
      iteration: request.iteration,
      ...(call.maxOutputTokens !== undefined
        ? { options: { maxOutputTokens: call.maxOutputTokens } }
        : {}),
    },
    signal ? { signal } : {},
  );
}
