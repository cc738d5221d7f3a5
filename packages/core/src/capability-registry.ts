import type { Capability } from './capability.js';
import type { CapabilityConfig } from './domain.js';
import { EverrunsError } from './errors.js';
import { formatZodError } from './format-zod-error.js';

/** A capability switched on for a session, with its validated config. */
export interface ResolvedCapability {
  capability: Capability;
  config: unknown;
}

/**
 * The capabilities a platform offers. Registering a capability whose dependencies would form a
 * cycle throws `CAPABILITY_CYCLE`; resolving a configuration that names an unknown capability
 * throws `CAPABILITY_NOT_FOUND`.
 */
export class CapabilityRegistry {
  readonly #capabilities = new Map<string, Capability>();

  /** Registers a capability. Throws `DUPLICATE_ID` when the id is taken, `CAPABILITY_CYCLE` on a cycle. */
  register<TConfig>(capability: Capability<TConfig>): this {
    const cap = capability as unknown as Capability;
    if (this.#capabilities.has(cap.id)) {
      throw new EverrunsError({
        code: 'DUPLICATE_ID',
        message: `Capability ${cap.id} is already registered`,
      });
    }
    this.#capabilities.set(cap.id, cap);
    try {
      this.#checkCycles(cap.id, []);
    } catch (error) {
      this.#capabilities.delete(cap.id);
      throw error;
    }
    return this;
  }

  /** The capability registered under `id`, or `undefined`. */
  get(id: string): Capability | undefined {
    return this.#capabilities.get(id);
  }

  /** Whether `id` is registered. */
  has(id: string): boolean {
    return this.#capabilities.has(id);
  }

  /** Every registered capability, in registration order. */
  list(): Capability[] {
    return [...this.#capabilities.values()];
  }

  /** Throws `CAPABILITY_NOT_FOUND` when a registered capability depends on an unregistered one. */
  validate(): void {
    for (const capability of this.#capabilities.values()) {
      for (const dependency of capability.dependencies ?? []) {
        if (!this.#capabilities.has(dependency)) {
          throw new EverrunsError({
            code: 'CAPABILITY_NOT_FOUND',
            message: `Capability ${capability.id} depends on ${dependency}, which is not registered`,
            details: { capabilityId: capability.id, dependency },
          });
        }
      }
    }
  }

  /**
   * Expands configs into the capabilities to switch on: dependencies first, each once, the last
   * config of an id winning. Validates each config with the capability's schema (`INVALID_INPUT`).
   */
  resolve(configs: readonly CapabilityConfig[]): ResolvedCapability[] {
    const configById = new Map<string, unknown>();
    for (const entry of configs) configById.set(entry.id, entry.config);
    const ordered: ResolvedCapability[] = [];
    const seen = new Set<string>();
    const visit = (id: string, requiredBy?: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const capability = this.#capabilities.get(id);
      if (!capability) {
        throw new EverrunsError({
          code: 'CAPABILITY_NOT_FOUND',
          message: requiredBy
            ? `Capability ${requiredBy} depends on ${id}, which is not registered`
            : `Capability ${id} is not registered`,
          details: { capabilityId: id },
        });
      }
      for (const dependency of capability.dependencies ?? []) visit(dependency, id);
      let config = configById.get(id);
      if (capability.configSchema) {
        const parsed = capability.configSchema.safeParse(config ?? {});
        if (!parsed.success) {
          throw new EverrunsError({
            code: 'INVALID_INPUT',
            message: `Invalid configuration of capability ${id}: ${formatZodError(parsed.error)}`,
            details: { capabilityId: id },
          });
        }
        config = parsed.data;
      }
      ordered.push({ capability, config });
    };
    for (const entry of configs) visit(entry.id);
    return ordered;
  }

  #checkCycles(id: string, path: string[]): void {
    if (path.includes(id)) {
      throw new EverrunsError({
        code: 'CAPABILITY_CYCLE',
        message: `Capability dependencies form a cycle: ${[...path, id].join(' -> ')}`,
        details: { cycle: [...path, id] },
      });
    }
    const capability = this.#capabilities.get(id);
    for (const dependency of capability?.dependencies ?? [])
      this.#checkCycles(dependency, [...path, id]);
  }
}
