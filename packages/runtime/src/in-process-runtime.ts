import {
  type Agent,
  type AssembledTurnContext,
  activateSessionCapability,
  agentSchema,
  assembleTurnContext,
  type CapabilityChange,
  deactivateSessionCapability,
  EverrunsError,
  type EverrunsLogger,
  type ExecuteSessionCommandOptions,
  errorLogFields,
  executeSessionCommand,
  type FileContent,
  type Harness,
  harnessSchema,
  type InputMessage,
  inputMessageSchema,
  LazySignal,
  type LlmRequestOptions,
  listSessionCommands,
  type Message,
  type ModelPrices,
  newId,
  type PlatformDefinition,
  parseLlmRequestOptions,
  parseLogger,
  type RuntimeBackends,
  type RuntimeEvent,
  type Session,
  type SessionCommandInfo,
  type SessionCommandResult,
  type SessionFileSystem,
  type SessionFileSystemFactory,
  type SessionInput,
  type SessionSetupSnapshot,
  type SignalSource,
  safeParseDeferringJit,
  sessionSchema,
  silentLogger,
  sumSessionUsage,
  type TurnLimits,
  type TurnSetup,
  type TurnSnapshot,
  turnContextWithoutSecrets,
} from '@everruns-ts/core';
import { z } from 'zod';
import { SessionBuilder } from './builders.js';
import {
  type ClientToolResult,
  clientToolResultsSchema,
  forgetWaitingTurn,
  loadWaitingTurn,
  storeClientToolResults,
  WAITING_TURN_KEY_PREFIX,
} from './client-tool-results.js';
import { createAndSeedSession } from './create-and-seed-session.js';
import { endFailedTurn } from './end-failed-turn.js';
import {
  HeldTurnLease,
  type ResolvedTurnLeaseOptions,
  resolveTurnLeaseOptions,
  type TurnLeaseOptions,
} from './held-turn-lease.js';
import { InProcessSchedules } from './in-process-schedules.js';
import { InProcessSubagents, workspaceLinkingFileSystems } from './in-process-subagents.js';
import { leaseConditionedAdapter } from './lease-conditioned-adapter.js';
import { abortedError, invalidInputError } from './runtime-errors.js';
import type { RuntimeHostAdapter } from './runtime-host-adapter.js';
import {
  parseModelPrices,
  type SessionUsage,
  sessionUsageOf,
  turnCostOf,
} from './session-usage.js';
import { StructuredOutput, type TurnOutputSchema } from './structured-output.js';
import { ReleaseForgetsToolCallJournal, toolCallJournalTurnPrefix } from './tool-call-journal.js';
import {
  initialTurnState,
  planResumeAfterToolResults,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
} from './turn-plan.js';
import {
  type DriveTurnOptions,
  driveTurn,
  type RunTurnStepOptions,
  runTurnStep,
  type TurnResult,
  turnResultOf,
} from './turn-step.js';
import { TurnStream, type TurnStreamOptions } from './turn-stream.js';
import { TurnEventTranslator, tapEventBus } from './turn-stream-events.js';

/**
 * Options of {@link InProcessRuntime.runTurn}. `Output` is the type of the `output` schema, which
 * types `TurnResult.output`.
 */
export interface RunTurnOptions<Output extends TurnOutputSchema = TurnOutputSchema> {
  /** Cancels the turn: model calls and tools see it; the turn rejects with `ABORTED`. */
  signal?: AbortSignal;
  /**
   * Request options for every model call of this turn (temperature, tool choice, structured
   * output, …), merged key by key over the model configuration's `options` (the turn's win).
   * Checked before anything is written: `INVALID_INPUT` from the schema or the model's driver.
   * Ignored by `submitToolResults`, whose turn keeps the options it started with.
   */
  modelOptions?: LlmRequestOptions;
  /**
   * Structured output: a zod (v4) schema the turn's final answer must match. Its JSON schema
   * (`z.toJSONSchema`) is sent with every model call of the turn as `modelOptions.responseFormat`
   * (name `output`; a non-object schema is wrapped as `{ value }` and unwrapped again), so each
   * driver asks its provider's structured-output mode; the final answer is parsed as JSON and
   * validated, and its value is `TurnResult.output`, typed as `z.output` of the schema. An
   * answer that does not match is fed back once (a stored `user` message) and the model answers
   * again; a second failure ends the turn with `success: false`, error code `OUTPUT_INVALID`.
   * Not a zod schema, a schema without JSON schema or `modelOptions.responseFormat` set too:
   * `INVALID_INPUT` before anything is stored. `submitToolResults` validates the resumed turn's
   * answer when given the same schema again.
   */
  output?: Output;
}

/**
 * Options of {@link InProcessRuntime.streamTurn}: those of `runTurn` and the stream's
 * `highWaterMark` (see {@link TurnStreamOptions}).
 */
export interface StreamTurnOptions<Output extends TurnOutputSchema = TurnOutputSchema>
  extends RunTurnOptions<Output>,
    TurnStreamOptions {}

/** Options of {@link InProcessRuntime}. */
export interface InProcessRuntimeOptions {
  /** How many finished turns keep their assembled context for inspection. Default 100. */
  keepTurnContexts?: number;
  /**
   * Prices per model (per million tokens, in the embedder's currency; the runtime ships none):
   * turns then report `TurnResult.cost` and {@link InProcessRuntime.sessionUsage} a `cost`.
   * Keys are model names as the agent messages record them (see `findModelPrice`: a dated
   * snapshot such as `gpt-4.1-mini-2025-04-14` finds `gpt-4.1-mini`). Validated by
   * `modelPricesSchema`: `INVALID_INPUT` when malformed. See also `InProcessRuntimeBuilder.prices`.
   */
  prices?: ModelPrices;
  /**
   * The session turn lease every turn holds, so runtimes in other processes on the same stores
   * never run a turn on the session at the same time (they get `TURN_IN_PROGRESS`). Default: 60 s,
   * renewed every 20 s while the turn runs.
   */
  turnLease?: TurnLeaseOptions;
  /**
   * Where the runtime reports turns: each turn's end (`debug`: ids, success, iterations, tool
   * calls, stop reason) and a failed turn (`warn`: its error code; a lost turn lease is
   * `TURN_IN_PROGRESS`). Never message content, tool data or API keys. See
   * `InProcessRuntimeBuilder.logger`. Validated: `INVALID_INPUT` without the four functions.
   */
  logger?: EverrunsLogger;
}

const sessionIdSchema = z.string().min(1, 'must not be empty');

/** Refuses options whose `signal` is not an `AbortSignal` (`INVALID_INPUT`), before anything runs. */
function assertSignalOption(options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') {
    throw new EverrunsError({ code: 'INVALID_INPUT', message: 'options must be an object' });
  }
  const { signal } = options as { signal?: unknown };
  if (signal === undefined) return;
  const candidate = signal as Partial<AbortSignal> | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    typeof candidate.aborted !== 'boolean' ||
    typeof candidate.addEventListener !== 'function' ||
    typeof candidate.removeEventListener !== 'function'
  ) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: 'options.signal must be an AbortSignal',
    });
  }
}

function runtimeClosedError(): EverrunsError {
  return new EverrunsError({
    code: 'RUNTIME_CLOSED',
    message: 'The runtime was closed; build a new one to run more turns',
  });
}

function textNotStringError(text: unknown): EverrunsError {
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `Invalid input message: text must be a string, got ${text === null ? 'null' : typeof text}`,
  });
}

/** What {@link InProcessRuntime.steer} resolves with: where the steering message was stored. */
export interface SteeringReceipt {
  turnId: string;
  messageId: string;
  seq: number;
}

interface QueuedSteering {
  input: InputMessage;
  resolve(receipt: SteeringReceipt): void;
  reject(error: unknown): void;
}

/** A turn's claimed lease: the turn's signal, its adapter, and the release to run when it ends. */
interface LeasedTurn {
  signal: LazySignal;
  /** The runtime's adapter with every status write conditional on holding the lease. */
  adapter: RuntimeHostAdapter;
  /** The session's setup, when the claim loaded it in the same round trip (a new turn's). */
  setup?: SessionSetupSnapshot;
  release(): Promise<void>;
}

/** What a running turn has reached, for ending it when it throws. */
interface TurnHolder {
  state?: RuntimeTurnState;
  /** True once the planner's final plan is being carried out (the turn is being ended). */
  settling?: boolean;
}

interface RunningTurn {
  sessionId: string;
  turnId: string;
  /** Steering messages waiting for a point where the history may take them. */
  queue: QueuedSteering[];
  /** Steering messages stored so far (numbers their idempotency keys). */
  steered: number;
}

/**
 * An agent runtime inside the host process. Build one with {@link InProcessRuntimeBuilder}.
 * Turns of different sessions run concurrently; a second turn on a busy session is refused.
 */
export class InProcessRuntime {
  readonly backends: RuntimeBackends;
  readonly platform: PlatformDefinition;
  readonly #adapter: RuntimeHostAdapter;
  readonly #defaultSessionId: string | undefined;
  readonly #running = new Map<string, RunningTurn>();
  /** Made on the first kept context (none with `keepTurnContexts: 0`). */
  #turnContexts: Map<string, AssembledTurnContext> | undefined;
  #latestContext: Map<string, AssembledTurnContext> | undefined;
  readonly #keepTurnContexts: number;
  readonly #turnLease: ResolvedTurnLeaseOptions;
  readonly #prices: ModelPrices | undefined;
  /** Names this runtime in the turn leases it holds (`<instance>/<turnId>`). */
  readonly #instanceId = `runtime_${crypto.randomUUID().replaceAll('-', '')}`;
  /**
   * Set by {@link close} (the `RUNTIME_CLOSED` error running turns are aborted with): running
   * turns stop (`ABORTED`), new ones are refused. A plain field rather than an `AbortController`,
   * which would hold an event target and two maps per runtime for a signal nobody listens to.
   */
  #closedReason: EverrunsError | undefined;
  /**
   * How {@link close} aborts each running turn (one function per turn), so however many turns run
   * at once no listener gathers on a long-lived signal; a turn removes its own when it ends.
   */
  readonly #turnClosers = new Set<(reason: unknown) => void>();
  /** Turns running now (settled or not), so {@link close} waits for them to end. */
  readonly #turns = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  /** The listener of each session's streaming turn, fed by the tapped event bus. */
  readonly #streamListeners = new Map<string, (event: RuntimeEvent) => void>();
  /** Scheduled messages of sessions (`ToolContext.schedules`): timers, cleared by {@link close}. */
  readonly #schedules: InProcessSchedules;
  readonly #logger: EverrunsLogger;
  #rearmed: Promise<number> | undefined;

  /** @internal Use {@link InProcessRuntimeBuilder}. */
  constructor(
    platform: PlatformDefinition,
    backends: RuntimeBackends,
    fileSystems: SessionFileSystemFactory,
    limits: TurnLimits,
    defaultSessionId: string | undefined,
    options: InProcessRuntimeOptions = {},
  ) {
    this.platform = platform;
    this.backends = backends;
    this.#defaultSessionId = defaultSessionId;
    this.#keepTurnContexts = options.keepTurnContexts ?? 100;
    this.#turnLease = resolveTurnLeaseOptions(options.turnLease);
    this.#logger = parseLogger(options.logger, 'InProcessRuntime options') ?? silentLogger;
    this.#prices = options.prices === undefined ? undefined : parseModelPrices(options.prices);
    this.#adapter = {
      // Events emitted through the runtime also reach the session's streaming turn, if any.
      backends: { ...backends, events: tapEventBus(backends.events, this.#streamListeners) },
      capabilities: platform.capabilities,
      drivers: platform.drivers,
      // A subagent sharing its parent's files (`workspaceSessionId`) gets the parent's workspace.
      fileSystems: workspaceLinkingFileSystems(fileSystems, backends.sessions),
      limits,
      setupCache: new Map<string, TurnSetup>(),
      ...(platform.mcpToolSource ? { mcp: platform.mcpToolSource } : {}),
      ...(this.#prices ? { prices: this.#prices } : {}),
    };
    // Contexts are only gathered when some are kept (a copy without secrets per reason step).
    if (this.#keepTurnContexts > 0) {
      this.#adapter.onContextAssembled = (context) => {
        if (context.turnId !== undefined) {
          this.#latestContext ??= new Map();
          this.#latestContext.set(context.turnId, context);
        }
      };
    }
    this.#adapter.subagents = new InProcessSubagents({
      backends: this.#adapter.backends,
      fileSystems: this.#adapter.fileSystems,
      ...(this.#adapter.setupCache ? { setupCache: this.#adapter.setupCache } : {}),
      runTurn: (sessionId, input, signal) => this.runTurn(sessionId, input, { signal }),
    });
    this.#schedules = new InProcessSchedules({
      backends,
      deliver: (sessionId, input) => this.#deliverScheduled(sessionId, input),
    });
    this.#adapter.schedules = this.#schedules;
    // Schedules stored by an earlier runtime on the same stores fire again.
    if (platform.capabilities.has('session_schedule')) {
      this.#rearmed = this.#schedules.rearm().catch(() => 0);
    }
  }

  /**
   * Arms the stored schedules of every session (`capabilities-schedule`): what a runtime does by
   * itself at start when the `session_schedule` capability is registered. Resolves with how many
   * schedules were armed by that pass (an already armed schedule is not armed twice).
   */
  rearmSchedules(): Promise<number> {
    this.#rearmed = (this.#rearmed ?? Promise.resolve(0)).then(() =>
      this.#closedReason !== undefined ? 0 : this.#schedules.rearm(),
    );
    return this.#rearmed;
  }

  /**
   * Starts the turn of a due scheduled message; while the session runs a turn elsewhere
   * (`TURN_IN_PROGRESS`), tries again a little later until the runtime closes. The turn records
   * its own failure; nothing is thrown.
   */
  async #deliverScheduled(sessionId: string, input: InputMessage): Promise<void> {
    for (let attempt = 0; this.#closedReason === undefined; attempt++) {
      try {
        await this.runTurn(sessionId, input);
        return;
      } catch (error) {
        if (!EverrunsError.hasCode(error, 'TURN_IN_PROGRESS')) return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
        timer.unref?.();
      });
    }
  }

  /** The adapter this runtime runs turns with; a durable host can reuse the same pieces. */
  get hostAdapter(): RuntimeHostAdapter {
    return this.#adapter;
  }

  /** The session created by `singleSession(...)`, if any. */
  defaultSessionId(): string | undefined {
    return this.#defaultSessionId;
  }

  /**
   * Runs one turn: input → reason → (act → reason)* → complete, with the same activities and
   * planner a durable host uses. Rejects before changing anything (no message, no event, the
   * status as it was) with `INVALID_INPUT` (a bad message, or a capability configuration its
   * schema refuses), `LIMIT_EXCEEDED` (a message over `limits.maxInputBytes`, 1 MiB by default),
   * `SESSION_NOT_FOUND`, `CAPABILITY_NOT_FOUND`, `MODEL_NOT_FOUND`, `DRIVER_NOT_FOUND`,
   * `TURN_IN_PROGRESS`; and with `ABORTED` when `signal` fires. A failing
   * model, a blocked session or a limit resolve with `success: false` instead of throwing.
   * `TURN_WAITING_FOR_TOOL_RESULTS` when another turn of the session waits for client tool results
   * (submit them first). Whatever throws once the turn has started (an abort, a store or a bug),
   * the turn ends with `turn.failed` and `session.idled`, status idle, and an error result for each
   * of its tool calls without one; if ending it fails too, the error's `details.resume` says how to
   * go on.
   */
  runTurn<Output extends TurnOutputSchema = TurnOutputSchema>(
    sessionId: string,
    input: InputMessage,
    options: RunTurnOptions<Output> = {},
  ): Promise<TurnResult<z.output<Output>>> {
    return this.#track(() =>
      this.#runTurn(sessionId, input, options).then(
        (result) => this.#logTurn(sessionId, result),
        (error: unknown) => {
          this.#logger.warn(
            { sessionId, errorCode: errorLogFields(error).code ?? 'INTERNAL' },
            'turn refused or aborted',
          );
          throw error;
        },
      ),
    ) as Promise<TurnResult<z.output<Output>>>;
  }

  async #runTurn(
    sessionId: string,
    input: InputMessage,
    options: RunTurnOptions,
    onEvent?: (event: RuntimeEvent, turnId: string) => void,
  ): Promise<TurnResult> {
    const id = sessionIdSchema.safeParse(sessionId);
    if (!id.success) throw invalidInputError('session id', id.error);
    const parsedInput = safeParseDeferringJit(inputMessageSchema, input);
    if (!parsedInput.success) throw invalidInputError('input message', parsedInput.error);
    assertSignalOption(options);
    const structured = StructuredOutput.of(options.output);
    const modelOptions = structured
      ? structured.modelOptions(parseLlmRequestOptions(options.modelOptions, 'turn model options'))
      : parseLlmRequestOptions(options.modelOptions, 'turn model options');
    this.#assertIdle(sessionId);
    const turnId = newId('turn');
    const entry = this.#enter(sessionId, turnId);
    const listener = onEvent && ((event: RuntimeEvent) => onEvent(event, turnId));
    if (listener) this.#streamListeners.set(sessionId, listener);
    let signal: SignalSource | undefined = options.signal;
    const holder: TurnHolder = {};
    let lease: LeasedTurn | undefined;
    try {
      if (signal?.aborted) throw abortedError(signal);
      lease = await this.#claimLease(sessionId, turnId, signal, true);
      signal = lease.signal;
      let turnSnapshot: TurnSnapshot | undefined;
      // Objects built by assignment, not spreads followed by properties: on Node 20 those keep
      // young objects alive through scavenges (`bench/RESULTS.md`).
      const initial = initialTurnState({
        sessionId,
        turnId,
        maxRepeatedToolCalls: this.#adapter.limits.maxRepeatedToolCalls,
        maxIterations: this.#adapter.limits.maxIterations,
        ...(modelOptions ? { modelOptions } : {}),
      });
      const stepOptions: RunTurnStepOptions = {
        onTurnSnapshot: (snapshot) => {
          turnSnapshot = snapshot;
        },
      };
      if (lease.setup) stepOptions.inputSetup = lease.setup;
      const { plan } = await runTurnStep(
        lease.adapter,
        {
          activity: 'input',
          input: parsedInput.data,
          state: listener ? Object.assign({}, initial, { stream: true }) : initial,
        },
        stepOptions,
      );
      return await this.#drive(
        lease.adapter,
        entry,
        plan,
        holder,
        signal,
        structured,
        turnSnapshot,
      );
    } catch (error) {
      throw await this.#onTurnError(lease, sessionId, turnId, holder, error, signal, true);
    } finally {
      await lease?.release();
      if (listener && this.#streamListeners.get(sessionId) === listener) {
        this.#streamListeners.delete(sessionId);
      }
      this.#leave(sessionId, entry, holder.state);
    }
  }

  /**
   * Runs one turn as {@link runTurn} does (same checks, atoms, planner, lease, steering and
   * errors; what is stored is the same) and streams it: the returned {@link TurnStream} yields
   * the turn's parts as they happen (`turn-start`, `step-start`, `text-delta`,
   * `reasoning-delta`, `tool-call-start`, `tool-call-delta`, `tool-call`, `tool-result`,
   * `step-finish`, then `turn-finish`), and its `result` settles as `runTurn`'s promise would.
   * The model is called through its driver's `stream` (its `generate` when it has none). Never
   * throws: a turn that cannot run or is aborted (`INVALID_INPUT`, `TURN_IN_PROGRESS`,
   * `ABORTED`, …) ends the parts with an `error` part and `result` rejects with that error. A
   * consumer that stops iterating does not stop the turn; abort it with `signal`. With
   * `output` (structured output, as in `runTurn`), `result.output` and the `turn-finish` part's
   * `result.output` hold the parsed answer; an answer fed back for failing the schema has
   * already streamed its deltas, and the next step's answer follows.
   */
  streamTurn<Output extends TurnOutputSchema = TurnOutputSchema>(
    sessionId: string,
    input: InputMessage,
    options: StreamTurnOptions<Output> = {},
  ): TurnStream<z.output<Output>> {
    // Options that are not an object go to the turn as they are, which refuses them.
    let runOptions: RunTurnOptions = options;
    let highWaterMark: number | undefined;
    if (options !== null && typeof options === 'object' && 'highWaterMark' in options) {
      ({ highWaterMark, ...runOptions } = options);
    }
    return new TurnStream<z.output<Output>>(
      (sink) => {
        let translator: TurnEventTranslator | undefined;
        const onEvent = (event: RuntimeEvent, turnId: string) => {
          translator ??= new TurnEventTranslator({ turnId });
          for (const part of translator.translate(event)) sink.push(part);
        };
        this.#track(() => this.#runTurn(sessionId, input, runOptions, onEvent)).then(
          (result) => sink.end(this.#logTurn(sessionId, result)),
          (error: unknown) => sink.fail(error),
        );
      },
      highWaterMark === undefined ? {} : { highWaterMark },
    );
  }

  /**
   * {@link streamTurn} with a plain user text. Never throws: a `text` that is not a string fails
   * the stream with `INVALID_INPUT`.
   */
  streamTextTurn<Output extends TurnOutputSchema = TurnOutputSchema>(
    sessionId: string,
    text: string,
    options: StreamTurnOptions<Output> = {},
  ): TurnStream<z.output<Output>> {
    if (typeof text !== 'string') {
      const error = textNotStringError(text);
      return new TurnStream<z.output<Output>>((sink) => sink.fail(error));
    }
    return this.streamTurn(sessionId, { role: 'user', content: [{ type: 'text', text }] }, options);
  }

  /**
   * Submits the results of client-side tool calls of a turn that paused with stop reason
   * `waiting_for_tool_results`, then continues the turn (same planner and activities as
   * {@link runTurn}) until it completes or waits again. Stores one `tool_result` message per call
   * (idempotent by `<turnId>/tool/<callId>`); while some calls still lack results, resolves at once
   * with `waiting_for_tool_results` again. Throws, writing nothing: `INVALID_INPUT` (bad
   * arguments, a turn that is not waiting, a call id that is not pending), `SESSION_NOT_FOUND`,
   * `TURN_IN_PROGRESS`; and `ABORTED` when `signal` fires.
   */
  submitToolResults<Output extends TurnOutputSchema = TurnOutputSchema>(
    sessionId: string,
    turnId: string,
    results: ClientToolResult[],
    options: RunTurnOptions<Output> = {},
  ): Promise<TurnResult<z.output<Output>>> {
    return this.#track(() =>
      this.#submitToolResults(sessionId, turnId, results, options),
    ) as Promise<TurnResult<z.output<Output>>>;
  }

  async #submitToolResults(
    sessionId: string,
    turnId: string,
    results: ClientToolResult[],
    options: RunTurnOptions,
  ): Promise<TurnResult> {
    const id = sessionIdSchema.safeParse(sessionId);
    if (!id.success) throw invalidInputError('session id', id.error);
    const turn = sessionIdSchema.safeParse(turnId);
    if (!turn.success) throw invalidInputError('turn id', turn.error);
    const parsedResults = clientToolResultsSchema.safeParse(results);
    if (!parsedResults.success) throw invalidInputError('tool results', parsedResults.error);
    assertSignalOption(options);
    const structured = StructuredOutput.of(options.output);
    if (!(await this.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    this.#assertIdle(sessionId);
    const entry = this.#enter(sessionId, turnId);
    let signal: SignalSource | undefined = options.signal;
    const holder: TurnHolder = {};
    let lease: LeasedTurn | undefined;
    try {
      lease = await this.#claimLease(sessionId, turnId, signal);
      signal = lease.signal;
      const adapter = lease.adapter;
      const loaded = await loadWaitingTurn(adapter, sessionId, turnId);
      if (!loaded) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Turn ${turnId} of session ${sessionId} does not wait for tool results`,
          details: { sessionId, turnId },
        });
      }
      // The continuation is not streamed, even when the turn began as a stream.
      const { stream: _streamed, ...resume } = loaded;
      if (signal?.aborted) throw abortedError(signal);
      const { remaining } = await storeClientToolResults(adapter, resume, parsedResults.data);
      const waitingState = { ...resume, iteration: resume.iteration - 1 };
      if (remaining.length > 0) {
        return turnResultOf(waitingState, {
          success: true,
          response: resume.lastResponseText,
          stopReason: 'waiting_for_tool_results',
        });
      }
      holder.state = waitingState;
      await forgetWaitingTurn(adapter, sessionId, turnId);
      await adapter.backends.sessions.updateSessionStatus(sessionId, 'active');
      const plan = planResumeAfterToolResults(resume, { trusted: true });
      return await this.#drive(adapter, entry, plan, holder, signal, structured);
    } catch (error) {
      throw await this.#onTurnError(lease, sessionId, turnId, holder, error, signal, false);
    } finally {
      await lease?.release();
      this.#leave(sessionId, entry, holder.state);
    }
  }

  /**
   * Claims the session's turn lease before a turn writes anything (`TURN_IN_PROGRESS` when a
   * runtime elsewhere holds it) and keeps it renewed; the returned signal fires when the caller's
   * does or the lease is lost. `release()` ends both, whatever ended the turn.
   */
  async #claimLease(
    sessionId: string,
    turnId: string,
    signal: AbortSignal | undefined,
    withSetup = false,
  ): Promise<LeasedTurn> {
    const holderId = `${this.#instanceId}/${turnId}`;
    const { sessions, claimTurnLeaseAndLoadSetup } = this.backends;
    let setup: SessionSetupSnapshot | null | undefined;
    let held: HeldTurnLease;
    if (withSetup && claimTurnLeaseAndLoadSetup) {
      // A new turn's claim and its input step's setup read in one round trip.
      const claimed = await claimTurnLeaseAndLoadSetup.call(
        this.backends,
        sessionId,
        holderId,
        this.#turnLease.durationMs,
        { storageKeyPrefix: WAITING_TURN_KEY_PREFIX },
      );
      setup = claimed.setup;
      held = HeldTurnLease.held(sessions, claimed.lease, this.#turnLease);
    } else {
      held = await HeldTurnLease.claim(sessions, sessionId, holderId, this.#turnLease);
    }
    // One abort state per turn fires with the caller's signal, close() or the lease's loss (the
    // first of them); its listeners go when the turn releases the lease. Its `AbortSignal` is
    // made only if a driver, tool or hook reads one (Node takes ~4 µs to make a signal).
    const turnSignal = new LazySignal();
    const abort = (reason: unknown) => turnSignal.abort(reason);
    const onCaller = () => abort(signal?.reason);
    const turnClosers = this.#turnClosers;
    if (signal?.aborted) abort(signal.reason);
    else if (this.#closedReason !== undefined) abort(this.#closedReason);
    else if (held.isLost) abort(held.lostReason);
    let stopWatchingLease: (() => void) | undefined;
    if (!turnSignal.aborted) {
      signal?.addEventListener('abort', onCaller);
      stopWatchingLease = held.whenLost(abort);
      turnClosers.add(abort);
    }
    // With the default journal on backends that can, the turn's journal records go with the
    // lease's release, in one round trip.
    const { backends } = this.#adapter;
    const journal =
      this.#adapter.toolCallJournal === undefined && backends.releaseTurnLeaseAndDeleteValues
        ? new ReleaseForgetsToolCallJournal(backends.storage)
        : undefined;
    const adapter = leaseConditionedAdapter(this.#adapter, {
      holderId,
      durationMs: this.#turnLease.durationMs,
      onLost: (error) => held.markLost(error),
      // Where the bus can, the turn's last write (status idle with its end events) releases the
      // lease and forgets the journal too: one round trip, and the session is never seen idle
      // while still leased.
      releaseWithTurnEnd: {
        ...(journal ? { deleteValuesWithPrefix: toolCallJournalTurnPrefix(turnId) } : {}),
        onReleased: () => held.markReleased(),
      },
    });
    const leased: LeasedTurn = {
      signal: turnSignal,
      adapter: journal ? Object.assign({}, adapter, { toolCallJournal: journal }) : adapter,
      async release() {
        signal?.removeEventListener('abort', onCaller);
        stopWatchingLease?.();
        turnClosers.delete(abort);
        const prefix = journal?.forgottenPrefix;
        await held.release(
          prefix === undefined
            ? undefined
            : (sessionId, leaseHolder) =>
                backends.releaseTurnLeaseAndDeleteValues!(sessionId, leaseHolder, prefix),
        );
      },
    };
    if (setup) leased.setup = setup;
    return leased;
  }

  /**
   * Runs a turn method unless the runtime is closed (`RUNTIME_CLOSED`), and remembers it until it
   * settles so {@link close} can wait for it.
   */
  #track<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closedReason !== undefined) return Promise.reject(runtimeClosedError());
    const turn = run();
    const settled = turn.then(
      () => undefined,
      () => undefined,
    );
    this.#turns.add(settled);
    void settled.then(() => this.#turns.delete(settled));
    return turn;
  }

  /**
   * Steering: adds a user message to the turn running on a session. The message is stored at the
   * next point where the history allows it (never between a tool call and its result); the next
   * planner decision sees it, so a model answer without tool calls is followed by another reason
   * step instead of ending the turn (within `maxIterations`). Resolves once the message is stored.
   * Throws `INVALID_INPUT` for a bad message or when no turn runs on the session; rejects with
   * `INVALID_INPUT` when the turn ends or pauses for client tool results before taking it.
   */
  steer(sessionId: string, input: InputMessage): Promise<SteeringReceipt> {
    if (this.#closedReason !== undefined) return Promise.reject(runtimeClosedError());
    const parsedInput = safeParseDeferringJit(inputMessageSchema, input);
    if (!parsedInput.success)
      return Promise.reject(invalidInputError('input message', parsedInput.error));
    const entry = this.#running.get(sessionId);
    if (!entry) {
      return Promise.reject(
        new EverrunsError({
          code: 'INVALID_INPUT',
          message: `No turn is running on session ${sessionId} to steer; start a turn instead`,
          details: { sessionId },
        }),
      );
    }
    return new Promise<SteeringReceipt>((resolve, reject) => {
      entry.queue.push({ input: parsedInput.data, resolve, reject });
    });
  }

  /** {@link steer} with a plain user text. Rejects (never throws) with `INVALID_INPUT` when `text` is not a string. */
  steerText(sessionId: string, text: string): Promise<SteeringReceipt> {
    if (typeof text !== 'string') return Promise.reject(textNotStringError(text));
    return this.steer(sessionId, { role: 'user', content: [{ type: 'text', text }] });
  }

  #assertIdle(sessionId: string): void {
    if (this.#running.has(sessionId)) {
      throw new EverrunsError({
        code: 'TURN_IN_PROGRESS',
        message: `A turn is already running on session ${sessionId}`,
        details: { sessionId },
      });
    }
  }

  #enter(sessionId: string, turnId: string): RunningTurn {
    const entry: RunningTurn = { sessionId, turnId, queue: [], steered: 0 };
    this.#running.set(sessionId, entry);
    return entry;
  }

  #leave(sessionId: string, entry: RunningTurn, state: RuntimeTurnState | undefined): void {
    if (this.#running.get(sessionId) === entry) this.#running.delete(sessionId);
    for (const waiting of entry.queue.splice(0)) {
      waiting.reject(
        new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Turn ${entry.turnId} stopped before it could take the steering message; start a turn instead`,
          details: { sessionId, turnId: entry.turnId },
        }),
      );
    }
    if (state) this.#finishTurn(sessionId, state.turnId);
  }

  /** Stores the queued steering messages of a turn; returns how many. */
  async #takeSteering(entry: RunningTurn): Promise<number> {
    let count = 0;
    while (entry.queue.length > 0) {
      const waiting = entry.queue.shift() as QueuedSteering;
      try {
        const index = ++entry.steered;
        const message = await this.backends.messages.storeMessage(entry.sessionId, {
          role: 'user',
          turnId: entry.turnId,
          content: waiting.input.content,
          idempotencyKey: `${entry.turnId}/steer/${index}`,
          metadata: { ...waiting.input.metadata, steering: true },
        });
        await this.backends.events.emit({
          type: 'input.message',
          sessionId: entry.sessionId,
          turnId: entry.turnId,
          data: { messageId: message.id, seq: message.seq, steering: true },
        });
        waiting.resolve({ turnId: entry.turnId, messageId: message.id, seq: message.seq });
        count++;
      } catch (error) {
        waiting.reject(error);
        throw error;
      }
    }
    return count;
  }

  /** Drives a turn of {@link runTurn} or {@link submitToolResults} to its end, steering included. */
  async #drive(
    adapter: RuntimeHostAdapter,
    entry: RunningTurn,
    first: RuntimeTurnPlan,
    holder: TurnHolder,
    signal: SignalSource | undefined,
    structured?: StructuredOutput,
    turnSnapshot?: TurnSnapshot,
  ): Promise<TurnResult> {
    const options: DriveTurnOptions = {
      steering: { take: () => this.#takeSteering(entry), waiting: () => entry.queue.length },
      onPlan: (plan) => {
        holder.state = plan.state;
        holder.settling = plan.kind === 'complete' || plan.kind === 'waitForToolResults';
      },
    };
    if (signal) options.signal = signal;
    if (turnSnapshot) options.turnSnapshot = turnSnapshot;
    // Structured output: the final answer is checked, and fed back once when it fails.
    if (structured) options.reviewCompletion = structured.review.bind(structured);
    const result = await driveTurn(adapter, first, options);
    const finished = structured ? structured.finish(result) : result;
    if (this.#prices) {
      // The turn has ended: a store that fails to answer now leaves the cost out, nothing else.
      const cost = await turnCostOf(
        adapter.backends.messages,
        first.state.sessionId,
        finished.turnId,
        this.#prices,
      ).catch(() => undefined);
      if (cost !== undefined) finished.cost = cost;
    }
    return finished;
  }

  /**
   * Ends a turn that threw after it started (see {@link endFailedTurn}): `turn.failed`,
   * `session.idled`, status idle, an error result for each of its calls without one. Resolves
   * with the error to throw.
   */
  #onTurnError(
    lease: LeasedTurn | undefined,
    sessionId: string,
    turnId: string,
    holder: TurnHolder,
    error: unknown,
    signal: SignalSource | undefined,
    endIfInputStored: boolean,
  ): Promise<unknown> {
    return endFailedTurn(lease?.adapter ?? this.#adapter, {
      sessionId,
      turnId,
      state: holder.state,
      settling: holder.settling === true,
      error,
      ...(signal ? { signal } : {}),
      endIfInputStored,
    });
  }

  /** {@link runTurn} with a plain user text. Rejects (never throws) with `INVALID_INPUT` when `text` is not a string. */
  runTextTurn<Output extends TurnOutputSchema = TurnOutputSchema>(
    sessionId: string,
    text: string,
    options: RunTurnOptions<Output> = {},
  ): Promise<TurnResult<z.output<Output>>> {
    if (typeof text !== 'string') return Promise.reject(textNotStringError(text));
    return this.runTurn(sessionId, { role: 'user', content: [{ type: 'text', text }] }, options);
  }

  /**
   * The context the next reason step of a session would send: overlay, system prompt, tools with
   * JSON Schemas, messages and model (without its `apiKey`: only the driver gets it), with the
   * session's compaction record applied. Capabilities' `beforeModelCall` hooks are not run (they
   * may write or call a model): what a finished turn's step really sent, after its hooks, is
   * {@link turnContext}. Throws `SESSION_NOT_FOUND`.
   */
  async loadContext(sessionId: string): Promise<AssembledTurnContext> {
    return turnContextWithoutSecrets(await assembleTurnContext(this.#adapter, sessionId));
  }

  /**
   * The last context a finished turn sent to the model (kept for the most recent turns), without
   * the model's `apiKey`, or `undefined`.
   */
  turnContext(turnId: string): AssembledTurnContext | undefined {
    const context = this.#turnContexts?.get(turnId);
    return context && turnContextWithoutSecrets(context);
  }

  /**
   * What a session's model calls used, summed from the message store: `usage` (every call's
   * tokens added up), `modelCalls`, `byModel` (per model, for sessions that changed model) and,
   * when the runtime has prices for every model used, `cost`. One query on a store with
   * `sumUsage` (PostgreSQL, memory); other stores are read page by page. Counts the calls of
   * every turn stored so far, other processes' included. Throws `INVALID_INPUT` for a bad id and
   * `SESSION_NOT_FOUND`.
   */
  async sessionUsage(sessionId: string): Promise<SessionUsage> {
    const id = sessionIdSchema.safeParse(sessionId);
    if (!id.success) throw invalidInputError('session id', id.error);
    if (!(await this.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} not found`,
        details: { sessionId },
      });
    }
    return sessionUsageOf(await sumSessionUsage(this.backends.messages, sessionId), this.#prices);
  }

  /** The messages of a session, oldest first. */
  async messages(sessionId: string): Promise<Message[]> {
    return this.backends.messages.load(sessionId);
  }

  /** Events the event bus kept (all sessions, or one), in order. */
  events(sessionId?: string): RuntimeEvent[] {
    return this.backends.events.collectedEvents?.(sessionId) ?? [];
  }

  /** The session, or `null`. */
  async getSession(sessionId: string): Promise<Session | null> {
    return this.backends.sessions.getSession(sessionId);
  }

  /** The workspace of a session. */
  async fileSystem(sessionId: string): Promise<SessionFileSystem> {
    return this.#adapter.fileSystems.forSession(sessionId);
  }

  /** Reads a workspace file of a session. Throws `FILE_NOT_FOUND`. */
  async readFile(sessionId: string, path: string): Promise<FileContent> {
    return (await this.fileSystem(sessionId)).readFile(path);
  }

  /** Writes a text file into a session's workspace. */
  async seedTextFile(sessionId: string, path: string, content: string): Promise<void> {
    await (await this.fileSystem(sessionId)).writeFile(path, content, 'text');
  }

  /**
   * Switches a capability on for a live session and returns what changed (tools and system-prompt
   * sections added or removed, computed by resolving the session's setup before and after). The
   * change is stored in the session's capability list (with `config`, checked by the capability's
   * `configSchema`), emitted as `capability.activated`, and seen from the next reason step, also
   * by a turn running now. Throws `INVALID_INPUT`, `CAPABILITY_NOT_FOUND`, `SESSION_NOT_FOUND`,
   * `DEPENDENCY_BLOCKED`, `RUNTIME_CLOSED`. See `activateSessionCapability` for the rules.
   */
  activateCapability(
    sessionId: string,
    capabilityId: string,
    config?: unknown,
  ): Promise<CapabilityChange> {
    if (this.#closedReason !== undefined) return Promise.reject(runtimeClosedError());
    return activateSessionCapability(this.#adapter, sessionId, capabilityId, config);
  }

  /**
   * Switches a capability off for a live session (an inherited one through a `disabled` entry in
   * the session's list) and returns what changed; emits `capability.deactivated`; seen from the
   * next reason step. Throws `INVALID_INPUT`, `CAPABILITY_NOT_FOUND`, `SESSION_NOT_FOUND`,
   * `DEPENDENCY_BLOCKED`, `RUNTIME_CLOSED`.
   */
  deactivateCapability(sessionId: string, capabilityId: string): Promise<CapabilityChange> {
    if (this.#closedReason !== undefined) return Promise.reject(runtimeClosedError());
    return deactivateSessionCapability(this.#adapter, sessionId, capabilityId);
  }

  /**
   * The slash commands a session's capabilities declare (`/todos`, …), in capability order.
   * Throws `INVALID_INPUT`, `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED`.
   */
  listCommands(sessionId: string): Promise<SessionCommandInfo[]> {
    return listSessionCommands(this.#adapter, sessionId);
  }

  /**
   * Runs a slash command of a session without a model call: `command` is `/name` with optional
   * arguments after it (`'/todos'`, `'/todos pending'`); `args` are appended. Nothing is stored
   * in the history. Throws `INVALID_INPUT`, `COMMAND_NOT_FOUND` (details list what is available),
   * `CAPABILITY_FAILED` (the command threw), `ABORTED`, `SESSION_NOT_FOUND`, `RUNTIME_CLOSED`.
   */
  executeCommand(
    sessionId: string,
    command: string,
    args?: string,
    options: ExecuteSessionCommandOptions = {},
  ): Promise<SessionCommandResult> {
    if (this.#closedReason !== undefined) return Promise.reject(runtimeClosedError());
    return executeSessionCommand(this.#adapter, sessionId, command, args, options);
  }

  /** Adds a harness at run time. Throws `INVALID_INPUT`, `DUPLICATE_ID`. */
  async createHarness(harness: z.input<typeof harnessSchema>): Promise<Harness> {
    const parsed = safeParseDeferringJit(harnessSchema, harness);
    if (!parsed.success) throw invalidInputError('harness', parsed.error);
    await this.backends.harnesses.addHarness(parsed.data);
    return parsed.data;
  }

  /** Adds an agent at run time. Throws `INVALID_INPUT`, `DUPLICATE_ID`. */
  async createAgent(agent: z.input<typeof agentSchema>): Promise<Agent> {
    const parsed = safeParseDeferringJit(agentSchema, agent);
    if (!parsed.success) throw invalidInputError('agent', parsed.error);
    await this.backends.agents.addAgent(parsed.data);
    return parsed.data;
  }

  /**
   * Creates a session at run time and seeds its initial files (harness chain, agent and session
   * files, folded). Accepts a session object (id generated when absent) or a {@link SessionBuilder}.
   * Throws `INVALID_INPUT`, `HARNESS_NOT_FOUND`, `AGENT_NOT_FOUND`, `DUPLICATE_ID`.
   */
  async createSession(
    session: (Omit<SessionInput, 'id'> & { id?: string }) | SessionBuilder,
  ): Promise<Session> {
    const value =
      session instanceof SessionBuilder ? session.build() : { id: newId('session'), ...session };
    const parsed = safeParseDeferringJit(sessionSchema, value);
    if (!parsed.success) throw invalidInputError('session', parsed.error);
    return createAndSeedSession(this.backends, this.#adapter.fileSystems, parsed.data, []);
  }

  /**
   * Closes the runtime: running turns are aborted (each ends as an aborted turn would: an error
   * result for each open call, `turn.failed`, `session.idled`, status idle) and awaited, then the
   * platform's MCP tool source is closed (its connections and child processes end) and the
   * backends are released. Afterwards `runTurn`, `submitToolResults` and `steer` reject with
   * `RUNTIME_CLOSED`. Calling it again resolves once the first call has finished.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#schedules.close();
      const reason = runtimeClosedError();
      this.#closedReason = reason;
      for (const abortTurn of [...this.#turnClosers]) abortTurn(reason);
      await Promise.all([...this.#turns]);
      try {
        await this.platform.mcpToolSource?.close();
      } finally {
        await this.backends.close?.();
      }
    })();
    return this.#closing;
  }

  /** Reports a finished turn to the logger (ids, counts and codes only); returns it. */
  #logTurn<T extends TurnResult>(sessionId: string, result: T): T {
    const fields = {
      sessionId,
      turnId: result.turnId,
      success: result.success,
      iterations: result.iterations,
      toolCallsCount: result.toolCallsCount,
      stopReason: result.stopReason,
    };
    if (result.success) this.#logger.debug(fields, 'turn ended');
    else this.#logger.warn({ ...fields, errorCode: result.error?.code }, 'turn failed');
    return result;
  }

  #finishTurn(sessionId: string, turnId: string): void {
    this.#adapter.setupCache?.delete(`${sessionId}/${turnId}`);
    const context = this.#latestContext?.get(turnId);
    this.#latestContext?.delete(turnId);
    // Gathered only when contexts are kept (see the constructor).
    if (!context) return;
    this.#turnContexts ??= new Map();
    this.#turnContexts.set(turnId, context);
    if (this.#turnContexts.size > this.#keepTurnContexts) {
      const oldest = this.#turnContexts.keys().next().value;
      if (oldest !== undefined) this.#turnContexts.delete(oldest);
    }
  }
}
