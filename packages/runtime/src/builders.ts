import {
  type Agent,
  agentSchema,
  type CapabilityConfig,
  type DeclaredToolInput,
  declaredToolSchema,
  EverrunsError,
  formatZodError,
  type Harness,
  harnessSchema,
  type InitialFile,
  type McpServerConfig,
  type McpServers,
  mcpServerConfigSchema,
  mcpServerNameSchema,
  type NetworkAccessList,
  networkAccessListSchema,
  newId,
  type Session,
  type SessionStatus,
  safeParseDeferringJit,
  sessionSchema,
} from '@everruns-ts/core';
import type { z } from 'zod';

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = safeParseDeferringJit(schema, value);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid ${what}: ${formatZodError(parsed.error)}`,
    });
  }
  return parsed.data;
}

function textFile(path: string, content: string, isReadonly = false): InitialFile {
  return { path, content, encoding: 'text', isReadonly };
}

/** A file the workspace starts with, as the builders take it: text or bytes. */
export interface InitialFileSpec {
  /** Workspace path, for example `/AGENTS.md`. */
  path: string;
  /** Text (UTF-8), or bytes (stored base64). A string with `encoding: 'base64'` is taken as base64. */
  content: string | Uint8Array;
  /** `text` (default for a string) or `base64` (always for bytes). */
  encoding?: 'text' | 'base64';
  /** A read-only file refuses writes and deletes. */
  isReadonly?: boolean;
}

/** Options of the `initialFile(path, content, options)` form. */
export interface InitialFileOptions {
  isReadonly?: boolean;
  /** How a string `content` is encoded (`text` by default); bytes are always `base64`. */
  encoding?: 'text' | 'base64';
}

/**
 * The {@link InitialFile} of either form the builders accept: `(file)` or
 * `(path, content, options)`; bytes become base64.
 */
function initialFileOf(
  fileOrPath: InitialFileSpec | string,
  content?: string | Uint8Array,
  options: InitialFileOptions = {},
): InitialFile {
  const spec: InitialFileSpec =
    typeof fileOrPath === 'string'
      ? { path: fileOrPath, content: content ?? '', ...options }
      : fileOrPath;
  if (spec.content instanceof Uint8Array) {
    return {
      path: spec.path,
      content: Buffer.from(spec.content).toString('base64'),
      encoding: 'base64',
      isReadonly: spec.isReadonly ?? false,
    };
  }
  return {
    path: spec.path,
    content: spec.content,
    encoding: spec.encoding ?? 'text',
    isReadonly: spec.isReadonly ?? false,
  };
}

/** A timestamp as the builders take it: a `Date` or an ISO 8601 string. */
export type TimestampInput = Date | string;

function isoOf(value: TimestampInput): string {
  return typeof value === 'string' ? value : value.toISOString();
}

/** The fields every definition builder sets. */
export type DefinitionInput = {
  id: string;
  mcpServers?: Record<string, McpServerConfig> | undefined;
  displayName?: string | undefined;
  description?: string | undefined;
  capabilities?: CapabilityConfig[] | undefined;
  initialFiles?: z.input<typeof harnessSchema>['initialFiles'];
  maxIterations?: number | undefined;
  tags?: string[] | undefined;
  networkAccess?: z.input<typeof networkAccessListSchema> | undefined;
  createdAt?: string | undefined;
  updatedAt?: string | undefined;
};

/** What the harness, agent and session builders share: id, capabilities, files, limits. */
export abstract class DefinitionBuilder<TInput extends DefinitionInput, TOutput> {
  protected value: TInput;
  readonly #schema: z.ZodType<TOutput>;
  readonly #what: string;

  protected constructor(value: TInput, schema: z.ZodType<TOutput>, what: string) {
    this.value = value;
    this.#schema = schema;
    this.#what = what;
  }

  /** Sets a stable id instead of the generated one. */
  id(id: string): this {
    this.value.id = id;
    return this;
  }
  /**
   * Switches a capability on, with optional configuration: `capability('test_math')`,
   * `capability('web_fetch', { … })` or `capability({ id, config })`.
   */
  capability(capability: string | CapabilityConfig, config?: unknown): this {
    const entry =
      typeof capability === 'string'
        ? capabilityConfig(capability, config)
        : capabilityConfig(capability.id, capability.config);
    this.value.capabilities = [...(this.value.capabilities ?? []), entry];
    return this;
  }
  /** The same as {@link capability} (upstream's `with_capability`). */
  withCapability(capability: string | CapabilityConfig, config?: unknown): this {
    return this.capability(capability, config);
  }
  /** Switches on each capability, in order: ids or `{ id, config }` entries. */
  capabilities(capabilities: Iterable<string | CapabilityConfig>): this {
    for (const capability of capabilities) this.capability(capability);
    return this;
  }
  /** Adds a tag. */
  tag(tag: string): this {
    this.value.tags = [...(this.value.tags ?? []), tag];
    return this;
  }
  /** Adds tags, in order. */
  tags(tags: Iterable<string>): this {
    this.value.tags = [...(this.value.tags ?? []), ...tags];
    return this;
  }
  /**
   * Which hosts the session's tools may reach: `{ allowed, blocked }` patterns (`example.com`,
   * `*.example.com`, `https://example.com/api/`). Layers narrow each other (see
   * `foldNetworkAccess` of `@everruns-ts/core`). Throws `INVALID_INPUT` at once when malformed.
   */
  networkAccess(networkAccess: Partial<NetworkAccessList>): this {
    this.value.networkAccess = parse(networkAccessListSchema, networkAccess, 'network access list');
    return this;
  }
  /** When the definition was created (default: when it is built). */
  createdAt(createdAt: TimestampInput): this {
    this.value.createdAt = isoOf(createdAt);
    return this;
  }
  /** When the definition was last changed (default: its `createdAt`). */
  updatedAt(updatedAt: TimestampInput): this {
    this.value.updatedAt = isoOf(updatedAt);
    return this;
  }
  /**
   * Adds an MCP server whose tools the session's turns get (through the platform's MCP tool
   * source), or replaces the one of the same name. An agent or session entry replaces a harness
   * one of the same name; `{ ...config, disabled: true }` switches it off. Throws
   * `INVALID_INPUT` at once for a bad name or configuration.
   */
  mcpServer(name: string, config: McpServerConfig): this {
    const server = parseMcpServer(name, config);
    this.value.mcpServers = { ...(this.value.mcpServers ?? {}), [server.name]: server.config };
    return this;
  }
  /**
   * Replaces all MCP servers with these (upstream's `mcp_servers`). Throws `INVALID_INPUT` at
   * once for a bad name or configuration.
   */
  mcpServers(servers: McpServers): this {
    const parsed: Record<string, McpServerConfig> = {};
    for (const [name, config] of Object.entries(servers)) {
      const server = parseMcpServer(name, config);
      parsed[server.name] = server.config;
    }
    this.value.mcpServers = parsed;
    return this;
  }
  /** Limits the reason/act iterations of a turn. */
  maxIterations(maxIterations: number): this {
    this.value.maxIterations = maxIterations;
    return this;
  }
  /**
   * Adds a file the session's workspace starts with: `initialFile(path, text)`,
   * `initialFile(path, bytes)` (stored base64), or `initialFile({ path, content, … })`.
   */
  initialFile(file: InitialFileSpec): this;
  initialFile(path: string, content: string | Uint8Array, options?: InitialFileOptions): this;
  initialFile(
    fileOrPath: InitialFileSpec | string,
    content?: string | Uint8Array,
    options?: InitialFileOptions,
  ): this {
    this.value.initialFiles = [
      ...(this.value.initialFiles ?? []),
      initialFileOf(fileOrPath, content, options),
    ];
    return this;
  }
  /**
   * Validates and returns the definition; `updatedAt` defaults to `createdAt` when only that
   * is set. Throws `INVALID_INPUT`.
   */
  build(): TOutput {
    const value =
      this.value.createdAt !== undefined && this.value.updatedAt === undefined
        ? { ...this.value, updatedAt: this.value.createdAt }
        : this.value;
    return parse(this.#schema, value, this.#what);
  }
}

/** What the harness and agent builders share besides {@link DefinitionBuilder}: names and model. */
export abstract class NamedDefinitionBuilder<
  TInput extends DefinitionInput & {
    name: string;
    systemPrompt?: string | undefined;
    defaultModelId?: string | undefined;
    status?: 'active' | 'disabled' | 'archived' | undefined;
  },
  TOutput,
> extends DefinitionBuilder<TInput, TOutput> {
  /** Replaces the name given to the constructor. */
  name(name: string): this {
    this.value.name = name;
    return this;
  }
  /** Replaces the system prompt given to the constructor. */
  systemPrompt(systemPrompt: string): this {
    this.value.systemPrompt = systemPrompt;
    return this;
  }
  /** `active` (default), `disabled` (blocks its sessions' turns) or `archived`. */
  status(status: 'active' | 'disabled' | 'archived'): this {
    this.value.status = status;
    return this;
  }
  /** The same as {@link defaultModel} (upstream's `default_model_id`). */
  defaultModelId(modelId: string): this {
    return this.defaultModel(modelId);
  }
  /** A human-readable name. */
  displayName(displayName: string): this {
    this.value.displayName = displayName;
    return this;
  }
  /** What the definition is for. */
  description(description: string): this {
    this.value.description = description;
    return this;
  }
  /** The id of the model (in the provider store) sessions use unless they name another. */
  defaultModel(modelId: string): this {
    this.value.defaultModelId = modelId;
    return this;
  }
}

/** Builds a {@link Harness}. The id is generated unless `id(...)` is called. */
export class HarnessBuilder extends NamedDefinitionBuilder<z.input<typeof harnessSchema>, Harness> {
  constructor(name: string, systemPrompt: string) {
    super({ id: newId('harness'), name, systemPrompt }, harnessSchema, 'harness');
  }
  /** The id the harness will have. */
  harnessId(): string {
    return this.value.id;
  }
  /** Makes this harness inherit from another. */
  parent(parentHarnessId: string): this {
    this.value.parentHarnessId = parentHarnessId;
    return this;
  }
  /** The same as {@link parent} (upstream's `parent_harness_id`). */
  parentHarnessId(parentHarnessId: string): this {
    return this.parent(parentHarnessId);
  }
}

/** Builds an {@link Agent}. The id is generated unless `id(...)` is called. */
export class AgentBuilder extends NamedDefinitionBuilder<z.input<typeof agentSchema>, Agent> {
  constructor(name: string, systemPrompt: string) {
    super({ id: newId('agent'), name, systemPrompt }, agentSchema, 'agent');
  }
  /** The id the agent will have. */
  agentId(): string {
    return this.value.id;
  }
  /**
   * Adds one of the agent's own tools (upstream's `tool`): a {@link DeclaredToolInput} such as
   * `{ type: 'client_side', name, description, parameters }`, whose result the host submits, or
   * `{ type: 'builtin', name }` naming a registered capability's tool. A plain name is this
   * package's allow-list form: once any names are given, only the capability and MCP tools named
   * are offered. Throws `INVALID_INPUT` at once for a malformed definition.
   */
  tool(tool: string | DeclaredToolInput): this {
    const entry = typeof tool === 'string' ? tool : parse(declaredToolSchema, tool, 'tool');
    this.value.tools = [...(this.value.tools ?? []), entry];
    return this;
  }
  /** Adds each tool, in order (see {@link tool}). */
  tools(tools: Iterable<string | DeclaredToolInput>): this {
    for (const tool of tools) this.tool(tool);
    return this;
  }
}

/** Builds a {@link Session} of a harness. The id is generated unless `id(...)` is called. */
export class SessionBuilder extends DefinitionBuilder<z.input<typeof sessionSchema>, Session> {
  constructor(harnessId: string) {
    super({ id: newId('session'), harnessId }, sessionSchema, 'session');
  }
  /** The id the session will have. */
  sessionId(): string {
    return this.value.id;
  }
  /** The harness the session belongs to (replaces the constructor's). */
  harness(harnessId: string): this {
    this.value.harnessId = harnessId;
    return this;
  }
  /** The agent the session runs. */
  agent(agentId: string): this {
    this.value.agentId = agentId;
    return this;
  }
  /** The session's title. */
  title(title: string): this {
    this.value.title = title;
    return this;
  }
  /** The session's locale, for example `en-GB`. */
  locale(locale: string): this {
    this.value.locale = locale;
    return this;
  }
  /** The id of the model (in the provider store) the session uses. */
  model(modelId: string): this {
    this.value.modelId = modelId;
    return this;
  }
  /** The same as {@link model} (upstream's `model_id`). */
  modelId(modelId: string): this {
    return this.model(modelId);
  }
  /** A system prompt added after the harness's and agent's. */
  systemPrompt(systemPrompt: string): this {
    this.value.systemPrompt = systemPrompt;
    return this;
  }
  /** The status the session starts with (`started` by default). */
  status(status: SessionStatus): this {
    this.value.status = status;
    return this;
  }
  /**
   * Adds one of the session's own tools (a {@link DeclaredToolInput}); it replaces an agent tool
   * of the same name. Throws `INVALID_INPUT` at once for a malformed definition.
   */
  tool(tool: DeclaredToolInput): this {
    this.value.tools = [...(this.value.tools ?? []), parse(declaredToolSchema, tool, 'tool')];
    return this;
  }
  /** Adds each tool, in order (see {@link tool}). */
  tools(tools: Iterable<DeclaredToolInput>): this {
    for (const tool of tools) this.tool(tool);
    return this;
  }
}

/**
 * The compact way to describe one harness, one optional agent and one session, as used by
 * `InProcessRuntimeBuilder.singleSession(s => …)`. Methods are named after the layer they set
 * (`harness…`, `agent…`, `session…`); the unprefixed ones keep their first meaning
 * (`withCapability` and `initialFile`: harness and session, as before).
 *
 * `harnessId()`, `agentId()` and `sessionId()` read the id (upstream's getters); with an argument
 * they set it, as before. The agent exists once an `agent…` method is called (named
 * `default-agent` unless {@link agent} names it); `agentId()` reads the id it gets then.
 */
export class SingleSessionBuilder {
  #harness: HarnessBuilder = new HarnessBuilder('default', '');
  #agentId: string = newId('agent');
  #agent: AgentBuilder | undefined;
  readonly #session: SessionBuilder;
  readonly #tags: string[] = [];
  readonly #seeds: InitialFile[] = [];

  constructor() {
    this.#session = new SessionBuilder(this.#harness.harnessId());
  }

  /** Names the harness and sets its system prompt, keeping everything else set on it. */
  harness(name: string, systemPrompt: string): this {
    this.#harness.name(name).systemPrompt(systemPrompt);
    return this;
  }
  /** The harness's id. */
  harnessId(): string;
  /** Sets the harness's id. */
  harnessId(id: string): this;
  harnessId(id?: string): string | this {
    if (id === undefined) return this.#harness.harnessId();
    this.#harness.id(id);
    return this;
  }
  harnessDisplayName(displayName: string): this {
    this.#harness.displayName(displayName);
    return this;
  }
  harnessDescription(description: string): this {
    this.#harness.description(description);
    return this;
  }
  /** Switches a capability on at the harness level (the same as {@link harnessCapability}). */
  withCapability(capability: string | CapabilityConfig, config?: unknown): this {
    this.#harness.capability(capability, config);
    return this;
  }
  /** Switches a capability on at the harness level. */
  harnessCapability(capability: string | CapabilityConfig, config?: unknown): this {
    this.#harness.capability(capability, config);
    return this;
  }
  /** The id of the model the harness's sessions use unless the agent or session names another. */
  harnessDefaultModelId(modelId: string): this {
    this.#harness.defaultModel(modelId);
    return this;
  }
  /** Adds a file (text or bytes) to the harness's initial files. */
  harnessInitialFile(file: InitialFileSpec): this;
  harnessInitialFile(
    path: string,
    content: string | Uint8Array,
    options?: InitialFileOptions,
  ): this;
  harnessInitialFile(
    fileOrPath: InitialFileSpec | string,
    content?: string | Uint8Array,
    options?: InitialFileOptions,
  ): this {
    this.#harness.initialFile(initialFileOf(fileOrPath, content, options));
    return this;
  }
  /** The harness's network access list. Throws `INVALID_INPUT` at once. */
  harnessNetworkAccess(networkAccess: Partial<NetworkAccessList>): this {
    this.#harness.networkAccess(networkAccess);
    return this;
  }
  /** Adds an MCP server to the harness (see `HarnessBuilder.mcpServer`). Throws `INVALID_INPUT`. */
  harnessMcpServer(name: string, config: McpServerConfig): this {
    this.#harness.mcpServer(name, config);
    return this;
  }
  /** Adds an agent with a name and system prompt, keeping what was set on it already. */
  agent(name: string, systemPrompt: string): this {
    if (this.#agent) this.#agent.name(name).systemPrompt(systemPrompt);
    else this.#agent = new AgentBuilder(name, systemPrompt).id(this.#agentId).tags(this.#tags);
    return this;
  }
  /** The agent's id (the id it gets when an agent is configured). */
  agentId(): string;
  /** Sets the agent's id (creates the agent as `default-agent` when none was named). */
  agentId(id: string): this;
  agentId(id?: string): string | this {
    if (id === undefined) return this.#agent?.agentId() ?? this.#agentId;
    this.#agentId = id;
    this.#requireAgent().id(id);
    return this;
  }
  agentDisplayName(displayName: string): this {
    this.#requireAgent().displayName(displayName);
    return this;
  }
  agentDescription(description: string): this {
    this.#requireAgent().description(description);
    return this;
  }
  agentMaxIterations(maxIterations: number): this {
    this.#requireAgent().maxIterations(maxIterations);
    return this;
  }
  /** Switches a capability on at the agent level. */
  agentCapability(capability: string | CapabilityConfig, config?: unknown): this {
    this.#requireAgent().capability(capability, config);
    return this;
  }
  /** The id of the model the agent's sessions use unless the session names another. */
  agentDefaultModelId(modelId: string): this {
    this.#requireAgent().defaultModel(modelId);
    return this;
  }
  /** Adds one of the agent's own tools (see `AgentBuilder.tool`). Throws `INVALID_INPUT`. */
  agentTool(tool: string | DeclaredToolInput): this {
    this.#requireAgent().tool(tool);
    return this;
  }
  /** Adds a file (text or bytes) to the agent's initial files. */
  agentInitialFile(file: InitialFileSpec): this;
  agentInitialFile(path: string, content: string | Uint8Array, options?: InitialFileOptions): this;
  agentInitialFile(
    fileOrPath: InitialFileSpec | string,
    content?: string | Uint8Array,
    options?: InitialFileOptions,
  ): this {
    this.#requireAgent().initialFile(initialFileOf(fileOrPath, content, options));
    return this;
  }
  /** The agent's network access list. Throws `INVALID_INPUT` at once. */
  agentNetworkAccess(networkAccess: Partial<NetworkAccessList>): this {
    this.#requireAgent().networkAccess(networkAccess);
    return this;
  }
  /**
   * Adds an MCP server to the agent (created as `default-agent` when none was named), replacing
   * a harness server of the same name. Throws `INVALID_INPUT`.
   */
  agentMcpServer(name: string, config: McpServerConfig): this {
    this.#requireAgent().mcpServer(name, config);
    return this;
  }
  /**
   * Adds an MCP server to the session, replacing a harness or agent server of the same name.
   * Throws `INVALID_INPUT` at once.
   */
  sessionMcpServer(name: string, config: McpServerConfig): this {
    this.#session.mcpServer(name, config);
    return this;
  }
  /** Replaces the session's MCP servers with these. Throws `INVALID_INPUT` at once. */
  sessionMcpServers(servers: McpServers): this {
    this.#session.mcpServers(servers);
    return this;
  }
  /** Switches a capability on at the session level. */
  sessionCapability(capability: string | CapabilityConfig, config?: unknown): this {
    this.#session.capability(capability, config);
    return this;
  }
  /** Adds one of the session's own tools (see `SessionBuilder.tool`). Throws `INVALID_INPUT`. */
  sessionTool(tool: DeclaredToolInput): this {
    this.#session.tool(tool);
    return this;
  }
  /** The session's id. */
  sessionId(): string;
  /** Sets the session's id. */
  sessionId(id: string): this;
  sessionId(id?: string): string | this {
    if (id === undefined) return this.#session.sessionId();
    this.#session.id(id);
    return this;
  }
  sessionTitle(title: string): this {
    this.#session.title(title);
    return this;
  }
  sessionLocale(locale: string): this {
    this.#session.locale(locale);
    return this;
  }
  /** The same as {@link sessionLocale} (upstream's `locale`). */
  locale(locale: string): this {
    return this.sessionLocale(locale);
  }
  sessionModel(modelId: string): this {
    this.#session.model(modelId);
    return this;
  }
  /** The same as {@link sessionModel} (upstream's `session_model_id`). */
  sessionModelId(modelId: string): this {
    return this.sessionModel(modelId);
  }
  /** Limits the session's reason/act iterations (the same as {@link sessionMaxIterations}). */
  maxIterations(maxIterations: number): this {
    this.#session.maxIterations(maxIterations);
    return this;
  }
  /** Limits the session's reason/act iterations. */
  sessionMaxIterations(maxIterations: number): this {
    return this.maxIterations(maxIterations);
  }
  /** The session's network access list. Throws `INVALID_INPUT` at once. */
  sessionNetworkAccess(networkAccess: Partial<NetworkAccessList>): this {
    this.#session.networkAccess(networkAccess);
    return this;
  }
  /** Adds a tag to the harness, the agent (when there is one) and the session. */
  tag(tag: string): this {
    this.#tags.push(tag);
    this.#harness.tag(tag);
    this.#agent?.tag(tag);
    this.#session.tag(tag);
    return this;
  }
  /** Adds a file (text or bytes) to the session's initial files. */
  initialFile(file: InitialFileSpec): this;
  initialFile(path: string, content: string | Uint8Array, options?: InitialFileOptions): this;
  initialFile(
    fileOrPath: InitialFileSpec | string,
    content?: string | Uint8Array,
    options?: InitialFileOptions,
  ): this {
    this.#session.initialFile(initialFileOf(fileOrPath, content, options));
    return this;
  }
  /** The same as {@link initialFile} (upstream's `session_initial_file`). */
  sessionInitialFile(file: InitialFileSpec): this;
  sessionInitialFile(
    path: string,
    content: string | Uint8Array,
    options?: InitialFileOptions,
  ): this;
  sessionInitialFile(
    fileOrPath: InitialFileSpec | string,
    content?: string | Uint8Array,
    options?: InitialFileOptions,
  ): this {
    this.#session.initialFile(initialFileOf(fileOrPath, content, options));
    return this;
  }
  /** Writes a text file into the workspace after the session is created. */
  seedTextFile(path: string, content: string): this {
    this.#seeds.push(textFile(path, content));
    return this;
  }

  /** Validates everything and returns the definitions. Throws `INVALID_INPUT`. */
  build(): { harness: Harness; agent: Agent | null; session: Session; seeds: InitialFile[] } {
    const harness = this.#harness.build();
    const agent = this.#agent?.build() ?? null;
    const session = this.#session.harness(harness.id);
    if (agent) session.agent(agent.id);
    return { harness, agent, session: session.build(), seeds: [...this.#seeds] };
  }

  #requireAgent(): AgentBuilder {
    if (!this.#agent) {
      this.#agent = new AgentBuilder('default-agent', '').id(this.#agentId).tags(this.#tags);
    }
    return this.#agent;
  }
}

function parseMcpServer(
  name: string,
  config: McpServerConfig,
): { name: string; config: McpServerConfig } {
  return {
    name: parse(mcpServerNameSchema, name, 'MCP server name'),
    config: parse(mcpServerConfigSchema, config, `MCP server ${String(name)}`),
  };
}

function capabilityConfig(id: string, config: unknown): CapabilityConfig {
  return config === undefined ? { id } : { id, config };
}
