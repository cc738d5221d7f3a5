import {
  type Agent,
  type AssembledTurnContext,
  agentSchema,
  assembleTurnContext,
  type Capability,
  DEFAULT_TURN_LIMITS,
  type DriverRegistry,
  EverrunsError,
  type FileContent,
  foldOverlay,
  formatZodError,
  type Harness,
  harnessSchema,
  type InitialFile,
  type InputMessage,
  inputMessageSchema,
  LLMSIM_DEFAULT_MODEL,
  type LlmDriver,
  type Message,
  type ModelWithProvider,
  modelWithProviderSchema,
  newId,
  PlatformDefinition,
  type RuntimeBackends,
  type RuntimeEvent,
  type Session,
  type SessionFileSystem,
  type SessionFileSystemFactory,
  type SessionInput,
  sessionSchema,
  type TurnLimits,
  type TurnSetup,
} from '@everruns-ts/core';
import { type LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { InMemorySessionFileSystemFactory, inMemoryBackends } from '@everruns-ts/stores-memory';
import { z } from 'zod';
import { SessionBuilder, SingleSessionBuilder } from './builders.js';
import {
  type ClientToolResult,
  clientToolResultsSchema,
  forgetWaitingTurn,
  loadWaitingTurn,
  storeClientToolResults,
} from './client-tool-results.js';
import {
  executeActActivity,
  executeInputActivity,
  executeReasonActivity,
  type RuntimeHostAdapter,
  RuntimeSessionLifecycle,
} from './host.js';
import {
  initialTurnState,
  planNextHostTurn,
  planResumeAfterToolResults,
  type RuntimeTurnPlan,
  type RuntimeTurnState,
  type TurnStopReason,
} from './turn-plan.js';
import { settleTurn } from './turn-step.js';

/** The outcome of one turn. */
export interface TurnResult {
  turnId: string;
  /** The model's final text. */
  response: string;
  /** Reason steps run. */
  iterations: number;
  toolCallsCount: number;
  /** False when the model failed, the session is blocked or a limit stopped the turn. */
  success: boolean;
  error?: { code: string; message: string; details?: Record<string, unknown> };
  stopReason: TurnStopReason;
}

/** Options of {@link InProcessRuntime.runTurn}. */
export interface RunTurnOptions {
  /** Cancels the turn: model calls and tools see it; the turn rejects with `ABORTED`. */
  signal?: AbortSignal;
}

/** Options of {@link InProcessRuntime}. */
export interface InProcessRuntimeOptions {
  /** How many finished turns keep their assembled context for inspection. Default 100. */
  keepTurnContexts?: number;
}

const sessionIdSchema = z.string().min(1, 'must not be empty');

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
  readonly #turnContexts = new Map<string, AssembledTurnContext>();
  readonly #latestContext = new Map<string, AssembledTurnContext>();
  readonly #keepTurnContexts: number;

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
    this.#adapter = {
      backends,
      capabilities: platform.capabilities,
      drivers: platform.drivers,
      fileSystems,
      limits,
      setupCache: new Map<string, TurnSetup>(),
      onContextAssembled: (context) => {
        if (context.turnId !== undefined) this.#latestContext.set(context.turnId, context);
      },
    };
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
   * planner a durable host uses. Throws `INVALID_INPUT`, `SESSION_NOT_FOUND` and
   * `TURN_IN_PROGRESS` before changing anything, and `ABORTED` when `signal` fires. A failing
   * model, a blocked session or a limit resolve with `success: false` instead of throwing.
   */
  async runTurn(
    sessionId: string,
    input: InputMessage,
    options: RunTurnOptions = {},
  ): Promise<TurnResult> {
    const id = sessionIdSchema.safeParse(sessionId);
    if (!id.success) throw invalid('session id', id.error);
    const parsedInput = inputMessageSchema.safeParse(input);
    if (!parsedInput.success) throw invalid('input message', parsedInput.error);
    this.#assertIdle(sessionId);
    const turnId = newId('turn');
    const entry = this.#enter(sessionId, turnId);
    const signal = options.signal;
    const holder: { state?: RuntimeTurnState } = {};
    try {
      if (signal?.aborted) throw abortError(signal);
      const inputResult = await executeInputActivity(this.#adapter, {
        sessionId,
        input: parsedInput.data,
        turnId,
      });
      const state = initialTurnState({
        sessionId,
        turnId,
        maxRepeatedToolCalls: this.#adapter.limits.maxRepeatedToolCalls,
        maxIterations: this.#adapter.limits.maxIterations,
      });
      holder.state = state;
      const plan = planNextHostTurn('input', state, inputResult, 0, { trusted: true });
      return await this.#drive(entry, plan, holder, signal);
    } catch (error) {
      throw await this.#onTurnError(sessionId, holder.state, error, signal);
    } finally {
      this.#leave(sessionId, entry, holder.state);
    }
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
  async submitToolResults(
    sessionId: string,
    turnId: string,
    results: ClientToolResult[],
    options: RunTurnOptions = {},
  ): Promise<TurnResult> {
    const id = sessionIdSchema.safeParse(sessionId);
    if (!id.success) throw invalid('session id', id.error);
    const turn = sessionIdSchema.safeParse(turnId);
    if (!turn.success) throw invalid('turn id', turn.error);
    const parsedResults = clientToolResultsSchema.safeParse(results);
    if (!parsedResults.success) throw invalid('tool results', parsedResults.error);
    if (!(await this.backends.sessions.getSession(sessionId))) {
      throw new EverrunsError({
        code: 'SESSION_NOT_FOUND',
        message: `Session ${sessionId} does not exist`,
        details: { sessionId },
      });
    }
    this.#assertIdle(sessionId);
    const entry = this.#enter(sessionId, turnId);
    const signal = options.signal;
    const holder: { state?: RuntimeTurnState } = {};
    try {
      const resume = await loadWaitingTurn(this.#adapter, sessionId, turnId);
      if (!resume) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `Turn ${turnId} of session ${sessionId} does not wait for tool results`,
          details: { sessionId, turnId },
        });
      }
      if (signal?.aborted) throw abortError(signal);
      const { remaining } = await storeClientToolResults(this.#adapter, resume, parsedResults.data);
      const waitingState = { ...resume, iteration: resume.iteration - 1 };
      if (remaining.length > 0) {
        return toTurnResult(waitingState, {
          success: true,
          response: resume.lastResponseText,
          stopReason: 'waiting_for_tool_results',
        });
      }
      holder.state = waitingState;
      await forgetWaitingTurn(this.#adapter, sessionId, turnId);
      await this.backends.sessions.updateSessionStatus(sessionId, 'active');
      const plan = planResumeAfterToolResults(resume, { trusted: true });
      return await this.#drive(entry, plan, holder, signal);
    } catch (error) {
      throw await this.#onTurnError(sessionId, holder.state, error, signal);
    } finally {
      this.#leave(sessionId, entry, holder.state);
    }
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
    const parsedInput = inputMessageSchema.safeParse(input);
    if (!parsedInput.success) return Promise.reject(invalid('input message', parsedInput.error));
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

  /** {@link steer} with a plain user text. */
  steerText(sessionId: string, text: string): Promise<SteeringReceipt> {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
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

  /** The step loop shared by {@link runTurn} and {@link submitToolResults}. */
  async #drive(
    entry: RunningTurn,
    first: RuntimeTurnPlan,
    holder: { state?: RuntimeTurnState },
    signal: AbortSignal | undefined,
  ): Promise<TurnResult> {
    const options = signal ? { signal } : {};
    let plan = first;
    for (;;) {
      holder.state = plan.state;
      switch (plan.kind) {
        case 'scheduleReason': {
          // Steering messages that arrived during the previous step join the history first.
          await this.#takeSteering(entry);
          const output = await executeReasonActivity(this.#adapter, plan.state, options);
          // Messages that arrived while the model answered: stored now unless tool calls must
          // get their results first (they are then stored before the next reason step).
          const pending =
            output.success && output.toolCalls.length === 0 ? await this.#takeSteering(entry) : 0;
          plan = planNextHostTurn('reason', plan.state, output, pending, { trusted: true });
          break;
        }
        case 'scheduleAct': {
          const output = await executeActActivity(this.#adapter, plan.act, options);
          plan = planNextHostTurn('act', plan.state, output, 0, { trusted: true });
          break;
        }
        case 'waitForToolResults':
        case 'complete':
          return settleTurn(this.#adapter, plan);
      }
    }
  }

  async #onTurnError(
    sessionId: string,
    state: RuntimeTurnState | undefined,
    error: unknown,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    if (state && (EverrunsError.hasCode(error, 'ABORTED') || signal?.aborted)) {
      await new RuntimeSessionLifecycle(this.#adapter, sessionId).turnEnded(state, {
        success: false,
        response: state.lastResponseText,
        stopReason: 'aborted',
        error: { code: 'ABORTED', message: 'The turn was aborted' },
      });
      return EverrunsError.hasCode(error, 'ABORTED') ? error : abortError(signal as AbortSignal);
    }
    return error;
  }

  /** {@link runTurn} with a plain user text. */
  runTextTurn(sessionId: string, text: string, options: RunTurnOptions = {}): Promise<TurnResult> {
    if (typeof text !== 'string') throw new TypeError('text must be a string');
    return this.runTurn(sessionId, { role: 'user', content: [{ type: 'text', text }] }, options);
  }

  /**
   * The context the next reason step of a session would send: overlay, system prompt, tools with
   * JSON Schemas, messages and model. Throws `SESSION_NOT_FOUND`.
   */
  loadContext(sessionId: string): Promise<AssembledTurnContext> {
    return assembleTurnContext(this.#adapter, sessionId);
  }

  /** The last context a finished turn sent to the model (kept for the most recent turns), or `undefined`. */
  turnContext(turnId: string): AssembledTurnContext | undefined {
    return this.#turnContexts.get(turnId);
  }

  /** The messages of a session, oldest first. */
  messages(sessionId: string): Promise<Message[]> {
    return this.backends.messages.load(sessionId);
  }

  /** Events the event bus kept (all sessions, or one), in order. */
  events(sessionId?: string): RuntimeEvent[] {
    return this.backends.events.collectedEvents?.(sessionId) ?? [];
  }

  /** The session, or `null`. */
  getSession(sessionId: string): Promise<Session | null> {
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

  /** Adds a harness at run time. Throws `INVALID_INPUT`, `DUPLICATE_ID`. */
  async createHarness(harness: z.input<typeof harnessSchema>): Promise<Harness> {
    const parsed = harnessSchema.safeParse(harness);
    if (!parsed.success) throw invalid('harness', parsed.error);
    await this.backends.harnesses.addHarness(parsed.data);
    return parsed.data;
  }

  /** Adds an agent at run time. Throws `INVALID_INPUT`, `DUPLICATE_ID`. */
  async createAgent(agent: z.input<typeof agentSchema>): Promise<Agent> {
    const parsed = agentSchema.safeParse(agent);
    if (!parsed.success) throw invalid('agent', parsed.error);
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
    const parsed = sessionSchema.safeParse(value);
    if (!parsed.success) throw invalid('session', parsed.error);
    return createAndSeedSession(this.backends, this.#adapter.fileSystems, parsed.data, []);
  }

  /** Releases the backends. */
  async close(): Promise<void> {
    await this.backends.close?.();
  }

  #finishTurn(sessionId: string, turnId: string): void {
    this.#adapter.setupCache?.delete(`${sessionId}/${turnId}`);
    const context = this.#latestContext.get(turnId);
    this.#latestContext.delete(turnId);
    if (!context) return;
    this.#turnContexts.set(turnId, context);
    if (this.#turnContexts.size > this.#keepTurnContexts) {
      const oldest = this.#turnContexts.keys().next().value;
      if (oldest !== undefined) this.#turnContexts.delete(oldest);
    }
  }
}

function toTurnResult(
  state: RuntimeTurnState,
  outcome: {
    success: boolean;
    response: string;
    stopReason: TurnStopReason;
    error?: TurnResult['error'];
  },
): TurnResult {
  const result: TurnResult = {
    turnId: state.turnId,
    response: outcome.response,
    iterations: state.iteration,
    toolCallsCount: state.toolCallsCount,
    success: outcome.success,
    stopReason: outcome.stopReason,
  };
  if (outcome.error) result.error = outcome.error;
  return result;
}

function invalid(what: string, error: z.ZodError): EverrunsError {
  return new EverrunsError({
    code: 'INVALID_INPUT',
    message: `Invalid ${what}: ${formatZodError(error)}`,
  });
}

function abortError(signal: AbortSignal): EverrunsError {
  return new EverrunsError({
    code: 'ABORTED',
    message: 'The turn was aborted',
    cause: signal.reason,
  });
}

async function createAndSeedSession(
  backends: RuntimeBackends,
  fileSystems: SessionFileSystemFactory,
  session: Session,
  seeds: InitialFile[],
): Promise<Session> {
  const chain = await backends.harnesses.getHarnessChain(session.harnessId);
  let agent: Agent | null = null;
  if (session.agentId) {
    agent = await backends.agents.getAgent(session.agentId);
    if (!agent) {
      throw new EverrunsError({
        code: 'AGENT_NOT_FOUND',
        message: `Agent ${session.agentId} does not exist`,
        details: { agentId: session.agentId },
      });
    }
  }
  const created = await backends.sessions.createSession(session);
  const overlay = foldOverlay(chain, agent, created);
  const fileSystem = await fileSystems.forSession(created.id);
  for (const file of overlay.initialFiles) await fileSystem.seedInitialFile(file);
  for (const file of seeds) await fileSystem.writeFile(file.path, file.content, file.encoding);
  return created;
}

/**
 * Configures and builds an {@link InProcessRuntime}: platform (capabilities, drivers, workspace
 * factory), default model, backends (in-memory unless given), and the harnesses, agents and
 * sessions to seed.
 */
export class InProcessRuntimeBuilder {
  #platform: PlatformDefinition | undefined;
  readonly #capabilities: Capability[] = [];
  readonly #builtins: Capability[] = [];
  readonly #drivers: LlmDriver[] = [];
  #driverRegistry: DriverRegistry | undefined;
  #defaultModel: ModelWithProvider | undefined;
  readonly #models = new Map<string, ModelWithProvider>();
  #backends: RuntimeBackends | undefined;
  #fileSystemFactory: SessionFileSystemFactory | undefined;
  #llmSim: LlmSimConfig | undefined;
  readonly #harnesses: Harness[] = [];
  readonly #agents: Agent[] = [];
  readonly #sessions: Session[] = [];
  readonly #seeds: Array<{ sessionId: string; path: string; content: string }> = [];
  #single: SingleSessionBuilder | undefined;
  #limits: TurnLimits = { ...DEFAULT_TURN_LIMITS };
  #options: InProcessRuntimeOptions = {};

  /** Uses the host's platform: its capability registry, driver registry and workspace factory. */
  platformDefinition(platform: PlatformDefinition): this {
    this.#platform = platform;
    return this;
  }
  /** Registers one more capability (on top of the platform's). */
  capability<TConfig>(capability: Capability<TConfig>): this {
    this.#capabilities.push(capability as Capability);
    return this;
  }
  /**
   * Registers a default set of capabilities, usually `BUILTIN_CAPABILITIES` of
   * `@everruns-ts/builtins` (upstream's `with_builtins()`). They are only registered: a session
   * switches each one on by id. One with the id of a capability given to {@link capability}, or
   * of one the platform already registers, is skipped, so those replace it whatever the order of
   * the calls. Calling it again adds to the set. Without it the runtime registers only the
   * capabilities it is given.
   */
  builtins(capabilities: Iterable<Capability>): this {
    this.#builtins.push(...capabilities);
    return this;
  }
  /** Uses this driver registry instead of the platform's. */
  driverRegistry(registry: DriverRegistry): this {
    this.#driverRegistry = registry;
    return this;
  }
  /** Registers one more driver. */
  driver(driver: LlmDriver): this {
    this.#drivers.push(driver);
    return this;
  }
  /** Registers the simulated model with this script; sets `llmsim-model` as default when none is given. */
  llmSim(config: LlmSimConfig): this {
    this.#llmSim = config;
    return this;
  }
  /** The model sessions use when their overlay names none. Throws `INVALID_INPUT` at `build()` when malformed. */
  defaultModel(model: ModelWithProvider): this {
    this.#defaultModel = model;
    return this;
  }
  /** Registers a model under an id that harnesses, agents and sessions may name. */
  model(modelId: string, model: ModelWithProvider): this {
    this.#models.set(modelId, model);
    return this;
  }
  /** Uses these stores instead of fresh in-memory ones. */
  backends(backends: RuntimeBackends): this {
    this.#backends = backends;
    return this;
  }
  /** Where session workspaces live (overrides the platform's). */
  fileSystemFactory(factory: SessionFileSystemFactory): this {
    this.#fileSystemFactory = factory;
    return this;
  }
  /** Overrides turn limits. */
  limits(limits: Partial<TurnLimits>): this {
    this.#limits = { ...this.#limits, ...limits };
    return this;
  }
  /** Runtime options. */
  options(options: InProcessRuntimeOptions): this {
    this.#options = { ...this.#options, ...options };
    return this;
  }
  harness(harness: z.input<typeof harnessSchema> | Harness): this {
    this.#harnesses.push(parseWith(harnessSchema, harness, 'harness'));
    return this;
  }
  agent(agent: z.input<typeof agentSchema> | Agent): this {
    this.#agents.push(parseWith(agentSchema, agent, 'agent'));
    return this;
  }
  session(session: SessionInput | Session): this {
    this.#sessions.push(parseWith(sessionSchema, session, 'session'));
    return this;
  }
  /** Describes one harness, agent and session; its id becomes `defaultSessionId()`. */
  singleSession(configure: (builder: SingleSessionBuilder) => unknown): this {
    const builder = new SingleSessionBuilder();
    configure(builder);
    this.#single = builder;
    return this;
  }
  /** Writes a text file into a session's workspace once the session exists. */
  seedTextFile(sessionId: string, path: string, content: string): this {
    this.#seeds.push({ sessionId, path, content });
    return this;
  }

  /**
   * Builds the runtime: registers capabilities and drivers, checks capability dependencies,
   * resolves the default model (`CONFIGURATION` error when there is none), stores the
   * harnesses, agents and sessions in the backends and seeds their workspaces.
   */
  async build(): Promise<InProcessRuntime> {
    const platform = this.#platform ?? new PlatformDefinition();
    const own = new Set(this.#capabilities.map((capability) => capability.id));
    for (const builtin of this.#builtins) {
      if (!own.has(builtin.id) && !platform.capabilities.has(builtin.id)) {
        platform.capabilities.register(builtin);
      }
    }
    const drivers = this.#driverRegistry ?? platform.drivers;
    for (const capability of this.#capabilities) platform.capabilities.register(capability);
    platform.capabilities.validate();
    for (const driver of this.#drivers) drivers.register(driver);
    let defaultModel = this.#defaultModel;
    if (this.#llmSim) {
      drivers.register(new LlmSimDriver(this.#llmSim));
      defaultModel ??= LLMSIM_DEFAULT_MODEL;
    }
    const backends = this.#backends ?? inMemoryBackends();
    if (!defaultModel) {
      throw new EverrunsError({
        code: 'CONFIGURATION',
        message:
          'The in-process runtime needs a default model: call defaultModel(...) or llmSim(...) on the builder',
      });
    }
    const parsedModel = modelWithProviderSchema.safeParse(defaultModel);
    if (!parsedModel.success) throw invalid('default model', parsedModel.error);
    await backends.providers.setDefaultModel(parsedModel.data);
    for (const [modelId, model] of this.#models) {
      const parsed = modelWithProviderSchema.safeParse(model);
      if (!parsed.success) throw invalid(`model ${modelId}`, parsed.error);
      await backends.providers.addModel(modelId, parsed.data);
    }
    const effectivePlatform =
      drivers === platform.drivers
        ? platform
        : new PlatformDefinition(platform.capabilities, drivers, {
            ...(platform.fileSystemFactory
              ? { fileSystemFactory: platform.fileSystemFactory }
              : {}),
          });
    const fileSystems =
      this.#fileSystemFactory ??
      platform.fileSystemFactory ??
      new InMemorySessionFileSystemFactory();
    for (const harness of this.#harnesses)
      await addIfAbsent(() => backends.harnesses.addHarness(harness));
    for (const agent of this.#agents) await addIfAbsent(() => backends.agents.addAgent(agent));
    const sessions: Array<{ session: Session; seeds: InitialFile[] }> = this.#sessions.map(
      (session) => ({
        session,
        seeds: [],
      }),
    );
    let defaultSessionId: string | undefined;
    if (this.#single) {
      const single = this.#single.build();
      await addIfAbsent(() => backends.harnesses.addHarness(single.harness));
      if (single.agent) {
        const agent = single.agent;
        await addIfAbsent(() => backends.agents.addAgent(agent));
      }
      sessions.push({ session: single.session, seeds: single.seeds });
      defaultSessionId = single.session.id;
    }
    for (const { session, seeds } of sessions) {
      if (await backends.sessions.getSession(session.id)) continue;
      await createAndSeedSession(backends, fileSystems, session, seeds);
    }
    for (const seed of this.#seeds) {
      const fileSystem = await fileSystems.forSession(seed.sessionId);
      await fileSystem.writeFile(seed.path, seed.content, 'text');
    }
    return new InProcessRuntime(
      effectivePlatform,
      backends,
      fileSystems,
      this.#limits,
      defaultSessionId,
      this.#options,
    );
  }
}

async function addIfAbsent(add: () => Promise<void>): Promise<void> {
  try {
    await add();
  } catch (error) {
    // A definition seeded by an earlier process into durable backends is kept as it is.
    if (!EverrunsError.hasCode(error, 'DUPLICATE_ID')) throw error;
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(what, parsed.error);
  return parsed.data;
}
