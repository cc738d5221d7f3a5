import {
  COMPACTION_STORAGE_KEY,
  type CompactionRecord,
  compactionSection,
  parseCompactionRecord,
} from '../compaction.js';
import { EverrunsError, errorMessage } from '../errors.js';
import { type SignalSource, withSignalOf } from '../lazy-signal.js';
import type { Message } from '../message.js';
import { loadMessagesAfter } from '../message-range.js';
import type { ModelWithProvider } from '../model.js';
import type { TurnSnapshot } from '../stores.js';
import { closeOpenToolCalls } from './close-open-tool-calls.js';
import {
  findOpenToolCalls,
  MISSING_TOOL_RESULT_TEXT,
  markHistorySource,
  repairHistory,
} from './repair-history.js';
import { resolveTurnSetup, sessionNotFoundError } from './resolve-turn-setup.js';
import type {
  AssembledTurnContext,
  AtomDependencies,
  CapabilityPromptContribution,
  TurnSetup,
} from './turn-types.js';

/**
 * Assembles the context a reason step sends: overlay, system prompt with each capability's
 * contribution as `<capability id="…">…</capability>`, tools, history (repaired by
 * {@link repairHistory}: every tool call followed by its one result, no result without its call,
 * no tool call id twice) and the model. With a compaction record (see `COMPACTION_STORAGE_KEY`)
 * the history is only the messages after its `throughSeq` (only those are read) and its summary
 * closes the system prompt as `<compacted_history through_seq="N">…</compacted_history>`;
 * without one, the whole history.
 */
export async function assembleTurnContext(
  dependencies: AtomDependencies,
  sessionId: string,
  options: AssembleTurnContextOptions = {},
): Promise<AssembledTurnContext> {
  return (await assembleTurnContextWithSetup(dependencies, sessionId, options)).context;
}

/** Options of {@link assembleTurnContext}. */
export interface AssembleTurnContextOptions {
  turnId?: string;
  iteration?: number;
  /** Cancels the assembly; capabilities' prompt functions get it as their context's `signal`. */
  signal?: SignalSource;
  /** A snapshot the caller just loaded with `backends.loadTurnSnapshot`, used instead of loading another. */
  snapshot?: TurnSnapshot;
  /**
   * Store a synthetic error result ({@link MISSING_TOOL_RESULT_TEXT}) for every tool call of the
   * history that has none, unless the session waits for client tool results (the reason step
   * sets this; inspection does not write). Default false.
   */
  closeOpenToolCalls?: boolean;
}

/**
 * {@link assembleTurnContext}, also returning the turn's resolved setup (its capabilities, for
 * the reason step's hooks). Internal to the engine.
 */
export async function assembleTurnContextWithSetup(
  dependencies: AtomDependencies,
  sessionId: string,
  options: AssembleTurnContextOptions = {},
): Promise<{ context: AssembledTurnContext; setup: TurnSetup }> {
  const { backends } = dependencies;
  let snapshot: TurnSnapshot | undefined = options.snapshot;
  if (!snapshot && backends.loadTurnSnapshot) {
    snapshot = (await backends.loadTurnSnapshot(sessionId)) ?? undefined;
    if (!snapshot) throw sessionNotFoundError(sessionId);
  }
  const setup = await resolveTurnSetup(
    dependencies,
    sessionId,
    options.turnId,
    snapshot,
    options.signal,
  );
  const capabilityPrompts: CapabilityPromptContribution[] = [];
  for (const { capability, config } of setup.capabilities) {
    let text: string | null | undefined;
    if (typeof capability.systemPrompt === 'function') {
      try {
        text = await capability.systemPrompt(
          withSignalOf(
            { session: setup.overlay.session, fileSystem: setup.fileSystem, config },
            options.signal,
          ),
        );
      } catch (error) {
        throw new EverrunsError({
          code: 'CAPABILITY_FAILED',
          message: `Capability ${capability.id} failed to build its system prompt: ${errorMessage(error)}`,
          details: { capabilityId: capability.id },
          cause: error,
        });
      }
    } else text = capability.systemPrompt;
    if (text?.trim()) capabilityPrompts.push({ capabilityId: capability.id, text });
  }
  const parts = [...setup.overlay.systemPrompts];
  for (const contribution of capabilityPrompts) {
    parts.push(
      `<capability id="${contribution.capabilityId}">\n${contribution.text}\n</capability>`,
    );
  }
  const model = await resolveModel(dependencies, setup.overlay.modelId, snapshot?.defaultModel);
  const { history, compaction } = await loadHistory(dependencies, sessionId, snapshot);
  let messages = repairHistory(history);
  if (
    messages !== history &&
    options.closeOpenToolCalls &&
    setup.overlay.session.status !== 'waiting_for_tool_results'
  ) {
    // Calls left without a result (a crash, a store that failed mid-step) get their synthetic
    // result stored once, so the stored history itself is whole again.
    const open = findOpenToolCalls(history);
    if (open.length > 0) {
      const stored = await closeOpenToolCalls(
        backends.messages,
        sessionId,
        open,
        MISSING_TOOL_RESULT_TEXT,
      );
      const known = new Set(history.map((message) => message.id));
      messages = repairHistory([...history, ...stored.filter((message) => !known.has(message.id))]);
    }
  }
  if (compaction) parts.push(compactionSection(compaction));
  const systemPrompt = parts.join('\n\n');
  const { turnId, iteration } = options;
  const withMcp = hasOwnKeys(setup.overlay.mcpServers);
  if (!withMcp && !compaction && turnId !== undefined && iteration !== undefined) {
    // A reason step's context (no MCP servers, no compaction) made whole in one literal, with the
    // keys in the order the general case below gives them.
    const context: AssembledTurnContext = {
      sessionId,
      overlay: setup.overlay,
      systemPrompt,
      capabilityPrompts,
      tools: setup.toolSpecs,
      messages,
      model,
      maxIterations: setup.maxIterations,
      turnId,
      iteration,
    };
    return { context, setup };
  }
  const context: AssembledTurnContext = {
    sessionId,
    overlay: setup.overlay,
    systemPrompt,
    capabilityPrompts,
    tools: setup.toolSpecs,
    messages,
    model,
    maxIterations: setup.maxIterations,
  };
  if (withMcp) {
    context.mcpTools = setup.mcpTools;
    context.mcpIssues = setup.mcpIssues;
  }
  if (compaction) context.compaction = compaction;
  if (turnId !== undefined) context.turnId = turnId;
  if (iteration !== undefined) context.iteration = iteration;
  return { context, setup };
}

/** True when `record` has an own enumerable key (without making the array of its keys). */
function hasOwnKeys(record: object): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

/**
 * The history to send and the compaction record in force. A snapshot that read the record
 * (`compaction` not `undefined`) holds only the messages after it; otherwise the record comes
 * from the session storage and, without a snapshot, only the messages after its `throughSeq` are
 * read (`loadMessagesAfter`: the store's `loadAfter`, one query).
 */
async function loadHistory(
  dependencies: AtomDependencies,
  sessionId: string,
  snapshot: TurnSnapshot | undefined,
): Promise<{ history: Message[]; compaction: CompactionRecord | null }> {
  const { backends } = dependencies;
  if (snapshot && snapshot.compaction !== undefined) {
    if (snapshot.messagesSource) markHistorySource(snapshot.messages, snapshot.messagesSource);
    return { history: snapshot.messages, compaction: snapshot.compaction };
  }
  const compaction = parseCompactionRecord(
    await backends.storage.getValue(sessionId, COMPACTION_STORAGE_KEY),
  );
  if (snapshot) {
    if (compaction) {
      const history = snapshot.messages.filter((message) => message.seq > compaction.throughSeq);
      return { history, compaction };
    }
    if (snapshot.messagesSource) markHistorySource(snapshot.messages, snapshot.messagesSource);
    return { history: snapshot.messages, compaction };
  }
  if (compaction) {
    return {
      history: await loadMessagesAfter(backends.messages, sessionId, compaction.throughSeq),
      compaction,
    };
  }
  if (backends.messages.loadWithSource) {
    // With its source, the history's well-formedness check skips the part an earlier step checked.
    const { messages, source } = await backends.messages.loadWithSource(sessionId);
    markHistorySource(messages, source);
    return { history: messages, compaction };
  }
  return { history: await backends.messages.load(sessionId), compaction };
}

/**
 * The model `modelId` names in the provider store (`MODEL_NOT_FOUND` when it names none), else the
 * default model (`loadedDefault` when the caller already loaded it; `CONFIGURATION` when none).
 */
export function resolveModel(
  dependencies: AtomDependencies,
  modelId: string | undefined,
  loadedDefault: ModelWithProvider | null | undefined,
): Promise<ModelWithProvider> {
  // Continuations, not an async function: a reason step calls this each time.
  const { providers } = dependencies.backends;
  if (modelId !== undefined) {
    // `Promise.resolve` returns a store's own promise as it is (a plain value is wrapped).
    return Promise.resolve(providers.getModelWithProvider(modelId)).then((model) => {
      if (!model) {
        throw new EverrunsError({
          code: 'MODEL_NOT_FOUND',
          message: `Model ${modelId} is not registered in the provider store`,
          details: { modelId },
        });
      }
      return model;
    });
  }
  const fallback = loadedDefault !== undefined ? loadedDefault : providers.getDefaultModel();
  return Promise.resolve(fallback).then(requireDefaultModel);
}

/** The default model, or `CONFIGURATION` when the provider store has none. */
function requireDefaultModel(fallback: ModelWithProvider | null): ModelWithProvider {
  if (!fallback) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: 'No model is set for the session and the provider store has no default model',
    });
  }
  return fallback;
}
