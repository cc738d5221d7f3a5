import { CapabilityRegistry } from './capability-registry.js';
import { DriverRegistry } from './driver.js';
import type { SessionFileSystemFactory } from './file-system.js';
import type { McpToolSource } from './mcp.js';

/** Options of {@link PlatformDefinition}. */
export interface PlatformDefinitionOptions {
  /** Yields each session's workspace; the runtime defaults to an in-memory one. */
  fileSystemFactory?: SessionFileSystemFactory;
  /**
   * Turns the MCP servers of sessions' definitions into tools (for example
   * `@everruns-ts/mcp`'s pool). Without one, MCP servers in definitions are ignored.
   */
  mcpToolSource?: McpToolSource;
}

/**
 * What a host application brings: its capabilities, its drivers and (optionally) where session
 * workspaces live and where the tools of MCP servers come from.
 */
export class PlatformDefinition {
  readonly capabilities: CapabilityRegistry;
  readonly drivers: DriverRegistry;
  fileSystemFactory: SessionFileSystemFactory | undefined;
  /** See {@link PlatformDefinitionOptions.mcpToolSource}. */
  mcpToolSource: McpToolSource | undefined;

  constructor(
    capabilities: CapabilityRegistry = new CapabilityRegistry(),
    drivers: DriverRegistry = new DriverRegistry(),
    options: PlatformDefinitionOptions = {},
  ) {
    this.capabilities = capabilities;
    this.drivers = drivers;
    this.fileSystemFactory = options.fileSystemFactory;
    this.mcpToolSource = options.mcpToolSource;
  }

  /** Sets the workspace factory and returns this definition. */
  withFileSystemFactory(factory: SessionFileSystemFactory): this {
    this.fileSystemFactory = factory;
    return this;
  }

  /**
   * Sets the source of MCP tools and returns this definition. A runtime built on the platform
   * closes the source when it closes.
   */
  withMcpToolSource(source: McpToolSource): this {
    this.mcpToolSource = source;
    return this;
  }
}
