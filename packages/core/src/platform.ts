import { CapabilityRegistry } from './capability-registry.js';
import { DriverRegistry } from './driver.js';
import type { SessionFileSystemFactory } from './file-system.js';

/** Options of {@link PlatformDefinition}. */
export interface PlatformDefinitionOptions {
  /** Yields each session's workspace; the runtime defaults to an in-memory one. */
  fileSystemFactory?: SessionFileSystemFactory;
}

/**
 * What a host application brings: its capabilities, its drivers and (optionally) where session
 * workspaces live.
 */
export class PlatformDefinition {
  readonly capabilities: CapabilityRegistry;
  readonly drivers: DriverRegistry;
  fileSystemFactory: SessionFileSystemFactory | undefined;

  constructor(
    capabilities: CapabilityRegistry = new CapabilityRegistry(),
    drivers: DriverRegistry = new DriverRegistry(),
    options: PlatformDefinitionOptions = {},
  ) {
    this.capabilities = capabilities;
    this.drivers = drivers;
    this.fileSystemFactory = options.fileSystemFactory;
  }

  /** Sets the workspace factory and returns this definition. */
  withFileSystemFactory(factory: SessionFileSystemFactory): this {
    this.fileSystemFactory = factory;
    return this;
  }
}
