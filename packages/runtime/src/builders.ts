import {
  type Agent,
  agentSchema,
  type CapabilityConfig,
  EverrunsError,
  formatZodError,
  type Harness,
  harnessSchema,
  type InitialFile,
  type McpServerConfig,
  mcpServerConfigSchema,
  mcpServerNameSchema,
  newId,
  type Session,
  sessionSchema,
} from '@everruns-ts/core';
import type { z } from 'zod';

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
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

/** The fields every definition builder sets. */
export type DefinitionInput = {
  id: string;
  mcpServers?: Record<string, McpServerConfig> | undefined;
  displayName?: string | undefined;
  description?: string | undefined;
  capabilities?: CapabilityConfig[] | undefined;
  initialFiles?: z.input<typeof harnessSchema>['initialFiles'];
  maxIterations?: number | undefined;
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
  /** Switches a capability on, with optional configuration. */
  capability(id: string, config?: unknown): this {
    this.value.capabilities = [...(this.value.capabilities ?? []), capabilityConfig(id, config)];
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
  /** Limits the reason/act iterations of a turn. */
  maxIterations(maxIterations: number): this {
    this.value.maxIterations = maxIterations;
    return this;
  }
  /** Adds a text file the session's workspace starts with. */
  initialFile(path: string, content: string, options: { isReadonly?: boolean } = {}): this {
    this.value.initialFiles = [
      ...(this.value.initialFiles ?? []),
      textFile(path, content, options.isReadonly),
    ];
    return this;
  }
  /** Validates and returns the definition. Throws `INVALID_INPUT`. */
  build(): TOutput {
    return parse(this.#schema, this.value, this.#what);
  }
}

/** What the harness and agent builders share besides {@link DefinitionBuilder}: names and model. */
export abstract class NamedDefinitionBuilder<
  TInput extends DefinitionInput & { defaultModelId?: string | undefined },
  TOutput,
> extends DefinitionBuilder<TInput, TOutput> {
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
  /** Adds a tag. */
  tag(tag: string): this {
    this.value.tags = [...(this.value.tags ?? []), tag];
    return this;
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
  /** Restricts the agent to the named tools (call once per tool). */
  tool(name: string): this {
    this.value.tools = [...(this.value.tools ?? []), name];
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
  agent(agentId: string): this {
    this.value.agentId = agentId;
    return this;
  }
  title(title: string): this {
    this.value.title = title;
    return this;
  }
  locale(locale: string): this {
    this.value.locale = locale;
    return this;
  }
  model(modelId: string): this {
    this.value.modelId = modelId;
    return this;
  }
  systemPrompt(systemPrompt: string): this {
    this.value.systemPrompt = systemPrompt;
    return this;
  }
}

/**
 * The compact way to describe one harness, one optional agent and one session, as used by
 * `InProcessRuntimeBuilder.singleSession(s => …)`.
 */
export class SingleSessionBuilder {
  #harness: HarnessBuilder = new HarnessBuilder('default', '');
  #agent: AgentBuilder | undefined;
  #session: SessionBuilder | undefined;
  #sessionEdits: Array<(session: SessionBuilder) => void> = [];
  readonly #seeds: InitialFile[] = [];

  /** Names the harness and sets its system prompt. */
  harness(name: string, systemPrompt: string): this {
    const id = this.#harness.harnessId();
    this.#harness = new HarnessBuilder(name, systemPrompt).id(id);
    return this;
  }
  harnessId(id: string): this {
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
  /** Switches a capability on at the harness level. */
  withCapability(id: string, config?: unknown): this {
    this.#harness.capability(id, config);
    return this;
  }
  /** Adds an MCP server to the harness (see `HarnessBuilder.mcpServer`). Throws `INVALID_INPUT`. */
  harnessMcpServer(name: string, config: McpServerConfig): this {
    this.#harness.mcpServer(name, config);
    return this;
  }
  /** Adds an agent with a name and system prompt. */
  agent(name: string, systemPrompt: string): this {
    const id = this.#agent?.agentId();
    this.#agent = new AgentBuilder(name, systemPrompt);
    if (id) this.#agent.id(id);
    return this;
  }
  agentId(id: string): this {
    this.#requireAgent().id(id);
    return this;
  }
  agentDisplayName(displayName: string): this {
    this.#requireAgent().displayName(displayName);
    return this;
  }
  agentMaxIterations(maxIterations: number): this {
    this.#requireAgent().maxIterations(maxIterations);
    return this;
  }
  agentCapability(id: string, config?: unknown): this {
    this.#requireAgent().capability(id, config);
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
    parseMcpServer(name, config);
    this.#sessionEdits.push((session) => session.mcpServer(name, config));
    return this;
  }
  sessionId(id: string): this {
    this.#sessionEdits.push((session) => session.id(id));
    return this;
  }
  sessionTitle(title: string): this {
    this.#sessionEdits.push((session) => session.title(title));
    return this;
  }
  sessionLocale(locale: string): this {
    this.#sessionEdits.push((session) => session.locale(locale));
    return this;
  }
  sessionModel(modelId: string): this {
    this.#sessionEdits.push((session) => session.model(modelId));
    return this;
  }
  maxIterations(maxIterations: number): this {
    this.#sessionEdits.push((session) => session.maxIterations(maxIterations));
    return this;
  }
  /** Adds a text file to the session's initial files. */
  initialFile(path: string, content: string, options: { isReadonly?: boolean } = {}): this {
    this.#sessionEdits.push((session) => session.initialFile(path, content, options));
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
    if (!this.#session) this.#session = new SessionBuilder(harness.id);
    for (const edit of this.#sessionEdits) edit(this.#session);
    this.#sessionEdits = [];
    if (agent) this.#session.agent(agent.id);
    return { harness, agent, session: this.#session.build(), seeds: [...this.#seeds] };
  }

  #requireAgent(): AgentBuilder {
    if (!this.#agent) this.#agent = new AgentBuilder('default-agent', '');
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
