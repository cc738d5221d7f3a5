import {
  type Agent,
  agentSchema,
  type Capability,
  CapabilityRegistry,
  DEFAULT_TURN_LIMITS,
  DriverRegistry,
  EverrunsError,
  type EverrunsLogger,
  type Harness,
  harnessSchema,
  type InitialFile,
  LLMSIM_DEFAULT_MODEL,
  type LlmDriver,
  type McpToolSource,
  type ModelPrices,
  type ModelWithProvider,
  modelWithProviderSchema,
  PlatformDefinition,
  parseLogger,
  type RuntimeBackends,
  type Session,
  type SessionFileSystemFactory,
  type SessionInput,
  safeParseDeferringJit,
  sessionSchema,
  type TurnLimits,
} from '@everruns-ts/core';
import { type LlmSimConfig, LlmSimDriver } from '@everruns-ts/driver-llmsim';
import { InMemorySessionFileSystemFactory, inMemoryBackends } from '@everruns-ts/stores-memory';
import type { z } from 'zod';
import { SingleSessionBuilder } from './builders.js';
import { createAndSeedSession } from './create-and-seed-session.js';
import { resolveTurnLeaseOptions, type TurnLeaseOptions } from './held-turn-lease.js';
import { InProcessRuntime, type InProcessRuntimeOptions } from './in-process-runtime.js';
import { invalidInputError } from './runtime-errors.js';
import { parseModelPrices } from './session-usage.js';

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
  #mcpToolSource: McpToolSource | undefined;
  #llmSim: LlmSimConfig | undefined;
  readonly #harnesses: Harness[] = [];
  readonly #agents: Agent[] = [];
  readonly #sessions: Session[] = [];
  readonly #seeds: Array<{ sessionId: string; path: string; content: string }> = [];
  #single: SingleSessionBuilder | undefined;
  #limits: TurnLimits = { ...DEFAULT_TURN_LIMITS };
  #options: InProcessRuntimeOptions = {};

  /**
   * Uses the host's platform: its capabilities, drivers and workspace factory. `build()` copies
   * its registries, so the platform is never changed and may build any number of runtimes.
   */
  platformDefinition(platform: PlatformDefinition): this {
    this.#platform = platform;
    return this;
  }
  /**
   * Registers one more capability (on top of the platform's). One with the id of a capability
   * registered before (by an earlier call or by the platform) replaces it, as upstream's
   * registry does.
   */
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
  /** Uses this driver registry's drivers instead of the platform's (copied at `build()`, never changed). */
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
  /**
   * Where the tools of sessions' MCP servers come from (overrides the platform's), for example
   * `@everruns-ts/mcp`'s pool. The runtime asks it only for sessions with enabled MCP servers,
   * and closes it in `close()`.
   */
  mcpToolSource(source: McpToolSource): this {
    this.#mcpToolSource = source;
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
  /**
   * How long each turn's session lease lasts and how often a running turn renews it (default
   * 60 s, renewed every 20 s); shorthand for `options({ turnLease })`. `build()` throws
   * `INVALID_INPUT` for values that are not positive integers or a renewal not shorter than the
   * duration, before writing anything.
   */
  turnLease(options: TurnLeaseOptions): this {
    this.#options = { ...this.#options, turnLease: { ...options } };
    return this;
  }
  /**
   * Prices per model, per million tokens, in your currency (the runtime ships no prices):
   * `TurnResult.cost` and `sessionUsage(...).cost` then say what turns and sessions cost.
   * Cached-input, cache-write and reasoning tokens are priced at their own rates when given.
   * Keys are the model names the agent messages record (a dated snapshot name such as
   * `gpt-4.1-mini-2025-04-14` also finds `gpt-4.1-mini`). Calling it again replaces the table.
   * Throws `INVALID_INPUT` at once for a malformed table; shorthand for `options({ prices })`.
   */
  prices(prices: ModelPrices): this {
    this.#options = { ...this.#options, prices: parseModelPrices(prices) };
    return this;
  }
  /**
   * Where the runtime reports turns (the pino/console shape, `level(obj, msg)`; `console` fits
   * through `consoleLogger()` from core): each turn's end (`debug`), a failed turn with its error
   * code (`warn`), a lost turn lease (`warn`, code `TURN_IN_PROGRESS`). Entries carry ids, counts
   * and codes, never message content or API keys. Throws `INVALID_INPUT` at once for a value
   * without the four functions; shorthand for `options({ logger })`.
   */
  logger(logger: EverrunsLogger): this {
    this.#options = { ...this.#options, logger: parseLogger(logger, 'logger') as EverrunsLogger };
    return this;
  }
  /** Seeds a harness (kept as it is when the backends already hold its id). Throws `INVALID_INPUT`. */
  harness(harness: z.input<typeof harnessSchema> | Harness): this {
    this.#harnesses.push(parseWith(harnessSchema, harness, 'harness'));
    return this;
  }
  /** Seeds an agent (kept as it is when the backends already hold its id). Throws `INVALID_INPUT`. */
  agent(agent: z.input<typeof agentSchema> | Agent): this {
    this.#agents.push(parseWith(agentSchema, agent, 'agent'));
    return this;
  }
  /** Seeds a session and its workspace, unless the backends hold it already. Throws `INVALID_INPUT`. */
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
    // Checked before anything is written to the backends.
    resolveTurnLeaseOptions(this.#options.turnLease);
    if (this.#options.prices !== undefined) parseModelPrices(this.#options.prices);
    // The runtime gets copies of the given registries: building never changes the caller's
    // platform or registries, so one definition can build any number of runtimes.
    const given = this.#platform ?? new PlatformDefinition();
    const mcpToolSource = this.#mcpToolSource ?? given.mcpToolSource;
    // The last capability given for an id wins, over an earlier one and over the platform's.
    const ownById = new Map<string, Capability>();
    for (const capability of this.#capabilities) ownById.set(capability.id, capability);
    const platform = new PlatformDefinition(
      copyCapabilityRegistry(given.capabilities, ownById),
      copyDriverRegistry(this.#driverRegistry ?? given.drivers),
      {
        ...(given.fileSystemFactory ? { fileSystemFactory: given.fileSystemFactory } : {}),
        ...(mcpToolSource ? { mcpToolSource } : {}),
      },
    );
    for (const builtin of this.#builtins) {
      if (!ownById.has(builtin.id) && !platform.capabilities.has(builtin.id)) {
        platform.capabilities.register(builtin);
      }
    }
    const drivers = platform.drivers;
    for (const capability of ownById.values()) platform.capabilities.register(capability);
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
    const parsedModel = safeParseDeferringJit(modelWithProviderSchema, defaultModel);
    if (!parsedModel.success) throw invalidInputError('default model', parsedModel.error);
    await backends.providers.setDefaultModel(parsedModel.data);
    for (const [modelId, model] of this.#models) {
      const parsed = safeParseDeferringJit(modelWithProviderSchema, model);
      if (!parsed.success) throw invalidInputError(`model ${modelId}`, parsed.error);
      await backends.providers.addModel(modelId, parsed.data);
    }
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
      await fileSystem.seedInitialFile({
        path: seed.path,
        content: seed.content,
        encoding: 'text',
        isReadonly: false,
      });
    }
    return new InProcessRuntime(
      platform,
      backends,
      fileSystems,
      this.#limits,
      defaultSessionId,
      this.#options,
    );
  }
}

function copyCapabilityRegistry(
  registry: CapabilityRegistry,
  replaced: ReadonlyMap<string, Capability>,
): CapabilityRegistry {
  const copy = new CapabilityRegistry();
  for (const capability of registry.list()) {
    if (!replaced.has(capability.id)) copy.register(capability);
  }
  return copy;
}

function copyDriverRegistry(registry: DriverRegistry): DriverRegistry {
  const copy = new DriverRegistry();
  for (const providerType of registry.providerTypes()) copy.register(registry.get(providerType));
  return copy;
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
  const parsed = safeParseDeferringJit(schema, value);
  if (!parsed.success) throw invalidInputError(what, parsed.error);
  return parsed.data;
}
